"""PostgreSQL's text cannot hold NUL (U+0000), and psycopg refuses any string parameter with one.

Text that opsmith stores comes from people and from tools: a bug report, a tool's error message, a
host's stderr tail. One NUL in it would make its write fail on PostgreSQL (and a task or a run
whose every save fails is stuck), where SQLite stores it. So on PostgreSQL every string parameter
is written with U+FFFD, the replacement character, in place of each NUL: the text is kept, less a
character no terminal shows, and a lookup by a value with NUL finds nothing rather than failing.
JSON is not concerned: its NULs are escaped (\\u0000) by the JSON encoder. What is hashed or
signed over a text column takes the same replacement before it is hashed (`domain.text`), so that a
NUL sent by anyone cannot make a stored row look edited.
"""

from __future__ import annotations

from typing import Any

from psycopg.abc import Buffer
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

from opsmith.domain.text import without_nul


class _TextDumper(StrDumperUnknown):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(without_nul(obj))


class _BinaryTextDumper(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(without_nul(obj))


def keep_nul_out(dbapi_connection: Any) -> None:
    """Register the dumpers on one psycopg connection (for both of its formats)."""
    adapters = dbapi_connection.adapters
    adapters.register_dumper(str, _BinaryTextDumper)
    adapters.register_dumper(str, _TextDumper)

"""Repository of the inventory: one signed row holding the whole of it, as last imported.

One row, not a table of groups and one of hosts: an import replaces the inventory whole (the file
imported is the source of truth), and every use reads it whole (a host's variables depend on all
its groups), so nothing is ever looked up or updated by the piece. A single row makes the replace
one small transaction on SQLite and PostgreSQL alike, and the JSON column (portable, `JSON` on both)
is exactly what is hashed. Tens of thousands of hosts are a few megabytes of JSON, read once per
command.

The row is signed with the store's seal over its content hash, source, time and importer, and the
hash is checked against the data it is read with. The inventory decides which addresses opsmith
sends credentials to, so a row written outside opsmith (without the key) is unknown, as a forged
token or role is: it is ignored, with a warning in the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import JSON, DateTime, Integer, Row, Select, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.errors import InventoryError
from opsmith.domain.inventory import Inventory, InventorySource
from opsmith.domain.seal import Seal
from opsmith.store.database import Database
from opsmith.store.models import Base

_log = logging.getLogger(__name__)
_KIND = "inventory"
_ROW_ID = 1  # there is one inventory


class InventoryRow(Base):
    """The inventory as last imported: its declarations as JSON, where they came from, signed."""

    __tablename__ = "inventory"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(1024))
    hash: Mapped[str] = mapped_column(String(80))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    imported_by: Mapped[str] = mapped_column(String(200))
    group_count: Mapped[int] = mapped_column(Integer, default=0)
    host_count: Mapped[int] = mapped_column(Integer, default=0)
    seal: Mapped[str] = mapped_column(String(80), default="")


class InventoryRepository:
    def __init__(self, database: Database, seal: Seal) -> None:
        self._db = database
        self._seal = seal
        self._kept: tuple[tuple[object, ...], Inventory] | None = None  # see `load`

    def replace(self, inventory: Inventory, *, source: str, by: str, at: datetime) -> InventorySource:
        """Make `inventory` the stored one, in one transaction; what it replaced is gone."""
        row = InventoryRow(
            id=_ROW_ID,
            data=inventory.model_dump(mode="json"),
            source=source[:1024],
            hash=inventory.content_hash(),
            imported_at=at,
            imported_by=by[:200],
            group_count=inventory.group_count,
            host_count=inventory.host_count,
        )
        row.seal = self._seal.sign(_KIND, _signed(row))
        with self._db.session() as session:
            session.execute(delete(InventoryRow))
            session.add(row)
        return _source(row)

    def load(self) -> Inventory | None:
        """The stored inventory; None when there is none, or its row does not verify.

        Kept between calls by its signed fields (content hash, source, time, importer, counts) and
        signature: a plan reads the inventory every time, and parsing and hashing thousands of
        hosts again would cost more than the plan. Any import, by this process or another, changes
        the hash or the time, so the next call reads it; only what verified is ever kept."""
        stamp = self._stamp()
        if stamp is None:
            return None
        kept = self._kept
        if kept is not None and kept[0] == stamp:
            return kept[1]
        row = self._row(_ROW)  # read whole, in one statement: it may have changed since the stamp
        if row is None:
            return None
        try:
            inventory = Inventory.model_validate(row.data)
        except (ValidationError, InventoryError) as exc:
            # Verified, so written by opsmith: by a version whose rules were looser than these.
            reason = exc.reason if isinstance(exc, InventoryError) else exc.errors()[0]["msg"]
            raise InventoryError(
                f"the stored inventory (from {row.source}) no longer validates: {reason}",
                hint="import it again (`opsmith inventory import FILE`) after correcting it",
            ) from exc
        if inventory.content_hash() != row.hash:
            _log.warning("ignored the stored inventory: its data does not match its signed hash")
            return None
        self._kept = _stamp_of(row), inventory
        return inventory

    def source(self) -> InventorySource | None:
        """Where the stored inventory came from; None when there is none, or it does not verify."""
        row = self._row(_STAMP)
        return None if row is None else _source(row)

    def _stamp(self) -> tuple[object, ...] | None:
        row = self._row(_STAMP)
        return None if row is None else _stamp_of(row)

    def _row(self, query: Select[Any]) -> Row[Any] | None:
        """The row's columns `query` selects, when the row is there and its signature verifies."""
        # A Core connection, not a Session: this runs for every plan, and a Session costs more.
        with self._db.transaction() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        if not self._seal.valid(_KIND, _signed(row), row.seal or ""):
            _log.warning("ignored the stored inventory: its signature does not verify")
            return None
        return row


_SIGNED = (
    InventoryRow.hash,
    InventoryRow.source,
    InventoryRow.imported_at,
    InventoryRow.imported_by,
    InventoryRow.group_count,
    InventoryRow.host_count,
    InventoryRow.seal,
)
_STAMP = select(*_SIGNED).where(InventoryRow.id == _ROW_ID)
_ROW = select(*_SIGNED, InventoryRow.data).where(InventoryRow.id == _ROW_ID)


def _stamp_of(row: Row[Any]) -> tuple[object, ...]:
    return tuple(row[: len(_SIGNED)])


def _signed(row: Any) -> dict[str, object]:  # an InventoryRow, or a Core row of its signed columns
    return {
        "hash": row.hash,
        "source": row.source,
        "imported_at": _aware(row.imported_at),
        "imported_by": row.imported_by,
        "groups": row.group_count,
        "hosts": row.host_count,
    }


def _source(row: Any) -> InventorySource:
    return InventorySource(
        source=row.source,
        hash=row.hash,
        imported_at=_aware(row.imported_at),
        imported_by=row.imported_by,
        groups=row.group_count,
        hosts=row.host_count,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

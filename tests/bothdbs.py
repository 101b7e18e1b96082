"""Raw SQL on either database, for store tests that play a hand editing the tables behind opsmith's
back (what `sqlite3.connect` did when SQLite was the only database)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def execute(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement in its own committed transaction, outside opsmith's code; the rows it returns."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()

"""Repository of bearer tokens: the hash of each secret, never the secret, in signed rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from opsmith.domain.seal import Seal
from opsmith.domain.tokens import TokenInfo
from opsmith.store.access_models import TokenRow
from opsmith.store.database import Database

_log = logging.getLogger(__name__)
_KIND = "token"


class TokenRepository:
    """Each row is signed over what decides who it lets in (id, user, role, hash, creation and
    revocation). A row whose signature does not verify was written outside opsmith: it is unknown,
    so whoever can write the database but not read the key cannot plant a token, nor bring a
    revoked one back by clearing its revocation."""

    def __init__(self, database: Database, seal: Seal) -> None:
        self._db = database
        self._seal = seal

    def add(self, info: TokenInfo, token_hash: str) -> None:
        with self._db.session() as session:
            session.add(self._sealed(info, token_hash))

    def add_first(self, info: TokenInfo, token_hash: str) -> bool:
        """Store the token only when no active token exists. The check and the insert share one
        transaction that holds the write lock from its start (SQLite's BEGIN IMMEDIATE; a table lock
        on PostgreSQL), so of two servers starting at once exactly one makes the first token."""
        row = self._sealed(info, token_hash)
        with self._db.transaction(immediate=True) as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("LOCK TABLE tokens IN SHARE ROW EXCLUSIVE MODE")
            stored = connection.execute(select(TokenRow.__table__)).all()
            if any(r.revoked_at is None and self._verified(r) for r in stored):
                return False
            values = {c.key: getattr(row, c.key) for c in TokenRow.__table__.columns}
            connection.execute(insert(TokenRow).values(**values))
        return True

    def _sealed(self, info: TokenInfo, token_hash: str) -> TokenRow:
        row = TokenRow(
            id=info.id,
            user=info.user,
            role=info.role,
            name=info.name,
            token_hash=token_hash,
            created_at=info.created_at,
            created_by=info.created_by,
            revoked_at=info.revoked_at,
            last_used_at=info.last_used_at,
            seal="",
        )
        row.seal = self._seal.sign(_KIND, _signed(row))
        return row

    def get(self, token_id: str) -> tuple[TokenInfo, str] | None:
        with self._db.session() as session:
            row = session.get(TokenRow, token_id)
        if row is None or not self._verified(row):
            return None
        return _info(row), row.token_hash

    def revoke(self, token_id: str, at: datetime) -> TokenInfo | None:
        with self._db.session() as session:
            row = session.get(TokenRow, token_id)
            if row is None or not self._verified(row):
                return None
            if row.revoked_at is None:
                row.revoked_at = at
                row.seal = self._seal.sign(_KIND, _signed(row))
            return _info(row)

    def touch(self, token_id: str, at: datetime) -> None:
        # Unsigned on purpose: it decides nothing, and a use must not cost a read and a signature.
        with self._db.transaction() as connection:
            connection.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=at))

    def count_active(self) -> int:
        return sum(1 for info in self.list() if info.active)

    def list(self) -> list[TokenInfo]:
        with self._db.session() as session:
            rows = list(session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)))
        return [_info(row) for row in rows if self._verified(row)]

    def _verified(self, row: Any) -> bool:  # a TokenRow, or a Core row of its table
        if self._seal.valid(_KIND, _signed(row), row.seal or ""):
            return True
        _log.warning("ignored stored token %r: its signature does not verify", row.id)
        return False


def _signed(row: Any) -> dict[str, object]:
    return {
        "id": row.id,
        "user": row.user,
        "role": row.role,
        "hash": row.token_hash,
        "created_at": _aware(row.created_at),
        "revoked_at": _aware(row.revoked_at),
    }


def _info(row: TokenRow) -> TokenInfo:
    created_at = _aware(row.created_at)
    assert created_at is not None  # a NOT NULL column
    return TokenInfo(
        id=row.id,
        user=row.user,
        role=row.role,
        name=row.name,
        created_at=created_at,
        created_by=row.created_by,
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

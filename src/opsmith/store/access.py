"""Repositories of approvals and stored role changes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from opsmith.domain.approval import Approval
from opsmith.domain.seal import Seal
from opsmith.store.access_models import ApprovalRow, RoleRow
from opsmith.store.database import Database

_log = logging.getLogger(__name__)


class ApprovalRepository:
    def __init__(self, database: Database, seal: Seal | None = None) -> None:
        self._db = database
        self._seal = seal

    def add(self, approval: Approval) -> Approval:
        if self._seal is not None:
            approval = approval.sealed_with(self._seal)
        with self._db.session() as session:
            session.add(ApprovalRow(**approval.model_dump()))
        return approval

    def for_plan(self, plan_id: str) -> list[Approval]:
        with self._db.session() as session:
            rows = session.scalars(
                select(ApprovalRow).where(ApprovalRow.plan_id == plan_id).order_by(ApprovalRow.id)
            )
            return [
                Approval(
                    plan_id=r.plan_id,
                    plan_hash=r.plan_hash,
                    approver=r.approver,
                    role=r.role,
                    comment=r.comment,
                    at=_aware(r.at),
                    expires_at=_aware(r.expires_at),
                    seal=r.seal or "",
                )
                for r in rows
            ]


class RoleRepository:
    """Roles given by admins. With a seal, each row is signed, and a row whose signature does not
    verify (written outside opsmith) is ignored: the configuration's role applies instead."""

    def __init__(self, database: Database, seal: Seal | None = None) -> None:
        self._db = database
        self._seal = seal

    def all(self) -> dict[str, str]:
        with self._db.session() as session:
            rows = list(session.scalars(select(RoleRow)))
        roles: dict[str, str] = {}
        for row in rows:
            if self._seal is not None and not self._seal.valid("role", _signed(row), row.seal or ""):
                _log.warning("ignored the stored role of %r: its signature does not verify", row.user)
                continue
            roles[row.user] = row.role
        return roles

    def set(self, user: str, role: str, set_by: str) -> None:
        with self._db.session() as session:
            row = session.get(RoleRow, user) or RoleRow(user=user)
            row.role = role
            row.set_by = set_by
            row.at = datetime.now(UTC)
            row.seal = self._seal.sign("role", _signed(row)) if self._seal is not None else ""
            session.add(row)


def _signed(row: RoleRow) -> dict[str, object]:
    return {"user": row.user, "role": row.role, "set_by": row.set_by, "at": _aware(row.at)}


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""Repositories of approvals and stored role changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from opsmith.domain.approval import Approval
from opsmith.store.access_models import ApprovalRow, RoleRow
from opsmith.store.database import Database


class ApprovalRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, approval: Approval) -> None:
        with self._db.session() as session:
            session.add(ApprovalRow(**approval.model_dump()))

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
                )
                for r in rows
            ]


class RoleRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def all(self) -> dict[str, str]:
        with self._db.session() as session:
            return {r.user: r.role for r in session.scalars(select(RoleRow))}

    def set(self, user: str, role: str, set_by: str) -> None:
        with self._db.session() as session:
            row = session.get(RoleRow, user) or RoleRow(user=user)
            row.role = role
            row.set_by = set_by
            row.at = datetime.now(UTC)
            session.add(row)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)

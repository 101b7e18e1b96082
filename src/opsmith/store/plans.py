"""Repository of plans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsmith.domain.approval import seal_plan
from opsmith.domain.errors import NotFoundError
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.seal import Seal
from opsmith.store.database import Database
from opsmith.store.models import PlanRow

FAILED = (PlanStatus.FAILED.value, PlanStatus.ROLLED_BACK.value)


class UnknownPlanError(NotFoundError):
    """A plan id that is not in the store."""


class PlanRepository:
    def __init__(self, database: Database, seal: Seal | None = None) -> None:
        self._db = database
        self._seal = seal

    def save(self, plan: Plan) -> None:
        """Write the plan, signed (id, hash, requester, status) when the repository has a seal."""
        if self._seal is not None:
            plan = seal_plan(plan, self._seal)
        now = datetime.now(UTC)
        with self._db.session() as session:
            row = session.get(PlanRow, plan.id) or PlanRow(id=plan.id, created_at=plan.created_at)
            row.status = plan.status.value
            row.hash = plan.hash
            row.request = plan.request
            row.playbook = plan.playbook
            row.risk = plan.risk.value
            row.environment = plan.intent.environment
            row.application = plan.intent.subjects[0] if plan.intent.subjects else None
            row.data = plan.model_dump(mode="json")
            row.updated_at = now
            session.add(row)

    def get(self, plan_id: str) -> Plan:
        with self._db.session() as session:
            row = session.get(PlanRow, plan_id)
            if row is None:
                near = list(session.scalars(select(PlanRow.id).order_by(PlanRow.created_at.desc()).limit(3)))
                raise UnknownPlanError(
                    f"no plan {plan_id!r}",
                    hint=f"recent plans: {', '.join(near)}"
                    if near
                    else 'create one with: opsmith plan "..."',
                )
            return Plan.model_validate(row.data)

    def list(self, status: PlanStatus | None = None, limit: int = 50, offset: int = 0) -> list[Plan]:
        with self._db.session() as session:
            query = (
                select(PlanRow)
                .order_by(PlanRow.created_at.desc(), PlanRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            if status is not None:
                query = query.where(PlanRow.status == status.value)
            return [Plan.model_validate(row.data) for row in session.scalars(query)]

    def count(self, status: PlanStatus | None = None) -> int:
        query = select(func.count()).select_from(PlanRow)
        if status is not None:
            query = query.where(PlanRow.status == status.value)
        with self._db.session() as session:
            return int(session.scalar(query) or 0)

    def ids_with_prefix(self, prefix: str) -> frozenset[str]:
        with self._db.session() as session:
            return _ids_with_prefix(session, prefix)

    def recent_failures(self, application: str, environment: str, days: int, now: datetime) -> int:
        with self._db.session() as session:
            return _failures(session, application, environment, _since(now, days))

    def history(
        self, id_prefix: str, subjects: Sequence[str], environment: str, days: int, now: datetime
    ) -> tuple[frozenset[str], dict[str, int]]:
        since = _since(now, days)
        with self._db.session() as session:
            failures = {s: _failures(session, s, environment, since) for s in subjects}
            return _ids_with_prefix(session, id_prefix), failures


def _ids_with_prefix(session: Session, prefix: str) -> frozenset[str]:
    return frozenset(session.scalars(select(PlanRow.id).where(PlanRow.id.startswith(prefix))))


def _since(now: datetime, days: int) -> datetime:
    return (now - timedelta(days=days)).astimezone(UTC)


def _failures(session: Session, application: str, environment: str, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(PlanRow)
        .where(
            PlanRow.application == application,
            PlanRow.environment == environment,
            PlanRow.status.in_(FAILED),
            PlanRow.updated_at >= since,
        )
    )
    return int(session.scalar(query) or 0)

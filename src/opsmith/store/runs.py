"""Repository of runs: their state, committed after every change, and their events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from opsmith.domain.errors import UsageError
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState
from opsmith.store.database import Database
from opsmith.store.run_models import EventRow, RunRow


class UnknownRunError(UsageError):
    """A run id that is not in the store."""


class RunRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, state: RunState, *, started_by: str = "") -> None:
        now = datetime.now(UTC)
        with self._db.session() as session:
            row = session.get(RunRow, state.run_id)
            if row is None:
                row = RunRow(id=state.run_id, plan_id=state.plan_id, started_by=started_by, created_at=now)
            row.plan_hash = state.plan_hash
            row.status = state.status.value
            row.state = state.model_dump(mode="json")
            row.updated_at = now
            session.add(row)

    def get(self, run_id: str) -> RunState:
        with self._db.session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                near = list(session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc()).limit(3)))
                raise UnknownRunError(
                    f"no run {run_id!r}",
                    hint=f"recent runs: {', '.join(near)}" if near else "start one: opsmith run PLAN",
                )
            return RunState.model_validate(row.state)

    def started_by(self, run_id: str) -> str:
        with self._db.session() as session:
            row = session.get(RunRow, run_id)
            return row.started_by if row else ""

    def append(self, event: RunEvent) -> RunEvent:
        with self._db.session() as session:
            last = session.scalar(select(func.max(EventRow.seq)).where(EventRow.run_id == event.run_id))
            stored = event.model_copy(update={"seq": (last or 0) + 1})
            session.add(
                EventRow(
                    run_id=stored.run_id,
                    seq=stored.seq,
                    at=stored.at,
                    type=stored.type.value,
                    step_id=stored.step_id,
                    message=stored.message,
                    data=stored.data,
                )
            )
        return stored

    def events(self, run_id: str, after: int = 0) -> list[RunEvent]:
        with self._db.session() as session:
            rows = session.scalars(
                select(EventRow).where(EventRow.run_id == run_id, EventRow.seq > after).order_by(EventRow.seq)
            )
            return [
                RunEvent(
                    run_id=r.run_id,
                    seq=r.seq,
                    at=r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
                    type=EventType(r.type),
                    step_id=r.step_id,
                    message=r.message,
                    data=r.data,
                )
                for r in rows
            ]

"""Repository of runs: their state, committed after every change, and their events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update

from opsmith.domain.errors import UsageError
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState
from opsmith.store.database import Database
from opsmith.store.run_models import EventRow, RunRow, RunStepRow


class UnknownRunError(UsageError):
    """A run id that is not in the store."""


class RunRepository:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._saved: dict[str, RunState] = {}

    def save(self, state: RunState, *, started_by: str = "") -> None:
        """Commit the run's head and only the steps that changed since this repository last saved it."""
        now = datetime.now(UTC)
        last = self._saved.get(state.run_id)
        # Unchanged steps are the very same objects in the new state (states are immutable).
        changed = [k for k, v in state.steps.items() if last is None or last.steps.get(k) is not v]
        head = state.model_dump(mode="json", exclude={"steps"})
        with self._db.session() as session:
            updated = session.execute(
                update(RunRow)
                .where(RunRow.id == state.run_id)
                .values(plan_hash=state.plan_hash, status=state.status.value, state=head, updated_at=now)
            )
            if getattr(updated, "rowcount", 0) == 0:
                session.add(
                    RunRow(
                        id=state.run_id,
                        plan_id=state.plan_id,
                        plan_hash=state.plan_hash,
                        status=state.status.value,
                        started_by=started_by,
                        state=head,
                        created_at=now,
                        updated_at=now,
                    )
                )
            for step_id in changed:
                step = state.steps[step_id]
                data = step.model_dump(mode="json")
                written = session.execute(
                    update(RunStepRow)
                    .where(RunStepRow.run_id == state.run_id, RunStepRow.step_id == step_id)
                    .values(status=step.status.value, state=data)
                )
                if getattr(written, "rowcount", 0) == 0:
                    session.add(
                        RunStepRow(run_id=state.run_id, step_id=step_id, status=step.status.value, state=data)
                    )
        self._saved[state.run_id] = state

    def get(self, run_id: str) -> RunState:
        with self._db.session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                near = list(session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc()).limit(3)))
                raise UnknownRunError(
                    f"no run {run_id!r}",
                    hint=f"recent runs: {', '.join(near)}" if near else "start one: opsmith run PLAN",
                )
            steps = session.scalars(select(RunStepRow).where(RunStepRow.run_id == run_id))
            return RunState.model_validate({**row.state, "steps": {s.step_id: s.state for s in steps}})

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

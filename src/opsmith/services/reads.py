"""What any identity may read: stored plans, runs and their events. Faces read through here, so
that when reading needs a rule (a view permission, a tenant), it is added once."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.journal import RunSummary
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.events import RunEvent
from opsmith.engine.state import RunState, RunStatus

S = TypeVar("S", bound=StrEnum)


def plan(app: App, plan_id: str) -> Plan:
    """The stored plan; UnknownPlanError naming recent ones when there is none."""
    return app.plans.get(plan_id)


def newest(app: App, statuses: tuple[PlanStatus, ...]) -> Plan | None:
    """The newest plan in any of `statuses`."""
    found = [p for status in statuses for p in app.plans.list(status, limit=1)]
    return max(found, key=lambda p: p.created_at) if found else None


def run_with_plan(app: App, run_id: str) -> tuple[RunState, Plan]:
    """The run as last committed, and the plan it runs."""
    state = app.journal().get(run_id)
    return state, app.plans.get(state.plan_id)


def run_events(app: App, run_id: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
    """The run's events after seq `after`, oldest first, at most `limit`."""
    return app.journal().events(run_id, after=after, limit=limit)


def last_seq(app: App, run_id: str) -> int:
    return app.journal().last_seq(run_id)


def run_state(app: App, run_id: str) -> RunState:
    return app.journal().get(run_id)


def list_plans(app: App, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Plan]:
    """Stored plans, newest first; `status` is one of PlanStatus's values."""
    return app.plans.list(_status(PlanStatus, status), limit=limit, offset=offset)


def list_runs(app: App, status: str | None = None, limit: int = 50, offset: int = 0) -> list[RunSummary]:
    """Runs, newest first, without their steps; `status` is one of RunStatus's values."""
    wanted = _status(RunStatus, status)
    return app.journal().summaries(None if wanted is None else [wanted], limit=limit, offset=offset)


def _status(kind: type[S], value: str | None) -> S | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise UsageError(
            f"unknown status {value!r}", hint="one of: " + ", ".join(s.value for s in kind)
        ) from exc

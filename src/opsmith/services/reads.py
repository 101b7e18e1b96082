"""What any identity may read: stored plans, runs and their events. Faces read through here, so
that when reading needs a rule (a view permission, a tenant), it is added once."""

from __future__ import annotations

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.events import RunEvent
from opsmith.engine.state import RunState


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


def run_events(app: App, run_id: str, after: int = 0) -> list[RunEvent]:
    """The run's events after seq `after`, oldest first."""
    return app.journal().events(run_id, after=after)


def run_state(app: App, run_id: str) -> RunState:
    return app.journal().get(run_id)


def list_plans(app: App, status: str | None = None, limit: int = 50) -> list[Plan]:
    """Stored plans, newest first; `status` is one of PlanStatus's values."""
    wanted = None
    if status is not None:
        try:
            wanted = PlanStatus(status)
        except ValueError as exc:
            raise UsageError(
                f"unknown status {status!r}", hint="one of: " + ", ".join(s.value for s in PlanStatus)
            ) from exc
    return app.plans.list(wanted, limit=limit)

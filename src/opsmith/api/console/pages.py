"""What each console page shows, read through the services: plain dicts for the templates.

Only reads happen here, and only through the services the API and the CLI use; what an identity
may do on a plan or a run is `services.access.plan_actions`'s or `run_actions`'s to say, never a
template's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opsmith.api.bodies import page
from opsmith.api.console.layout import Layout, layout
from opsmith.api.console.views import (
    StepTiming,
    chart,
    eta_text,
    fleet_hosts,
    progress,
    remaining,
    runs_per_day,
    shorten,
)
from opsmith.bootstrap import App
from opsmith.domain.compliance import Requirement
from opsmith.domain.graph import Node, format_duration_range
from opsmith.domain.identity import Identity
from opsmith.domain.journal import RunSummary
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.servers import ServerStatus
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import FINAL_RUN_STATUSES, RunState, RunStatus
from opsmith.errors import NotFoundError, OpsmithError
from opsmith.services import access, approvals, audit, metrics, reads
from opsmith.services.explain import RunNotFailed, explain_run
from opsmith.services.views import run_report

RUNS_PAGE = 25
LOG_TAIL = 200  # events rendered with the monitor; older ones are paged in on demand
CHART_DAYS = 14
_CHART_SCAN = 20  # pages of runs read for the chart at most: a dashboard must stay cheap
_FAILED = ("failed", "rolled_back", "needs_attention")
_UNDER_WAY = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ROLLING_BACK})


def dashboard(app: App, servers: list[ServerStatus], who: Identity) -> dict[str, Any]:
    now = app.clock.now()
    # The tool figures of the snapshot are not shown here; one audit entry keeps it cheap.
    snap = metrics.snapshot(app, window=1)
    created = _runs_since(app, now - timedelta(days=CHART_DAYS))
    mine = [p for p in reads.list_plans(app, limit=200) if p.requested_by == who.user][:8]
    return {
        "runs_by_status": {status: count for status, count in snap.runs.items() if count},
        "runs_total": sum(snap.runs.values()),
        "chart": chart(runs_per_day(created, now.date(), CHART_DAYS)),
        "pending": reads.list_plans(app, PlanStatus.PENDING_APPROVAL.value, limit=10),
        "waiting": snap.approvals_waiting,
        "failures": _recent_failures(app),
        "servers": servers,
        "mine": mine,
        "applications": sorted(app.config.applications),  # each links to its deployment history
        "work": _tasks_panel(app),
    }


def _tasks_panel(app: App) -> dict[str, Any] | None:
    """Tasks by status and priority, the newest open ones, and the agents' load (None: no tasks kept)."""
    from opsmith.services import tasks

    if app.tasks is None:
        return None
    board = tasks.dashboard(app)
    board["open"] = tasks.list_tasks(app, ["queued", "assigned", "running", "failed", "escalated"], limit=5)
    return board


def _runs_since(app: App, since: datetime) -> list[datetime]:
    created: list[datetime] = []
    for number in range(_CHART_SCAN):
        found = reads.list_runs(app, limit=500, offset=number * 500)
        created += [r.created_at for r in found if r.created_at >= since]
        if len(found) < 500 or (found and found[-1].created_at < since):
            break
    return created


def _recent_failures(app: App, shown: int = 5) -> list[dict[str, Any]]:
    found: list[RunSummary] = [r for status in _FAILED for r in reads.list_runs(app, status, limit=shown)]
    found.sort(key=lambda r: r.created_at, reverse=True)
    failures = []
    for summary in found[:shown]:
        state, plan = reads.run_with_plan(app, summary.run_id)
        report = run_report(plan, state)
        failures.append(
            {"run": summary, "request": plan.request, "failure": shorten(report.failure or "", 160)}
        )
    return failures


def plan_page(app: App, who: Identity, plan_id: str) -> dict[str, Any]:
    plan = reads.plan(app, plan_id)
    tally = approvals.state_of(app, plan)
    runs = [r for r in reads.list_runs(app, limit=200) if r.plan_id == plan.id]
    return {
        "plan": plan,
        "graph": _graph(plan),
        "steps": [_step_row(plan, n, s.id) for n, s in enumerate(plan.steps, start=1)],
        "requirements": [_requirement(r) for r in plan.compliance],
        "approvals": {
            "given": len(tally.valid),
            "needed": tally.needed,
            "approvers": tally.approvers,
            "void": [(a.approver, why) for a, why in tally.void],
        },
        "actions": access.plan_actions(app, who, plan),
        "runs": runs,
    }


def _graph(plan: Plan) -> dict[str, Any]:
    drawn: Layout = layout([Node(s.id, tuple(s.depends_on)) for s in plan.steps])
    steps = {s.id: s for s in plan.steps}
    boxes = [
        {
            "box": box,
            "step": steps[box.id],
            "name": shorten(steps[box.id].name, 28),
            "tool": shorten(f"{steps[box.id].server}/{steps[box.id].tool}", 34),
        }
        for box in drawn.boxes
    ]
    return {"layout": drawn, "boxes": boxes}


def _step_row(plan: Plan, number: int, step_id: str) -> dict[str, Any]:
    step = plan.step(step_id)
    return {
        "number": number,
        "step": step,
        "duration": format_duration_range(*step.estimated_duration),
        "rollback": f"{step.rollback.server}/{step.rollback.tool}" if step.rollback else "",
    }


def _requirement(requirement: Requirement) -> dict[str, str]:
    if requirement.met is True:
        mark, state = "✓", "met"
    elif requirement.met is False:
        mark, state = "✗", "unmet"
    else:
        mark, state = "•", "at run time"
    proof = requirement.reason
    if requirement.met is not False and requirement.evidence is not None:
        proof = requirement.evidence.describe()
    return {
        "mark": mark,
        "state": state,
        "name": requirement.name,
        "about": requirement.description,
        "proof": proof,
    }


def runs_page(app: App, status: str | None, offset: int) -> dict[str, Any]:
    found = reads.list_runs(app, status, limit=RUNS_PAGE, offset=offset)
    return {
        "page": page(found, RUNS_PAGE, offset),
        "status": status or "",
        "statuses": [s.value for s in RunStatus],
    }


def run_page(app: App, who: Identity, run_id: str) -> dict[str, Any]:
    state, plan = reads.run_with_plan(app, run_id)
    last = reads.last_seq(app, run_id)
    tail = reads.run_events(app, run_id, after=max(0, last - LOG_TAIL))
    return {
        "plan": plan,
        "names": {s.id: s.name for s in plan.steps},
        "progress": run_progress(app, who, plan, state),
        "events": [log_line(e) for e in tail],
        "first_seq": tail[0].seq if tail else last + 1,
        "last_seq": last,
        "event_types": " ".join(t.value for t in EventType),
    }


async def run_analysis(app: App, who: Identity, run_id: str, *, fetch: bool = False) -> dict[str, Any] | None:
    """The explanation of a failed run as the monitor shows it (`services.explain.explain_run`, from
    what the run recorded unless `fetch`); None for a run that did not fail. An unknown run is the
    caller's NotFoundError; an error of the analysis itself (a broken user rule file) is shown in
    the explanation's place, so the rest of the monitor still shows."""
    try:
        found = await explain_run(app, who, run_id, fetch=fetch)
    except RunNotFailed:
        return None
    except NotFoundError:
        raise
    except OpsmithError as error:
        return {"run_id": run_id, "problem": {"detail": error.message, "hint": error.hint}, "fetched": fetch}
    return {
        "run_id": run_id,
        "found": found,
        "fetched": fetch,
        # Reading again is offered where the configuration lets the analysis read at all.
        "can_fetch": app.config.analysis.max_fetches > 0,
    }


def run_progress(app: App, who: Identity, plan: Plan, state: RunState) -> dict[str, Any]:
    """The monitor's figures and the controls `who` is offered; the same dict is the JSON the live
    page refreshes itself from."""
    report = run_report(plan, state)
    counted = progress(s.status for s in state.steps.values())
    timings = [
        StepTiming(
            s.id,
            tuple(s.depends_on),
            s.estimated_duration,
            state.step(s.id).status,
            _moment(state.step(s.id).started_at),
        )
        for s in plan.steps
    ]
    rows = {r.step_id: r for r in report.steps}
    decisions = set(access.run_decisions(app, who, plan, state))
    return {
        "run_id": state.run_id,
        "status": state.status.value,
        "final": state.status in FINAL_RUN_STATUSES,
        "actions": access.run_actions(app, who, plan, state),
        "last_seq": reads.last_seq(app, state.run_id),
        "step_text": counted.text,
        "percent": counted.percent,
        "eta": eta_text(state.status, remaining(timings, app.clock.now())),
        "failure": shorten(report.failure or "", 600),
        # The CLI's "ask for its status again" is what this page does by itself.
        "next": "" if state.status in _UNDER_WAY else report.next,
        "rolling_back": state.status in (RunStatus.ROLLING_BACK, RunStatus.ROLLED_BACK)
        or any(r.undo for r in report.steps),
        "steps": [
            {
                "id": s.id,
                "status": rows[s.id].status,
                "attempts": rows[s.id].attempts,
                "duration": _seconds(rows[s.id].duration_seconds),
                "estimate": format_duration_range(*s.estimated_duration),
                "undo": rows[s.id].undo or "",
                "undo_tool": f"{s.rollback.server}/{s.rollback.tool}" if s.rollback else "",
                "error": shorten(rows[s.id].error or "", 300),
                "decide": s.id in decisions,
                "hosts": fleet_hosts(state.step(s.id)),
            }
            for s in plan.steps
        ],
    }


def log_line(event: RunEvent) -> dict[str, Any]:
    """One line of the live log, as the script builds it from the event stream too."""
    return {
        "seq": event.seq,
        "time": event.at.strftime("%H:%M:%S"),
        "type": event.type.value,
        "step": event.step_id or "",
        "message": shorten(event.message, 500),
    }


def audit_page(app: App, subject: str | None, limit: int = 200) -> dict[str, Any]:
    entries = audit.audit_entries(app, subject or None, limit)
    return {
        "entries": list(reversed(entries)),
        "verification": audit.verify_audit(app),
        "subject": subject or "",
    }


def _moment(value: object) -> datetime | None:
    # Steps record datetimes; a float is a monotonic reading of another process, useless here.
    return value if isinstance(value, datetime) else None


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f} s" if value < 60 else format_duration_range(value, value)

"""An application's deployment history: each attempt (plan, run, outcome, when, who, the commit it
built) and what changed between one attempt and the next (the push, its files, the plan's difference).

Read from what is stored already: plans about the application, their runs, their approvals, and the
re-plan records a push left (store.webhooks). `opsmith history APP`, GET
/api/v1/applications/{app}/history and the console's history page all show this one answer.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.journal import RunSummary
from opsmith.domain.plan import Plan
from opsmith.domain.push import ReplanRecord
from opsmith.domain.replan import plan_difference
from opsmith.engine.state import RunState, RunStatus

__all__ = ["Attempt", "AttemptChange", "History", "application_history", "attempts_of", "built_commit"]

SCANNED_PLANS = 500  # newest plans read to find an application's attempts
_FAILED = frozenset({RunStatus.FAILED, RunStatus.ROLLED_BACK, RunStatus.ROLLING_BACK})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Attempt(_Frozen):
    number: int = Field(description="1 for the oldest attempt shown")
    plan_id: str
    title: str
    environment: str | None
    plan_status: str
    risk: str
    requested_by: str
    approved_by: list[str] = Field(default_factory=list)
    run_id: str | None = None
    run_status: str | None = None
    started_by: str | None = None
    outcome: str = Field(description="succeeded, failed, rolled back, running, not run (and why)")
    at: datetime = Field(description="when it ran (its run's start), else when it was planned")
    commit: str | None = Field(default=None, description="the commit its build built")
    replanned_from: str | None = Field(default=None, description="the failed plan a push re-planned")


class AttemptChange(_Frozen):
    """What changed from one attempt to the next."""

    from_plan: str
    to_plan: str
    commits: str | None = Field(default=None, description="before..after, when known")
    files: list[str] = Field(default_factory=list, description="the files the push changed")
    cause: str | None = Field(default=None, description="the root cause the push was matched with")
    verdict: str | None = None
    plan_difference: str


class History(_Frozen):
    application: str
    environment: str | None
    attempts: list[Attempt]
    changes: list[AttemptChange]


def attempts_of(
    app: App, application: str, environment: str | None = None
) -> list[tuple[Plan, RunState | None]]:
    """The plans about `application` (in `environment`, when given), oldest first, each with its
    latest run (None: it never ran)."""
    journal = app.journal()
    found: list[tuple[Plan, RunState | None]] = []
    for plan in app.plans.list(limit=SCANNED_PLANS):
        if application not in plan.intent.subjects:
            continue
        if environment is not None and plan.intent.environment != environment:
            continue
        found.append((plan, journal.latest_for_plan(plan.id)))
    found.sort(key=lambda pair: (pair[0].created_at, pair[0].id))
    return found


def last_failed(app: App, application: str, environment: str) -> tuple[Plan, RunState] | None:
    """The newest attempt that ran, when it failed or was rolled back; None when it succeeded or
    nothing ran."""
    ran = [(plan, run) for plan, run in attempts_of(app, application, environment) if run is not None]
    if not ran:
        return None
    plan, run = ran[-1]
    return (plan, run) if run.status in _FAILED else None


def built_commit(plan: Plan, run: RunState | None) -> str | None:
    """The commit the run's build step reports it built."""
    if run is None:
        return None
    for step in plan.steps:
        state = run.steps.get(step.id)
        if step.capability == "build" and state is not None and state.output:
            commit = state.output.get("commit_sha") or state.output.get("commit")
            if isinstance(commit, str):
                return commit
    return None


def application_history(app: App, application: str, *, environment: str | None = None) -> History:
    """The attempts of `application`, oldest first, and what changed between consecutive ones."""
    if not application.strip():
        raise UsageError("name an application", hint="e.g. opsmith history my-application")
    pairs = attempts_of(app, application, environment)
    if not pairs and application not in app.config.applications:
        known = ", ".join(sorted(app.config.applications)) or "none configured"
        raise UsageError(
            f"no plan is about {application!r}, and it is not a configured application",
            hint=f"configured applications: {known}",
        )
    replans = {r.plan_id: r for r in (app.webhooks.replans(application) if app.webhooks else [])}
    runs = {s.run_id: s for s in app.journal().summaries(limit=SCANNED_PLANS * 2)}
    attempts = [
        _attempt(app, number, plan, run, runs.get(run.run_id) if run else None, replans.get(plan.id))
        for number, (plan, run) in enumerate(pairs, start=1)
    ]
    changes = [
        _change(old, new, replans.get(new.id), built_commit(old, old_run), built_commit(new, new_run))
        for (old, old_run), (new, new_run) in itertools.pairwise(pairs)
    ]
    return History(application=application, environment=environment, attempts=attempts, changes=changes)


def _attempt(
    app: App,
    number: int,
    plan: Plan,
    run: RunState | None,
    summary: RunSummary | None,
    replan: ReplanRecord | None,
) -> Attempt:
    return Attempt(
        number=number,
        plan_id=plan.id,
        title=plan.title,
        environment=plan.intent.environment,
        plan_status=plan.status.value,
        risk=plan.risk.value,
        requested_by=plan.requested_by,
        approved_by=sorted({a.approver for a in app.approvals.for_plan(plan.id) if a.plan_hash == plan.hash}),
        run_id=run.run_id if run else None,
        run_status=run.status.value if run else None,
        started_by=summary.started_by or None if summary else None,
        outcome=_outcome(plan, run),
        at=summary.created_at if summary else plan.created_at,
        commit=built_commit(plan, run),
        replanned_from=replan.failed_plan_id if replan else None,
    )


def _outcome(plan: Plan, run: RunState | None) -> str:
    if run is None:
        return f"not run (plan {plan.status.value.replace('_', ' ')})"
    return run.status.value.replace("_", " ")


def _change(
    old: Plan, new: Plan, replan: ReplanRecord | None, old_commit: str | None, new_commit: str | None
) -> AttemptChange:
    difference = plan_difference(old, new).summary
    if replan is not None and replan.failed_plan_id == old.id:
        return AttemptChange(
            from_plan=old.id,
            to_plan=new.id,
            commits=f"{replan.before[:12]}..{replan.after[:12]}",
            files=[
                *(f"{p} (added)" for p in replan.changes.added),
                *(f"{p} (modified)" for p in replan.changes.modified),
                *(f"{p} (removed)" for p in replan.changes.removed),
            ],
            cause=replan.cause.root_cause or replan.cause.error_type,
            verdict=replan.match.verdict.value,
            plan_difference=difference,
        )
    commits = f"{old_commit[:12]}..{new_commit[:12]}" if old_commit and new_commit else None
    return AttemptChange(from_plan=old.id, to_plan=new.id, commits=commits, plan_difference=difference)

"""The five built-in agents' work: each `handle(task)` does its job with what opsmith has, or raises
AgentFailed saying why (and whether a later attempt may succeed). None reports a success it did not
earn.

    deployment   a failed run's outcome: what was undone, what was not, the next step; it opens
                 the follow-ups (code fix, issue, monitoring) of the same run
    code_fix     the root cause and its fix, from the rule library over what the run recorded (or
                 over a bug report's own lines); no rule matched is a failure a person takes up
    issues       the tracker issue of the run (opsmith.services.issues: issue_for_run, and
                 record_failure when the run's issue was not recorded yet)
    monitoring   the run's end state and the recorded health of the servers its plan used
    general      the backup: does any of the above by the task's type
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsmith.bootstrap import App
from opsmith.domain.agents import AgentFailed
from opsmith.domain.errors import NotFoundError, OpsmithError
from opsmith.domain.plan import Plan
from opsmith.domain.redaction import Redactor
from opsmith.domain.root_cause import Analysis, Artifact, analyse
from opsmith.domain.servers import Health
from opsmith.domain.tasks import Task
from opsmith.engine.state import RunState, RunStatus, StepStatus, UndoStatus

__all__ = ["FollowUp", "Handler", "Outcome", "handlers"]

_UNDONE = frozenset({StepStatus.ROLLED_BACK})
_UNDO_FAILED = frozenset({UndoStatus.FAILED, UndoStatus.HELD})
_UNDER_WAY = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ROLLING_BACK})


@dataclass(frozen=True)
class FollowUp:
    """A task a handler asks for (once per key)."""

    type: str
    title: str
    key: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    follow_ups: tuple[FollowUp, ...] = ()
    issue_id: str | None = None


class Handler(Protocol):
    async def handle(self, task: Task) -> Outcome: ...


def handlers(app: App) -> dict[str, Handler]:
    """The handler of each built-in agent type."""
    deployment, code_fix = DeploymentAgent(app), CodeFixAgent(app)
    issues, monitoring = IssuesAgent(app), MonitoringAgent(app)
    by_task: dict[str, Handler] = {
        "deployment_failure": deployment,
        "code_fix": code_fix,
        "bug_report": code_fix,
        "issue": issues,
        "monitoring": monitoring,
    }
    return {
        "deployment": deployment,
        "code_fix": code_fix,
        "issues": issues,
        "monitoring": monitoring,
        "general": GeneralAgent(by_task),
    }


class DeploymentAgent:
    """Records how a failed run ended and what comes next; re-plans nothing by itself."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def handle(self, task: Task) -> Outcome:
        state, plan = _run_of(self._app, task)
        if state.status in _UNDER_WAY:
            raise AgentFailed(
                f"run {state.run_id} is still {state.status.value}; its outcome is not known yet"
            )
        undone = sorted(s for s, step in state.steps.items() if step.status in _UNDONE)
        stuck = sorted(s for s, step in state.steps.items() if step.undo in _UNDO_FAILED)
        failed = [s for s, step in state.steps.items() if step.status is StepStatus.FAILED]
        if state.status is RunStatus.ROLLED_BACK:
            outcome = f"rolled back: {len(undone)} step(s) undone" + (
                f" ({', '.join(undone)})" if undone else ""
            )
        else:
            outcome = f"{state.status.value}: nothing was undone" if not undone else f"{state.status.value}"
        if stuck:
            shown = ", ".join(stuck)
            next_step = f"steps {shown} were not undone: undo them by hand or `opsmith resume {state.run_id}`"
        else:
            next_step = (
                "fix the cause (the code-fix task of this run says which), then push it: the push re-plans"
            )
        base = task.key or f"task:{task.id}"
        run_details = {"run_id": state.run_id, "plan_id": plan.id, "environment": plan.intent.environment}
        what = plan.title or plan.request
        follow_ups = (
            FollowUp(
                "code_fix",
                f"Suggest the fix for run {state.run_id} ({what})"[:200],
                f"{base}:code_fix",
                run_details,
            ),
            FollowUp(
                "issue", f"Open the issue of run {state.run_id} ({what})"[:200], f"{base}:issue", run_details
            ),
            FollowUp(
                "monitoring",
                f"Check the state after run {state.run_id}"[:200],
                f"{base}:monitoring",
                run_details,
            ),
        )
        result = {
            "run_status": state.status.value,
            "failed_steps": failed,
            "undone": undone,
            "not_undone": stuck,
            "outcome": outcome,
            "next_step": next_step,
        }
        return Outcome(result=result, follow_ups=follow_ups)


class CodeFixAgent:
    """The fix recommendation of the root cause (services.explain's analysis of what the run
    recorded; for a bug report without a run, of the report's own text)."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def handle(self, task: Task) -> Outcome:
        from opsmith.services.explain import rules_of

        if task.run_id is None and task.type == "bug_report":
            found = _analyse_report(rules_of(self._app), task)
        else:
            found = _analysis(self._app, *_run_of(self._app, task))
        if not found.explained or found.fix is None:
            raise AgentFailed(
                f"no rule explains {_subject(task)}: a person must find the cause",
                hint="`opsmith explain RUN` shows the evidence read; add a rule under analysis.rule_dirs",
                retryable=False,
            )
        result = {
            "root_cause": found.root_cause,
            "error_type": found.error_type,
            "confidence": found.confidence,
            "fix": found.fix.model_dump(mode="json"),
            "evidence": [{"text": line.text[:300], "citation": line.citation} for line in found.evidence[:5]],
        }
        return Outcome(result=result)


class IssuesAgent:
    """Opens (or finds) the tracker issue of the task's run."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def handle(self, task: Task) -> Outcome:
        try:
            from opsmith.services import issues  # built apart; this agent works once it exists
        except ImportError as exc:
            raise AgentFailed(
                "the issue tracker is not part of this opsmith (opsmith.services.issues is missing)",
                hint="open the issue by hand, then mark the task done by cancelling it",
                retryable=False,
            ) from exc
        issue_for_run = getattr(issues, "issue_for_run", None)
        if issue_for_run is None:
            raise AgentFailed("opsmith.services.issues offers no issue_for_run", retryable=False)
        if task.run_id is None:
            raise AgentFailed(
                f"{_subject(task)} names no run, and an issue is opened for a run's failure",
                hint="report the bug again with its run_id, or open the issue by hand",
                retryable=False,
            )
        state, plan = _run_of(self._app, task)
        record = getattr(issues, "record_failure", None)
        try:
            # The run's issue, as the tracker recorded it when the run settled; recorded now (once
            # per run) when it was not, and mirrored on GitHub by the tracker's own sync.
            found = issue_for_run(self._app, state.run_id)
            if found is None and record is not None:
                record(self._app, plan, state)
                found = issue_for_run(self._app, state.run_id)
        except OpsmithError as error:
            raise AgentFailed(
                f"the issue of run {state.run_id} was not opened: {error.message}", retryable=error.retryable
            ) from error
        issue_id = _issue_id(found)
        if issue_id is None:
            raise AgentFailed(f"the tracker opened no issue for run {state.run_id}", retryable=False)
        return Outcome(result={"issue": issue_id}, issue_id=issue_id)


class MonitoringAgent:
    """Checks the run's end state and the recorded health of the servers its plan used."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def handle(self, task: Task) -> Outcome:
        state, plan = _run_of(self._app, task)
        if state.status in _UNDER_WAY:
            raise AgentFailed(f"run {state.run_id} is still {state.status.value}; checked again later")
        stuck = sorted(s for s, step in state.steps.items() if step.undo in _UNDO_FAILED)
        if stuck:
            raise AgentFailed(
                f"run {state.run_id} left steps {', '.join(stuck)} not undone",
                hint=f"`opsmith resume {state.run_id}` tries their undo again",
                retryable=False,
            )
        used = sorted({s.server for s in plan.steps})
        recorded = {r.name: r for r in self._app.servers.recorded()}
        health = {name: recorded[name].health.value if name in recorded else "unknown" for name in used}
        unhealthy = sorted(n for n, h in health.items() if h in (Health.DOWN.value, Health.DEGRADED.value))
        if unhealthy:
            raise AgentFailed(f"server(s) {', '.join(unhealthy)} of run {state.run_id} are down or degraded")
        return Outcome(result={"run_status": state.status.value, "servers": health})


class GeneralAgent:
    """The backup: any task, by the specialist handler of its type."""

    def __init__(self, by_task: Mapping[str, Handler]) -> None:
        self._by_task = by_task

    async def handle(self, task: Task) -> Outcome:
        handler = self._by_task.get(task.type)
        if handler is None:
            raise AgentFailed(f"no agent knows how to do a {task.type!r} task", retryable=False)
        return await handler.handle(task)


def _run_of(app: App, task: Task) -> tuple[RunState, Plan]:
    from opsmith.services import reads

    if task.run_id is None:
        raise AgentFailed(f"{_subject(task)} names no run to work on", retryable=False)
    try:
        return reads.run_with_plan(app, task.run_id)
    except NotFoundError as error:
        raise AgentFailed(f"{_subject(task)}: {error.message}", retryable=False) from error


def _analysis(app: App, state: RunState, plan: Plan) -> Analysis:
    from opsmith.engine.run_evidence import recorded_artifacts
    from opsmith.services.explain import analysis_of, rules_of
    from opsmith.services.known_secrets import secret_values

    redactor = Redactor(secret_values(app))  # the result is stored: hidden as explain hides them
    return analysis_of(
        rules_of(app), plan, state, recorded_artifacts(plan, state, redactor), redactor=redactor
    )


def _analyse_report(rules: Any, task: Task) -> Analysis:
    text = "\n".join(str(task.details.get(k) or "") for k in ("description", "logs"))
    artifact = Artifact(kind="log", lines=tuple(line for line in text.splitlines() if line.strip()))
    return analyse(rules, [artifact], run_id="-", plan_id="-", status="reported", steps=[], failed=None)


def _subject(task: Task) -> str:
    return f"task {task.id} ({task.type})"


def _issue_id(found: object) -> str | None:
    if found is None:
        return None
    if isinstance(found, str):
        return found
    for name in ("id", "number", "url"):
        value = found.get(name) if isinstance(found, Mapping) else getattr(found, name, None)
        if value is not None:
            return str(value)
    return None

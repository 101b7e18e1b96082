"""Tasks and agents: the follow-ups of failures and bug reports, and the orchestrator that works them.

`task_for_failed_run` makes one emergency task, due within the hour, for a run that failed or was
rolled back in a watched environment (tasks.environments); services.incidents calls it when a run
settles. `report_bug` makes a task whose priority follows the reported severity.

`orchestrate_once` is one pass of the orchestrator (`opsmith orchestrate`, and every
tasks.orchestrate_seconds inside `opsmith serve`):

1. the in-process agents' heartbeats are recorded (a disabled agent's are not);
2. a running task whose lease ran out (its process stopped mid-attempt) counts as a failed
   attempt; an assigned task whose agent went silent moves to the backup agent;
3. overdue tasks escalate, level by level (tasks.escalation);
4. due queued tasks are assigned, the most urgent first, each to the best-scored agent, with the
   reasons kept on the task and in the log;
5. assigned tasks run, each claimed under a lease first; a failed attempt waits for its backed-off
   time (never straight back), and a success may open follow-up tasks.

Every change is a compare-and-set in the store, so two orchestrators (two servers, or a server and
a CLI) never take the same task twice; the one that loses skips it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.agents import BACKUP_ID, BUILT_IN, Agent, AgentFailed, UnknownAgentError
from opsmith.domain.assignment import Weights, assign_all, score
from opsmith.domain.errors import OpsmithError, UsageError
from opsmith.domain.identity import Action, Identity
from opsmith.domain.journal import AuditNote
from opsmith.domain.plan import Plan
from opsmith.domain.tasks import (
    Assignment,
    Priority,
    RetryRules,
    Task,
    TaskInputError,
    TaskLogEntry,
    TaskRefused,
    TaskStatus,
    after_failure,
    escalated,
    escalation,
    missing_fields,
    parse_priority,
    retried,
)
from opsmith.engine.state import RunState, RunStatus
from opsmith.ports import TaskStore
from opsmith.services.agents import Handler, Outcome, handlers
from opsmith.services.notifications import escalation_notices

__all__ = [
    "AgentView",
    "Decision",
    "PassReport",
    "agents_of",
    "assign_task",
    "dashboard",
    "execution_logs",
    "list_agents",
    "list_tasks",
    "metrics",
    "orchestrate_once",
    "report_bug",
    "retry_task",
    "task_for_failed_run",
]

_log = logging.getLogger(__name__)

ORCHESTRATOR = "orchestrator"
_FAILED_RUNS = frozenset({RunStatus.FAILED, RunStatus.ROLLED_BACK})
_BUG_FIELDS = ("title", "description", "severity")
_BUG_OPTIONAL = ("run_id", "component", "logs")
_ASSIGNABLE = frozenset({TaskStatus.QUEUED, TaskStatus.ASSIGNED, TaskStatus.FAILED, TaskStatus.ESCALATED})
_STALE = "its attempt never reported back (the process running it stopped)"


@dataclass(frozen=True)
class Decision:
    """One thing a pass decided (or, in a dry run, would decide)."""

    kind: str  # assign, run, succeeded, failed, retry_at, escalate, reassign, recover
    task_id: str
    agent_id: str | None
    detail: str


@dataclass
class PassReport:
    at: datetime
    dry_run: bool
    decisions: list[Decision] = field(default_factory=list)

    def add(self, kind: str, task: Task, agent_id: str | None, detail: str) -> None:
        self.decisions.append(Decision(kind, task.id, agent_id, detail))


@dataclass(frozen=True)
class AgentView:
    agent: Agent
    load: int
    alive: bool


def _store(app: App) -> TaskStore:
    if app.tasks is None:
        raise UsageError("this opsmith keeps no tasks", hint="run it with a database (the default)")
    return app.tasks


def _now(app: App) -> datetime:
    return app.clock.now().astimezone(UTC)


def agents_of(app: App) -> list[Agent]:
    """The built-in agents as configured (tasks.agents may disable one or change its capacity)."""
    found = []
    for agent in BUILT_IN:
        override = app.config.tasks.agents.get(agent.id)
        if override is not None:
            update: dict[str, Any] = {"enabled": override.enabled}
            if override.max_concurrent is not None:
                update["max_concurrent"] = override.max_concurrent
            agent = agent.model_copy(update=update)
        found.append(agent)
    return found


def _weights(app: App) -> Weights:
    return Weights(**app.config.tasks.weights)


def _rules(app: App) -> RetryRules:
    settings = app.config.tasks
    return RetryRules(settings.backoff_initial, settings.backoff_max, settings.raise_priority_every)


def _new_task(
    app: App,
    *,
    type: str,
    title: str,
    priority: Priority,
    now: datetime,
    details: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    key: str | None = None,
    reported_by: str = "opsmith",
    deadline: datetime | None = None,
) -> Task:
    minutes = app.config.tasks.deadlines.get(priority)
    if deadline is None and minutes is not None:
        deadline = now + timedelta(minutes=minutes)
    return Task(
        id=f"tsk_{secrets.token_hex(8)}",
        key=key,
        type=type,
        title=title[:200],
        details=dict(details or {}),
        priority=priority,
        deadline=deadline,
        max_attempts=app.config.tasks.max_attempts,
        run_id=run_id,
        reported_by=reported_by,
        created_at=now,
        updated_at=now,
    )


def _created(task: Task) -> TaskLogEntry:
    detail = {"priority": task.priority.value, "type": task.type, "by": task.reported_by}
    return TaskLogEntry(task_id=task.id, kind="created", detail=detail, at=task.created_at)


def task_for_failed_run(app: App, plan: Plan, state: RunState) -> Task | None:
    """The emergency task of a run that failed or was rolled back in a watched environment, due
    within the hour; once per run however often it settles. None when the run needs none. A store
    that cannot be written is logged, never raised: the task must not undo the settled run."""
    environment = plan.intent.environment
    if (
        app.tasks is None
        or state.status not in _FAILED_RUNS
        or environment not in app.config.tasks.environments
    ):
        return None
    now = _now(app)
    what = plan.title or plan.request
    task = _new_task(
        app,
        type="deployment_failure",
        title=f"Run {state.run_id} of {what} {state.status.value.replace('_', ' ')} in {environment}",
        priority=Priority.EMERGENCY,
        now=now,
        details={
            "run_id": state.run_id,
            "plan_id": plan.id,
            "environment": environment,
            "request": plan.request,
        },
        run_id=state.run_id,
        key=f"run:{state.run_id}",
        deadline=now + timedelta(hours=1),
    )
    note = AuditNote("opsmith", "task.created", task.id, {"run_id": state.run_id, "priority": "emergency"})
    try:
        stored, _ = app.tasks.add(task, [_created(task)], audit=[note])
    except OpsmithError as error:
        _log.error("could not record the task of failed run %s: %s", state.run_id, error)
        return None
    return stored


def report_bug(app: App, identity: Identity, body: Mapping[str, Any]) -> Task:
    """A bug report becomes a task whose priority follows its severity (and whose deadline follows
    that priority, tasks.deadlines). TaskInputError naming every missing or unknown field; an
    unknown run_id is a NotFoundError."""
    from opsmith.services.access import require

    require(app, identity, Action.PLAN, hint="reporting a bug needs a role that may plan (operator or more)")
    if not isinstance(body, Mapping):
        raise TaskInputError("a bug report is a JSON object", hint=_BUG_HINT)
    missing = missing_fields(body, _BUG_FIELDS)
    unknown = sorted(str(k) for k in body if k not in _BUG_FIELDS and k not in _BUG_OPTIONAL)
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown field(s) {', '.join(unknown)}"] if unknown else []
        raise TaskInputError(f"the bug report has {' and '.join(parts)}", hint=_BUG_HINT)
    values = {name: body.get(name) for name in (*_BUG_FIELDS, *_BUG_OPTIONAL)}
    wrong = [name for name, value in values.items() if value is not None and not isinstance(value, str)]
    if wrong:
        raise TaskInputError(f"the bug report's {', '.join(wrong)} must be text", hint=_BUG_HINT)
    limits = {
        "title": 200,
        "description": 20_000,
        "logs": 50_000,
        "component": 120,
        "run_id": 80,
        "severity": 40,
    }
    long = [name for name, value in values.items() if value is not None and len(value) > limits[name]]
    if long:
        raise TaskInputError(
            f"the bug report's {', '.join(long)} is too long",
            hint=", ".join(f"{n}: at most {limits[n]} characters" for n in long),
        )
    priority = parse_priority(str(values["severity"]))
    run_id = values["run_id"]
    if run_id is not None:
        app.journal().get(run_id)  # UnknownRunError (404) for a run opsmith does not have
    store = _store(app)
    now = _now(app)
    details = {k: v for k, v in values.items() if v is not None and k not in ("title", "run_id")}
    task = _new_task(
        app,
        type="bug_report",
        title=str(values["title"]),
        priority=priority,
        now=now,
        details=details,
        run_id=run_id,
        reported_by=identity.user,
    )
    # The task, its log entry and its audit entry are one commit: a request waits for the disk once.
    note = AuditNote(identity.user, "task.reported", task.id, {"priority": priority.value, "run_id": run_id})
    stored, _ = store.add(task, [_created(task)], audit=[note])
    return stored


_BUG_HINT = (
    'send {"title": ..., "description": ..., "severity": "low|normal|high|critical|emergency"}'
    " and optionally run_id, component, logs"
)


# --- the orchestrator


async def orchestrate_once(
    app: App,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    work: Mapping[str, Handler] | None = None,
    owner: str | None = None,
) -> PassReport:
    """One pass (see the module's docstring). `dry_run`: decide, write nothing, run nothing.
    `work`: handlers of agent types to use instead of the built-in ones."""
    store = _store(app)
    now = now or _now(app)
    report = PassReport(at=now, dry_run=dry_run)
    agents = _live_agents(app, store, now, dry_run)
    timeout = app.config.tasks.heartbeat_timeout_seconds
    alive = {a.id: a for a in agents if a.enabled and a.alive(now, timeout)}
    held = _recover(app, store, store.held(), alive, now, report, dry_run)
    _escalate(app, store, now, report, dry_run)
    loads: dict[str, int] = {}
    for task in held:
        if task.agent_id is not None:
            loads[task.agent_id] = loads.get(task.agent_id, 0) + 1
    assigned = _assign(app, store, list(alive.values()), loads, now, report, dry_run)
    ready = [t for t in held if t.status is TaskStatus.ASSIGNED and t.agent_id in alive] + assigned
    if dry_run:
        for task in ready:
            report.add("run", task, task.agent_id, f"would run {task.type} (attempt {task.attempts + 1})")
        return report
    chosen = {**handlers(app), **(work or {})}
    await _run_all(app, store, ready, alive, chosen, owner or f"orch-{secrets.token_hex(4)}", report)
    return report


def _live_agents(app: App, store: TaskStore, now: datetime, dry_run: bool) -> list[Agent]:
    defined = agents_of(app)
    beating = [a.id for a in defined if a.enabled]
    if not dry_run:
        store.register(defined, now)
        store.heartbeat(beating, now)
        return store.agents()
    stored = {a.id: a for a in store.agents()}
    merged = []
    for agent in defined:
        record = stored.get(agent.id)
        update: dict[str, Any] = {
            "last_heartbeat": now if agent.enabled else (record and record.last_heartbeat)
        }
        if record is not None:
            update |= {
                "successes": record.successes,
                "failures": record.failures,
                "busy_seconds": record.busy_seconds,
            }
        merged.append(agent.model_copy(update=update))
    return merged


def _recover(
    app: App,
    store: TaskStore,
    held: list[Task],
    alive: Mapping[str, Agent],
    now: datetime,
    report: PassReport,
    dry_run: bool,
) -> list[Task]:
    """Stale attempts count as failed; assigned tasks of silent agents move to the backup. The held
    tasks as they are after that."""
    kept: list[Task] = []
    backup = alive.get(BACKUP_ID)
    for task in held:
        if task.status is TaskStatus.RUNNING and task.lease_expires is not None and task.lease_expires < now:
            failed = after_failure(
                task, _STALE, retryable=True, now=now, rules=_rules(app), draw=random.random()
            )
            report.add("recover", task, task.agent_id, _STALE)
            entry = _attempt_entry(task, "failed", None, _STALE, now)
            if not dry_run and store.save(
                failed, expected=TaskStatus.RUNNING, owner=task.lease_owner, log=[entry]
            ):
                _record(store, task.agent_id, succeeded=False, seconds=0.0)
            continue
        if task.status is TaskStatus.ASSIGNED and task.agent_id not in alive:
            if backup is None or task.agent_id == BACKUP_ID:
                report.add("reassign", task, None, f"{task.agent_id} is silent and no backup agent is alive")
                kept.append(task)
                continue
            reason = f"{task.agent_id} missed its heartbeats; moved to the backup agent {backup.id}"
            moved = task.model_copy(
                update={
                    "agent_id": backup.id,
                    "assignment": Assignment(agent_id=backup.id, by=ORCHESTRATOR, reason=reason, at=now),
                    "updated_at": now,
                }
            )
            report.add("reassign", task, backup.id, reason)
            entry = TaskLogEntry(task_id=task.id, kind="reassigned", agent_id=backup.id,
                                 detail={"from": task.agent_id, "reason": reason}, at=now)  # fmt: skip
            if dry_run or store.save(moved, expected=TaskStatus.ASSIGNED, log=[entry]):
                kept.append(moved)
            continue
        kept.append(task)
    return kept


def _escalate(app: App, store: TaskStore, now: datetime, report: PassReport, dry_run: bool) -> None:
    levels = app.config.tasks.escalation
    if not levels:
        return
    for task in store.overdue(now, below_level=len(levels), limit=app.config.tasks.batch):
        level = escalation(task, levels, now)
        if level <= task.escalation_level:
            continue
        to = levels[level - 1].to
        late = int((now - task.deadline).total_seconds() // 60) if task.deadline else 0
        detail = f"overdue by {late} min: escalation level {level}, to the {to}"
        report.add("escalate", task, task.agent_id, detail)
        if dry_run:
            continue
        entry = TaskLogEntry(task_id=task.id, kind="escalated", agent_id=task.agent_id,
                             detail={"level": level, "to": to, "late_minutes": late}, at=now)  # fmt: skip
        note = AuditNote("opsmith", "task.escalated", task.id, {"level": level, "to": to})
        raised = escalated(task, level, now)
        notices = escalation_notices(app, raised, level, to, f"overdue by {late} min")
        store.save(raised, expected=task.status, log=[entry], audit=[note], notices=notices)


def _assign(
    app: App,
    store: TaskStore,
    agents: list[Agent],
    loads: dict[str, int],
    now: datetime,
    report: PassReport,
    dry_run: bool,
) -> list[Task]:
    due = store.due(now, limit=app.config.tasks.batch)
    taken: list[Task] = []
    for task, choice in assign_all(due, agents, loads, _weights(app)):
        assignment = choice.assignment(now)
        moved = task.model_copy(
            update={
                "status": TaskStatus.ASSIGNED,
                "agent_id": choice.agent_id,
                "assignment": assignment,
                "updated_at": now,
            }
        )
        report.add("assign", task, choice.agent_id, choice.reason)
        entry = TaskLogEntry(task_id=task.id, kind="assigned", agent_id=choice.agent_id,
                             detail={"reason": choice.reason, "score": choice.score.model_dump(),
                                     "candidates": choice.candidates}, at=now)  # fmt: skip
        if dry_run or store.save(moved, expected=TaskStatus.QUEUED, log=[entry]):
            taken.append(moved)
    return taken


async def _run_all(
    app: App,
    store: TaskStore,
    ready: Sequence[Task],
    alive: Mapping[str, Agent],
    work: Mapping[str, Handler],
    owner: str,
    report: PassReport,
) -> None:
    async def one(task: Task) -> None:
        agent = alive[task.agent_id or ""]
        await _run_one(app, store, task, agent, work.get(agent.type), owner, report)

    await asyncio.gather(*(one(task) for task in ready if task.agent_id in alive))


async def _run_one(
    app: App,
    store: TaskStore,
    task: Task,
    agent: Agent,
    handler: Handler | None,
    owner: str,
    report: PassReport,
) -> None:
    settings = app.config.tasks
    now = report.at
    running = task.model_copy(
        update={
            "status": TaskStatus.RUNNING,
            "attempts": task.attempts + 1,
            "lease_owner": owner,
            "lease_expires": now + timedelta(seconds=settings.lease_seconds),
            "updated_at": now,
        }
    )
    if not store.save(running, expected=TaskStatus.ASSIGNED):
        return  # another orchestrator took it, or a person changed it: theirs now
    started = time.monotonic()
    outcome: Outcome | None = None
    problem: AgentFailed
    try:
        if handler is None:
            raise AgentFailed(f"agent {agent.id} has no handler for its type {agent.type!r}", retryable=False)
        outcome = await asyncio.wait_for(handler.handle(running), timeout=settings.handler_timeout)
    except AgentFailed as failed:
        problem = failed
    except TimeoutError:
        problem = AgentFailed(
            f"the attempt took longer than tasks.handler_timeout ({settings.handler_timeout:g} s)"
        )
    except OpsmithError as error:
        problem = AgentFailed(error.message, retryable=error.retryable)
    except Exception as error:  # a handler's bug must not stop the pass; logged with its cause
        _log.error(
            "task %s failed unexpectedly on %s: %s",
            task.id,
            agent.id,
            "".join(traceback.format_exception(error)),
        )
        problem = AgentFailed(f"{agent.id} failed unexpectedly: {type(error).__name__}")
    seconds = time.monotonic() - started
    ended = now + timedelta(seconds=seconds)
    if outcome is not None:
        done = running.model_copy(
            update={
                "status": TaskStatus.SUCCEEDED,
                "result": outcome.result,
                "issue_id": outcome.issue_id or running.issue_id,
                "last_error": None,
                "lease_owner": None,
                "lease_expires": None,
                "finished_at": ended,
                "updated_at": ended,
            }
        )
        entry = _attempt_entry(running, "succeeded", seconds, None, ended)
        if store.save(done, expected=TaskStatus.RUNNING, owner=owner, log=[entry]):
            _record(store, agent.id, succeeded=True, seconds=seconds)
            report.add("succeeded", task, agent.id, _summary(outcome.result))
            _follow_up(app, store, done, outcome, ended)
        return
    retry = after_failure(
        running,
        problem.message,
        retryable=problem.retryable,
        now=ended,
        rules=_rules(app),
        draw=random.random(),
    )
    entry = _attempt_entry(running, "failed", seconds, problem.message, ended)
    if store.save(retry, expected=TaskStatus.RUNNING, owner=owner, log=[entry]):
        _record(store, agent.id, succeeded=False, seconds=seconds)
        if retry.status is TaskStatus.QUEUED and retry.next_attempt_at is not None:
            when = f"{retry.next_attempt_at:%H:%M:%S}Z"
            raised = f", priority now {retry.priority.value}" if retry.priority != running.priority else ""
            report.add(
                "retry_at",
                task,
                agent.id,
                f"attempt {running.attempts} failed: {problem.message}; next at {when}{raised}",
            )
        else:
            report.add("failed", task, agent.id, f"attempt {running.attempts} failed: {problem.message}")


def _follow_up(app: App, store: TaskStore, parent: Task, outcome: Outcome, now: datetime) -> None:
    for wanted in outcome.follow_ups:
        task = _new_task(
            app,
            type=wanted.type,
            title=wanted.title,
            priority=parent.priority,
            now=now,
            details={**wanted.details, "parent": parent.id},
            run_id=parent.run_id,
            key=wanted.key,
            reported_by=parent.agent_id or ORCHESTRATOR,
            deadline=parent.deadline,
        )
        store.add(task, [_created(task)])


def _attempt_entry(
    task: Task, outcome: str, seconds: float | None, reason: str | None, at: datetime
) -> TaskLogEntry:
    detail = {"type": task.type, "priority": task.priority.value}
    if reason is not None:
        detail["reason"] = reason[:500]
    return TaskLogEntry(task_id=task.id, kind="attempt", agent_id=task.agent_id, attempt=task.attempts,
                        outcome=outcome, seconds=seconds, detail=detail, at=at)  # fmt: skip


def _record(store: TaskStore, agent_id: str | None, *, succeeded: bool, seconds: float) -> None:
    if agent_id is not None:
        store.record(agent_id, succeeded=succeeded, seconds=seconds)


def _summary(result: Mapping[str, Any]) -> str:
    for name in ("outcome", "root_cause", "issue", "run_status"):
        if result.get(name):
            return f"{name}: {str(result[name])[:160]}"
    return "done"


# --- what people do and read


def assign_task(app: App, identity: Identity, task_id: str, agent_id: str) -> Task:
    """A person gives a task to a named agent (operators and admins): it must be enabled, handle the
    task's type and have room. Audited."""
    from opsmith.services.access import require

    require(app, identity, Action.EXECUTE, hint="assigning a task is for operators and admins")
    store = _store(app)
    task = store.get(task_id)
    if task.status not in _ASSIGNABLE:
        raise TaskRefused(
            f"task {task.id} is {task.status.value};"
            " only a queued, assigned, failed or escalated one is assigned",
            hint="retry a finished task first"
            if task.status is TaskStatus.SUCCEEDED
            else "wait for its attempt",
        )
    agents = {a.id: a for a in _agents(app, store)}
    agent = agents.get(agent_id)
    if agent is None:
        raise UnknownAgentError(f"no agent {agent_id!r}", hint="known: " + ", ".join(sorted(agents)))
    load = sum(1 for t in store.held() if t.agent_id == agent.id and t.id != task.id)
    found = score(task, agent, load, _weights(app))
    if found is None:
        why = (
            "is disabled" if not agent.enabled
            else f"does not handle {task.type} tasks" if agent.capability(task.type) == 0
            else f"already holds {load} of its {agent.max_concurrent} tasks"
        )  # fmt: skip
        raise TaskRefused(f"agent {agent.id} {why}", hint="`opsmith agents` shows who may take it")
    now = _now(app)
    reason = f"assigned by {identity.user}"
    moved = task.model_copy(
        update={
            "status": TaskStatus.ASSIGNED,
            "agent_id": agent.id,
            "assignment": Assignment(agent_id=agent.id, by=identity.user, reason=reason, score=found, at=now),
            "next_attempt_at": now,
            "max_attempts": max(task.max_attempts, task.attempts + 1),
            "finished_at": None,
            "updated_at": now,
        }
    )
    entry = TaskLogEntry(task_id=task.id, kind="assigned", agent_id=agent.id,
                         detail={"reason": reason, "score": found.model_dump()}, at=now)  # fmt: skip
    note = AuditNote(identity.user, "task.assigned", task.id, {"agent": agent.id, "from": task.agent_id})
    if not store.save(moved, expected=task.status, log=[entry], audit=[note]):
        raise TaskRefused(
            f"task {task.id} changed while it was being assigned", hint="look at it again, then retry"
        )
    return moved


def retry_task(app: App, identity: Identity, task_id: str) -> Task:
    """A person retries a task: queued and due now, with tasks.max_attempts more attempts. Audited."""
    from opsmith.services.access import require

    require(app, identity, Action.EXECUTE, hint="retrying a task is for operators and admins")
    store = _store(app)
    task = store.get(task_id)
    again = retried(task, _now(app), extra_attempts=app.config.tasks.max_attempts)
    detail = {"by": identity.user, "was": task.status.value}
    entry = TaskLogEntry(task_id=task.id, kind="retried", detail=detail, at=again.updated_at)
    note = AuditNote(identity.user, "task.retried", task.id, {"was": task.status.value})
    if not store.save(again, expected=task.status, log=[entry], audit=[note]):
        raise TaskRefused(f"task {task.id} changed while it was being retried", hint="look at it again")
    return again


def list_tasks(app: App, status: Sequence[str] = (), *, limit: int = 50, offset: int = 0) -> list[Task]:
    """Tasks, newest first; `status` values are TaskStatus values (UsageError naming them otherwise)."""
    wanted = []
    for value in status:
        try:
            wanted.append(TaskStatus(value))
        except ValueError as exc:
            raise UsageError(
                f"unknown task status {value!r}", hint="one of: " + ", ".join(s.value for s in TaskStatus)
            ) from exc
    return _store(app).find(wanted or None, limit=limit, offset=offset)


def get_task(app: App, task_id: str) -> Task:
    return _store(app).get(task_id)


def _agents(app: App, store: TaskStore) -> list[Agent]:
    """The stored agents (with their record), and any built-in one not stored yet."""
    stored = {a.id: a for a in store.agents()}
    return [
        stored[a.id].model_copy(update={"enabled": a.enabled, "max_concurrent": a.max_concurrent})
        if a.id in stored
        else a
        for a in agents_of(app)
    ]


def list_agents(app: App) -> list[AgentView]:
    """Every agent with its load now and whether its heartbeat is recent."""
    store = _store(app)
    now = _now(app)
    loads: dict[str, int] = {}
    for task in store.held():
        if task.agent_id is not None:
            loads[task.agent_id] = loads.get(task.agent_id, 0) + 1
    timeout = app.config.tasks.heartbeat_timeout_seconds
    return [AgentView(a, loads.get(a.id, 0), a.alive(now, timeout)) for a in _agents(app, store)]


def dashboard(app: App) -> dict[str, Any]:
    """Tasks by status, open ones by priority (most severe first), overdue ones, agents' loads."""
    store = _store(app)
    counts = store.counts(_now(app))
    by_priority = {p.value: counts["by_priority"].get(p.value, 0) for p in sorted(Priority, reverse=True)}
    return {
        "tasks": {s.value: counts["by_status"].get(s.value, 0) for s in TaskStatus},
        "open_by_priority": by_priority,
        "overdue": counts["overdue"],
        "agents": [
            {
                "id": v.agent.id,
                "type": v.agent.type,
                "load": v.load,
                "max": v.agent.max_concurrent,
                "alive": v.alive,
                "enabled": v.agent.enabled,
            }
            for v in list_agents(app)
        ],
    }


def metrics(app: App, *, hours: float = 24.0) -> dict[str, Any]:
    """Over the last `hours`: attempts and tasks finished per hour, the success rate, and the
    average attempt duration overall, per agent and per task type."""
    store = _store(app)
    since = _now(app) - timedelta(hours=hours)
    attempts = store.attempts_since(since)
    ok = [a for a in attempts if a.outcome == "succeeded"]

    def average(entries: Sequence[TaskLogEntry]) -> float | None:
        timed = [e.seconds for e in entries if e.seconds is not None]
        return round(sum(timed) / len(timed), 6) if timed else None

    def grouped(key: str) -> dict[str, Any]:
        groups: dict[str, list[TaskLogEntry]] = {}
        for entry in attempts:
            name = entry.agent_id if key == "agent" else str(entry.detail.get("type"))
            groups.setdefault(name or "-", []).append(entry)
        return {
            name: {"attempts": len(es), "succeeded": sum(1 for e in es if e.outcome == "succeeded"),
                   "average_seconds": average(es)}
            for name, es in sorted(groups.items())
        }  # fmt: skip

    return {
        "window_hours": hours,
        "attempts": len(attempts),
        "succeeded": len(ok),
        "throughput_per_hour": round(len(ok) / hours, 3),
        "success_rate": round(len(ok) / len(attempts), 4) if attempts else None,
        "average_seconds": average(attempts),
        "by_agent": grouped("agent"),
        "by_type": grouped("type"),
    }


def execution_logs(
    app: App, *, limit: int = 50, offset: int = 0, kind: str | None = "attempt"
) -> list[TaskLogEntry]:
    """The task log, newest first: the attempts (kind `attempt`), or every entry (kind None)."""
    return _store(app).logs(limit=limit, offset=offset, kind=kind)

"""Tasks: the follow-up work of a failure or a bug report, as data, and how a task moves. Pure: no I/O.

A task is queued, assigned to an agent (opsmith.domain.assignment says which, and why), run by it
under a lease, and then succeeds, or its attempt fails. A failed attempt that may be tried again
waits in the queue until its `next_attempt_at` (exponential backoff with jitter, kept in the row:
never straight back), and every `raise_every` failed attempts raise its priority one level. Out of
attempts, or failed for a reason no retry mends, it is `failed`: a person retries, reassigns or
cancels it.

An open task past its deadline escalates, level by level, after each level's delay (PagerDuty's
escalation rules: level 1 at the deadline, level 2 thirty minutes later...); a failed task that
escalates becomes `escalated`: handed to the people of that level. Priorities compare by severity,
never by name (alphabetically, "critical" would come before "low" and "emergency" before "high").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import NotFoundError, UsageError
from opsmith.domain.notifications import backoff

__all__ = [
    "OPEN",
    "EscalationLevel",
    "Priority",
    "RetryRules",
    "Task",
    "TaskInputError",
    "TaskLogEntry",
    "TaskRefused",
    "TaskStatus",
    "UnknownTaskError",
    "after_failure",
    "escalation",
    "parse_priority",
    "queue_key",
    "retried",
]


class Priority(StrEnum):
    """How urgent a task is. Ordered by severity: `Priority.LOW < Priority.EMERGENCY`."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"
    EMERGENCY = "emergency"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def raised(self, levels: int = 1) -> Priority:
        """`levels` more severe, at most emergency."""
        return _ORDER[min(self.severity + max(levels, 0), len(_ORDER) - 1)]

    # str's own comparisons would order by name; these order by severity.
    def __lt__(self, other: object) -> bool:
        if isinstance(other, Priority):
            return self.severity < other.severity
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Priority):
            return self.severity <= other.severity
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Priority):
            return self.severity > other.severity
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Priority):
            return self.severity >= other.severity
        return NotImplemented


_ORDER = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL, Priority.EMERGENCY]
_SEVERITY = {p: n for n, p in enumerate(_ORDER)}

# What bug reporters write for severity, and the priority each means.
_SEVERITY_WORDS = {
    **{p.value: p for p in Priority},
    "trivial": Priority.LOW,
    "minor": Priority.LOW,
    "medium": Priority.NORMAL,
    "moderate": Priority.NORMAL,
    "major": Priority.HIGH,
    "severe": Priority.CRITICAL,
    "urgent": Priority.CRITICAL,
    "blocker": Priority.EMERGENCY,
}


def parse_priority(text: str) -> Priority:
    """The priority a severity word means (low...emergency, or minor, medium, major, blocker...);
    TaskInputError naming the accepted words otherwise."""
    found = _SEVERITY_WORDS.get(text.strip().lower()) if isinstance(text, str) else None
    if found is None:
        shown = text if isinstance(text, str) else type(text).__name__
        raise TaskInputError(
            f"severity {shown[:40]!r} is not one opsmith knows",
            hint="give one of: " + ", ".join(_SEVERITY_WORDS),
        )
    return found


class TaskStatus(StrEnum):
    QUEUED = "queued"  # waiting for an agent, and for its next_attempt_at after a failed attempt
    ASSIGNED = "assigned"
    RUNNING = "running"  # its agent works on it, under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of attempts, or a failure no retry mends: a person decides
    ESCALATED = "escalated"  # failed and overdue: handed to the people of its escalation level
    CANCELLED = "cancelled"


# Not done: what escalates when overdue. Failed and escalated ones are only taken up again by a person.
OPEN = frozenset({TaskStatus.QUEUED, TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.FAILED})
HELD = frozenset({TaskStatus.ASSIGNED, TaskStatus.RUNNING})  # what counts in an agent's load


class TaskInputError(UsageError):
    """A task or bug report with missing or malformed fields; the message names them."""


class TaskRefused(UsageError):
    """A task action its status does not allow now (retry a succeeded task, assign a running one)."""


class UnknownTaskError(NotFoundError):
    """A task id that names no task."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EscalationLevel(_Frozen):
    """One level: reached `after_minutes` past the deadline, and handed to `to` (who is told)."""

    after_minutes: float = Field(ge=0, le=60 * 24 * 30)
    to: str = Field(min_length=1, max_length=120)


class Score(_Frozen):
    """Why an agent was chosen: each term in [0, 1] and the weighted total."""

    capability: float
    load: float
    success: float
    priority: float
    total: float


class Assignment(_Frozen):
    """Who a task went to, by whom (the orchestrator or a person), and the reasons."""

    agent_id: str
    by: str
    reason: str
    score: Score | None = None
    candidates: int = 0
    at: datetime


class Task(_Frozen):
    id: str
    key: str | None = Field(default=None, description="what makes it once: one task per failed run")
    type: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=200)
    details: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    status: TaskStatus = TaskStatus.QUEUED
    deadline: datetime | None = None
    attempts: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=5, ge=1)
    escalation_level: int = Field(default=0, ge=0)
    next_attempt_at: datetime | None = None
    run_id: str | None = None
    issue_id: str | None = None
    agent_id: str | None = None
    assignment: Assignment | None = None
    result: dict[str, Any] | None = None
    last_error: str | None = None
    reported_by: str = "opsmith"
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    created_at: datetime
    updated_at: datetime
    escalated_at: datetime | None = None
    finished_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        """Queued and its next attempt's time has come."""
        return self.status is TaskStatus.QUEUED and (
            self.next_attempt_at is None or self.next_attempt_at <= now
        )

    def overdue(self, now: datetime) -> bool:
        return self.deadline is not None and self.deadline <= now and self.status in OPEN


class TaskLogEntry(_Frozen):
    """One thing that happened to a task: created, assigned, an attempt (with its outcome and
    duration), escalated, reassigned from a silent agent, retried or assigned by a person."""

    task_id: str
    kind: str
    agent_id: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    seconds: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime


@dataclass(frozen=True)
class RetryRules:
    """How a failed attempt is tried again: the backoff (seconds) and the failures per priority level."""

    backoff_initial: float = 30.0
    backoff_max: float = 1800.0
    raise_every: int = 2


def queue_key(task: Task) -> tuple[int, float, float, str]:
    """The order tasks are taken from the queue: most severe first, then the nearest deadline,
    then the oldest, then by id (so equal tasks keep one order)."""
    deadline = task.deadline.timestamp() if task.deadline is not None else float("inf")
    return (-task.priority.severity, deadline, task.created_at.timestamp(), task.id)


def after_failure(
    task: Task, reason: str, *, retryable: bool, now: datetime, rules: RetryRules, draw: float
) -> Task:
    """The task after its attempt number `task.attempts` failed: queued again at a backed-off,
    jittered time while attempts remain and a retry may mend it, else failed. Every
    `rules.raise_every` failures raise its priority one level."""
    raised = task.priority.raised(1) if task.attempts % max(rules.raise_every, 1) == 0 else task.priority
    common: dict[str, Any] = {
        "last_error": reason,
        "priority": raised,
        "lease_owner": None,
        "lease_expires": None,
        "updated_at": now,
    }
    if retryable and task.attempts < task.max_attempts:
        wait = backoff(task.attempts, initial=rules.backoff_initial, maximum=rules.backoff_max, draw=draw)
        return task.model_copy(
            update={
                **common,
                "status": TaskStatus.QUEUED,
                "agent_id": None,
                "next_attempt_at": now + timedelta(seconds=wait),
            }
        )
    return task.model_copy(
        update={**common, "status": TaskStatus.FAILED, "next_attempt_at": None, "finished_at": now}
    )


def escalation(task: Task, levels: Sequence[EscalationLevel], now: datetime) -> int:
    """The escalation level the task has reached by `now`: how many levels' delays past its
    deadline have gone by (0 when it is not overdue, done, or has no deadline)."""
    if task.deadline is None or task.status not in OPEN or task.deadline > now:
        return 0
    late = (now - task.deadline).total_seconds() / 60
    return sum(1 for level in levels if level.after_minutes <= late)


def escalated(task: Task, level: int, now: datetime) -> Task:
    """The task at escalation `level`; a failed one becomes `escalated` (people take it)."""
    status = TaskStatus.ESCALATED if task.status is TaskStatus.FAILED else task.status
    return task.model_copy(
        update={"escalation_level": level, "escalated_at": now, "status": status, "updated_at": now}
    )


RETRYABLE = frozenset({TaskStatus.FAILED, TaskStatus.ESCALATED, TaskStatus.QUEUED, TaskStatus.CANCELLED})


def retried(task: Task, now: datetime, *, extra_attempts: int) -> Task:
    """A person's retry: queued and due now, with `extra_attempts` more attempts; TaskRefused for
    a task that is assigned, running or succeeded."""
    if task.status not in RETRYABLE:
        raise TaskRefused(
            f"task {task.id} is {task.status.value};"
            " only a queued, failed, escalated or cancelled one is retried",
            hint="a running task is retried by itself if its attempt fails",
        )
    return task.model_copy(
        update={
            "status": TaskStatus.QUEUED,
            "next_attempt_at": now,
            "max_attempts": task.attempts + extra_attempts,
            "agent_id": None,
            "lease_owner": None,
            "lease_expires": None,
            "finished_at": None,
            "updated_at": now,
        }
    )


def missing_fields(body: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    """The required fields absent, null or blank in `body`, in the order given."""
    return [
        name
        for name in required
        if body.get(name) is None or (isinstance(body.get(name), str) and not str(body.get(name)).strip())
    ]

"""A step's tool call handed to a worker (`executor: celery`), and the workers that make them.

The database row is the truth: a broker message carries only the call's key and asks some worker
to make progress. A call moves queued -> claimed (one worker, by compare-and-set) -> done, or
queued -> done when nobody may make it any more (its driver gave up, its run moved on). A
duplicated, redelivered or late message finds the row claimed or done and does nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class CallStatus(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DONE = "done"


class CallKind(StrEnum):
    CALL = "call"  # the step's own tool
    UNDO = "undo"  # its rollback action


@dataclass(frozen=True)
class CallingStep:
    """Which step (and attempt) of which run a tool call is made for, and whether it is the step's
    own call or its undo."""

    run_id: str
    step_id: str
    attempt: int
    kind: CallKind


# Set by the engine around each step's call and undo. A context variable rather than a keyword of
# ToolProvider.call: every provider and wrapper (pools, RBAC, fleet, fakes) passes calls on
# unchanged and only the dispatcher reads it, and asyncio gives each step's task its own copy, so
# two steps calling one tool with equal arguments at once each see their own.
calling_step: ContextVar[CallingStep | None] = ContextVar("opsmith_calling_step", default=None)


@dataclass(frozen=True)
class StepCall:
    """One call of one step: `args` are the resolved, RBAC-checked arguments the engine would have
    sent itself (as its audit entry records them: references to secrets, never their values)."""

    key: str
    run_id: str
    step_id: str
    attempt: int
    kind: CallKind
    server: str
    tool: str
    args: dict[str, Any]
    timeout: float
    created_at: datetime
    sent_at: datetime
    status: CallStatus = CallStatus.QUEUED
    finished_hosts: dict[str, dict[str, Any]] | None = None
    worker: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: dict[str, Any] | None = None  # see opsmith.distributed.outcome

    def silent_since(self) -> datetime | None:
        """When its worker last said it was calling (None unless claimed)."""
        if self.status is not CallStatus.CLAIMED:
            return None
        return self.heartbeat_at or self.claimed_at


def call_key(run_id: str, step_id: str, attempt: int, kind: CallKind, n: int) -> str:
    """The idempotency key: one per call of one attempt of one step (`n` counts the calls of a
    check that is asked again until it holds; an undo's is drawn at random, as each driver's undo
    is a call of its own)."""
    return f"{run_id}/{step_id}/{attempt}/{kind.value}{n}"


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime

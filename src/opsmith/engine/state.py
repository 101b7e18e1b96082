"""Run and step state machines as data: the statuses, the transitions allowed between them, and the
immutable state of one run.

Statuses of runs and steps share words ("pending", "running"), and StrEnum members with the same
value compare equal, so each machine has its own table and `transition` refuses to mix them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsmith.domain.plan import Plan
from opsmith.engine.errors import IllegalTransition, UnknownStep

__all__ = [
    "FINAL_RUN_STATUSES",
    "FINAL_STEP_STATUSES",
    "RUN_TRANSITIONS",
    "STEP_TRANSITIONS",
    "UNDO_TRANSITIONS",
    "FanOut",
    "Moment",
    "Outputs",
    "RunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    "UndoStatus",
    "new_run",
    "replace_step",
    "succeeded_outputs",
    "transition",
    "with_fan_out",
    "with_run_status",
    "with_step",
    "with_step_status",
    "with_undo",
]

# The caller's clock reading: seconds (monotonic or epoch) or a datetime; the core never reads a clock.
Moment = float | datetime


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_VALIDATION = "awaiting_validation"
    PAUSED = "paused"
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    RETRY_WAIT = "retry_wait"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    CANCELLED = "cancelled"


class UndoStatus(StrEnum):
    """Where the undo of one step stands. A step that failed stays `failed` whatever its undo did,
    so the undo's own progress is kept apart from the step's status, durably, for a resumed rollback.
    """

    DUE = "due"  # runs in the next rollback pass (its step failed after calling, or it may run again)
    CALLING = "calling"  # its call started and its end is not recorded: a crash leaves this
    HELD = "held"  # waits for a person: running it (again) may not be safe
    CHOSEN = "chosen"  # a person chose to run it, with what its step recorded
    DONE = "done"
    FAILED = "failed"  # tried again when a person resumes the rollback
    SKIPPED = "skipped"  # a person counted it as done, or as not needed


_R = RunStatus
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    # FAILED at start covers a run refused before any step (e.g. the approved hash no longer matches).
    _R.PENDING: frozenset({_R.RUNNING, _R.CANCELLED, _R.FAILED}),
    _R.RUNNING: frozenset(
        {
            _R.AWAITING_VALIDATION,
            _R.PAUSED,
            _R.NEEDS_ATTENTION,
            _R.SUCCEEDED,
            _R.FAILED,
            _R.ROLLING_BACK,
            _R.CANCELLED,
        }
    ),
    _R.AWAITING_VALIDATION: frozenset(
        {_R.RUNNING, _R.PAUSED, _R.NEEDS_ATTENTION, _R.FAILED, _R.ROLLING_BACK, _R.CANCELLED}
    ),
    _R.PAUSED: frozenset({_R.RUNNING, _R.NEEDS_ATTENTION, _R.FAILED, _R.ROLLING_BACK, _R.CANCELLED}),
    # A person decides: resume, pause, give up, undo or cancel.
    _R.NEEDS_ATTENTION: frozenset({_R.RUNNING, _R.PAUSED, _R.FAILED, _R.ROLLING_BACK, _R.CANCELLED}),
    # A failure is followed by the LIFO rollback when something can be undone.
    _R.FAILED: frozenset({_R.ROLLING_BACK}),
    # An undo that itself fails needs a person, not another automatic attempt.
    _R.ROLLING_BACK: frozenset({_R.ROLLED_BACK, _R.NEEDS_ATTENTION, _R.FAILED}),
    _R.SUCCEEDED: frozenset(),
    _R.ROLLED_BACK: frozenset(),
    _R.CANCELLED: frozenset(),
}

_S = StepStatus
STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    _S.PENDING: frozenset({_S.READY, _S.SKIPPED, _S.CANCELLED}),
    _S.READY: frozenset({_S.RUNNING, _S.SKIPPED, _S.CANCELLED}),
    # RUNNING -> SKIPPED only by a person's choice after a crash interrupted the step (see recovery).
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.RETRY_WAIT, _S.CANCELLED, _S.SKIPPED}),
    _S.RETRY_WAIT: frozenset({_S.RUNNING, _S.FAILED, _S.CANCELLED, _S.SKIPPED}),
    # Only what succeeded changed something that can be undone.
    _S.SUCCEEDED: frozenset({_S.ROLLED_BACK, _S.ROLLBACK_FAILED}),
    # An operator may retry an undo that failed.
    _S.ROLLBACK_FAILED: frozenset({_S.ROLLED_BACK}),
    _S.FAILED: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.ROLLED_BACK: frozenset(),
    _S.CANCELLED: frozenset(),
}

_U = UndoStatus
UNDO_TRANSITIONS: Mapping[UndoStatus | None, frozenset[UndoStatus]] = {
    # FAILED before any call too: an undo whose arguments cannot be filled never starts.
    None: frozenset({_U.DUE, _U.CALLING, _U.HELD, _U.FAILED}),
    _U.DUE: frozenset({_U.CALLING, _U.HELD, _U.FAILED}),
    _U.CHOSEN: frozenset({_U.CALLING, _U.FAILED}),
    _U.FAILED: frozenset({_U.CALLING}),
    # A crash during the call: run it again if that is safe, else ask a person.
    _U.CALLING: frozenset({_U.DONE, _U.FAILED, _U.DUE, _U.HELD}),
    _U.HELD: frozenset({_U.CHOSEN, _U.SKIPPED}),
    _U.DONE: frozenset(),
    _U.SKIPPED: frozenset(),
}

FINAL_RUN_STATUSES = frozenset(s for s, targets in RUN_TRANSITIONS.items() if not targets)
FINAL_STEP_STATUSES = frozenset(s for s, targets in STEP_TRANSITIONS.items() if not targets)

Status = TypeVar("Status", RunStatus, StepStatus)


def transition(current: Status, new: Status) -> Status:
    """`new` when the machine allows current -> new; otherwise `IllegalTransition` naming both."""
    allowed: frozenset[StrEnum]
    if isinstance(current, RunStatus) and isinstance(new, RunStatus):
        kind, allowed = "run", RUN_TRANSITIONS[current]
    elif isinstance(current, StepStatus) and isinstance(new, StepStatus):
        kind, allowed = "step", STEP_TRANSITIONS[current]
    else:
        raise IllegalTransition(
            f"cannot move from {type(current).__name__} {current.value!r} "
            f"to {type(new).__name__} {new.value!r}",
            hint="runs and steps have separate status machines; pass two statuses of the same kind",
        )
    if new not in allowed:
        choices = ", ".join(sorted(s.value for s in allowed)) or f"nothing, {current.value} is final"
        raise IllegalTransition(
            f"a {kind} cannot go from {current.value} to {new.value}",
            hint=f"from {current.value} a {kind} can go to: {choices}",
        )
    return new


_COMPLETED = frozenset({StepStatus.SUCCEEDED, StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED})


class FanOut(BaseModel):
    """How far a step's call that fans out over hosts got: how many hosts it acts on, and the row
    (host, ok and the short fields of its result) of each host that finished, by host name. Kept
    with the step's state, so a crash mid-call leaves a record of where it stopped: the hosts with
    a row are not contacted again when the step goes on (see engine.recovery)."""

    model_config = ConfigDict(frozen=True)

    total: int = Field(default=0, ge=0)
    rows: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return sum(1 for row in self.rows.values() if row.get("ok") is True)

    @property
    def failed(self) -> int:
        return len(self.rows) - self.succeeded

    @property
    def unknown(self) -> int:
        """Hosts with no recorded outcome: not reached yet, or in flight when the call stopped."""
        return max(self.total - len(self.rows), 0)


class StepState(BaseModel):
    """One step of one run. `completed_seq` orders successes within the run, for LIFO rollback."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = Field(default=0, ge=0)
    started_at: Moment | None = None
    finished_at: Moment | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    completed_seq: int | None = Field(default=None, ge=0)
    undo: UndoStatus | None = None  # None: its undo was never asked for
    fan_out: FanOut | None = None  # None: its call never fanned out over hosts

    @model_validator(mode="after")
    def _seq_matches_status(self) -> StepState:
        # Rollback order relies on every step that once succeeded having its place in the sequence.
        if (self.completed_seq is not None) != (self.status in _COMPLETED):
            raise ValueError(
                f"step {self.step_id}: completed_seq must be set exactly when the step succeeded "
                f"(status {self.status.value}, completed_seq {self.completed_seq})"
            )
        return self


class RunState(BaseModel):
    """One run of one plan: its status, every step's state, and the next completion number."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    plan_id: str
    plan_hash: str
    status: RunStatus = RunStatus.PENDING
    steps: dict[str, StepState]
    next_seq: int = Field(default=0, ge=0)
    # While awaiting validation: when the gate times out and the run is rolled back instead.
    gate_deadline: datetime | None = None

    @model_validator(mode="after")
    def _keys_are_step_ids(self) -> RunState:
        for key, state in self.steps.items():
            if key != state.step_id:
                raise ValueError(f"steps[{key!r}] holds the state of step {state.step_id!r}")
        return self

    def step(self, step_id: str) -> StepState:
        """The state of one step, or `UnknownStep` listing the run's steps."""
        try:
            return self.steps[step_id]
        except KeyError:
            raise UnknownStep(
                f"run {self.run_id} has no step {step_id!r}",
                hint=f"its steps: {', '.join(self.steps) or 'none'}",
            ) from None


def new_run(plan: Plan, *, run_id: str) -> RunState:
    """A pending run of `plan` with every step pending; pinned to the plan's content hash."""
    return RunState(
        run_id=run_id,
        plan_id=plan.id,
        plan_hash=plan.hash or plan.content_hash(),
        steps={s.id: StepState(step_id=s.id) for s in plan.steps},
    )


class Outputs(Mapping[str, dict[str, Any]]):
    """The same as `succeeded_outputs`, read lazily: a lookup costs one step, not the whole run
    (a step reads the outputs of the few steps its arguments name)."""

    def __init__(self, run_state: RunState) -> None:
        self._steps = run_state.steps

    def __getitem__(self, step_id: str) -> dict[str, Any]:
        state = self._steps.get(step_id)
        if state is None or state.status not in _COMPLETED:
            raise KeyError(step_id)
        return state.output or {}

    def __iter__(self) -> Iterator[str]:
        return (k for k, s in self._steps.items() if s.status in _COMPLETED)

    def __len__(self) -> int:
        return sum(1 for s in self._steps.values() if s.status in _COMPLETED)


def succeeded_outputs(run_state: RunState) -> dict[str, dict[str, Any]]:
    """Outputs of the steps that succeeded ({} for one without output): what references may read.

    Steps since rolled back count too: a later undo may still need what they returned.
    """
    return {
        step_id: state.output or {}
        for step_id, state in run_state.steps.items()
        if state.status in _COMPLETED
    }


def with_run_status(run_state: RunState, new: RunStatus) -> RunState:
    """The run moved to `new`, if its machine allows it; leaving a gate drops its deadline."""
    changes: dict[str, Any] = {"status": transition(run_state.status, new)}
    if new is not RunStatus.AWAITING_VALIDATION:
        changes["gate_deadline"] = None
    return run_state.model_copy(update=changes)


def with_step(run_state: RunState, state: StepState, *, next_seq: int | None = None) -> RunState:
    """The run with one step's state replaced (validated); `next_seq` when a completion used one."""
    run_state.step(state.step_id)
    # `state` is validated (replace_step) and keeps its key, so the run's invariants still hold:
    # construct without revalidating every step, which made each change cost O(steps).
    return RunState.model_construct(
        run_id=run_state.run_id,
        plan_id=run_state.plan_id,
        plan_hash=run_state.plan_hash,
        status=run_state.status,
        steps={**run_state.steps, state.step_id: state},
        next_seq=run_state.next_seq if next_seq is None else next_seq,
        gate_deadline=run_state.gate_deadline,
    )


def with_step_status(
    run_state: RunState,
    step_id: str,
    new: StepStatus,
    *,
    at: Moment | None = None,
    error: str | None = None,
) -> RunState:
    """One step moved to `new` (skip, cancel, rolled back...), if its machine allows it.

    `at` becomes finished_at when given; `error` replaces the step's error when given.
    """
    current = run_state.step(step_id)
    changes: dict[str, Any] = {"status": transition(current.status, new)}
    if at is not None:
        changes["finished_at"] = at
    if error is not None:
        changes["error"] = error
    return with_step(run_state, replace_step(current, **changes))


def with_undo(run_state: RunState, step_id: str, new: UndoStatus) -> RunState:
    """One step's undo moved to `new`, if UNDO_TRANSITIONS allows it."""
    current = run_state.step(step_id)
    allowed = UNDO_TRANSITIONS[current.undo]
    if new not in allowed:
        was = current.undo.value if current.undo else "not asked for"
        choices = ", ".join(sorted(s.value for s in allowed)) or f"nothing, {was} is final"
        raise IllegalTransition(
            f"the undo of step {step_id} cannot go from {was} to {new.value}",
            hint=f"from {was} an undo can go to: {choices}",
        )
    return with_step(run_state, replace_step(current, undo=new))


def with_fan_out(
    run_state: RunState, step_id: str, rows: Mapping[str, Mapping[str, Any]], *, total: int | None = None
) -> RunState:
    """One step's fan-out record with `rows` added (a host's newer row replaces its older one) and
    `total` hosts, when given. The rows are copied: the record never shares a caller's dicts."""
    current = run_state.step(step_id)
    known = current.fan_out or FanOut()
    record = FanOut(
        total=known.total if total is None else total,
        rows={**known.rows, **{name: dict(row) for name, row in rows.items()}},
    )
    return with_step(run_state, replace_step(current, fan_out=record))


def replace_step(state: StepState, **changes: Any) -> StepState:
    """A copy with `changes`, validated again (model_copy would skip the invariants)."""
    return StepState(**{**dict(state), **changes})

"""What a run becomes when the process that drove it died, and the choices a person then has.

A step that was in flight may or may not have done its work. Running it again is safe only when it
is idempotent; any other step holds the run in `needs_attention` until a person says whether to
retry it, count it as done (skip), or fail it and roll the run back.

The same holds for an undo in flight when a rollback's process died: it runs again only if its
rollback action is idempotent (and runs as planned, with every argument it needs). Otherwise the
run needs attention, and a person says whether to run it again (retry, or rollback) or count it as
done (skip); once no undo waits, the rollback goes on. The engine also holds an undo for a person
when the failed step it undoes did not record what the undo needs (see engine.rollback).

A step whose call fans out over hosts records each host's outcome as it finishes (`StepState.fan_out`,
committed with the throttled progress), so a crash leaves a record of how far it got, and the step
goes on where it stopped: the hosts with a recorded outcome are not contacted again (`finished_hosts`),
and the step's answer covers them all; a check (a step that changes nothing) asks every host again.
A host recorded as failed is contacted again only by an idempotent step (running it again is
harmless, and the failure may have passed). For a step that is
not idempotent a recorded failure is that host's answer: the host was reached, or refused before
anything ran, and the step counts it as failed; a person's `retry` acts only on the hosts with no
recorded outcome, those in flight when the process stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsmith.domain.plan import Plan, Step
from opsmith.engine.errors import IllegalTransition
from opsmith.engine.rollback import held_undos, unrecorded
from opsmith.engine.scheduler import plan_step
from opsmith.engine.state import (
    FanOut,
    Moment,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    UndoStatus,
    replace_step,
    with_run_status,
    with_step,
    with_step_status,
    with_undo,
)

__all__ = [
    "Choice",
    "Recovery",
    "finished_hosts",
    "how_far",
    "in_flight",
    "interrupted_undos",
    "recover",
    "resolve",
    "stopped_fan_outs",
    "undecided",
]

_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.RETRY_WAIT})


class Choice(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class Recovery:
    state: RunState
    rerun: list[str]  # idempotent: they (or their undo) wait to run again
    held: list[str]  # not idempotent: a person decides


def in_flight(run_state: RunState) -> list[str]:
    return [k for k, s in run_state.steps.items() if s.status in _IN_FLIGHT]


def interrupted_undos(run_state: RunState) -> list[str]:
    """Steps whose undo's call started and whose end was never recorded."""
    return [k for k, s in run_state.steps.items() if s.undo is UndoStatus.CALLING]


def undecided(run_state: RunState) -> list[str]:
    """Steps (or undos) a crash interrupted in the middle of a call, and undos the engine could not
    run as planned, that wait for a person's choice."""
    if run_state.status is not RunStatus.NEEDS_ATTENTION:
        return []
    held = set(held_undos(run_state))
    return [k for k, s in run_state.steps.items() if s.status is StepStatus.RUNNING or k in held]


def recover(plan: Plan, run_state: RunState) -> Recovery:
    """The state of a running run whose driver died: idempotent in-flight steps wait to run again;
    if any other step was in flight, the run needs attention. A rollback whose driver died goes
    the same way with its undo in flight."""
    if run_state.status is RunStatus.ROLLING_BACK:
        return _recover_rollback(plan, run_state)
    if run_state.status is not RunStatus.RUNNING:
        return Recovery(run_state, [], [])
    rerun: list[str] = []
    held: list[str] = []
    state = run_state
    for step_id in in_flight(run_state):
        # RETRY_WAIT is committed after an attempt ended and before the next one starts: that step
        # was not calling anything when the driver died.
        if run_state.step(step_id).status is StepStatus.RETRY_WAIT:
            rerun.append(step_id)
            continue
        record = run_state.step(step_id).fan_out
        said = f"interrupted: {how_far(record)}" if record is not None else None
        if plan_step(plan, step_id).idempotent:
            state = with_step_status(state, step_id, StepStatus.RETRY_WAIT, error=said)
            rerun.append(step_id)
        else:
            if said is not None:
                # What `opsmith status` shows of the step while a person decides.
                state = with_step(state, replace_step(state.step(step_id), error=said))
            held.append(step_id)
    if held:
        state = with_run_status(state, RunStatus.NEEDS_ATTENTION)
    return Recovery(state, rerun, held)


def _recover_rollback(plan: Plan, run_state: RunState) -> Recovery:
    rerun: list[str] = []
    held: list[str] = []
    state = run_state
    for step_id in interrupted_undos(run_state):
        if _may_undo_again(plan, run_state, step_id):
            state = with_undo(state, step_id, UndoStatus.DUE)
            rerun.append(step_id)
        else:
            state = with_undo(state, step_id, UndoStatus.HELD)
            held.append(step_id)
    if held:
        state = with_run_status(state, RunStatus.NEEDS_ATTENTION)
    return Recovery(state, rerun, held)


def _may_undo_again(plan: Plan, run_state: RunState, step_id: str) -> bool:
    rollback = plan_step(plan, step_id).rollback
    # An undo run without the arguments its failed step never recorded did what its tool's default
    # does, which nobody declared safe to repeat.
    return rollback is not None and rollback.idempotent and not unrecorded(plan, run_state, step_id)


def resolve(run_state: RunState, step_id: str, choice: Choice, *, at: Moment) -> RunState:
    """A person's choice for a step a crash interrupted. Once no step is left undecided, a run that
    needed attention runs again (retry, skip); FAIL leaves the run to be rolled back.

    For an undo that waits (see `undecided`), RETRY and FAIL (roll it back) both run the undo, and
    SKIP counts it as done; once no undo waits, the run goes on rolling back."""
    current = run_state.step(step_id)
    if step_id not in undecided(run_state):
        raise IllegalTransition(
            f"step {step_id} is {current.status.value}: only a step a crash interrupted can be decided",
            hint="steps waiting for a decision: " + (", ".join(undecided(run_state)) or "none"),
        )
    if current.undo is UndoStatus.HELD:
        state = _resolve_undo(run_state, step_id, choice, at=at)
        return state if undecided(state) else with_run_status(state, RunStatus.ROLLING_BACK)
    if choice is Choice.RETRY:
        state = run_state
        if current.status is StepStatus.RUNNING:
            state = with_step_status(state, step_id, StepStatus.RETRY_WAIT)
    elif choice is Choice.SKIP:
        state = with_step_status(
            run_state, step_id, StepStatus.SKIPPED, at=at, error="skipped by a person after a crash"
        )
    else:
        return with_step_status(
            run_state, step_id, StepStatus.FAILED, at=at, error="failed by a person after a crash"
        )
    return state


def _resolve_undo(run_state: RunState, step_id: str, choice: Choice, *, at: Moment) -> RunState:
    if choice is not Choice.SKIP:
        return with_undo(run_state, step_id, UndoStatus.CHOSEN)
    state = run_state
    if state.step(step_id).status in (StepStatus.SUCCEEDED, StepStatus.ROLLBACK_FAILED):
        state = with_step_status(
            state, step_id, StepStatus.ROLLED_BACK, at=at, error="undo skipped by a person: counted as done"
        )
    return with_undo(state, step_id, UndoStatus.SKIPPED)


def finished_hosts(step: Step, state: StepState) -> dict[str, dict[str, Any]]:
    """The recorded rows of the hosts a new attempt of `step` does not contact again (see the
    module docstring): every recorded host, or for an idempotent step the ones that succeeded; none
    for a check (a step that changes nothing), which asks every host again: what it reports must be
    what holds now, and asking again costs nothing."""
    record = state.fan_out
    if record is None:
        return {}
    if not step.idempotent:
        return dict(record.rows)
    if not step.changes_target:
        return {}
    return {name: row for name, row in record.rows.items() if row.get("ok") is True}


def how_far(record: FanOut) -> str:
    """A fan-out's record in words, for a person deciding what to do with its step."""
    return (
        f"done on {record.succeeded} of {record.total} hosts, {record.failed} failed,"
        f" {record.unknown} unknown (in flight when the process stopped)"
    )


def stopped_fan_outs(run_state: RunState) -> list[str]:
    """For each step waiting for a person whose call fanned out over hosts: the step and how far it
    got, e.g. "restart: done on 3 of 4 hosts, 0 failed, 1 unknown (in flight when the process stopped)"."""
    found = []
    for step_id in undecided(run_state):
        record = run_state.step(step_id).fan_out
        if record is not None and run_state.step(step_id).status is StepStatus.RUNNING:
            found.append(f"{step_id}: {how_far(record)}")
    return found

"""What a run becomes when the process that drove it died, and the choices a person then has.

A step that was in flight may or may not have done its work. Running it again is safe only when it
is idempotent; any other step holds the run in `needs_attention` until a person says whether to
retry it, count it as done (skip), or fail it and roll the run back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opsmith.domain.plan import Plan
from opsmith.engine.errors import IllegalTransition
from opsmith.engine.scheduler import plan_step
from opsmith.engine.state import Moment, RunState, RunStatus, StepStatus, with_run_status, with_step_status

__all__ = ["Choice", "Recovery", "in_flight", "recover", "resolve", "undecided"]

_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.RETRY_WAIT})


class Choice(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class Recovery:
    state: RunState
    rerun: list[str]  # idempotent: they wait to run again
    held: list[str]  # not idempotent: a person decides


def in_flight(run_state: RunState) -> list[str]:
    return [k for k, s in run_state.steps.items() if s.status in _IN_FLIGHT]


def undecided(run_state: RunState) -> list[str]:
    """Steps a crash interrupted in the middle of a call that wait for a person's choice."""
    if run_state.status is not RunStatus.NEEDS_ATTENTION:
        return []
    return [k for k, s in run_state.steps.items() if s.status is StepStatus.RUNNING]


def recover(plan: Plan, run_state: RunState) -> Recovery:
    """The state of a running run whose driver died: idempotent in-flight steps wait to run again;
    if any other step was in flight, the run needs attention."""
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
        elif plan_step(plan, step_id).idempotent:
            state = with_step_status(state, step_id, StepStatus.RETRY_WAIT)
            rerun.append(step_id)
        else:
            held.append(step_id)
    if held:
        state = with_run_status(state, RunStatus.NEEDS_ATTENTION)
    return Recovery(state, rerun, held)


def resolve(run_state: RunState, step_id: str, choice: Choice, *, at: Moment) -> RunState:
    """A person's choice for a step a crash interrupted. Once no step is left undecided, a run that
    needed attention runs again (retry, skip); FAIL leaves the run to be rolled back."""
    current = run_state.step(step_id)
    if step_id not in undecided(run_state):
        raise IllegalTransition(
            f"step {step_id} is {current.status.value}: only a step a crash interrupted can be decided",
            hint="steps waiting for a decision: " + (", ".join(undecided(run_state)) or "none"),
        )
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

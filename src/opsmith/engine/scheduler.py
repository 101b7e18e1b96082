"""Which steps may start now, and how a step's start and result change the run: pure functions
over a Plan and a RunState that return new states and never mutate."""

from __future__ import annotations

import heapq
from typing import Any

from opsmith.domain.plan import Plan, Step
from opsmith.engine.errors import IllegalTransition, InvalidSetting, UnknownStep
from opsmith.engine.state import (
    Moment,
    RunState,
    RunStatus,
    StepStatus,
    replace_step,
    transition,
    with_step,
)

__all__ = ["Frontier", "apply_result", "gate_after", "is_finished", "plan_step", "ready_steps", "start_step"]

# A skipped dependency (an optional step left out) does not hold its dependents back.
_SATISFIED = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
_NOT_STARTED = frozenset({StepStatus.PENDING, StepStatus.READY})
# A step waiting to retry still holds its slot: it will run again without being scheduled.
_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.RETRY_WAIT})
# Paused, awaiting validation, failed, rolling back or needing attention: nothing new starts.
_SCHEDULING = frozenset({RunStatus.PENDING, RunStatus.RUNNING})


def plan_step(plan: Plan, step_id: str) -> Step:
    """The plan's step, or `UnknownStep` listing the plan's steps."""
    try:
        return plan.step(step_id)
    except KeyError:
        pass
    raise UnknownStep(
        f"plan {plan.id} has no step {step_id!r}",
        hint=f"its steps: {', '.join(s.id for s in plan.steps) or 'none'}",
    )


def ready_steps(plan: Plan, run_state: RunState, *, max_parallel: int) -> list[str]:
    """Steps that may start now, in plan order: not started, every dependency succeeded or skipped,
    at most `max_parallel` in flight (running or waiting to retry) once they start."""
    if max_parallel < 1:
        raise InvalidSetting(
            f"max_parallel must be at least 1, got {max_parallel}",
            hint="use 1 to run one step at a time",
        )
    if run_state.status not in _SCHEDULING:
        return []
    in_flight = sum(1 for s in plan.steps if run_state.step(s.id).status in _IN_FLIGHT)
    free = max_parallel - in_flight
    ready: list[str] = []
    for step in plan.steps:
        if len(ready) >= free:
            break
        if run_state.step(step.id).status in _NOT_STARTED and _deps_satisfied(step, run_state):
            ready.append(step.id)
    return ready


class Frontier:
    """`ready_steps` kept up to date instead of recomputed: the steps whose dependencies are all
    satisfied, handed out in plan order. Built once from a run's state, then told of each step
    that succeeded or was skipped; each step and edge is visited once over the whole run, where
    calling ready_steps after every change costs the whole plan each time."""

    def __init__(self, plan: Plan, run_state: RunState) -> None:
        self._position = {s.id: i for i, s in enumerate(plan.steps)}
        self._dependents: dict[str, list[str]] = {}
        self._missing: dict[str, int] = {}
        self._ready: list[tuple[int, str]] = []
        for step in plan.steps:
            for dep in set(step.depends_on):
                self._dependents.setdefault(dep, []).append(step.id)
            if run_state.step(step.id).status in _NOT_STARTED:
                missing = sum(1 for d in set(step.depends_on) if run_state.step(d).status not in _SATISFIED)
                self._missing[step.id] = missing
                if missing == 0:
                    heapq.heappush(self._ready, (self._position[step.id], step.id))

    def take(self, count: int) -> list[str]:
        """Up to `count` ready steps, first in plan order first; they are no longer ready."""
        taken: list[str] = []
        while self._ready and len(taken) < count:
            _, step_id = heapq.heappop(self._ready)
            self._missing.pop(step_id, None)
            taken.append(step_id)
        return taken

    def satisfied(self, step_id: str) -> None:
        """`step_id` succeeded or was skipped: its dependents may become ready."""
        for dependent in self._dependents.get(step_id, ()):
            if dependent in self._missing:
                self._missing[dependent] -= 1
                if self._missing[dependent] == 0:
                    heapq.heappush(self._ready, (self._position[dependent], dependent))

    def __len__(self) -> int:
        return len(self._ready)


def gate_after(plan: Plan, step_id: str) -> bool:
    """Whether a person must validate the result of this step before the run goes on."""
    return plan_step(plan, step_id).requires_validation


def is_finished(plan: Plan, run_state: RunState) -> bool:
    """No step is in flight and none can ever start: all done, or held back by a failed dependency.

    This looks at steps only; a paused run with steps left is not finished. Checking direct
    dependencies suffices: a not-started step behind another not-started step that could start
    is never reached, because that other step already answers False.
    """
    for step in plan.steps:
        status = run_state.step(step.id).status
        if status in _IN_FLIGHT:
            return False
        if status in _NOT_STARTED and _deps_satisfied(step, run_state):
            return False
    return True


def start_step(plan: Plan, run_state: RunState, step_id: str, *, at: Moment) -> RunState:
    """The step is running (another attempt if it was waiting to retry); its dependencies must be done."""
    step = plan_step(plan, step_id)
    current = run_state.step(step_id)
    waiting = [d for d in step.depends_on if run_state.step(d).status not in _SATISFIED]
    if waiting:
        raise IllegalTransition(
            f"step {step_id} cannot start: it waits for "
            + ", ".join(f"{d} ({run_state.step(d).status.value})" for d in waiting),
            hint="start only what ready_steps returns",
        )
    status = current.status
    if status == StepStatus.PENDING:
        status = transition(status, StepStatus.READY)
    started = replace_step(
        current,
        status=transition(status, StepStatus.RUNNING),
        attempts=current.attempts + 1,
        started_at=at,
        finished_at=None,
        output=None,
        error=None,
    )
    return with_step(run_state, started)


def apply_result(
    run_state: RunState,
    step_id: str,
    *,
    ok: bool,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    at: Moment,
    retry: bool = False,
) -> RunState:
    """A running step's attempt ended: succeeded (and given the next completion number), failed,
    or, when `retry` (the caller asked should_retry), waiting to run again."""
    current = run_state.step(step_id)
    if ok:
        done = replace_step(
            current,
            status=transition(current.status, StepStatus.SUCCEEDED),
            finished_at=at,
            output=output,
            error=None,
            completed_seq=run_state.next_seq,
        )
        return with_step(run_state, done, next_seq=run_state.next_seq + 1)
    new = StepStatus.RETRY_WAIT if retry else StepStatus.FAILED
    failed = replace_step(
        current,
        status=transition(current.status, new),
        finished_at=at,
        output=output,
        error=error,
    )
    return with_step(run_state, failed)


def _deps_satisfied(step: Step, run_state: RunState) -> bool:
    return all(run_state.step(dep).status in _SATISFIED for dep in step.depends_on)

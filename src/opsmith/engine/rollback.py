"""Rollback: undo what succeeded, last completed first, with each undo's arguments resolved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmith.domain.plan import Plan, ToolCall
from opsmith.engine.errors import NoRollback
from opsmith.engine.references import resolve
from opsmith.engine.scheduler import plan_step
from opsmith.engine.state import RunState, StepStatus

__all__ = ["rollback_call", "rollback_order"]


def rollback_order(plan: Plan, run_state: RunState) -> list[str]:
    """Succeeded steps (and those whose undo failed) that have a rollback action, last completed first.

    Completion order, not plan order: parallel steps finish in any order, and a later change may
    rest on an earlier one, so undoing in reverse of what actually happened is the safe order.
    """
    undoable: list[tuple[int, str]] = []
    for step in plan.steps:
        state = run_state.step(step.id)
        # An undo that failed before is tried again when a person resumes the rollback.
        if step.rollback is not None and state.status in (StepStatus.SUCCEEDED, StepStatus.ROLLBACK_FAILED):
            # StepState guarantees a succeeded step has its completion number.
            assert state.completed_seq is not None
            undoable.append((state.completed_seq, step.id))
    return [step_id for _, step_id in sorted(undoable, reverse=True)]


def rollback_call(plan: Plan, step_id: str, outputs: Mapping[str, Mapping[str, Any] | None]) -> ToolCall:
    """The step's rollback tool call with `${steps.ID.path}` references filled from `outputs`."""
    step = plan_step(plan, step_id)
    if step.rollback is None:
        raise NoRollback(
            f"step {step_id} has no rollback action",
            hint="only the steps rollback_order lists can be undone; undo this one by hand",
        )
    args = resolve(
        step.rollback.args, outputs, step_id=f"{step_id} (rollback)", known_steps=[s.id for s in plan.steps]
    )
    return step.rollback.model_copy(update={"args": args})

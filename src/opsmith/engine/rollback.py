"""Rollback: what to undo, in which order, and with which arguments.

What succeeded is undone last completed first. A step that failed after calling a tool that changes
the target may have left it half-changed; its undo runs first, as the newest change, with what that
step recorded (the structured output of a result that failed its expectations, or of an error that
carried it). When its undo needs something the step never recorded, a person decides: the tool may
have changed the target, so neither skipping the undo nor guessing its arguments is safe.

The undo of a step that fanned out over hosts goes only where that step acted, as its per-host
outcomes say (see engine.fleet_undo).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from opsmith.domain.evidence import lookup
from opsmith.domain.plan import Plan, ToolCall
from opsmith.engine.errors import NoRollback
from opsmith.engine.fleet_undo import blind_hosts, narrowed, recorded_answer
from opsmith.engine.references import RUNTIME_REF, resolve
from opsmith.engine.scheduler import plan_step
from opsmith.engine.state import RunState, StepStatus, UndoStatus, succeeded_outputs

__all__ = ["broken_steps", "held_undos", "rollback_call", "rollback_order", "undo_call", "unrecorded"]

_ABSENT = lookup({}, "absent")  # evidence.lookup's sentinel for a path that is not there
# A failed step's undo that is not settled yet: it runs in this rollback.
_FAILED_STEP_UNDO_RUNS = frozenset({UndoStatus.DUE, UndoStatus.CHOSEN, UndoStatus.FAILED})


def rollback_order(plan: Plan, run_state: RunState) -> list[str]:
    """Succeeded steps (and those whose undo failed) that have a rollback action, last completed first.

    Completion order, not plan order: parallel steps finish in any order, and a later change may
    rest on an earlier one, so undoing in reverse of what actually happened is the safe order. An
    undo that waits for a person is left out (see `held_undos`).
    """
    undoable: list[tuple[int, str]] = []
    for step in plan.steps:
        state = run_state.step(step.id)
        # An undo that failed before is tried again when a person resumes the rollback.
        if (
            step.rollback is not None
            and state.status in (StepStatus.SUCCEEDED, StepStatus.ROLLBACK_FAILED)
            and state.undo is not UndoStatus.HELD
        ):
            # StepState guarantees a succeeded step has its completion number.
            assert state.completed_seq is not None
            undoable.append((state.completed_seq, step.id))
    return [step_id for _, step_id in sorted(undoable, reverse=True)]


def broken_steps(plan: Plan, run_state: RunState, touched: Collection[str] = ()) -> list[str]:
    """Failed steps that change the target, have an undo, and called their tool, in plan order.

    Their tool may have changed the target part-way (a rollout left crash-looping), so their undo
    runs before the others'. `touched`: steps this process saw call their tool; the run's state
    keeps the rest (their undo is due, chosen, or failed before).
    """
    broken = []
    for step in plan.steps:
        state = run_state.step(step.id)
        if not step.changes_target or step.rollback is None or state.status is not StepStatus.FAILED:
            continue
        if state.undo in _FAILED_STEP_UNDO_RUNS or (state.undo is None and step.id in touched):
            broken.append(step.id)
    return broken


def held_undos(run_state: RunState) -> list[str]:
    """Steps whose undo waits for a person's decision."""
    return [k for k, s in run_state.steps.items() if s.undo is UndoStatus.HELD]


def unrecorded(plan: Plan, run_state: RunState, step_id: str) -> list[str]:
    """Paths of the step's own output its undo refers to that the step did not record.

    Empty for a step that succeeded (its output is complete) and for an undo that needs nothing of
    its own step. A failed step recorded what its result carried, or nothing, or its hosts' outcomes
    (engine.fleet_undo); an undo on the step's group whose hosts it cannot all name needs their names.
    """
    step = plan_step(plan, step_id)
    state = run_state.step(step_id)
    if step.rollback is None or state.status is not StepStatus.FAILED:
        return []
    recorded = _recorded(plan, run_state, step_id) or {}
    paths = [path for ref, path in _refs(step.rollback.args) if ref == step_id]
    missing = list(dict.fromkeys(p for p in paths if lookup(recorded, p) is _ABSENT))
    blind = blind_hosts(plan, run_state, step_id)
    if blind:
        missing.append(f"the names of its {blind} hosts with no recorded outcome")
    return missing


def undo_call(plan: Plan, run_state: RunState, step_id: str) -> ToolCall:
    """The step's undo with references filled from what the steps recorded: the outputs of steps that
    succeeded, and a failed step's own recorded output.

    When a person chose to run the undo of a failed step that did not record what it needs, the
    arguments needing it are left out, so the tool's own default applies (the person was told).
    Otherwise an unresolved reference raises `UnresolvedReference`, as `rollback_call` does.
    """
    state = run_state.step(step_id)
    outputs: dict[str, Mapping[str, Any] | None] = dict(succeeded_outputs(run_state))
    recorded = _recorded(plan, run_state, step_id)
    if state.status is StepStatus.FAILED and recorded is not None:
        outputs[step_id] = recorded
    missing = unrecorded(plan, run_state, step_id)
    if not missing or state.undo is not UndoStatus.CHOSEN:
        return narrowed(plan, run_state, step_id, rollback_call(plan, step_id, outputs))
    rollback = plan_step(plan, step_id).rollback
    assert rollback is not None  # unrecorded() is empty for a step without one
    kept = {
        key: value
        for key, value in rollback.args.items()
        if not any(ref == step_id and path in missing for ref, path in _refs(value))
    }
    args = resolve(kept, outputs, step_id=f"{step_id} (rollback)", known_steps=[s.id for s in plan.steps])
    return narrowed(plan, run_state, step_id, rollback.model_copy(update={"args": args}))


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


def _recorded(plan: Plan, run_state: RunState, step_id: str) -> dict[str, Any] | None:
    """What a failed step recorded for its undo: its output, or the answer its hosts' recorded
    outcomes make when its call stopped before answering."""
    state = run_state.step(step_id)
    return state.output if state.output is not None else recorded_answer(plan, run_state, step_id)


def _refs(value: Any) -> list[tuple[str, str]]:
    """(step id, path) of every `${steps.ID.path}` inside a value."""
    if isinstance(value, str):
        return [(m.group(1), m.group(2)) for m in RUNTIME_REF.finditer(value)]
    if isinstance(value, Mapping):
        return [ref for item in value.values() for ref in _refs(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in _refs(item)]
    return []

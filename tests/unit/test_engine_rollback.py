"""Rollback: what succeeded is undone last-completed first, with the undo's arguments resolved."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.plan import ToolCall
from opsmith.engine.errors import NoRollback, UnknownStep, UnresolvedReference
from opsmith.engine.rollback import (
    broken_steps,
    held_undos,
    rollback_call,
    rollback_order,
    undo_call,
    unrecorded,
)
from opsmith.engine.scheduler import apply_result, start_step
from opsmith.engine.state import (
    RunState,
    RunStatus,
    StepStatus,
    UndoStatus,
    new_run,
    replace_step,
    succeeded_outputs,
    with_run_status,
    with_step,
    with_undo,
)
from tests.unit.test_engine_helpers import plan_of, run_of, step

S = StepStatus


def undo(tool: str, **args: object) -> ToolCall:
    return ToolCall(server="sandbox", tool=tool, args=dict(args))


PLAN = plan_of(
    step("backup", rollback=undo("delete_backup", id="${steps.backup.backup_id}")),
    step("scale_a", "backup", rollback=undo("scale", replicas="${steps.scale_a.previous}", app="a")),
    step("scale_b", "backup", rollback=undo("scale", replicas="${steps.scale_b.previous}", app="b")),
    step("check", "scale_a", "scale_b"),
    step("deploy", "check", rollback=undo("rollout_undo", note="back from ${steps.deploy.revision}")),
)


def finish(run: RunState, step_id: str, output: dict[str, object]) -> RunState:
    run = start_step(PLAN, run, step_id, at=0.0)
    return apply_result(run, step_id, ok=True, output=output, at=1.0)


def test_lifo_follows_completion_not_plan_order() -> None:
    run = with_run_status(new_run(PLAN, run_id="r"), RunStatus.RUNNING)
    run = finish(run, "backup", {"backup_id": "bk-7"})
    run = start_step(PLAN, run, "scale_a", at=1.0)
    # scale_b finishes before scale_a although the plan lists it after
    run = finish(run, "scale_b", {"previous": 2})
    run = apply_result(run, "scale_a", ok=True, output={"previous": 5}, at=3.0)
    run = finish(run, "check", {})
    run = start_step(PLAN, run, "deploy", at=4.0)
    run = apply_result(run, "deploy", ok=False, error="image pull failed", at=5.0)
    # deploy failed (nothing to undo), check has no rollback
    assert rollback_order(PLAN, run) == ["scale_a", "scale_b", "backup"]


def test_only_succeeded_steps_with_a_rollback() -> None:
    run = run_of(PLAN, backup=S.SUCCEEDED, scale_b=S.SUCCEEDED, scale_a=S.FAILED)
    assert rollback_order(PLAN, run) == ["scale_b", "backup"]
    assert rollback_order(PLAN, run_of(PLAN)) == []


def test_steps_already_undone_are_not_undone_again() -> None:
    run = run_of(PLAN, backup=S.SUCCEEDED, scale_a=S.SUCCEEDED, scale_b=S.ROLLED_BACK)
    assert rollback_order(PLAN, run) == ["scale_a", "backup"]


def test_everything_succeeded() -> None:
    run = run_of(
        PLAN,
        backup=S.SUCCEEDED,
        scale_a=S.SUCCEEDED,
        scale_b=S.SUCCEEDED,
        check=S.SUCCEEDED,
        deploy=S.SUCCEEDED,
    )
    assert rollback_order(PLAN, run) == ["deploy", "scale_b", "scale_a", "backup"]


def test_rollback_call_resolves_references() -> None:
    outputs: dict[str, dict[str, Any]] = {
        "backup": {"backup_id": "bk-7"},
        "scale_a": {"previous": 5},
        "deploy": {"revision": 12},
    }
    assert rollback_call(PLAN, "scale_a", outputs) == undo("scale", replicas=5, app="a")
    assert rollback_call(PLAN, "backup", outputs) == undo("delete_backup", id="bk-7")
    assert rollback_call(PLAN, "deploy", outputs) == undo("rollout_undo", note="back from 12")


def test_rollback_call_uses_outputs_of_undone_steps() -> None:
    run = run_of(PLAN, backup=S.ROLLED_BACK)
    outputs = {**succeeded_outputs(run), "backup": {"backup_id": "bk-1"}}
    assert rollback_call(PLAN, "backup", outputs).args == {"id": "bk-1"}


def test_rollback_call_errors() -> None:
    with pytest.raises(NoRollback, match="step check has no rollback action"):
        rollback_call(PLAN, "check", {})
    with pytest.raises(UnknownStep):
        rollback_call(PLAN, "nope", {})
    with pytest.raises(UnresolvedReference) as caught:
        rollback_call(PLAN, "scale_b", {"scale_b": {"replicas": 3}})
    assert caught.value.message == (
        "step scale_b (rollback): args.replicas refers to ${steps.scale_b.previous}, "
        "but step scale_b's output has no previous (it had: replicas)"
    )


# A deploy whose undo goes back to the revision the deploy itself replaced, and a switch whose undo
# needs nothing of its own output.
CHANGING = plan_of(
    step("push"),
    step(
        "deploy",
        "push",
        rollback=undo("rollback", to_revision="${steps.deploy.previous_revision}", app="a"),
    ).model_copy(update={"changes_target": True}),
    step("switch", "deploy", rollback=undo("switch", color="blue")).model_copy(
        update={"changes_target": True}
    ),
    step("check", "switch"),
)


def failed(run: RunState, step_id: str, output: dict[str, object] | None = None) -> RunState:
    """`step_id` failed after calling its tool, having recorded `output` (None: nothing)."""
    run = start_step(CHANGING, run, step_id, at=0.0)
    run = apply_result(run, step_id, ok=False, output=output, error="rollout failed", at=1.0)
    return with_undo(run, step_id, UndoStatus.DUE)


def started() -> RunState:
    run = with_run_status(new_run(CHANGING, run_id="r"), RunStatus.RUNNING)
    return apply_result(start_step(CHANGING, run, "push", at=0.0), "push", ok=True, output={}, at=0.5)


def test_a_failed_step_that_called_its_tool_is_broken_and_undone_first() -> None:
    run = failed(started(), "deploy", {"previous_revision": 4})
    assert broken_steps(CHANGING, run) == ["deploy"]
    untouched = apply_result(
        start_step(CHANGING, started(), "deploy", at=0.0), "deploy", ok=False, error="denied", at=1.0
    )
    assert broken_steps(CHANGING, untouched) == [], "a step that never called its tool changed nothing"
    assert broken_steps(CHANGING, untouched, touched={"deploy"}) == ["deploy"]
    done = with_undo(with_undo(run, "deploy", UndoStatus.CALLING), "deploy", UndoStatus.DONE)
    assert broken_steps(CHANGING, done) == [], "an undo that ran is not run again"


def test_the_undo_of_a_failed_step_uses_what_that_step_recorded() -> None:
    run = failed(started(), "deploy", {"previous_revision": 4, "revision": 5})
    assert unrecorded(CHANGING, run, "deploy") == []
    assert undo_call(CHANGING, run, "deploy").args == {"to_revision": 4, "app": "a"}


def test_a_failed_step_that_recorded_nothing_its_undo_needs_is_reported() -> None:
    nothing = failed(started(), "deploy")
    assert unrecorded(CHANGING, nothing, "deploy") == ["previous_revision"]
    partial = failed(started(), "deploy", {"revision": 5})
    assert unrecorded(CHANGING, partial, "deploy") == ["previous_revision"]
    with pytest.raises(UnresolvedReference, match="previous_revision"):
        undo_call(CHANGING, partial, "deploy")
    # A step that succeeded has its whole output; an undo that needs nothing of its step runs as it is.
    switch_failed = failed(run_of(CHANGING, push=S.SUCCEEDED, deploy=S.SUCCEEDED), "switch")
    assert unrecorded(CHANGING, run_of(CHANGING, deploy=S.SUCCEEDED), "deploy") == []
    assert unrecorded(CHANGING, switch_failed, "switch") == []


def test_an_undo_a_person_chose_leaves_out_what_its_step_never_recorded() -> None:
    held = with_undo(failed(started(), "deploy"), "deploy", UndoStatus.HELD)
    chosen = with_undo(held, "deploy", UndoStatus.CHOSEN)
    # The tool's default applies to the argument left out (here: one revision back).
    assert undo_call(CHANGING, chosen, "deploy").args == {"app": "a"}


def test_an_undo_that_waits_for_a_person_is_not_in_the_order() -> None:
    run = run_of(CHANGING, push=S.SUCCEEDED, deploy=S.SUCCEEDED, switch=S.SUCCEEDED)
    assert rollback_order(CHANGING, run) == ["switch", "deploy"]
    interrupted = with_undo(run, "switch", UndoStatus.CALLING)
    held = with_undo(interrupted, "switch", UndoStatus.HELD)
    assert rollback_order(CHANGING, held) == ["deploy"] and held_undos(held) == ["switch"]
    again = with_undo(interrupted, "switch", UndoStatus.DUE)
    assert rollback_order(CHANGING, again) == ["switch", "deploy"] and held_undos(again) == []


def test_the_deploy_undo_targets_the_revision_it_replaced_not_one_back() -> None:
    # The deploy changed nothing (the image was running already): the undo goes to that revision.
    unchanged = {"action": "unchanged", "revision": 7, "previous_revision": 7}
    run = run_of(CHANGING, push=S.SUCCEEDED, deploy=S.SUCCEEDED)
    run = with_step(run, replace_step(run.step("deploy"), output=unchanged))
    assert undo_call(CHANGING, run, "deploy").args == {"to_revision": 7, "app": "a"}


def test_only_an_undo_declared_idempotent_changes_the_plan_hash() -> None:
    # Plans stored before undos declared idempotence keep the hash they were approved with.
    rollback = CHANGING.step("switch").rollback
    assert rollback is not None and not rollback.idempotent
    declared = rollback.model_copy(update={"idempotent": True})
    steps = [s.model_copy(update={"rollback": declared}) if s.id == "switch" else s for s in CHANGING.steps]
    assert CHANGING.model_copy(update={"steps": steps}).content_hash() != CHANGING.content_hash()

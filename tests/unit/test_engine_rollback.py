"""Rollback: what succeeded is undone last-completed first, with the undo's arguments resolved."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.plan import ToolCall
from opsmith.engine.errors import NoRollback, UnknownStep, UnresolvedReference
from opsmith.engine.rollback import rollback_call, rollback_order
from opsmith.engine.scheduler import apply_result, start_step
from opsmith.engine.state import RunState, RunStatus, StepStatus, new_run, succeeded_outputs, with_run_status
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

"""What a run becomes after its driver died, a person's choices, and the incremental frontier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.plan import Plan, ToolCall
from opsmith.engine.errors import IllegalTransition
from opsmith.engine.recovery import Choice, Recovery, interrupted_undos, recover, resolve, undecided
from opsmith.engine.rollback import rollback_order
from opsmith.engine.scheduler import Frontier, apply_result, ready_steps, start_step
from opsmith.engine.state import RunState, RunStatus, StepStatus, UndoStatus, new_run, with_undo
from tests.unit.test_engine_helpers import NOW, plan_of, run_of, step


def idempotent_plan() -> Plan:
    plan = plan_of(step("build"), step("push", "build"), step("deploy", "push"), step("check", "deploy"))
    steps = [s.model_copy(update={"idempotent": s.id in ("push", "check")}) for s in plan.steps]
    return plan.model_copy(update={"steps": steps})


def test_an_idempotent_step_in_flight_runs_again_and_the_run_goes_on() -> None:
    plan = idempotent_plan()
    crashed = run_of(plan, build=StepStatus.SUCCEEDED, push=StepStatus.RUNNING)
    recovered = recover(plan, crashed)
    assert recovered.rerun == ["push"] and recovered.held == []
    assert recovered.state.status is RunStatus.RUNNING
    assert recovered.state.step("push").status is StepStatus.RETRY_WAIT
    assert recovered.state.step("build").status is StepStatus.SUCCEEDED


def test_a_step_in_flight_that_is_not_idempotent_holds_the_run_for_a_person() -> None:
    plan = idempotent_plan()
    crashed = run_of(plan, build=StepStatus.SUCCEEDED, push=StepStatus.SUCCEEDED, deploy=StepStatus.RUNNING)
    recovered = recover(plan, crashed)
    assert recovered.held == ["deploy"] and recovered.rerun == []
    assert recovered.state.status is RunStatus.NEEDS_ATTENTION
    assert undecided(recovered.state) == ["deploy"]


def test_a_step_waiting_to_retry_was_not_calling_and_runs_again_even_if_not_idempotent() -> None:
    plan = idempotent_plan()
    crashed = run_of(plan, build=StepStatus.RUNNING)
    crashed = apply_result(crashed, "build", ok=False, error="timeout", at=NOW, retry=True)
    recovered = recover(plan, crashed)
    assert recovered.rerun == ["build"] and recovered.state.status is RunStatus.RUNNING


@pytest.mark.parametrize(
    ("choice", "status"),
    [
        (Choice.RETRY, StepStatus.RETRY_WAIT),
        (Choice.SKIP, StepStatus.SKIPPED),
        (Choice.FAIL, StepStatus.FAILED),
    ],
)
def test_a_person_decides_an_interrupted_step(choice: Choice, status: StepStatus) -> None:
    plan = idempotent_plan()
    held = recover(plan, run_of(plan, build=StepStatus.RUNNING)).state
    decided = resolve(held, "build", choice, at=NOW)
    assert decided.step("build").status is status
    assert undecided(decided) == []


def test_only_an_interrupted_step_can_be_decided() -> None:
    plan = idempotent_plan()
    held = recover(plan, run_of(plan, build=StepStatus.RUNNING)).state
    with pytest.raises(IllegalTransition, match="steps waiting for a decision: build"):
        resolve(held, "push", Choice.SKIP, at=NOW)
    running = run_of(plan, build=StepStatus.RUNNING)
    with pytest.raises(IllegalTransition):
        resolve(running, "build", Choice.RETRY, at=NOW)  # nobody crashed: nothing to decide


def test_a_run_that_is_not_running_is_left_as_it_is() -> None:
    plan = idempotent_plan()
    paused = run_of(plan, RunStatus.PAUSED, build=StepStatus.SUCCEEDED)
    assert recover(plan, paused).state == paused


@st.composite
def dags(draw: st.DrawFn) -> Plan:
    count = draw(st.integers(min_value=1, max_value=12))
    steps = []
    for i in range(count):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        steps.append(step(f"s{i}", *[f"s{d}" for d in sorted(deps)]))
    return plan_of(*steps)


@settings(max_examples=150, deadline=None)
@given(plan=dags(), parallel=st.integers(min_value=1, max_value=4), data=st.data())
def test_the_frontier_hands_out_what_ready_steps_would(
    plan: Plan, parallel: int, data: st.DataObject
) -> None:
    # Drive a run to the end, finishing running steps in an order hypothesis picks; at every
    # point the frontier and the full scan must agree on what may start.
    state: RunState = new_run(plan, run_id="r").model_copy(update={"status": RunStatus.RUNNING})
    frontier = Frontier(plan, state)
    running: list[str] = []
    for _ in range(len(plan.steps) * 2 + 1):
        expected = ready_steps(plan, state, max_parallel=parallel)
        taken = frontier.take(parallel - len(running))
        assert taken == expected
        for step_id in taken:
            state = start_step(plan, state, step_id, at=NOW)
            running.append(step_id)
        if not running:
            break
        finished = data.draw(st.sampled_from(running))
        running.remove(finished)
        state = apply_result(state, finished, ok=True, output={}, at=NOW)
        frontier.satisfied(finished)
    assert all(s.status is StepStatus.SUCCEEDED for s in state.steps.values())


def test_conditions_report_what_was_found() -> None:
    from opsmith.domain.evidence import Condition, StepCondition
    from opsmith.engine.conditions import unmet_expectations, unmet_when

    guarded = step("deploy").model_copy(
        update={
            "when": [StepCondition(step="scan", path="counts.critical", op="==", value=0)],
            "expect": [Condition(path="ready", op=">=", value=2)],
        }
    )
    assert unmet_when(guarded, {"scan": {"counts": {"critical": 0}}}) == []
    assert unmet_when(guarded, {"scan": {"counts": {"critical": 2}}}) == [
        "scan.counts.critical == 0 (found 2)"
    ]
    assert unmet_when(guarded, {}) == ["scan.counts.critical == 0: scan did not succeed"]
    assert unmet_expectations(guarded, {"ready": 3}) == []
    assert unmet_expectations(guarded, {"ready": "3"}) == ["ready >= 2 (found '3')"]
    assert unmet_expectations(guarded, {}) == ["ready >= 2 (found absent)"]


# -- an undo in flight when the rollback's process died -----------------------------------------


def undo_plan(*, idempotent: bool) -> Plan:
    """deploy's undo is idempotent or not; scale's undo always is."""
    rollback = ToolCall(server="k8s", tool="rollback", args={"to": "${steps.deploy.previous}"})
    plan = plan_of(
        step("deploy", rollback=rollback.model_copy(update={"idempotent": idempotent})),
        step("scale", "deploy", rollback=ToolCall(server="k8s", tool="scale", idempotent=True)),
        step("check", "scale"),
    )
    steps = [s.model_copy(update={"changes_target": s.id != "check"}) for s in plan.steps]
    return plan.model_copy(update={"steps": steps})


def crashed_undoing(plan: Plan, step_id: str, **steps: StepStatus) -> RunState:
    """A run rolling back whose process died while `step_id`'s undo was calling its tool."""
    run = run_of(plan, RunStatus.ROLLING_BACK, **steps)
    return with_undo(run, step_id, UndoStatus.CALLING)


def test_an_interrupted_undo_that_is_idempotent_runs_again() -> None:
    plan = undo_plan(idempotent=True)
    crashed = crashed_undoing(plan, "deploy", deploy=StepStatus.SUCCEEDED, check=StepStatus.FAILED)
    assert interrupted_undos(crashed) == ["deploy"]
    recovered = recover(plan, crashed)
    assert recovered.rerun == ["deploy"] and recovered.held == []
    assert recovered.state.status is RunStatus.ROLLING_BACK
    assert recovered.state.step("deploy").undo is UndoStatus.DUE
    assert rollback_order(plan, recovered.state) == ["deploy"]


def test_an_interrupted_undo_that_is_not_idempotent_holds_the_run_naming_that_undo() -> None:
    plan = undo_plan(idempotent=False)
    crashed = crashed_undoing(
        plan, "deploy", deploy=StepStatus.SUCCEEDED, scale=StepStatus.ROLLED_BACK, check=StepStatus.FAILED
    )
    recovered = recover(plan, crashed)
    assert recovered.held == ["deploy"] and recovered.rerun == []
    assert recovered.state.status is RunStatus.NEEDS_ATTENTION
    assert recovered.state.step("deploy").undo is UndoStatus.HELD
    assert undecided(recovered.state) == ["deploy"]
    assert rollback_order(plan, recovered.state) == [], "it does not run again unasked"


def test_an_idempotent_undo_run_without_what_its_failed_step_never_recorded_is_held() -> None:
    plan = undo_plan(idempotent=True)
    # deploy failed with no output; a person chose to run its undo anyway, and it was interrupted.
    run = run_of(plan, RunStatus.ROLLING_BACK, deploy=StepStatus.FAILED)
    run = with_undo(with_undo(run, "deploy", UndoStatus.HELD), "deploy", UndoStatus.CHOSEN)
    recovered = recover(plan, with_undo(run, "deploy", UndoStatus.CALLING))
    assert recovered.held == ["deploy"] and recovered.state.status is RunStatus.NEEDS_ATTENTION


@pytest.mark.parametrize("choice", [Choice.RETRY, Choice.FAIL])
def test_a_person_runs_a_held_undo_again_and_the_rollback_goes_on(choice: Choice) -> None:
    plan = undo_plan(idempotent=False)
    held = recover(plan, crashed_undoing(plan, "deploy", deploy=StepStatus.SUCCEEDED)).state
    decided = resolve(held, "deploy", choice, at=NOW)
    assert decided.step("deploy").undo is UndoStatus.CHOSEN
    assert decided.step("deploy").status is StepStatus.SUCCEEDED
    assert decided.status is RunStatus.ROLLING_BACK and undecided(decided) == []
    assert rollback_order(plan, decided) == ["deploy"]


def test_a_person_counts_a_held_undo_as_done() -> None:
    plan = undo_plan(idempotent=False)
    held = recover(plan, crashed_undoing(plan, "deploy", deploy=StepStatus.SUCCEEDED)).state
    decided = resolve(held, "deploy", Choice.SKIP, at=NOW)
    assert decided.step("deploy").status is StepStatus.ROLLED_BACK
    assert decided.step("deploy").undo is UndoStatus.SKIPPED
    assert decided.status is RunStatus.ROLLING_BACK and rollback_order(plan, decided) == []
    # A failed step keeps its status: only its undo is settled.
    failed = with_undo(
        run_of(plan, RunStatus.NEEDS_ATTENTION, deploy=StepStatus.FAILED), "deploy", UndoStatus.HELD
    )
    skipped = resolve(failed, "deploy", Choice.SKIP, at=NOW)
    assert skipped.step("deploy").status is StepStatus.FAILED
    assert skipped.step("deploy").undo is UndoStatus.SKIPPED


def test_the_rollback_goes_on_only_once_no_undo_waits() -> None:
    plan = undo_plan(idempotent=False)
    run = run_of(plan, RunStatus.NEEDS_ATTENTION, deploy=StepStatus.SUCCEEDED, scale=StepStatus.SUCCEEDED)
    run = with_undo(with_undo(run, "deploy", UndoStatus.CALLING), "deploy", UndoStatus.HELD)
    run = with_undo(with_undo(run, "scale", UndoStatus.CALLING), "scale", UndoStatus.HELD)
    first = resolve(run, "scale", Choice.SKIP, at=NOW)
    assert first.status is RunStatus.NEEDS_ATTENTION and undecided(first) == ["deploy"]
    with pytest.raises(IllegalTransition, match="only a step a crash interrupted can be decided"):
        resolve(first, "scale", Choice.RETRY, at=NOW)
    assert resolve(first, "deploy", Choice.RETRY, at=NOW).status is RunStatus.ROLLING_BACK


def test_a_rollback_with_no_undo_in_flight_is_left_as_it_is() -> None:
    plan = undo_plan(idempotent=False)
    between = run_of(plan, RunStatus.ROLLING_BACK, deploy=StepStatus.SUCCEEDED, scale=StepStatus.ROLLED_BACK)
    assert recover(plan, between) == Recovery(between, [], [])

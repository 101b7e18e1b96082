"""Run and step state machines: the tables, legal and illegal moves, the state models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsmith.domain.errors import UsageError
from opsmith.engine.errors import IllegalTransition, UnknownStep
from opsmith.engine.state import (
    FINAL_RUN_STATUSES,
    FINAL_STEP_STATUSES,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    UNDO_TRANSITIONS,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    UndoStatus,
    new_run,
    succeeded_outputs,
    transition,
    with_run_status,
    with_step_status,
    with_undo,
)
from tests.unit.test_engine_helpers import plan_of, run_of, step


def test_every_status_has_a_row() -> None:
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)
    assert all(isinstance(t, RunStatus) for targets in RUN_TRANSITIONS.values() for t in targets)
    assert all(isinstance(t, StepStatus) for targets in STEP_TRANSITIONS.values() for t in targets)


def test_final_statuses() -> None:
    final_runs = {RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK, RunStatus.CANCELLED}
    final_steps = {StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.ROLLED_BACK, StepStatus.CANCELLED}
    assert final_runs == FINAL_RUN_STATUSES
    assert final_steps == FINAL_STEP_STATUSES


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (RunStatus.PENDING, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.AWAITING_VALIDATION),
        (RunStatus.AWAITING_VALIDATION, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.PAUSED),
        (RunStatus.PAUSED, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.FAILED),
        (RunStatus.FAILED, RunStatus.ROLLING_BACK),
        (RunStatus.ROLLING_BACK, RunStatus.ROLLED_BACK),
        (RunStatus.ROLLING_BACK, RunStatus.NEEDS_ATTENTION),
        (RunStatus.NEEDS_ATTENTION, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    ],
)
def test_legal_run_moves(current: RunStatus, new: RunStatus) -> None:
    assert transition(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (StepStatus.PENDING, StepStatus.READY),
        (StepStatus.READY, StepStatus.RUNNING),
        (StepStatus.RUNNING, StepStatus.RETRY_WAIT),
        (StepStatus.RETRY_WAIT, StepStatus.RUNNING),
        (StepStatus.RUNNING, StepStatus.SUCCEEDED),
        (StepStatus.SUCCEEDED, StepStatus.ROLLED_BACK),
        (StepStatus.SUCCEEDED, StepStatus.ROLLBACK_FAILED),
        (StepStatus.PENDING, StepStatus.SKIPPED),
    ],
)
def test_legal_step_moves(current: StepStatus, new: StepStatus) -> None:
    assert transition(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (RunStatus.SUCCEEDED, RunStatus.CANCELLED),
        (RunStatus.CANCELLED, RunStatus.RUNNING),
        (RunStatus.PENDING, RunStatus.SUCCEEDED),
        (RunStatus.ROLLED_BACK, RunStatus.ROLLING_BACK),
        (RunStatus.RUNNING, RunStatus.RUNNING),
        (StepStatus.PENDING, StepStatus.SUCCEEDED),
        (StepStatus.FAILED, StepStatus.RUNNING),
        (StepStatus.PENDING, StepStatus.ROLLED_BACK),
        (StepStatus.SKIPPED, StepStatus.RUNNING),
    ],
)
def test_illegal_moves_name_both_statuses(current: Any, new: Any) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(current, new)
    assert f"from {current.value} to {new.value}" in caught.value.message
    assert caught.value.hint
    assert isinstance(caught.value, UsageError)


def test_final_status_says_it_is_final() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(RunStatus.SUCCEEDED, RunStatus.RUNNING)
    assert caught.value.hint == "from succeeded a run can go to: nothing, succeeded is final"


def test_illegal_move_lists_the_allowed_ones() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(StepStatus.PENDING, StepStatus.RUNNING)
    assert caught.value.hint == "from pending a step can go to: cancelled, ready, skipped"


def test_run_and_step_statuses_do_not_mix() -> None:
    # "running" == "running" as strings; the machines must still be kept apart.
    with pytest.raises(IllegalTransition, match="separate status machines"):
        transition(RunStatus.PENDING, StepStatus.RUNNING)  # type: ignore[type-var]


def test_new_run_is_pending_with_every_step_pending() -> None:
    plan = plan_of(step("a"), step("b", "a"))
    run = new_run(plan, run_id="r")
    assert run.status == RunStatus.PENDING
    assert run.plan_id == "plan-1"
    assert run.plan_hash == plan.content_hash()
    assert run.next_seq == 0
    assert {k: (s.status, s.attempts, s.completed_seq) for k, s in run.steps.items()} == {
        "a": (StepStatus.PENDING, 0, None),
        "b": (StepStatus.PENDING, 0, None),
    }


def test_new_run_keeps_the_stored_hash() -> None:
    plan = plan_of(step("a")).model_copy(update={"hash": "sha256:stored"})
    assert new_run(plan, run_id="r").plan_hash == "sha256:stored"


def test_completed_seq_goes_with_success_only() -> None:
    StepState(step_id="a", status=StepStatus.SUCCEEDED, completed_seq=0)
    with pytest.raises(ValidationError, match="completed_seq"):
        StepState(step_id="a", status=StepStatus.SUCCEEDED)
    with pytest.raises(ValidationError, match="completed_seq"):
        StepState(step_id="a", status=StepStatus.FAILED, completed_seq=3)


def test_states_are_frozen_and_keys_match() -> None:
    state = StepState(step_id="a")
    with pytest.raises(ValidationError):
        state.attempts = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="holds the state of step"):
        RunState(run_id="r", plan_id="p", plan_hash="h", steps={"b": state})


def test_times_are_values_from_the_caller() -> None:
    from tests.unit.test_engine_helpers import NOW

    assert StepState(step_id="a", started_at=12.5).started_at == 12.5
    assert StepState(step_id="a", started_at=NOW).started_at == NOW


def test_state_round_trips_through_json() -> None:
    run = run_of(plan_of(step("a"), step("b")), a=StepStatus.SUCCEEDED)
    assert RunState.model_validate_json(run.model_dump_json()) == run


def test_unknown_step_lists_the_run_steps() -> None:
    run = run_of(plan_of(step("a"), step("b")))
    with pytest.raises(UnknownStep, match="run run-1 has no step 'c'") as caught:
        run.step("c")
    assert caught.value.hint == "its steps: a, b"


def test_status_updates_are_immutable_and_checked() -> None:
    run = run_of(plan_of(step("a")), status=RunStatus.PENDING)
    started = with_run_status(run, RunStatus.RUNNING)
    assert (run.status, started.status) == (RunStatus.PENDING, RunStatus.RUNNING)
    with pytest.raises(IllegalTransition):
        with_run_status(run, RunStatus.ROLLED_BACK)
    skipped = with_step_status(started, "a", StepStatus.SKIPPED, at=3.0, error="optional, left out")
    assert skipped.steps["a"].status == StepStatus.SKIPPED
    assert skipped.steps["a"].finished_at == 3.0
    assert run.steps["a"].status == StepStatus.PENDING


def test_succeeded_outputs_include_undone_steps() -> None:
    plan = plan_of(step("a"), step("b"), step("c"), step("d"))
    run = run_of(plan, a=StepStatus.SUCCEEDED, b=StepStatus.ROLLED_BACK, c=StepStatus.FAILED)
    assert succeeded_outputs(run) == {"a": {}, "b": {}}


def test_every_undo_status_has_a_row_and_done_and_skipped_are_final() -> None:
    assert set(UNDO_TRANSITIONS) == {None, *UndoStatus}
    assert {u for u, targets in UNDO_TRANSITIONS.items() if not targets} == {
        UndoStatus.DONE,
        UndoStatus.SKIPPED,
    }


@pytest.mark.parametrize(
    "path",
    [
        # an undo that ran
        [UndoStatus.CALLING, UndoStatus.DONE],
        # a failed step's undo: due with the failure, then called, failed, tried again
        [UndoStatus.DUE, UndoStatus.CALLING, UndoStatus.FAILED, UndoStatus.CALLING, UndoStatus.DONE],
        # interrupted by a crash and safe to repeat
        [UndoStatus.CALLING, UndoStatus.DUE, UndoStatus.CALLING, UndoStatus.DONE],
        # interrupted and not safe to repeat: a person runs it again, or counts it as done
        [UndoStatus.CALLING, UndoStatus.HELD, UndoStatus.CHOSEN, UndoStatus.CALLING, UndoStatus.DONE],
        [UndoStatus.CALLING, UndoStatus.HELD, UndoStatus.SKIPPED],
        # its step recorded nothing its undo needs
        [UndoStatus.DUE, UndoStatus.HELD, UndoStatus.CHOSEN, UndoStatus.FAILED],
    ],
)
def test_legal_undo_paths(path: list[UndoStatus]) -> None:
    run = run_of(plan_of(step("a")), RunStatus.ROLLING_BACK, a=StepStatus.FAILED)
    for undo in path:
        run = with_undo(run, "a", undo)
        assert run.step("a").undo is undo
    assert run.step("a").status is StepStatus.FAILED, "the step's own status does not move"


def test_illegal_undo_moves_name_both_ends() -> None:
    run = run_of(plan_of(step("a")), RunStatus.ROLLING_BACK, a=StepStatus.SUCCEEDED)
    with pytest.raises(IllegalTransition, match="cannot go from not asked for to chosen") as caught:
        with_undo(run, "a", UndoStatus.CHOSEN)
    assert "failed" in (caught.value.hint or "")
    done = with_undo(with_undo(run, "a", UndoStatus.CALLING), "a", UndoStatus.DONE)
    with pytest.raises(IllegalTransition, match="nothing, done is final"):
        with_undo(done, "a", UndoStatus.CALLING)


def test_the_undo_status_round_trips_through_json() -> None:
    run = with_undo(run_of(plan_of(step("a")), a=StepStatus.FAILED), "a", UndoStatus.HELD)
    again = RunState.model_validate_json(run.model_dump_json())
    assert again == run and again.step("a").undo is UndoStatus.HELD
    assert StepState.model_validate({"step_id": "b"}).undo is None, "states stored before undo existed"

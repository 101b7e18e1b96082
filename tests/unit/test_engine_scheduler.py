"""Scheduling: readiness with a parallel limit, diamonds, gates, results, and random DAGs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.plan import Plan
from opsmith.engine.errors import IllegalTransition, InvalidSetting, UnknownStep
from opsmith.engine.scheduler import apply_result, gate_after, is_finished, ready_steps, start_step
from opsmith.engine.state import RunStatus, StepStatus, new_run, with_run_status
from tests.unit.test_engine_helpers import plan_of, run_of, step

S = StepStatus

# build, then three scans in parallel, then deploy after all of them
FAN = plan_of(
    step("build"),
    step("lint", "build"),
    step("test", "build"),
    step("scan", "build"),
    step("deploy", "lint", "test", "scan"),
)
# a -> (b, c) -> d
DIAMOND = plan_of(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"))


def test_first_steps_of_a_fresh_run() -> None:
    assert ready_steps(FAN, new_run(FAN, run_id="r"), max_parallel=4) == ["build"]


def test_parallel_steps_in_plan_order_up_to_the_limit() -> None:
    run = run_of(FAN, build=S.SUCCEEDED)
    assert ready_steps(FAN, run, max_parallel=4) == ["lint", "test", "scan"]
    assert ready_steps(FAN, run, max_parallel=2) == ["lint", "test"]
    assert ready_steps(FAN, run, max_parallel=1) == ["lint"]


def test_running_and_retrying_steps_take_slots() -> None:
    run = run_of(FAN, build=S.SUCCEEDED, lint=S.RUNNING)
    assert ready_steps(FAN, run, max_parallel=2) == ["test"]
    run = run_of(FAN, build=S.SUCCEEDED, lint=S.RUNNING, test=S.RETRY_WAIT)
    assert ready_steps(FAN, run, max_parallel=2) == []
    assert ready_steps(FAN, run, max_parallel=3) == ["scan"]


def test_started_steps_are_not_ready_again() -> None:
    run = run_of(FAN, build=S.SUCCEEDED, lint=S.SUCCEEDED, test=S.FAILED, scan=S.RUNNING)
    assert ready_steps(FAN, run, max_parallel=10) == []


def test_diamond_waits_for_both_branches() -> None:
    assert ready_steps(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED), max_parallel=5) == ["b", "c"]
    assert ready_steps(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED, b=S.SUCCEEDED), max_parallel=5) == ["c"]
    one_running = run_of(DIAMOND, a=S.SUCCEEDED, b=S.SUCCEEDED, c=S.RUNNING)
    assert ready_steps(DIAMOND, one_running, max_parallel=5) == []
    both = run_of(DIAMOND, a=S.SUCCEEDED, b=S.SUCCEEDED, c=S.SUCCEEDED)
    assert ready_steps(DIAMOND, both, max_parallel=5) == ["d"]


def test_skipped_dependency_counts_as_done_and_failed_one_blocks() -> None:
    skipped = run_of(DIAMOND, a=S.SUCCEEDED, b=S.SKIPPED, c=S.SUCCEEDED)
    assert ready_steps(DIAMOND, skipped, max_parallel=5) == ["d"]
    failed = run_of(DIAMOND, a=S.SUCCEEDED, b=S.FAILED, c=S.SUCCEEDED)
    assert ready_steps(DIAMOND, failed, max_parallel=5) == []


def test_plan_order_not_dependency_order_decides_ties() -> None:
    plan = plan_of(step("z"), step("y"), step("x", "z"))
    assert ready_steps(plan, run_of(plan, z=S.SUCCEEDED), max_parallel=5) == ["y", "x"]


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.PAUSED,
        RunStatus.AWAITING_VALIDATION,
        RunStatus.FAILED,
        RunStatus.ROLLING_BACK,
        RunStatus.NEEDS_ATTENTION,
        RunStatus.CANCELLED,
        RunStatus.SUCCEEDED,
    ],
)
def test_nothing_new_starts_unless_the_run_is_going(status: RunStatus) -> None:
    assert ready_steps(FAN, run_of(FAN, status, build=S.SUCCEEDED), max_parallel=4) == []


def test_pending_run_may_schedule_its_first_steps() -> None:
    assert ready_steps(FAN, run_of(FAN, RunStatus.PENDING), max_parallel=4) == ["build"]


@pytest.mark.parametrize("limit", [0, -1])
def test_parallel_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(InvalidSetting, match=f"max_parallel must be at least 1, got {limit}"):
        ready_steps(FAN, run_of(FAN), max_parallel=limit)


def test_gate_after_validation_steps() -> None:
    plan = plan_of(step("deploy_canary", requires_validation=True), step("promote", "deploy_canary"))
    assert gate_after(plan, "deploy_canary") is True
    assert gate_after(plan, "promote") is False
    with pytest.raises(UnknownStep, match="plan plan-1 has no step 'nope'") as caught:
        gate_after(plan, "nope")
    assert caught.value.hint == "its steps: deploy_canary, promote"


def test_gate_stops_scheduling_until_validated() -> None:
    plan = plan_of(step("canary", requires_validation=True), step("promote", "canary"))
    run = start_step(plan, run_of(plan), "canary", at=1.0)
    run = apply_result(run, "canary", ok=True, output={"healthy": True}, at=2.0)
    assert gate_after(plan, "canary")
    waiting = with_run_status(run, RunStatus.AWAITING_VALIDATION)
    assert ready_steps(plan, waiting, max_parallel=2) == []
    resumed = with_run_status(waiting, RunStatus.RUNNING)
    assert ready_steps(plan, resumed, max_parallel=2) == ["promote"]


def test_start_then_results_update_a_copy() -> None:
    run = run_of(DIAMOND)
    started = start_step(DIAMOND, run, "a", at=10.0)
    assert run.steps["a"].status == S.PENDING
    a = started.steps["a"]
    assert (a.status, a.attempts, a.started_at) == (S.RUNNING, 1, 10.0)
    done = apply_result(started, "a", ok=True, output={"image": "app:1"}, error=None, at=12.0)
    a = done.steps["a"]
    assert (a.status, a.output, a.finished_at, a.completed_seq) == (S.SUCCEEDED, {"image": "app:1"}, 12.0, 0)
    assert done.next_seq == 1
    assert started.steps["a"].status == S.RUNNING


def test_completion_numbers_follow_completion_not_plan_order() -> None:
    run = run_of(DIAMOND, a=S.SUCCEEDED)
    run = start_step(DIAMOND, run, "b", at=1.0)
    run = start_step(DIAMOND, run, "c", at=1.0)
    run = apply_result(run, "c", ok=True, output={}, at=2.0)
    run = apply_result(run, "b", ok=True, output={}, at=3.0)
    assert [run.steps[s].completed_seq for s in "abc"] == [0, 2, 1]
    assert run.next_seq == 3


def test_failure_and_retry() -> None:
    run = start_step(DIAMOND, run_of(DIAMOND), "a", at=1.0)
    waiting = apply_result(run, "a", ok=False, error="server down", at=2.0, retry=True)
    a = waiting.steps["a"]
    assert (a.status, a.error, a.completed_seq) == (S.RETRY_WAIT, "server down", None)
    assert waiting.next_seq == 0
    again = start_step(DIAMOND, waiting, "a", at=5.0)
    assert (again.steps["a"].status, again.steps["a"].attempts, again.steps["a"].error) == (
        S.RUNNING,
        2,
        None,
    )
    failed = apply_result(again, "a", ok=False, error="still down", at=6.0)
    assert (failed.steps["a"].status, failed.steps["a"].error) == (S.FAILED, "still down")
    assert is_finished(DIAMOND, failed)


def test_results_only_for_running_steps() -> None:
    with pytest.raises(IllegalTransition, match="from pending to succeeded"):
        apply_result(run_of(DIAMOND), "a", ok=True, output={}, at=1.0)
    with pytest.raises(IllegalTransition, match="from succeeded to running"):
        start_step(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED), "a", at=1.0)


def test_a_step_cannot_start_before_its_dependencies() -> None:
    with pytest.raises(
        IllegalTransition, match=r"step d cannot start: it waits for b \(running\), c \(pending\)"
    ):
        start_step(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED, b=S.RUNNING), "d", at=1.0)


def test_is_finished() -> None:
    assert not is_finished(DIAMOND, run_of(DIAMOND))
    assert not is_finished(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED, b=S.SUCCEEDED, c=S.RUNNING))
    assert not is_finished(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED, b=S.FAILED, c=S.RETRY_WAIT))
    # b failed: d can never start, and nothing else is left
    assert is_finished(DIAMOND, run_of(DIAMOND, a=S.SUCCEEDED, b=S.FAILED, c=S.SUCCEEDED))
    # failed at the root: everything behind it is held back
    assert is_finished(DIAMOND, run_of(DIAMOND, a=S.FAILED))
    everything = run_of(DIAMOND, a=S.SUCCEEDED, b=S.SUCCEEDED, c=S.SUCCEEDED, d=S.SUCCEEDED)
    assert is_finished(DIAMOND, everything)
    # a paused run with steps left is not finished
    assert not is_finished(DIAMOND, run_of(DIAMOND, RunStatus.PAUSED, a=S.SUCCEEDED))


def test_unknown_dependency_is_reported() -> None:
    plan = plan_of(step("a", "ghost"))
    with pytest.raises(UnknownStep, match="no step 'ghost'"):
        ready_steps(plan, new_run(plan, run_id="r"), max_parallel=1)


# --- random DAGs ------------------------------------------------------------------------------


@st.composite
def dag_plans(draw: st.DrawFn) -> Plan:
    """Step i may depend on any earlier step; the plan lists the steps in a shuffled order."""
    size = draw(st.integers(min_value=1, max_value=12))
    steps = []
    for i in range(size):
        deps = draw(st.lists(st.integers(min_value=0, max_value=max(i - 1, 0)), max_size=3, unique=True))
        steps.append(step(f"s{i}", *(f"s{d}" for d in deps if d < i)))
    return plan_of(*draw(st.permutations(steps)))


@settings(max_examples=300, deadline=None)
@given(plan=dag_plans(), max_parallel=st.integers(min_value=1, max_value=4), data=st.data())
def test_random_dags_run_every_step_once_after_its_dependencies(
    plan: Plan, max_parallel: int, data: st.DataObject
) -> None:
    run = with_run_status(new_run(plan, run_id="r"), RunStatus.RUNNING)
    deps = {s.id: set(s.depends_on) for s in plan.steps}
    started: list[str] = []
    done: set[str] = set()
    running: list[str] = []
    clock = 0.0
    while not is_finished(plan, run):
        for step_id in ready_steps(plan, run, max_parallel=max_parallel):
            assert deps[step_id] <= done, f"{step_id} ready before {deps[step_id] - done}"
            run = start_step(plan, run, step_id, at=clock)
            started.append(step_id)
            running.append(step_id)
        assert 0 < len(running) <= max_parallel
        finishing = running.pop(data.draw(st.integers(min_value=0, max_value=len(running) - 1)))
        clock += 1
        run = apply_result(run, finishing, ok=True, output={"n": clock}, at=clock)
        done.add(finishing)
    assert sorted(started) == sorted(s.id for s in plan.steps)
    assert len(started) == len(set(started))
    assert all(state.status == S.SUCCEEDED and state.attempts == 1 for state in run.steps.values())
    assert sorted(state.completed_seq or 0 for state in run.steps.values()) == list(range(len(plan.steps)))
    assert ready_steps(plan, run, max_parallel=max_parallel) == []
    for s in plan.steps:
        seq = run.steps[s.id].completed_seq
        assert seq is not None
        assert all(seq > (run.steps[d].completed_seq or 0) for d in s.depends_on)


@settings(max_examples=200, deadline=None)
@given(plan=dag_plans(), max_parallel=st.integers(min_value=1, max_value=4), data=st.data())
def test_random_dags_with_failures_stop_behind_them(
    plan: Plan, max_parallel: int, data: st.DataObject
) -> None:
    run = with_run_status(new_run(plan, run_id="r"), RunStatus.RUNNING)
    deps = {s.id: set(s.depends_on) for s in plan.steps}
    running: list[str] = []
    for _ in range(len(plan.steps) + 1):
        if is_finished(plan, run):
            break
        for step_id in ready_steps(plan, run, max_parallel=max_parallel):
            run = start_step(plan, run, step_id, at=0.0)
            running.append(step_id)
        finishing = running.pop(data.draw(st.integers(min_value=0, max_value=len(running) - 1)))
        run = apply_result(run, finishing, ok=data.draw(st.booleans()), output={}, error="boom", at=1.0)
    assert is_finished(plan, run), "a run of n steps finishes within n completions"
    status = {k: v.status for k, v in run.steps.items()}
    for step_id, step_status in status.items():
        if step_status == S.PENDING:
            # held back: something it needs failed or is itself held back
            assert any(status[d] != S.SUCCEEDED for d in deps[step_id])
        else:
            assert step_status in (S.SUCCEEDED, S.FAILED)
            assert all(status[d] == S.SUCCEEDED for d in deps[step_id])

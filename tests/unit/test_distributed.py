"""The driver's side of `executor: celery` over fakes: a test plays the workers (claim, finish, or
fall silent) and checks that the engine's rules hold when its calls are made elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.config import CeleryConfig, parse_config
from opsmith.distributed.broker import masked
from opsmith.distributed.dispatch import DistributedExecutors
from opsmith.distributed.outcome import of_result
from opsmith.domain.evidence import Condition
from opsmith.domain.identity import DEFAULT_ROLES, Identity
from opsmith.domain.plan import Plan
from opsmith.domain.results import ToolResult
from opsmith.domain.step_calls import CallStatus, StepCall
from opsmith.engine.events import EventType
from opsmith.engine.retry import RetryPolicy
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import RunState, RunStatus, StepStatus, new_run
from opsmith.errors import ConfigError
from tests.fakes import FakeAudit, FakeBroker, FakeClock, FakeJournal, FakePlans, FakeStepCalls, FakeTools
from tests.unit.test_engine_helpers import plan_of, step

ADMIN = Identity(user="ada", role="admin", source="test")
CELERY = CeleryConfig(
    broker_url="redis://127.0.0.1:6379/0",
    heartbeat_seconds=0.02,
    lost_after_seconds=0.2,
    resend_after_seconds=0.1,
)
WAIT = 10.0

Worker = Callable[[StepCall], bool]  # True: it took the call (claimed and finished it)


def answer(call: StepCall) -> dict[str, Any]:
    return of_result(ToolResult(server=call.server, tool=call.tool, structured={"status": "ok"}))


class Workers:
    """Plays the workers: each key sent is handed to `behave` until it takes it."""

    def __init__(self, calls: FakeStepCalls, broker: FakeBroker, behave: Worker) -> None:
        self._calls, self._broker, self._behave = calls, broker, behave
        self._seen = 0

    async def serve(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            for key in self._broker.sent[self._seen :]:
                self._seen += 1
                call = self._calls.get(key)
                if call is not None and call.status is CallStatus.QUEUED:
                    self._behave(call)


def made(calls: FakeStepCalls, name: str = "w1") -> Worker:
    def behave(call: StepCall) -> bool:
        if calls.claim(call.key, name, _now()) is None:
            return False
        return calls.finish(call.key, name, answer(call), _now())

    return behave


async def drive(
    plan: Plan, behave: Callable[[FakeStepCalls], Worker], timeout: float = 60.0
) -> tuple[RunState, FakeStepCalls, FakeBroker, FakeJournal]:
    calls, broker = FakeStepCalls(), FakeBroker()
    journal = FakeJournal(FakePlans(), FakeAudit(FakeClock()))
    settings = ExecutionSettings(
        step_timeout=timeout, retry=RetryPolicy(attempts=3, initial_delay=0, max_delay=0)
    )
    executor = DistributedExecutors(calls, broker, CELERY)(
        plan,
        tools=FakeTools(specs=[]),
        runs=journal,
        identity=ADMIN,
        permission=DEFAULT_ROLES["admin"],
        settings=settings,
    )
    workers = asyncio.create_task(Workers(calls, broker, behave(calls)).serve())
    try:
        async with asyncio.timeout(WAIT):
            state = await executor.execute(new_run(plan, run_id="run-1"))
    finally:
        workers.cancel()
    return state, calls, broker, journal


def idempotent(step_id: str, *deps: str) -> Any:
    return step(step_id, *deps).model_copy(update={"idempotent": True})


@pytest.mark.anyio
async def test_every_step_is_made_by_the_worker_that_claims_it() -> None:
    plan = plan_of(step("a"), step("b", "a"), step("c", "a"))
    state, calls, broker, _ = await drive(plan, made)
    assert state.status is RunStatus.SUCCEEDED
    assert sorted(broker.sent) == sorted(calls.rows) and len(broker.sent) == 3, "each asked for once"
    assert {(c.step_id, c.attempt, c.status, c.worker) for c in calls.rows.values()} == {
        (s, 1, CallStatus.DONE, "w1") for s in "abc"
    }


@pytest.mark.anyio
async def test_a_request_nobody_took_is_asked_for_again() -> None:
    def behave(calls: FakeStepCalls) -> Worker:
        dropped: set[str] = set()

        def lost_once(call: StepCall) -> bool:
            if call.key not in dropped:  # as a message lost with a broker restart
                dropped.add(call.key)
                return False
            return made(calls)(call)

        return lost_once

    state, calls, broker, _ = await drive(plan_of(step("a")), behave)
    assert state.status is RunStatus.SUCCEEDED
    (key,) = calls.rows
    assert broker.sent == [key, key]


@pytest.mark.anyio
async def test_a_worker_gone_silent_gets_an_idempotent_step_retried() -> None:
    def behave(calls: FakeStepCalls) -> Worker:
        def first_dies(call: StepCall) -> bool:
            if call.attempt == 1:
                return calls.claim(call.key, "dies", _now()) is not None  # and never beats again
            return made(calls, "w2")(call)

        return first_dies

    state, calls, _, _ = await drive(plan_of(idempotent("a")), behave)
    assert state.status is RunStatus.SUCCEEDED
    assert state.step("a").attempts == 2
    outcomes = sorted((c.attempt, c.worker, (c.outcome or {}).get("kind")) for c in calls.rows.values())
    assert outcomes == [(1, "dies", "lost"), (2, "w2", None)]


@pytest.mark.anyio
async def test_a_worker_gone_silent_holds_a_step_that_is_not_idempotent_for_a_person() -> None:
    def behave(calls: FakeStepCalls) -> Worker:
        return lambda call: calls.claim(call.key, "dies", _now()) is not None

    state, calls, _, journal = await drive(plan_of(step("a"), step("b", "a")), behave)
    assert state.status is RunStatus.NEEDS_ATTENTION
    assert state.step("a").status is StepStatus.RUNNING, "as recovery leaves a step a crash interrupted"
    assert state.step("b").status is StepStatus.PENDING
    kinds = [e.type for e in journal.event_log["run-1"]]
    assert EventType.STEP_INTERRUPTED in kinds and kinds[-1] is EventType.RUN_ATTENTION
    assert len(calls.rows) == 1
    assert journal.leases["run-1"].owner is None, "the lease is let go"


@pytest.mark.anyio
async def test_a_call_its_driver_stopped_waiting_for_is_never_made() -> None:
    def behave(calls: FakeStepCalls) -> Worker:
        return lambda call: False  # no worker takes anything

    state, calls, _, _ = await drive(plan_of(step("a")), behave, timeout=0.05)
    assert state.status is RunStatus.FAILED
    (row,) = calls.rows.values()
    assert row.status is CallStatus.DONE and "stopped waiting" in str((row.outcome or {})["message"])
    assert calls.claim(row.key, "late", _now()) is None, "a message delivered now does nothing"


@pytest.mark.anyio
async def test_two_steps_calling_one_tool_with_equal_arguments_each_label_their_own_calls() -> None:
    # x asks until its check holds; y, the same call, is made while x waits to ask again. Told
    # apart only by the engine's state and the arguments, y's call was taken for x's second one.
    def same(step_id: str, *deps: str) -> Any:
        return step(step_id, *deps, args={"service": "web"}).model_copy(update={"tool": "check"})

    x = same("x").model_copy(
        update={"expect": [Condition(path="status", op="==", value="ok")], "settle": 2.0}
    )
    plan = plan_of(x, step("w"), same("y", "w"))

    def behave(calls: FakeStepCalls) -> Worker:
        checks: list[str] = []

        def worker(call: StepCall) -> bool:
            if call.tool == "do_w" and not checks:
                return False  # asked again after resend_after_seconds: y starts once x waits
            if calls.claim(call.key, "w1", _now()) is None:
                return False
            status = "starting" if call.tool == "check" and not checks else "ok"
            if call.tool == "check":
                checks.append(call.key)
            outcome = of_result(ToolResult(server=call.server, tool=call.tool, structured={"status": status}))
            return calls.finish(call.key, "w1", outcome, _now())

        return worker

    state, calls, _, _ = await drive(plan, behave)
    assert state.status is RunStatus.SUCCEEDED
    labels = sorted((c.step_id, c.attempt) for c in calls.rows.values() if c.tool == "check")
    assert labels == [("x", 1), ("x", 1), ("y", 1)], "x asked twice, y once"


def test_executor_celery_needs_a_broker() -> None:
    with pytest.raises(ConfigError, match=r"celery\.broker_url"):
        parse_config("executor: celery\n", source="opsmith.yaml (test)")
    assert parse_config("{}", source="opsmith.yaml (test)").executor == "local"


_PASSWORD = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=4, max_size=30)


@given(password=_PASSWORD, user=st.sampled_from(["", "default", "ops"]), port=st.integers(1, 65535))
def test_a_broker_password_is_never_shown(password: str, user: str, port: int) -> None:
    url = f"redis://{user}:{password}@redis.internal:{port}/0"
    shown = masked(url)
    assert password not in shown.replace("redis.internal", "")
    assert shown == f"redis://{user}:***@redis.internal:{port}/0"


def _now() -> datetime:
    return datetime.now(UTC)


def test_ready_needs_the_broker_and_a_live_worker() -> None:
    from dataclasses import replace

    from opsmith.domain.step_calls import WorkerInfo
    from opsmith.services.workers import distribution, live_workers
    from tests.fakes import fake_app

    world = fake_app("{}", FakeTools(specs=[]))
    assert distribution(world.app) is None, "the local executor has no broker nor workers to report"
    calls, broker = FakeStepCalls(), FakeBroker()
    app = replace(world.app, step_calls=calls, broker=broker)
    found = distribution(app)
    assert found is not None and found.broker_up and not found.ready, "no worker is live"
    now = world.clock.now()
    calls.register_worker(WorkerInfo("w1", "host", 1, 8, now, now))
    calls.register_worker(WorkerInfo("old", "host", 2, 8, now, now - timedelta(seconds=60)))
    assert [w.name for w in live_workers(app)] == ["w1"], "one silent past lost_after_seconds is not live"
    found = distribution(app)
    assert found is not None and found.ready and found.broker == broker.where
    broker.up = False
    found = distribution(app)
    assert found is not None and not found.ready

"""The local executor against a real SQLite store and an in-memory tool provider: timeouts, durable
retries, pause and resume, cancel with rollback, the lease, and events committed with the state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import ServerUnavailableError
from opsmith.domain.evidence import Condition
from opsmith.domain.identity import DEFAULT_ROLES, Identity
from opsmith.domain.plan import Plan, ToolCall
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import ServerStatus
from opsmith.engine.local import CANCEL_AND_ROLLBACK, PAUSE, LocalExecutor
from opsmith.engine.retry import RetryPolicy
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import RunStatus, StepStatus, new_run
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database
from opsmith.store.runs import LeaseLost, RunRepository
from tests.unit.test_engine_helpers import plan_of, step

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ADMIN = Identity(user="ana", role="admin", source="config")
Behaviour = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Tools:
    """Tools by name; every call is recorded in order."""

    def __init__(self, behaviours: dict[str, Behaviour] | None = None) -> None:
        self.behaviours = behaviours or {}
        self.calls: list[str] = []

    @property
    def catalog(self) -> Catalog:
        return Catalog()

    def statuses(self) -> list[ServerStatus]:
        return []

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Any = None,
    ) -> ToolResult:
        self.calls.append(tool)
        behaviour = self.behaviours.get(tool)
        if behaviour is not None and progress is not None:
            arguments = {**arguments, "__progress__": progress}  # for a behaviour that fans out
        output = await behaviour(arguments) if behaviour else {"ok": True, "tool": tool}
        return ToolResult(server=server, tool=tool, structured=output)


@pytest.fixture
def database(database_url: str) -> Database:
    """The engine over the real run store, on SQLite and on PostgreSQL."""
    db = Database(database_url)
    db.migrate()
    return db


def executor(
    plan: Plan, tools: Tools, database: Database, *, owner: str | None = None, **settings: Any
) -> LocalExecutor:
    return LocalExecutor(
        plan,
        tools=tools,
        runs=RunRepository(database),
        identity=ADMIN,
        permission=DEFAULT_ROLES["admin"],
        settings=ExecutionSettings(
            **{"retry": RetryPolicy(attempts=3, initial_delay=0, max_delay=0), **settings}
        ),
        owner=owner,
    )


def idempotent(plan: Plan, *ids: str) -> Plan:
    steps = [s.model_copy(update={"idempotent": s.id in ids}) for s in plan.steps]
    return plan.model_copy(update={"steps": steps})


async def slow(_: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(5)
    return {"ok": True}


async def test_a_call_that_outlives_the_step_timeout_fails_and_is_not_repeated(database: Database) -> None:
    plan = plan_of(step("deploy"), step("check", "deploy"))
    tools = Tools({"do_deploy": slow})
    final = await executor(plan, tools, database, step_timeout=0.2).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.FAILED
    assert "did not answer within 0.2s" in (final.step("deploy").error or "")
    assert tools.calls == ["do_deploy"], "a timed-out call may have done its work: not repeated"
    assert final.step("check").status is StepStatus.PENDING


async def test_an_idempotent_step_that_times_out_is_tried_again(database: Database) -> None:
    plan = idempotent(plan_of(step("check")), "check")
    tools = Tools({"do_check": slow})
    final = await executor(plan, tools, database, step_timeout=0.1).execute(new_run(plan, run_id="r1"))
    assert tools.calls == ["do_check"] * 3
    assert final.step("check").attempts == 3 and final.status is RunStatus.FAILED


async def test_a_retry_is_committed_attempt_by_attempt(database: Database) -> None:
    failures = iter([True, False])

    async def flaky(_: dict[str, Any]) -> dict[str, Any]:
        if next(failures):
            raise ServerUnavailableError("registry is restarting")
        return {"ok": True}

    plan = plan_of(step("push"))
    final = await executor(plan, Tools({"do_push": flaky}), database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.SUCCEEDED and final.step("push").attempts == 2
    runs = RunRepository(database)
    kinds = [e.type.value for e in runs.events("r1")]
    assert kinds.count("step.started") == 2 and "step.retrying" in kinds
    calls = [e for e in AuditLog(database).entries(subject="r1") if e.action == "tool.called"]
    assert [c.details["ok"] for c in calls] == [False, True]


async def test_events_are_numbered_without_gaps_and_match_the_state(database: Database) -> None:
    plan = plan_of(step("a"), step("b"), step("c", "a", "b"), step("d", "c"))
    final = await executor(plan, Tools(), database).execute(new_run(plan, run_id="r1"))
    events = RunRepository(database).events("r1")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    succeeded = sorted(e.step_id or "" for e in events if e.type.value == "step.succeeded")
    assert succeeded == sorted(k for k, s in final.steps.items() if s.status is StepStatus.SUCCEEDED)
    assert RunRepository(database).get("r1") == final


async def test_a_pause_lets_in_flight_steps_finish_and_a_resume_goes_on(database: Database) -> None:
    plan = plan_of(step("a"), step("b", "a"), step("c", "b"))
    first: LocalExecutor

    async def pause_while_running(_: dict[str, Any]) -> dict[str, Any]:
        first.request(PAUSE)
        return {"ok": True}

    tools = Tools({"do_a": pause_while_running})
    first = executor(plan, tools, database)
    paused = await first.execute(new_run(plan, run_id="r1"))
    assert paused.status is RunStatus.PAUSED
    assert paused.step("a").status is StepStatus.SUCCEEDED and paused.step("b").status is StepStatus.PENDING

    second = executor(plan, tools, database)
    assert RunRepository(database).claim("r1", second.owner)
    done = await second.execute(RunRepository(database).get("r1"))
    assert done.status is RunStatus.SUCCEEDED
    assert tools.calls == ["do_a", "do_b", "do_c"], "a finished step is not run again"


async def test_cancel_with_rollback_undoes_what_completed_newest_first(database: Database) -> None:
    undo = ToolCall(server="sandbox", tool="undo", args={})
    plan = plan_of(
        step("a", rollback=undo.model_copy(update={"args": {"of": "a"}})),
        step("b", "a", rollback=undo.model_copy(update={"args": {"of": "b"}})),
        step("c", "b", rollback=undo.model_copy(update={"args": {"of": "c"}})),
    )
    undone: list[str] = []
    runner: LocalExecutor

    async def cancel_now(_: dict[str, Any]) -> dict[str, Any]:
        runner.request(CANCEL_AND_ROLLBACK)
        return {"ok": True}

    async def record(args: dict[str, Any]) -> dict[str, Any]:
        undone.append(args["of"])
        return {"ok": True}

    runner = executor(plan, Tools({"do_b": cancel_now, "undo": record}), database)
    final = await runner.execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.ROLLED_BACK
    assert undone == ["b", "a"]
    assert final.step("c").status is StepStatus.CANCELLED


async def test_a_process_whose_lease_was_taken_over_cannot_write(database: Database) -> None:
    plan = plan_of(step("a"), step("b", "a"))
    gate = asyncio.Event()

    async def wait(_: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        return {"ok": True}

    slow_driver = executor(plan, Tools({"do_a": wait}), database, lease_seconds=1)
    task = asyncio.create_task(slow_driver.run(new_run(plan, run_id="r1")))
    await asyncio.sleep(0.05)
    runs = RunRepository(database)
    assert not runs.claim("r1", "someone-else", seconds=30), "the lease is still valid"
    await asyncio.sleep(1.1)  # no heartbeat in run(): the lease runs out
    assert runs.claim("r1", "someone-else", seconds=30)
    gate.set()
    with pytest.raises(LeaseLost):
        await task


async def test_a_step_whose_output_breaks_its_expectation_fails_and_its_change_is_undone(
    database: Database,
) -> None:
    from opsmith.domain.evidence import Condition

    undo = ToolCall(server="sandbox", tool="undo", args={})
    monitor = step("monitor", "canary").model_copy(
        update={"expect": [Condition(path="health", op="==", value="healthy")]}
    )
    plan = plan_of(step("canary", rollback=undo), monitor, step("promote", "monitor"))

    async def unhealthy(_: dict[str, Any]) -> dict[str, Any]:
        return {"health": "unhealthy", "errors": 3}

    tools = Tools({"do_monitor": unhealthy})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.ROLLED_BACK
    assert final.step("monitor").error == "expected health == 'healthy' (found 'unhealthy')"
    assert final.step("promote").status is StepStatus.PENDING
    assert tools.calls == ["do_canary", "do_monitor", "undo"]


async def test_a_step_whose_when_condition_does_not_hold_is_skipped_and_the_run_goes_on(
    database: Database,
) -> None:
    from opsmith.domain.evidence import StepCondition

    notify = step("notify", "check").model_copy(
        update={"when": [StepCondition(step="check", path="changed", op="truthy")]}
    )
    plan = plan_of(step("check"), notify, step("report", "notify"))

    async def nothing_changed(_: dict[str, Any]) -> dict[str, Any]:
        return {"changed": False}

    tools = Tools({"do_check": nothing_changed})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.SUCCEEDED
    assert final.step("notify").status is StepStatus.SKIPPED
    assert "check.changed truthy (found False)" in (final.step("notify").error or "")
    assert tools.calls == ["do_check", "do_report"]
    assert "step.skipped" in [e.type.value for e in RunRepository(database).events("r1")]


def settling(plan: Plan, step_id: str, seconds: float) -> Plan:
    """The step checks `ready == True` and may take `seconds` to come true."""
    condition = Condition.model_validate({"path": "ready", "op": "==", "value": True})
    steps = [
        s.model_copy(update={"expect": [condition], "settle": seconds}) if s.id == step_id else s
        for s in plan.steps
    ]
    return plan.model_copy(update={"steps": steps})


async def test_a_settling_check_is_asked_again_until_it_holds(database: Database) -> None:
    answers = iter([False, False, True])

    async def pods(_: dict[str, Any]) -> dict[str, Any]:
        return {"ready": next(answers)}

    plan = settling(plan_of(step("deploy"), step("verify", "deploy")), "verify", 4.0)
    tools = Tools({"do_verify": pods})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.SUCCEEDED
    assert tools.calls == ["do_deploy", "do_verify", "do_verify", "do_verify"]
    assert final.step("verify").attempts == 1, "polling a check is one attempt, not retries"


async def test_a_check_that_never_holds_fails_when_its_time_is_up_and_the_run_rolls_back(
    database: Database,
) -> None:
    async def never(_: dict[str, Any]) -> dict[str, Any]:
        return {"ready": False}

    undo = ToolCall(server="sandbox", tool="undo_deploy", args={}, idempotent=True)
    plan = settling(plan_of(step("deploy", rollback=undo), step("verify", "deploy")), "verify", 2.0)
    tools = Tools({"do_verify": never})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.ROLLED_BACK
    assert "expected ready == True" in (final.step("verify").error or "")
    # Asked again while time was left (how often is settle_pause's, tested on its own), then given up.
    assert tools.calls.count("do_verify") >= 2 and tools.calls[-1] == "undo_deploy"


async def test_a_call_that_fans_out_commits_throttled_progress_and_always_its_last_count(
    database: Database,
) -> None:
    async def restart_everywhere(arguments: dict[str, Any]) -> dict[str, Any]:
        report = arguments["__progress__"]
        hosts = [f"web{n:02d}" for n in range(1, 41)]
        for done, host in enumerate(hosts, start=1):
            report({"total": 40, "completed": done, "failed": done // 10, "pending": 40 - done, "host": host})
            await asyncio.sleep(0.01)  # 40 hosts over about 0.4 s: a few events, not 40
        return {"ok": True}

    plan = plan_of(step("restart"))
    final = await executor(plan, Tools({"do_restart": restart_everywhere}), database).execute(
        new_run(plan, run_id="r1")
    )
    assert final.status is RunStatus.SUCCEEDED
    progress = [e for e in RunRepository(database).events("r1") if e.type.value == "step.progress"]
    assert 2 <= len(progress) < 40, len(progress)
    assert all(e.step_id == "restart" for e in progress)
    assert progress[0].data["completed"] == 1  # the first is never held back
    assert progress[-1].data == {"total": 40, "completed": 40, "failed": 4, "pending": 0, "host": "web40"}
    assert progress[-1].message == "40/40 hosts done, 4 failed (last: web40)"
    counts = [e.data["completed"] for e in progress]
    assert counts == sorted(counts)


def for_environment(plan: Plan, environment: str) -> Plan:
    return plan.model_copy(update={"intent": plan.intent.model_copy(update={"environment": environment})})


async def test_a_step_that_names_a_more_guarded_environment_than_its_plan_is_denied(
    database: Database,
) -> None:
    """A plan judged and allowed for staging cannot act in production through a step's arguments,
    also when the environment arrives through another step's output."""

    async def points_at_production(_: dict[str, Any]) -> dict[str, Any]:
        return {"namespace": "production"}

    plan = for_environment(
        plan_of(
            step("scale", args={"namespace": "staging"}),
            step("find", "scale"),
            step("wipe", "find", args={"namespace": "${steps.find.namespace}"}),
        ),
        "staging",
    )
    tools = Tools({"do_find": points_at_production})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is not RunStatus.SUCCEEDED
    assert tools.calls == ["do_scale", "do_find"]  # the wipe was never sent
    assert "names production, and the plan was made for staging" in (final.step("wipe").error or "")
    assert "step.denied" in [e.type.value for e in RunRepository(database).events("r1")]


async def test_a_production_plan_may_validate_in_staging_first(database: Database) -> None:
    plan = for_environment(
        plan_of(step("staging_check", args={"namespace": "staging"}), step("deploy", "staging_check")),
        "production",
    )
    tools = Tools()
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.SUCCEEDED and tools.calls == ["do_staging_check", "do_deploy"]

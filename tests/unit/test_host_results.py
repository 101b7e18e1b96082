"""Per-host results of a fleet step that survive the process driving it: recorded with the step's
state in the throttled progress commits, carried into the next attempt so the hosts that finished
are not contacted again, merged into one answer over every host, and told to a person deciding.

The real engine and the real provider of the server `hosts`, over the in-memory journal and shell
(tests/fakes.py); a crash is the driving task cancelled mid-call, as a killed process leaves it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from opsmith.config import parse_config
from opsmith.domain.errors import ToolArgumentsError, ToolCallError
from opsmith.domain.hosts import Credential, Host, HostFailure, HostResult
from opsmith.domain.identity import DEFAULT_ROLES, Identity
from opsmith.domain.inventory import Group, HostEntry, Inventory
from opsmith.domain.plan import Plan, Step
from opsmith.domain.risk import Risk
from opsmith.domain.scripts import RESULT_MARKER, Script
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.local import LocalExecutor
from opsmith.engine.recovery import Choice, finished_hosts, how_far, recover, resolve, stopped_fan_outs
from opsmith.engine.retry import RetryPolicy
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import FanOut, RunState, RunStatus, StepState, StepStatus, new_run
from opsmith.tools.combined import Combined
from opsmith.tools.hosts.provider import RECORDED_TAIL, FleetPolicy, HostTools
from opsmith.tools.mcp.pool import ServerPool
from tests.fakes import FakeAudit, FakeClock, FakeJournal, FakePlans, FakeShell, FakeTools
from tests.unit.test_engine_helpers import NOW, plan_of

pytestmark = pytest.mark.anyio

ADMIN = Identity(user="ana", role="admin", source="config")
KEY = Credential(name="fleet-key", kind="ssh_key", username="ops", secret=SecretStr("k3y-material"))
WAIT = 5.0  # seconds any wait of these tests may take


def fleet(count: int) -> Inventory:
    names = [f"h{n:03}" for n in range(1, count + 1)]
    return Inventory(
        declared_groups={"web": Group(name="web", hosts=names, vars={"opsmith_credential": KEY.name})},
        host_entries={name: HostEntry(name=name, os="linux") for name in names},
    )


def provider(count: int, shell: FakeShell, **policy: Any) -> HostTools:
    inventory = fleet(count)
    return HostTools(
        inventory=lambda: inventory,
        credential=lambda name: KEY,
        shell=shell,
        policy=FleetPolicy(**{"host_retries": 0, **policy}),
    )


def fleet_plan(tool: str = "service_restart", *, idempotent: bool = False, **args: Any) -> Plan:
    step = Step(
        id="act",
        name=f"{tool} on web",
        capability=tool,
        server="hosts",
        tool=tool,
        args={"targets": "web", "service": "nginx", **args},
        risk=Risk.LOW,
        idempotent=idempotent,
        changes_target=tool != "service_status",
    )
    return plan_of(step)


class Journal(FakeJournal):
    """The in-memory journal, counting its commits."""

    def __init__(self) -> None:
        super().__init__(FakePlans(), FakeAudit(FakeClock()))
        self.commits = 0

    def commit(self, state: RunState, **kwargs: Any) -> list[RunEvent]:
        self.commits += 1
        return super().commit(state, **kwargs)

    def progress(self) -> list[RunEvent]:
        return [e for e in self.event_log.get("run-1", []) if e.type is EventType.STEP_PROGRESS]


def executor(plan: Plan, tools: Any, journal: Journal) -> LocalExecutor:
    return LocalExecutor(
        plan,
        tools=tools,
        runs=journal,
        identity=ADMIN,
        permission=DEFAULT_ROLES["admin"],
        settings=ExecutionSettings(retry=RetryPolicy(attempts=1, initial_delay=0, max_delay=0)),
    )


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"waited {WAIT:g}s for {what}"
        await asyncio.sleep(0.01)


def recorded(journal: Journal) -> FanOut | None:
    state = journal.runs.get("run-1")
    return state.step("act").fan_out if state is not None else None


async def crash_mid_fan_out(plan: Plan, tools: HostTools, journal: Journal, rows: int) -> RunState:
    """Drive a run until `rows` hosts' outcomes are durable, then stop the process there."""
    task = asyncio.create_task(executor(plan, tools, journal).execute(new_run(plan, run_id="run-1")))
    await until(lambda: (r := recorded(journal)) is not None and len(r.rows) >= rows, f"{rows} rows")
    task.cancel()  # the process dies: nothing after this is recorded
    await asyncio.gather(task, return_exceptions=True)
    return journal.get("run-1")


def fails(exit_code: int = 1) -> Callable[[Host, Script], HostResult]:
    def answer(host: Host, script: Script) -> HostResult:
        line = f'{RESULT_MARKER}{{"op": "{script.operation}", "error": "refused to restart"}}'
        return HostResult(host=host.name, exit_code=exit_code, stdout=line + "\n", stderr="unit refused\n")

    return answer


def hosts_sent(shell: FakeShell) -> list[str]:
    return sorted(host for host, _ in shell.runs)


# -- the engine records, a crash keeps, a resume goes on where it stopped ---------------------------


async def test_a_crash_mid_fan_out_leaves_each_finished_hosts_outcome_and_a_retry_acts_on_the_rest() -> None:
    shell = FakeShell({"h002": fails()})
    shell.blocked["h005"] = asyncio.Event()  # in flight when the process stops
    plan, journal = fleet_plan(), Journal()
    crashed = await crash_mid_fan_out(plan, provider(5, shell), journal, rows=4)

    record = crashed.step("act").fan_out
    assert record is not None and record.total == 5
    assert sorted(record.rows) == ["h001", "h002", "h003", "h004"]
    assert record.rows["h002"]["ok"] is False and record.rows["h002"]["exit_code"] == 1
    assert record.rows["h001"]["result"] == {"op": "service_restart", "changed": True}
    assert crashed.step("act").status is StepStatus.RUNNING
    assert [e.data for e in journal.progress()][-1]["completed"] == 4, "events hold the counts"
    assert all("row" not in e.data for e in journal.progress())

    recovered = recover(plan, crashed)
    assert recovered.held == ["act"] and recovered.state.status is RunStatus.NEEDS_ATTENTION
    said = "done on 3 of 5 hosts, 1 failed, 1 unknown (in flight when the process stopped)"
    assert recovered.state.step("act").error == f"interrupted: {said}"
    assert stopped_fan_outs(recovered.state) == [f"act: {said}"]

    shell.runs.clear()
    second = executor(plan, provider(5, shell), journal)
    assert journal.claim("run-1", second.owner)
    decided = resolve(recovered.state, "act", Choice.RETRY, at=NOW)
    journal.commit(decided, owner=second.owner)
    shell.blocked.clear()
    final = await second.execute(decided)

    assert shell.runs == [("h005", "service_restart")], "only the host with no recorded outcome"
    act = final.step("act")
    assert act.status is StepStatus.FAILED, "h002's recorded failure counts: 1 of 5 over 0% allowed"
    assert act.output is not None
    assert [row["host"] for row in act.output["hosts"]] == ["h001", "h002", "h003", "h004", "h005"]
    assert act.output["total"] == 5 and act.output["failed_hosts"] == ["h002"]
    assert act.output["succeeded"] == 4
    assert [row.get("recorded", False) for row in act.output["hosts"]] == [True, True, True, True, False]
    assert act.fan_out is not None and len(act.fan_out.rows) == 5, "the last host recorded too"


async def test_an_idempotent_step_goes_on_by_itself_and_contacts_again_only_what_did_not_succeed() -> None:
    shell = FakeShell({"h002": fails()})
    shell.blocked["h004"] = asyncio.Event()
    plan, journal = fleet_plan("service_stop", idempotent=True), Journal()
    crashed = await crash_mid_fan_out(plan, provider(4, shell), journal, rows=3)

    recovered = recover(plan, crashed)
    assert recovered.rerun == ["act"] and recovered.state.status is RunStatus.RUNNING
    assert recovered.state.step("act").error == (
        "interrupted: done on 2 of 4 hosts, 1 failed, 1 unknown (in flight when the process stopped)"
    )
    assert sorted(finished_hosts(plan.steps[0], recovered.state.step("act"))) == ["h001", "h003"]

    shell.runs.clear()
    del shell.answers["h002"]  # what failed may have passed: an idempotent step tries it again
    shell.blocked.clear()
    second = executor(plan, provider(4, shell), journal)
    assert journal.claim("run-1", second.owner)
    journal.commit(recovered.state, owner=second.owner)
    final = await second.execute(recovered.state)

    assert hosts_sent(shell) == ["h002", "h004"]
    assert final.status is RunStatus.SUCCEEDED
    output = final.step("act").output
    assert output is not None and output["succeeded"] == 4 and output["total"] == 4
    assert final.step("act").error is None


async def test_a_check_asks_every_host_again() -> None:
    shell = FakeShell()
    shell.blocked["h003"] = asyncio.Event()
    plan, journal = fleet_plan("service_status", idempotent=True), Journal()
    crashed = await crash_mid_fan_out(plan, provider(3, shell), journal, rows=2)
    recovered = recover(plan, crashed)
    assert recovered.rerun == ["act"]
    assert finished_hosts(plan.steps[0], recovered.state.step("act")) == {}, "what it says must be now"


async def test_five_hundred_hosts_finishing_are_recorded_in_a_handful_of_commits() -> None:
    shell = FakeShell()
    plan, journal = fleet_plan("service_stop", idempotent=True), Journal()
    final = await executor(plan, provider(500, shell), journal).execute(new_run(plan, run_id="run-1"))
    assert final.status is RunStatus.SUCCEEDED
    record = final.step("act").fan_out
    assert record is not None and record.total == 500 and len(record.rows) == 500
    assert len(journal.progress()) <= 4, [e.data for e in journal.progress()]
    assert journal.commits <= 8
    assert journal.progress()[-1].data["pending"] == 0


async def test_a_host_that_finishes_while_no_other_does_is_durable_within_the_throttle() -> None:
    """The report the throttle held back is committed when its interval is over, not at the next
    report: with the other hosts in flight for long, the process may die before there is one."""
    shell = FakeShell()
    for name in ("h002", "h003"):
        shell.blocked[name] = asyncio.Event()
    plan, journal = fleet_plan(), Journal()
    tools = provider(3, shell)
    task = asyncio.create_task(executor(plan, tools, journal).execute(new_run(plan, run_id="run-1")))
    try:
        await until(lambda: (r := recorded(journal)) is not None and "h001" in r.rows, "h001's row")
        shell.blocked["h002"].set()
        await until(lambda: (r := recorded(journal)) is not None and "h002" in r.rows, "h002's row")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_call_that_times_out_records_what_finished_for_the_next_attempt() -> None:
    shell = FakeShell()
    shell.blocked["h002"] = asyncio.Event()
    plan = fleet_plan("service_stop", idempotent=True)
    plan = plan.model_copy(update={"steps": [plan.steps[0].model_copy(update={"timeout": 0.3})]})
    journal = Journal()
    final = await executor(plan, provider(2, shell), journal).execute(new_run(plan, run_id="run-1"))
    assert final.step("act").status is StepStatus.FAILED and "did not answer" in (
        final.step("act").error or ""
    )
    record = final.step("act").fan_out
    assert record is not None and list(record.rows) == ["h001"] and record.total == 2


async def test_what_a_run_records_of_a_host_is_bounded() -> None:
    def chatty(host: Host, script: Script) -> HostResult:
        big = {"op": script.operation, "changed": True, "log": "x" * 5000, "state": "running"}
        big |= {f"field{n:03}": "v" * 150 for n in range(100)}
        return HostResult(
            host=host.name, exit_code=0, stdout="y" * 50_000 + f"\n{RESULT_MARKER}{json.dumps(big)}"
        )

    shell = FakeShell({"h001": chatty})
    plan, journal = fleet_plan("service_stop", idempotent=True), Journal()
    final = await executor(plan, provider(1, shell), journal).execute(new_run(plan, run_id="run-1"))
    record = final.step("act").fan_out
    assert record is not None
    row = record.rows["h001"]
    assert len(row["stdout"]) <= RECORDED_TAIL and len(row["stderr"]) <= RECORDED_TAIL
    assert row["result"]["truncated"] is True and "log" not in row["result"]
    assert {"op": "service_stop", "changed": True, "state": "running"}.items() <= row["result"].items()
    assert len(json.dumps(row)) < 2000
    assert KEY.secret.get_secret_value() not in repr(final.model_dump())


# -- the provider with recorded rows ------------------------------------------------------------


def ok_row(name: str, **result: Any) -> dict[str, Any]:
    return {"host": name, "ok": True, "exit_code": 0, "result": {"op": "service_restart", **result}}


async def test_recorded_hosts_are_left_alone_and_the_answer_and_its_policy_cover_every_host() -> None:
    shell = FakeShell()
    heard: list[dict[str, Any]] = []
    finished = {
        "h001": ok_row("h001", changed=True),
        "h002": {"host": "h002", "ok": False, "exit_code": 1, "stderr": "unit refused"},
        "h999": ok_row("h999"),  # no longer a target: left out of the answer
    }
    tools = provider(4, shell, max_failed_percent=25)
    args = {"targets": "web", "service": "nginx"}
    result = await tools.call(
        "hosts", "service_restart", args, progress=lambda c: heard.append(dict(c)), finished=finished
    )
    assert hosts_sent(shell) == ["h003", "h004"]
    answer = result.structured
    assert answer is not None
    assert [r["host"] for r in answer["hosts"]] == ["h001", "h002", "h003", "h004"]
    assert answer["total"] == 4 and answer["failed_hosts"] == ["h002"] and answer["failed_percent"] == 25
    assert answer["changed_hosts"] == ["h001", "h003", "h004"]
    assert heard[0] == {"total": 4, "completed": 2, "failed": 1, "pending": 2, "host": ""}
    assert [c["completed"] for c in heard] == [2, 3, 4]
    assert {c["row"]["host"] for c in heard[1:]} == {"h003", "h004"}

    strict = provider(4, FakeShell())
    with pytest.raises(ToolCallError) as refused:
        await strict.call("hosts", "service_restart", args, finished=finished)
    assert refused.value.output is not None and refused.value.output["total"] == 4


async def test_expect_judges_a_recorded_row_as_a_new_one() -> None:
    shell = FakeShell()
    finished = {"h001": {**ok_row("h001"), "result": {"op": "service_status", "state": "stopped"}}}
    args = {"targets": "web", "service": "nginx", "expect": {"state": "stopped"}, "max_failed_percent": 100}
    result = await provider(2, shell).call("hosts", "service_status", args, finished=finished)
    assert result.structured is not None
    rows = {r["host"]: r for r in result.structured["hosts"]}
    assert rows["h001"]["ok"] is True
    assert rows["h002"]["ok"] is False and rows["h002"]["failure"] == "unexpected", "no state in its result"
    assert hosts_sent(shell) == ["h002"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_ROW = st.dictionaries(
    st.sampled_from(["host", "ok", "exit_code", "failure", "reason", "result", "stdout", "stderr", "x"]),
    _JSON,
    max_size=6,
)
_HOSTS = ["h001", "h002", "h003", "h004", "h005"]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(_HOSTS), _ROW, max_size=5), st.sampled_from([0, 100]))
def test_whatever_was_recorded_the_answer_has_one_row_per_host_and_contacts_only_the_others(
    finished: Mapping[str, Mapping[str, Any]], limit: int
) -> None:
    """What the store holds is read back as data, and may be anything (a row of an older opsmith,
    one edited by hand): the answer is still well formed."""
    shell = FakeShell()
    tools = provider(5, shell, max_failed_percent=limit)
    args = {"targets": "web", "service": "x"}
    try:
        answer = asyncio.run(tools.call("hosts", "service_stop", args, finished=finished)).structured
    except ToolCallError as failed:
        answer = failed.output
    assert answer is not None
    assert [r["host"] for r in answer["hosts"]] == _HOSTS
    assert hosts_sent(shell) == sorted(set(_HOSTS) - set(finished))
    assert all(isinstance(r["ok"], bool) for r in answer["hosts"])
    assert answer["succeeded"] + answer["failed"] == 5
    for row in answer["hosts"]:
        if row["host"] in finished:
            assert row["ok"] is (finished[row["host"]].get("ok") is True) and row["recorded"] is True


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50), st.lists(st.booleans(), max_size=50))
def test_how_far_counts_every_host_once(total: int, oks: Sequence[bool]) -> None:
    oks = oks[:total]
    record = FanOut(total=total, rows={f"h{i}": {"host": f"h{i}", "ok": ok} for i, ok in enumerate(oks)})
    assert record.succeeded + record.failed + record.unknown == total
    said = how_far(record)
    assert said == (
        f"done on {sum(oks)} of {total} hosts, {len(oks) - sum(oks)} failed,"
        f" {total - len(oks)} unknown (in flight when the process stopped)"
    )


def test_a_step_that_is_not_idempotent_carries_every_recorded_host_failed_ones_too() -> None:
    plan = fleet_plan()
    rows = {"a": {"host": "a", "ok": True}, "b": {"host": "b", "ok": False}}
    state = StepState(step_id="act", status=StepStatus.RUNNING, fan_out=FanOut(total=3, rows=rows))
    assert finished_hosts(plan.steps[0], state) == rows
    idempotent = fleet_plan("service_stop", idempotent=True)
    assert finished_hosts(idempotent.steps[0], state) == {"a": rows["a"]}
    assert finished_hosts(plan.steps[0], StepState(step_id="act")) == {}


def test_a_step_state_with_its_fan_out_survives_serialisation() -> None:
    rows = {"h001": ok_row("h001", changed=True)}
    state = StepState(step_id="act", status=StepStatus.RUNNING, fan_out=FanOut(total=2, rows=rows))
    again = StepState.model_validate(state.model_dump(mode="json"))
    assert again == state
    assert StepState.model_validate({"step_id": "act"}).fan_out is None, "a step stored before it"


# -- every door passes it on; a tool that does not fan out refuses it -----------------------------


async def test_the_combined_provider_hands_finished_hosts_to_the_fleet() -> None:
    shell = FakeShell()
    combined = Combined(FakeTools(specs=[]), [provider(2, shell)])
    await combined.call(
        "hosts", "service_stop", {"targets": "web", "service": "x"}, finished={"h001": ok_row("h001")}
    )
    assert hosts_sent(shell) == ["h002"]
    with pytest.raises(ToolArgumentsError, match="does not fan out"):
        await combined.call("kubernetes", "scale", {}, finished={"h001": ok_row("h001")})


async def test_an_mcp_tool_refuses_finished_hosts_before_anything_is_sent() -> None:
    pool = ServerPool(parse_config("mcpServers: {}\n", source="test"), {})
    with pytest.raises(ToolArgumentsError, match="an MCP tool does not fan out over hosts"):
        await pool.call("jenkins", "build", {}, finished={"h001": ok_row("h001")})


def test_a_refused_host_recorded_as_failed_stays_failed_for_a_step_that_is_not_idempotent() -> None:
    row = {"host": "h001", "ok": False, "failure": HostFailure.REFUSED.value, "reason": "no credential"}
    state = StepState(step_id="act", status=StepStatus.RUNNING, fan_out=FanOut(total=1, rows={"h001": row}))
    assert finished_hosts(fleet_plan().steps[0], state) == {"h001": row}

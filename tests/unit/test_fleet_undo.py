"""The undo of a step that fanned out over hosts goes only where that step acted, as its per-host
outcomes say: when the step failed on some hosts, when a crash or a timeout left only the rows of
the hosts that finished, and when it succeeded within its failure allowance.

The real engine and the real provider of the server `hosts`, over the in-memory journal and shell
(tests/fakes.py); what a host is sent is what FakeShell records."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.hosts import Host, HostFailure, HostResult
from opsmith.domain.plan import Plan, Step, ToolCall
from opsmith.domain.risk import Risk
from opsmith.domain.scripts import RESULT_MARKER, Script
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.fleet_undo import narrowed, reach, recorded_answer
from opsmith.engine.recovery import Choice, recover, resolve
from opsmith.engine.rollback import undo_call, unrecorded
from opsmith.engine.state import FanOut, RunState, RunStatus, StepState, StepStatus, UndoStatus, new_run
from tests.fakes import FakeShell, HostAnswer
from tests.unit.test_engine_helpers import NOW, plan_of
from tests.unit.test_host_results import Journal, crash_mid_fan_out, executor, provider

pytestmark = pytest.mark.anyio


def stop_step(targets: Any = "web", undo_targets: Any = "web", **extra: Any) -> Step:
    return Step(
        id="act",
        name="stop nginx on web",
        capability="service_stop",
        server="hosts",
        tool="service_stop",
        args={"targets": targets, "service": "nginx", **extra},
        risk=Risk.LOW,
        changes_target=True,
        rollback=ToolCall(
            server="hosts",
            tool="service_start",
            args={"targets": undo_targets, "service": "nginx"},
            idempotent=True,
        ),
    )


def on_stop(answer: HostAnswer) -> HostAnswer:
    """`answer` for the stop; any other script (the undo) succeeds, as FakeShell's own answer."""

    def answering(host: Host, script: Script) -> HostResult:
        if script.operation == "service_stop":
            return answer(host, script)
        line = f'{RESULT_MARKER}{{"op": "{script.operation}", "changed": true}}'
        return HostResult(host=host.name, exit_code=0, stdout=line + "\n")

    return answering


def unreachable(host: Host, script: Script) -> HostResult:
    return HostResult(host=host.name, failure=HostFailure.UNREACHABLE, reason="connection refused")


def refused_to_stop(host: Host, script: Script) -> HostResult:
    """The stop script's own answer when the unit refuses: it says it changed nothing."""
    line = f'{RESULT_MARKER}{{"op": "service_stop", "ok": false, "changed": false, "state": "running"}}'
    return HostResult(host=host.name, exit_code=1, stdout=line + "\n", stderr="unit refused\n")


def failed_midway(host: Host, script: Script) -> HostResult:
    """A script that ran and failed without saying what it changed: it may have changed something."""
    return HostResult(host=host.name, exit_code=3, stdout="", stderr="not stopped within 60s\n")


def sent(shell: FakeShell, operation: str) -> list[str]:
    return sorted(host for host, op in shell.runs if op == operation)


def undo_events(journal: Journal) -> list[RunEvent]:
    return [e for e in journal.event_log["run-1"] if e.type is EventType.ROLLBACK_ACTION]


async def test_a_stop_that_failed_on_some_hosts_is_undone_only_where_it_acted() -> None:
    shell = FakeShell({"h002": unreachable, "h003": on_stop(refused_to_stop), "h004": on_stop(failed_midway)})
    plan, journal = plan_of(stop_step()), Journal()
    final = await executor(plan, provider(5, shell), journal).execute(new_run(plan, run_id="run-1"))

    assert final.status is RunStatus.ROLLED_BACK
    assert final.step("act").status is StepStatus.FAILED and final.step("act").undo is UndoStatus.DONE
    assert sent(shell, "service_stop") == ["h001", "h002", "h003", "h004", "h005"]
    # h002 was never reached and h003 said it changed nothing; h004 may have stopped it part-way.
    assert sent(shell, "service_start") == ["h001", "h004", "h005"]
    [event] = undo_events(journal)
    assert event.data["hosts"] == ["h001", "h004", "h005"]
    assert event.data["left_out_hosts"] == ["h002", "h003"]
    assert event.data["undone_hosts"] == ["h001", "h004", "h005"]
    assert "undone on 3 host(s): h001, h004, h005" in event.message
    assert "left out (the step did not act there): h002, h003" in event.message


async def test_an_undo_of_named_hosts_keeps_only_those_that_acted_and_never_widens() -> None:
    shell = FakeShell({"h001": unreachable})
    step = stop_step(targets=["h001", "h002"], undo_targets=["h001", "h002", "h003"])
    plan, journal = plan_of(step), Journal()
    await executor(plan, provider(3, shell), journal).execute(new_run(plan, run_id="run-1"))
    # h003 is the undo's own choice: the step's record says nothing about it, so it stays.
    assert sent(shell, "service_start") == ["h002", "h003"]


async def test_a_step_that_succeeded_within_its_allowance_is_undone_only_where_it_acted() -> None:
    shell = FakeShell({"h002": unreachable})
    stop = stop_step(max_failed_percent=50)
    after = Step(
        id="after",
        name="then a check that fails",
        capability="service_status",
        server="hosts",
        tool="service_status",
        args={"targets": "web", "service": "nginx", "expect": {"state": "absent"}},
        depends_on=["act"],
        risk=Risk.LOW,
    )
    plan, journal = plan_of(stop, after), Journal()
    final = await executor(plan, provider(3, shell), journal).execute(new_run(plan, run_id="run-1"))
    assert final.step("act").status is StepStatus.ROLLED_BACK
    assert sent(shell, "service_start") == ["h001", "h003"]


async def test_after_a_crash_the_undo_goes_to_the_recorded_hosts_that_acted_and_those_in_flight() -> None:
    """The step's own arguments name its hosts, so the one in flight is known by name: it may have
    acted, and the undo (idempotent) goes there too; never to the host that was not reached."""
    shell = FakeShell({"h002": unreachable, "h003": on_stop(refused_to_stop)})
    shell.blocked["h004"] = asyncio.Event()
    step = stop_step(targets=["h001", "h002", "h003", "h004"], undo_targets="${steps.act.changed_hosts}")
    plan, journal = plan_of(step), Journal()
    crashed = await crash_mid_fan_out(plan, provider(4, shell), journal, rows=3)
    assert crashed.step("act").output is None, "the call never answered: only its rows are recorded"

    decided, second = await _fail_after_crash(plan, crashed, journal, shell, hosts=4)
    assert recorded_answer(plan, decided, "act") is not None
    assert unrecorded(plan, decided, "act") == []
    final = await second.fail_and_rollback("ana chose to roll back")

    assert final.status is RunStatus.ROLLED_BACK
    assert sent(shell, "service_start") == ["h001", "h004"]
    [event] = undo_events(journal)
    assert event.data["left_out_hosts"] == ["h002", "h003"]


async def test_after_a_crash_on_a_group_whose_hosts_were_not_all_named_a_person_decides() -> None:
    shell = FakeShell({"h002": unreachable})
    shell.blocked["h003"] = asyncio.Event()
    plan, journal = plan_of(stop_step()), Journal()
    crashed = await crash_mid_fan_out(plan, provider(3, shell), journal, rows=2)

    decided, second = await _fail_after_crash(plan, crashed, journal, shell, hosts=3)
    assert unrecorded(plan, decided, "act") == ["the names of its 1 hosts with no recorded outcome"]
    held = await second.fail_and_rollback("ana chose to roll back")
    assert held.status is RunStatus.NEEDS_ATTENTION and held.step("act").undo is UndoStatus.HELD
    assert sent(shell, "service_start") == [], "sending it to the group would reach h002"

    chosen = resolve(held, "act", Choice.FAIL, at=NOW)
    assert chosen.step("act").undo is UndoStatus.CHOSEN
    call = undo_call(plan, chosen, "act")
    assert call.args["targets"] == ["h001"], "the recorded host that acted; the person was told of h003"
    assert journal.claim("run-1", second.owner)
    journal.commit(chosen, owner=second.owner)
    final = await second.execute(chosen)
    assert final.status is RunStatus.ROLLED_BACK and sent(shell, "service_start") == ["h001"]


async def test_a_timed_out_call_on_named_hosts_is_undone_where_it_acted_and_where_it_was_in_flight() -> None:
    shell = FakeShell({"h001": unreachable})
    shell.blocked["h003"] = asyncio.Event()
    step = stop_step(targets=["h001", "h002", "h003"], undo_targets=["h001", "h002", "h003"])
    plan = plan_of(step.model_copy(update={"timeout": 0.3}))
    journal = Journal()
    engine = executor(plan, provider(3, shell), journal)
    failed = await engine.run(new_run(plan, run_id="run-1"))
    assert failed.step("act").output is None and "did not answer" in (failed.step("act").error or "")
    shell.blocked.clear()  # h003's stop ends with the call that gave up on it
    final = await engine.rollback()
    assert final.status is RunStatus.ROLLED_BACK
    assert sent(shell, "service_start") == ["h002", "h003"]


async def _fail_after_crash(
    plan: Plan, crashed: RunState, journal: Journal, shell: FakeShell, *, hosts: int
) -> tuple[RunState, Any]:
    """What `opsmith resume --rollback` does after a crash: recover, fail the step, mark it touched."""
    shell.blocked.clear()
    recovered = recover(plan, crashed).state
    decided = resolve(recovered, "act", Choice.FAIL, at=NOW)
    second = executor(plan, provider(hosts, shell), journal)
    assert journal.claim("run-1", second.owner)
    journal.commit(decided, owner=second.owner)
    second.state = decided
    second.mark_touched("act")
    return decided, second


# -- the pure part: what the rows say ------------------------------------------------------------

_OUTCOMES: dict[str, dict[str, Any]] = {
    "changed": {"ok": True, "exit_code": 0, "result": {"changed": True}},
    "unchanged": {"ok": True, "exit_code": 0, "result": {"changed": False}},
    "ran": {"ok": True, "exit_code": 0, "result": None},
    "failed_silently": {"ok": False, "exit_code": 2, "result": None},
    "refused_unchanged": {"ok": False, "exit_code": 1, "result": {"changed": False}},
    "unexpected": {"ok": False, "exit_code": 0, "failure": "unexpected", "result": {"changed": True}},
    **{f.value: {"ok": False, "exit_code": None, "failure": f.value} for f in HostFailure},
    "recorded_unknown": {"ok": False, "exit_code": None, "failure": "unknown"},
}
_DID_NOT_ACT = {"unchanged", "refused_unchanged"} | {f.value for f in HostFailure if not f.may_have_run}
_NAMES = [f"h{n}" for n in range(6)]


def _state(rows: Mapping[str, str], total: int) -> RunState:
    plan = plan_of(stop_step(targets=_NAMES))
    run = new_run(plan, run_id="run-1")
    record = FanOut(total=total, rows={n: {"host": n, **_OUTCOMES[kind]} for n, kind in rows.items()})
    act = StepState(step_id="act", status=StepStatus.FAILED, fan_out=record, undo=UndoStatus.DUE)
    return run.model_copy(update={"steps": {"act": act}})


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(sorted(_OUTCOMES)), max_size=6),
    st.lists(st.sampled_from([*_NAMES, "elsewhere"]), unique=True),
)
def test_an_undo_never_goes_where_the_step_did_not_act_and_never_gains_a_host(
    rows: Mapping[str, str], undo_targets: list[str]
) -> None:
    plan = plan_of(stop_step(targets=_NAMES))
    state = _state(rows, total=len(_NAMES))
    found = reach(plan, state, "act")
    assert found is not None
    assert set(found.untouched) == {n for n, kind in rows.items() if kind in _DID_NOT_ACT}
    assert set(found.unknown) == set(_NAMES) - set(rows), "a host in flight may have acted"
    call = ToolCall(server="hosts", tool="service_start", args={"targets": undo_targets, "service": "x"})
    after = narrowed(plan, state, "act", call).args["targets"]
    assert after == [n for n in undo_targets if n not in found.untouched]


def test_an_undo_on_the_steps_group_becomes_the_hosts_that_acted_when_every_host_is_named() -> None:
    plan = plan_of(stop_step())
    rows = {"h001": "changed", "h002": "unreachable", "h003": "failed_silently"}
    state = _state(rows, total=3)
    call = ToolCall(server="hosts", tool="service_start", args={"targets": "web", "service": "x"})
    assert narrowed(plan, state, "act", call).args["targets"] == ["h001", "h003"]
    elsewhere = call.model_copy(update={"args": {"targets": "db", "service": "x"}})
    assert narrowed(plan, state, "act", elsewhere) == elsewhere, "not the step's hosts: left as it is"


def test_a_version_per_host_loses_the_hosts_that_did_not_act() -> None:
    plan = plan_of(stop_step(targets=["h001", "h002"]))
    state = _state({"h001": "changed", "h002": "auth_rejected"}, total=2)
    call = ToolCall(server="hosts", tool="package_install", args={"version": {"h001": "1", "h002": "2"}})
    assert narrowed(plan, state, "act", call).args["version"] == {"h001": "1"}


def test_an_undo_of_another_server_is_left_alone() -> None:
    plan = plan_of(stop_step())
    state = _state({"h001": "unreachable"}, total=1)
    call = ToolCall(server="ci", tool="abort", args={"targets": ["h001"]})
    assert narrowed(plan, state, "act", call) == call

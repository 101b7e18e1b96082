"""The run monitor's view of a step that fans out over hosts: its counts and each finished host."""

from __future__ import annotations

from opsmith.api.console.views import fleet_hosts
from opsmith.engine.state import FanOut, StepState, StepStatus


def test_a_step_in_flight_shows_its_recorded_hosts_and_how_many_are_pending() -> None:
    rows = {
        "h1": {"host": "h1", "ok": True, "exit_code": 0},
        "h2": {"host": "h2", "ok": False, "exit_code": None, "failure": "unreachable", "reason": "refused"},
    }
    state = StepState(step_id="act", status=StepStatus.RUNNING, fan_out=FanOut(total=4, rows=rows))
    shown = fleet_hosts(state)
    assert shown is not None
    assert shown["text"] == "done on 1 of 4 hosts, 1 failed, 2 pending"
    assert shown["rows"] == [
        {"host": "h1", "ok": True, "why": ""},
        {"host": "h2", "ok": False, "why": "unreachable: refused"},
    ]
    stopped = state.model_copy(update={"status": StepStatus.FAILED, "error": "timed out"})
    assert fleet_hosts(stopped)["text"].endswith("2 unknown")  # type: ignore[index]


def test_a_step_that_answered_shows_its_answer_s_rows_bounded() -> None:
    hosts = [{"host": f"h{n}", "ok": n != 3, "exit_code": 0 if n != 3 else 2} for n in range(5)]
    state = StepState(
        step_id="act",
        status=StepStatus.SUCCEEDED,
        completed_seq=0,
        output={"hosts": hosts},
        fan_out=FanOut(total=5, rows={}),
    )
    shown = fleet_hosts(state, limit=2)
    assert shown is not None and shown["text"] == "done on 4 of 5 hosts, 1 failed"
    assert [r["host"] for r in shown["rows"]] == ["h0", "h1"] and shown["more"] == 3
    assert fleet_hosts(StepState(step_id="x")) is None, "a step that never fanned out"

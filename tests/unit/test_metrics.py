"""`/metrics` as Prometheus reads it: the tool figures summed by the store (`AuditTrail.tool_calls`)
come out as the counters and the cumulative histogram they were when each entry was read in turn.
Services over fakes; the exposition is prometheus_client's own, parsed back with its parser."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsmith.api.routes.health import _Collector
from opsmith.domain.call_stats import fold_calls
from opsmith.domain.servers import Health, ServerStatus
from opsmith.services import metrics
from tests.fakes import FakeTools, FakeWorld, fake_app

CONFIG = "mcpServers:\n  kubernetes: {command: unused-in-unit-tests}\n"


def world_with_calls(calls: list[dict[str, Any]]) -> FakeWorld:
    w = fake_app(CONFIG, FakeTools(specs=[]))
    for details in calls:
        w.audit.append("bob", "tool.called", "plan_x", details)
    w.audit.append("bob", "plan.approved", "plan_x", {})  # not a call: counted nowhere
    return w


def samples(w: FakeWorld, window: int = 5000) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    up = ServerStatus(name="kubernetes", transport="stdio", health=Health.UP)
    registry.register(_Collector(metrics.snapshot(w.app, window), [up]))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_tool_calls_become_counters_and_a_cumulative_histogram() -> None:
    w = world_with_calls(
        [
            {"tool": "kubernetes/apply", "ok": True, "ms": 40},
            {"tool": "kubernetes/apply", "ok": True, "ms": 200.5},
            {"tool": "kubernetes/apply", "ok": True, "ms": 1500},
            {"tool": "kubernetes/apply", "ok": False, "result": "boom"},
            {"tool": "jenkins/build", "ok": True, "ms": 100},  # right at a bound: inside it
            {"ok": False},  # names no tool
        ]
    )
    found = samples(w)
    apply = (("tool", "kubernetes/apply"),)

    def bucket(le: str, tool: tuple[tuple[str, str], ...] = apply) -> float:
        return found[("opsmith_step_duration_seconds_bucket", tuple(sorted((*tool, ("le", le)))))]

    assert found[("opsmith_tool_calls_total", (("outcome", "ok"), *apply))] == 3
    assert found[("opsmith_tool_calls_total", (("outcome", "error"), *apply))] == 1
    assert [bucket(le) for le in ("0.05", "0.1", "0.25", "1.0", "2.5", "300.0", "+Inf")] == [
        1,
        1,
        2,
        2,
        3,
        3,
        3,
    ]
    assert found[("opsmith_step_duration_seconds_count", apply)] == 3
    assert abs(found[("opsmith_step_duration_seconds_sum", apply)] - 1.7405) < 1e-9
    assert bucket("0.1", (("tool", "jenkins/build"),)) == 1
    assert bucket("0.05", (("tool", "jenkins/build"),)) == 0
    assert found[("opsmith_tool_calls_total", (("outcome", "error"), ("tool", "?")))] == 1
    assert found[("opsmith_server_up", (("server", "kubernetes"),))] == 1


def test_only_the_newest_window_of_entries_counts() -> None:
    w = world_with_calls([{"tool": "kubernetes/apply", "ok": True, "ms": 10}] * 3)
    # The window's last entry is the approval: two of the three calls are in the newest three.
    assert (
        samples(w, window=3)[("opsmith_tool_calls_total", (("outcome", "ok"), ("tool", "kubernetes/apply")))]
        == 2
    )


def test_the_snapshot_holds_what_the_entries_say() -> None:
    w = world_with_calls([{"tool": "k/apply", "ok": True, "ms": 30}, {"tool": "k/apply", "ok": False}])
    snap = metrics.snapshot(w.app)
    assert snap.tools == fold_calls(w.audit.chain, metrics.BUCKETS)
    assert snap.tools["k/apply"].errors == 1 and snap.tools["k/apply"].within[0] == 1

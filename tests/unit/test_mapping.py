"""Choosing a tool per capability over a catalog of plain values."""

from __future__ import annotations

from opsmith.domain.capabilities import CAPABILITIES
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.planner.mapping import choose_tool

RO = ToolHints(read_only=True, destructive=False, idempotent=True)
W = ToolHints(read_only=False, destructive=False)
D = ToolHints(read_only=False, destructive=True)


def tool(server: str, name: str, description: str, hints: ToolHints) -> ToolSpec:
    return ToolSpec(server=server, name=name, description=description, hints=hints)


CATALOG = Catalog(
    [
        tool("ci", "get_build_status", "Get a build's status", RO),
        tool("ci", "get_build_logs", "Retrieve a build's console log lines", RO),
        tool("ci", "trigger_build", "Build an application from a branch", W),
        tool("ci", "run_tests", "Run the test suite and measure coverage", W),
        tool("ci", "get_test_results", "Get stored test results", RO),
        tool("k8s", "apply_deployment", "Deploy an image with a rolling update", D),
        tool("k8s", "get_deployment", "Get a deployment's status and revision history", RO),
        tool("k8s", "delete_deployment", "Delete a deployment and its pods", D),
        tool("k8s", "get_pods", "List pods with status", RO),
        tool("k8s", "get_pod_logs", "Get container logs of pods", RO),
        tool("k8s", "rollback_deployment", "Roll back to the previous revision", D),
        tool("k8s", "scale_deployment", "Scale a deployment to a number of replicas", D),
        tool("k8s", "canary_deploy", "Deploy a canary with a share of traffic", D),
        tool("k8s", "get_service", "Get a service's endpoints", RO),
        tool("k8s", "backup_deployment", "Snapshot the running revision", W),
    ]
)


def chosen(capability: str, catalog: Catalog = CATALOG) -> str | None:
    mapping = choose_tool(CAPABILITIES[capability], catalog)
    return mapping.chosen.tool if mapping else None


def test_each_capability_finds_the_right_tool_not_the_first_substring() -> None:
    assert chosen("build") == "ci/trigger_build"
    assert chosen("test") == "ci/run_tests"
    assert chosen("deploy") == "k8s/apply_deployment"
    assert chosen("verify_pods") == "k8s/get_pods"
    assert chosen("check_logs") == "k8s/get_pod_logs"
    assert chosen("rollback") == "k8s/rollback_deployment"
    assert chosen("scale") == "k8s/scale_deployment"
    assert chosen("canary") == "k8s/canary_deploy"
    assert chosen("check_service") == "k8s/get_service"
    assert chosen("backup") == "k8s/backup_deployment"
    assert chosen("delete") == "k8s/delete_deployment"
    assert chosen("deployment_status") == "k8s/get_deployment"


def test_a_check_never_uses_a_destructive_tool() -> None:
    only_destructive = Catalog([tool("x", "list_pods_and_delete", "List pods", D)])
    assert chosen("verify_pods", only_destructive) is None


def test_missing_capability_gives_none() -> None:
    assert chosen("notify") is None
    assert chosen("push_image") is None


def test_runners_up_and_reasons_are_recorded() -> None:
    mapping = choose_tool(CAPABILITIES["build"], CATALOG)
    assert mapping is not None
    assert mapping.chosen.reasons[0] == "name has build"
    assert all(c.score <= mapping.chosen.score for c in mapping.runners_up)


def test_history_breaks_ties_and_choice_is_deterministic() -> None:
    twins = Catalog([tool("a", "get_pods", "List pods", RO), tool("b", "get_pods", "List pods", RO)])
    assert chosen("verify_pods", twins) == "a/get_pods"
    faster = choose_tool(CAPABILITIES["verify_pods"], twins, durations={"a/get_pods": 9.0, "b/get_pods": 1.0})
    assert faster is not None and faster.chosen.tool == "b/get_pods"
    degraded = choose_tool(CAPABILITIES["verify_pods"], twins, degraded=frozenset({"a"}))
    assert degraded is not None and degraded.chosen.tool == "b/get_pods"

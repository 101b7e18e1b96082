"""Rollouts that apply_deployment does not wait for (--pod-start-ms), and tool calls a test holds open
(--hold): the world's behaviour in-process, the options through a real server over stdio."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from opsmith.sandbox import SERVERS
from opsmith.sandbox.cli import parse_args
from opsmith.sandbox.cluster import STARTING, RolloutResult, Strategy
from opsmith.sandbox.errors import SandboxError
from opsmith.sandbox.world import World
from tests.sandbox.helpers import build_and_push, fix_my_application

START = 0.6  # seconds new pods take to start in these tests


def statuses(world: World, app: str = "my-application", namespace: str = "production") -> list[str]:
    return sorted(p.status for p in world.cluster.pods(namespace, f"app={app}", None).pods)


def images(world: World, app: str = "my-application", namespace: str = "production") -> set[str]:
    return {p.image for p in world.cluster.pods(namespace, f"app={app}", None).pods}


def apply(
    world: World, image: str, strategy: Strategy = "RollingUpdate", app: str = "my-application"
) -> RolloutResult:
    return world.cluster.apply("production", app, image, None, strategy, 1, 0, start_delay=START)


def test_apply_returns_at_once_and_the_pods_crash_afterwards(world: World) -> None:
    before = images(world)
    crashing = build_and_push(world, "my-application", "1.0.0-crash").image  # no production config

    result = apply(world, crashing)
    assert result.action == "rollout-started" and result.status == "Progressing" and result.ready == 0
    assert statuses(world) == ["ContainerCreating", "ContainerCreating", "Running", "Running"]
    assert world.cluster.deployment("production", "my-application").status == "Progressing"
    starting = world.cluster.pods("production", "app=my-application", None).pods[-1]
    assert starting.phase == "Pending" and not starting.ready and STARTING in (starting.message or "")
    assert world.cluster.service("production", "my-application-service").ready_endpoints == 2, (
        "the old pods serve while the new ones start"
    )
    logs = world.cluster.logs("production", None, "app=my-application", 100)
    assert logs.health == "unhealthy" and not any(p.lines for p in logs.pods if p.status == STARTING)

    time.sleep(START + 0.1)
    assert statuses(world) == ["CrashLoopBackOff", "Running", "Running"], "the rollout stalls"
    deployment = world.cluster.deployment("production", "my-application")
    assert deployment.status == "Failed" and "ProgressDeadlineExceeded" in deployment.message
    crashed = world.cluster.logs("production", None, "app=my-application", 100).pods[-1]
    assert any("config/production.json" in line for line in crashed.error_lines)

    back = world.cluster.rollback("production", "my-application", None, None)
    assert back.action == "rolled-back" and images(world) == before
    assert statuses(world) == ["Running", "Running"]


def test_a_healthy_background_rollout_replaces_the_old_pods_once_the_new_ones_run(world: World) -> None:
    fix_my_application(world)
    fixed = build_and_push(world, "my-application", "1.0.0-fixed").image
    apply(world, fixed)
    assert len(images(world)) == 2
    time.sleep(START + 0.1)
    assert images(world) == {fixed} and statuses(world) == ["Running", "Running"]
    deployment = world.cluster.deployment("production", "my-application")
    assert deployment.status == "Available" and deployment.image == fixed
    # What a read worked out is what the next write starts from.
    again = apply(world, fixed)
    assert again.action == "unchanged" and again.ready == 2


def test_a_background_blue_green_deploy_starts_the_idle_colour(world: World) -> None:
    world.commit_file(
        "microservice-two", "src/version.js", "'use strict';\n\nmodule.exports = '1.3.1';\n", "1.3.1"
    )
    image = build_and_push(world, "microservice-two", "v1.3.1").image
    result = apply(world, image, "BlueGreen", "microservice-two")
    assert result.status == "Available" and result.active_color == "blue" and result.ready == 0
    with pytest.raises(SandboxError, match="0/2 ready pods"):
        world.cluster.switch_traffic("production", "microservice-two", None)
    time.sleep(START + 0.1)
    assert statuses(world, "microservice-two") == ["Running"] * 4
    assert world.cluster.switch_traffic("production", "microservice-two", None).active_color == "green"


def test_options_parse() -> None:
    options = parse_args("kubernetes", ["--pod-start-ms", "1500", "--hold", "get_pods=/tmp/gate"])
    assert options.pod_start_seconds == 1.5 and options.holds == {"get_pods": Path("/tmp/gate")}
    assert options.hold_max_seconds == 300
    assert parse_args("kubernetes", []).pod_start_ms == 0 and parse_args("kubernetes", []).holds == {}
    with pytest.raises(SystemExit):
        parse_args("kubernetes", ["--hold", "get_pods"])


def _server(state_dir: Path, *extra: str) -> StdioServerParameters:
    args = ["-m", SERVERS["kubernetes"], "--state-dir", str(state_dir), "--latency-ms", "0", *extra]
    return StdioServerParameters(command=sys.executable, args=args)


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    with open(tmp_path / "stderr.log", "w") as handle:
        yield handle


PODS = {"namespace": "production", "label_selector": "app=my-application"}


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.usefixtures("no_orphans")
async def test_reads_wait_for_starting_pods_when_asked(state_dir: Path, errlog: TextIO) -> None:
    world = World(state_dir)
    crashing = build_and_push(world, "my-application", "1.0.0-crash").image
    params = _server(state_dir, "--pod-start-ms", "1500")
    async with Client(stdio_client(params, errlog=errlog)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        applied = await client.call_tool(
            "apply_deployment",
            {"deployment_name": "my-application", "namespace": "production", "image": crashing},
        )
        at_once = await client.call_tool("get_pods", PODS)
        started = time.monotonic()
        waited = await client.call_tool("get_pods", {**PODS, "wait_seconds": 30})
        took = time.monotonic() - started
        logs = await client.call_tool("get_pod_logs", {**PODS, "wait_seconds": 30})
    assert "returns at once" in (tools["apply_deployment"].description or "")
    assert "wait_seconds" in tools["get_pods"].input_schema["properties"]
    assert not applied.is_error, applied.content
    assert applied.structured_content and applied.structured_content["status"] == "Progressing"
    assert at_once.structured_content
    assert STARTING in {p["status"] for p in at_once.structured_content["pods"]}
    assert waited.structured_content
    assert {p["status"] for p in waited.structured_content["pods"]} == {"Running", "CrashLoopBackOff"}
    assert took < 20
    assert logs.structured_content and logs.structured_content["errors"] > 0


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.usefixtures("no_orphans")
async def test_a_held_call_waits_for_its_file_and_fails_after_the_longest_wait(
    state_dir: Path, tmp_path: Path, errlog: TextIO
) -> None:
    gate = tmp_path / "gate"
    params = _server(state_dir, "--hold", f"get_pods={gate}")
    done: list[float] = []
    async with Client(stdio_client(params, errlog=errlog)) as client:
        other = await client.call_tool(
            "get_service", {"service_name": "my-application", "namespace": "production"}
        )
        assert not other.is_error, "only the named tool is held"

        async def held() -> None:
            result = await client.call_tool("get_pods", PODS)
            assert not result.is_error and result.structured_content
            done.append(time.monotonic())

        async with anyio.create_task_group() as group:
            group.start_soon(held)
            await anyio.sleep(1.0)
            assert not done, "the call waits while the file is missing"
            opened = time.monotonic()
            gate.touch()
        assert done and done[0] >= opened

    gate.unlink()
    params = _server(state_dir, "--hold", f"get_pods={gate}", "--hold-max-s", "1")
    async with Client(stdio_client(params, errlog=errlog)) as client:
        result = await client.call_tool("get_pods", PODS)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "did not appear within 1s" in text and str(gate) in text

"""opsmith's own MCP face, as a real `opsmith mcp` process driven by the official SDK client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.usefixtures("no_orphans")]

OPSMITH = str(Path(sys.executable).with_name("opsmith"))
TOOLS = {
    "create_intelligent_task_plan",
    "show_pending_plan",
    "execute_approved_plan",
    "cancel_pending_plan",
    "get_run_status",
    "get_all_servers_status",
    "start_all_enabled_servers",
    "get_current_role",
    "set_role",
}
ROLLBACK = "Rollback production deployment"
READ_ONLY = {"show_pending_plan", "get_run_status", "get_all_servers_status", "get_current_role"}
DESTRUCTIVE = {"execute_approved_plan", "cancel_pending_plan", "set_role"}


# "Rollback production deployment" names no application, so the default one is rolled back:
# microservice-two, whose seeded production deployment has a previous release (v1.2.0) to return to.
MCP_CONFIG = CONFIG.replace("default_application: my-application", "default_application: microservice-two")


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    assert "default_application: microservice-two" in MCP_CONFIG
    (tmp_path / "opsmith.yaml").write_text(f"{MCP_CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def child_env() -> dict[str, str]:
    # stdio_client passes on only a few variables; the sandbox servers need no latency to be quick.
    keep = ("HOME", "PATH", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "OPSMITH_SANDBOX_LATENCY_MS": "0"}


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPSMITH, *args],
        cwd=project,
        env={**os.environ, **child_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def errlog(project: Path) -> Iterator[TextIO]:
    """Where the `opsmith mcp` processes' stderr goes (stdout is the protocol)."""
    with open(project / "mcp.stderr.log", "w") as handle:
        yield handle


@asynccontextmanager
async def mcp_as(project: Path, user: str, errlog: TextIO) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=OPSMITH, args=["--as", user, "mcp"], cwd=project, env=child_env())
    async with Client(stdio_client(params, errlog=errlog)) as client:
        yield client


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call_ok(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def audit(project: Path, subject: str) -> list[dict[str, Any]]:
    done = cli(project, "--as", "alice", "audit", "--json", "--subject", subject, "--limit", "200")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


async def test_tools_are_listed_with_honest_annotations(project: Path, errlog: TextIO) -> None:
    async with mcp_as(project, "bob", errlog) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert tool.description and tool.annotations is not None and tool.output_schema is not None
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
        assert tool.annotations.destructive_hint is (name in DESTRUCTIVE), name
    assert "approves NOTHING" in (tools["execute_approved_plan"].description or "")
    assert set(tools["execute_approved_plan"].input_schema["properties"]) == {"plan_id", "approval"}


async def test_a_plan_runs_only_after_a_person_approved_it(project: Path, errlog: TextIO) -> None:
    async with mcp_as(project, "bob", errlog) as client:
        role = await call_ok(client, "get_current_role")
        assert (role["user"], role["role"], role["source"]) == ("bob", "deployer", "as-option")
        assert "execute" in role["actions"] and "approve" not in role["actions"]

        servers = await call_ok(client, "get_all_servers_status")
        assert {s["name"]: s["health"] for s in servers["servers"]} == dict.fromkeys(
            ("jenkins", "sonarqube", "registry", "kubernetes"), "up"
        )
        assert all(s["tool_count"] > 0 for s in servers["servers"]) and servers["up"] == 4

        plan = await call_ok(client, "create_intelligent_task_plan", {"user_command": ROLLBACK})
        assert plan["status"] == "pending_approval" and plan["requires_approval"] is True
        assert plan["requested_by"] == "bob" and plan["approvals_needed"] >= 1
        assert [s["id"] for s in plan["steps"]][:3] == ["inspect", "backup", "rollback"]
        assert all({"server", "tool", "risk", "depends_on"} <= set(s) for s in plan["steps"])
        assert plan["estimated_duration"] and f"TASK PLAN: {plan['id']}" in plan["text"]
        assert (await call_ok(client, "show_pending_plan"))["id"] == plan["id"]

        refused = await client.call_tool("execute_approved_plan", {"plan_id": plan["id"], "approval": True})
        assert refused.is_error
        message = text_of(refused)
        assert "not approved" in message and f"opsmith approve {plan['id']}" in message
        assert "approves nothing" in message
        still = await call_ok(client, "show_pending_plan", {"plan_id": plan["id"]})
        assert still["status"] == "pending_approval" and still["approvals_valid"] == 0

        denied = await client.call_tool("set_role", {"user": "vic", "role": "admin"})
        assert denied.is_error and "bob (deployer) may not admin" in text_of(denied)

    entries = audit(project, plan["id"])
    assert ("bob", "mcp.approval_ignored") in [(e["actor"], e["action"]) for e in entries]
    assert not [e for e in entries if e["action"] == "run.started"], "nothing ran"
    assert not [e for e in audit(project, "vic") if e["action"] == "role.changed"]

    approved = cli(project, "--as", "alice", "approve", plan["id"], "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "approved"

    gated = [s["id"] for s in plan["steps"] if s["requires_validation"]]
    assert {p["image"] for p in pods(project, "microservice-two")} == {"myorg/microservice-two:v1.3.0"}
    async with mcp_as(project, "bob", errlog) as client:
        assert (await call_ok(client, "show_pending_plan"))["status"] == "approved"
        run = await call_ok(client, "execute_approved_plan", {"plan_id": plan["id"]})
        status = await call_ok(client, "get_run_status", {"run_id": run["run_id"]})
    steps = {s["step_id"]: s for s in run["steps"]}
    if gated:
        assert run["status"] == "awaiting_validation", run
        assert f"opsmith continue {run['run_id']}" in run["next"]
        assert steps[gated[0]]["status"] == "succeeded"
    else:
        assert run["status"] == "succeeded", run
        assert run["plan_status"] == "succeeded" and run["failure"] is None
        assert all(s["status"] == "succeeded" for s in steps.values())
    assert status["run_id"] == run["run_id"] and status["status"] == run["status"]
    assert {s["step_id"]: s["status"] for s in status["steps"]} == {k: v["status"] for k, v in steps.items()}
    assert all(s["attempts"] >= 1 for s in status["steps"] if s["status"] == "succeeded")
    started = [e for e in audit(project, run["run_id"]) if e["action"] == "run.started"]
    assert [e["actor"] for e in started] == ["bob"]
    if not gated:
        assert {p["image"] for p in pods(project, "microservice-two")} == {"myorg/microservice-two:v1.2.0"}


def pods(project: Path, app: str) -> list[dict[str, Any]]:
    args = json.dumps({"namespace": "production", "label_selector": f"app={app}"})
    done = cli(project, "--as", "ada", "call", "kubernetes", "get_pods", "--args", args, "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["structured"]["pods"])


async def test_cancel_and_unknown_ids_are_clear_errors(project: Path, errlog: TextIO) -> None:
    async with mcp_as(project, "bob", errlog) as client:
        missing = await client.call_tool("show_pending_plan", {})
        assert missing.is_error and "no plan is waiting" in text_of(missing)
        unknown = await client.call_tool("get_run_status", {"run_id": "run_nope"})
        assert unknown.is_error and "no run 'run_nope'" in text_of(unknown)
        plan = await call_ok(client, "create_intelligent_task_plan", {"user_command": ROLLBACK})
        cancelled = await call_ok(client, "cancel_pending_plan", {})
        assert (cancelled["id"], cancelled["status"]) == (plan["id"], "cancelled")
        again = await client.call_tool("execute_approved_plan", {"plan_id": plan["id"]})
        assert again.is_error and "cancelled, not approved" in text_of(again)
        gibberish = await client.call_tool("create_intelligent_task_plan", {"user_command": "blorp the zzz"})
        assert gibberish.is_error and text_of(gibberish).strip()
    assert "mcp.approval_ignored" not in [e["action"] for e in audit(project, plan["id"])]


async def test_admins_change_roles_but_not_their_own(project: Path, errlog: TextIO) -> None:
    async with mcp_as(project, "ada", errlog) as client:
        own = await client.call_tool("set_role", {"user": "ada", "role": "viewer"})
        assert own.is_error and "own role" in text_of(own)
        stranger = await client.call_tool("set_role", {"user": "mallory", "role": "admin"})
        assert stranger.is_error and "not a configured user" in text_of(stranger)
        changed = await call_ok(client, "set_role", {"user": "vic", "role": "operator"})
        assert changed == {"user": "vic", "role": "operator", "set_by": "ada"}
    assert [
        (e["actor"], e["details"]["role"]) for e in audit(project, "vic") if e["action"] == "role.changed"
    ] == [("ada", "operator")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streamable_http_on_loopback(project: Path, errlog: TextIO) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [OPSMITH, "--as", "bob", "mcp", "--transport", "http", "--port", str(port)],
        cwd=project,
        env={**os.environ, **child_env()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errlog,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (project / "mcp.stderr.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "opsmith mcp did not listen in time"
                time.sleep(0.05)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            role = await call_ok(client, "get_current_role")
        assert (role["user"], role["role"]) == ("bob", "deployer")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_stdout_carries_only_the_protocol(project: Path) -> None:
    """Raw JSON-RPC over stdio: every stdout line is a protocol message, even while servers start."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_all_servers_status"}},
    ]
    proc = subprocess.Popen(
        [OPSMITH, "--as", "bob", "mcp"],
        cwd=project,
        env={**os.environ, **child_env()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[0]["result"]["serverInfo"]["name"] == "opsmith"
    assert replies[1]["result"]["structuredContent"]["up"] == 4
    assert rest.strip() == "", f"stray stdout: {rest!r}"

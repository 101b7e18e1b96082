"""The `opsmith` command as a user runs it: real processes, exit codes, clean output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from opsmith.store import Database
from tests.conftest import FIXTURE_SERVERS, PYTHON, fixture_server

pytestmark = pytest.mark.integration

OPSMITH = str(Path(sys.executable).with_name("opsmith"))


def opsmith(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPSMITH, *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(tmp_path: Path, servers: str) -> Path:
    path = tmp_path / "opsmith.yaml"
    path.write_text(f"mcpServers:\n{servers}\n")
    return path


@pytest.fixture
def time_dir(tmp_path: Path) -> Path:
    write_config(tmp_path, "  time: {command: mcp-server-time}")
    return tmp_path


def test_bad_config_is_one_clear_error_with_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  time: {command: mcp-server-time, argz: []}")
    result = opsmith(tmp_path, "--config", str(config), "servers", "status")
    assert result.returncode == 2
    expected = f"{config}: unknown key 'argz' in stdio server mcpServers.time; did you mean 'args'?"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_config_file_from_env_var(tmp_path: Path) -> None:
    env = dict(os.environ, OPSMITH_CONFIG=str(tmp_path / "absent.yaml"))
    result = opsmith(tmp_path, "tools", env=env)
    assert result.returncode == 2
    assert "absent.yaml does not exist" in result.stderr


def test_tools_lists_the_catalog_as_json(time_dir: Path) -> None:
    result = opsmith(time_dir, "tools", "--json")
    assert result.returncode == 0, result.stderr
    tools = json.loads(result.stdout)
    assert sorted(t["name"] for t in tools) == ["convert_time", "get_current_time"]
    assert all(t["annotations"]["readOnlyHint"] is True for t in tools)


def test_tools_table_for_people(time_dir: Path) -> None:
    result = opsmith(time_dir, "tools", "--server", "time")
    assert result.returncode == 0, result.stderr
    assert "get_current_time" in result.stdout and "read-only" in result.stdout


def test_call_succeeds_and_failures_have_the_right_exit_codes(time_dir: Path) -> None:
    ok = opsmith(time_dir, "call", "time", "get_current_time", "--args", '{"timezone": "UTC"}', "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["structured"]["timezone"] == "UTC"

    failed = opsmith(time_dir, "call", "time", "get_current_time", "--args", '{"timezone": "Nowhere/None"}')
    assert failed.returncode == 1
    assert "reported an error" in failed.stderr and "Invalid timezone" in failed.stderr

    cases = {
        ("call", "time", "get_current_time", "--args", "{oops"): "--args is not valid JSON",
        ("call", "time", "get_current_time", "--args", "[1]"): "--args must be a JSON object",
        ("call", "time", "get_current_time", "--args", '{"timezone": 3}'): "argument 'timezone'",
        ("call", "time", "get_time", "--args", "{}"): "server 'time' has no tool 'get_time'",
        ("call", "clock", "get_time"): "no MCP server named 'clock'",
        ("servers", "status", "clock"): "no MCP server named 'clock'",
        ("call", "time"): "Missing argument 'tool'",
    }
    for args, message in cases.items():
        result = opsmith(time_dir, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_status_reports_down_servers_and_exits_1(time_dir: Path) -> None:
    write_config(time_dir, f"  time: {{command: mcp-server-time}}\n  bad: {fixture_server('exits.py')}}}")
    result = opsmith(time_dir, "servers", "status", "--json")
    assert result.returncode == 1
    by_name = {s["name"]: s for s in json.loads(result.stdout)}
    assert by_name["time"]["health"] == "up" and by_name["time"]["tool_count"] == 2
    assert by_name["bad"]["health"] == "down"
    assert "license file /etc/fixture/license.key not found" in by_name["bad"]["reason"]
    log = Path(by_name["bad"]["log_file"])
    assert "license file" in (time_dir / log).read_text()


def test_stop_and_start_change_what_opsmith_uses(time_dir: Path) -> None:
    assert opsmith(time_dir, "servers", "stop", "time").returncode == 0
    status = json.loads(opsmith(time_dir, "servers", "status", "--json").stdout)
    assert status[0]["health"] == "stopped" and "stopped by an operator" in status[0]["reason"]
    assert json.loads(opsmith(time_dir, "tools", "--json").stdout) == []
    started = opsmith(time_dir, "servers", "start", "time", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)[0]["health"] == "up"
    assert len(json.loads(opsmith(time_dir, "tools", "--json").stdout)) == 2


def test_no_child_process_outlives_the_command(tmp_path: Path) -> None:
    # Copies of the servers under this test's own directory: another test running at the same time
    # (pytest-xdist) may run the same fixture servers, and those are not this command's leftovers.
    servers = tmp_path / "servers"
    servers.mkdir()
    for name in ("hang.py", "garbage.py"):
        shutil.copy(FIXTURE_SERVERS / name, servers / name)
    write_config(
        tmp_path,
        f"  hang: {{command: {PYTHON}, args: ['{servers / 'hang.py'}'], timeout: 1}}\n"
        f"  slow: {{command: {PYTHON}, args: ['{servers / 'garbage.py'}'], timeout: 1}}",
    )
    result = opsmith(tmp_path, "servers", "status")
    assert result.returncode == 1
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if any(str(servers) in a for a in p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_secrets_from_the_environment_never_reach_the_output(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_config(
        tmp_path,
        f"  remote: {{url: 'http://127.0.0.1:{port}/mcp?key=${{API_KEY}}',"
        " headers: {Authorization: 'Bearer ${API_KEY}'}, timeout: 3}",
    )
    env = dict(os.environ, API_KEY="sk-live-abcdef123456")
    result = opsmith(tmp_path, "servers", "status", "--json", env=env)
    assert result.returncode == 1
    assert "sk-live-abcdef123456" not in result.stdout + result.stderr
    assert json.loads(result.stdout)[0]["health"] == "down"
    for log in (tmp_path / ".opsmith" / "logs").glob("*.log"):
        assert "sk-live-abcdef123456" not in log.read_text()
    assert b"sk-live-abcdef123456" not in (tmp_path / ".opsmith" / "opsmith.db").read_bytes()


def test_db_upgrade(tmp_path: Path) -> None:
    write_config(tmp_path, "  time: {command: mcp-server-time}")
    head = Database("sqlite://").head_revision()
    first = json.loads(opsmith(tmp_path, "db", "upgrade", "--json").stdout)
    assert first["from"] is None and first["to"] == head
    again = opsmith(tmp_path, "db", "upgrade")
    assert f"already at revision {head}" in again.stdout


def test_demo_discovers_45_tools_over_the_4_sandbox_servers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG"}
    env["OPSMITH_SANDBOX_LATENCY_MS"] = "0"
    result = opsmith(tmp_path, "demo", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["servers"]] == ["jenkins", "sonarqube", "registry", "kubernetes"]
    assert {s["name"]: s["tool_count"] for s in data["servers"]} == {
        "jenkins": 15,
        "sonarqube": 10,
        "registry": 8,
        "kubernetes": 12,
    }
    assert len(data["tools"]) == 45
    assert data["plan"]["request"] == "Deploy the code to Kubernetes production"
    assert data["plan"]["playbook"] == "production_deployment" and data["plan"]["risk"] == "HIGH"
    assert data["run"]["status"] == "succeeded"
    people = opsmith(tmp_path, "demo", env=env)
    assert "Jenkins CI - 15 Tools Available" in people.stdout
    assert "Total: 45 tools across 4 MCP servers" in people.stdout
    assert "TASK PLAN: plan_deploy_production_" in people.stdout and "TASK GRAPH" in people.stdout
    assert (tmp_path / ".opsmith" / "sandbox" / "repos" / "my-application" / ".git").is_dir()


DEMO_APPS = """
applications:
  my-application: {}
  microservice-one: {strategy: canary}
planning: {default_application: my-application, image_repository: "myorg/{app}"}
"""


@pytest.fixture
def sandbox_dir(tmp_path: Path, state_dir: Path) -> Path:
    from tests.conftest import sandbox_servers

    (tmp_path / "opsmith.yaml").write_text(f"{DEMO_APPS}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def test_plan_show_plans_and_amend(sandbox_dir: Path) -> None:
    made = opsmith(sandbox_dir, "plan", "Deploy the code to Kubernetes production", "--json")
    assert made.returncode == 0, made.stderr
    plan = json.loads(made.stdout)
    assert plan["status"] == "pending_approval" and plan["risk"] == "HIGH"
    assert plan["intent"]["environment"] == "production" and len(plan["steps"]) == 11
    assert set(plan) >= {
        "id",
        "request",
        "intent",
        "risk",
        "requires_approval",
        "compliance",
        "rollback_strategy",
        "success_criteria",
        "estimated_duration",
        "steps",
        "status",
        "hash",
    }
    shown = opsmith(sandbox_dir, "show", plan["id"], "--json")
    assert json.loads(shown.stdout)["hash"] == plan["hash"]
    people = opsmith(sandbox_dir, "show", plan["id"])
    assert "APPROVAL REQUIRED" in people.stdout and "TASK GRAPH" in people.stdout
    listed = json.loads(opsmith(sandbox_dir, "plans", "--json", "--status", "pending_approval").stdout)
    assert [p["id"] for p in listed] == [plan["id"]]

    incomplete = opsmith(sandbox_dir, "plan", "Scale my-application in staging", "--json")
    assert incomplete.returncode == 1
    partial = json.loads(incomplete.stdout)
    assert partial["status"] == "incomplete"
    amended = opsmith(sandbox_dir, "plan", "amend", partial["id"], "--set", "replicas=4", "--json")
    assert amended.returncode == 0, amended.stderr
    fixed = json.loads(amended.stdout)
    assert fixed["id"] == partial["id"] and fixed["hash"] != partial["hash"]
    assert next(s for s in fixed["steps"] if s["id"] == "scale")["args"]["replicas"] == 4


def test_intent_flags_unknown_names_but_plan_refuses_them(sandbox_dir: Path) -> None:
    intent = opsmith(sandbox_dir, "intent", "Deploy microservice-on to production", "--json")
    assert intent.returncode == 0, intent.stderr
    unknown = json.loads(intent.stdout)["unknown"]
    assert unknown[0]["name"] == "microservice-on" and "microservice-one" in unknown[0]["nearest"]
    refused = opsmith(sandbox_dir, "plan", "Deploy microservice-on to production")
    assert refused.returncode == 2
    assert "unknown application 'microservice-on'" in refused.stderr


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        ("", "empty"),
        ("do something with the app", "no action"),
        ("restart nginx; rm -rf /", "rm -rf"),
        ("Deploy the code", "environment"),
        ("x" * 5000, "4096"),
    ],
)
def test_bad_requests_exit_2_and_store_nothing(sandbox_dir: Path, request_text: str, message: str) -> None:
    result = opsmith(sandbox_dir, "plan", request_text)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.lower() or message in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(opsmith(sandbox_dir, "plans", "--json").stdout) == []


def test_bad_set_and_unknown_plan(sandbox_dir: Path) -> None:
    bad = opsmith(sandbox_dir, "plan", "Scale staging to 2 replicas", "--set", "no equals sign")
    assert bad.returncode == 2 and "is not key=value" in bad.stderr
    missing = opsmith(sandbox_dir, "show", "plan_nothing_here")
    assert missing.returncode == 2 and "no plan 'plan_nothing_here'" in missing.stderr


def test_demo_failure_story_rolls_back_to_the_previous_revision(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG"}
    env["OPSMITH_SANDBOX_LATENCY_MS"] = "0"
    result = opsmith(tmp_path, "demo", "--failure", env=env)
    assert result.returncode == 0, result.stderr
    assert "CrashLoopBackOff" in result.stdout and "Status: rolled_back" in result.stdout
    assert "rollback_deployment: status=Available" in result.stdout
    pods = opsmith(
        tmp_path,
        "call",
        "kubernetes",
        "get_pods",
        "--json",
        "--args",
        '{"namespace": "production", "label_selector": "app=my-application"}',
        env=env,
    )
    running = json.loads(pods.stdout)["structured"]["pods"]
    assert {p["image"] for p in running} == {"myorg/my-application:v0.9.5"}
    assert {p["status"] for p in running} == {"Running"}

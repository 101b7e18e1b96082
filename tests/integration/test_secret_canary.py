"""A canary secret given to a server, which echoes it in text, structured content, errors and
stderr, appears in no output of any command, no answer of the MCP face, no log and nowhere in the
database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.canary import child_env, everything_stored
from tests.conftest import fixture_server
from tests.integration.test_cli import OPSMITH

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CANARY = "canary-7f3a9c1e5b2d"
PLAN = """
title: Read and apply the leaky configuration
environment: staging
steps:
  - {id: read, server: leaky, tool: show_config, args: {name: ci}}
  - {id: apply, server: leaky, tool: apply_config, depends_on: [read], args: {name: ci}}
"""


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(CANARY=CANARY)
    return subprocess.run([OPSMITH, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    server = fixture_server("leaky.py") + ", env: {API_TOKEN: '${CANARY}'}}"
    (tmp_path / "opsmith.yaml").write_text(f"mcpServers:\n  leaky: {server}\n")
    (tmp_path / "plan.yaml").write_text(PLAN)
    return tmp_path


@pytest.fixture
def errlog(project: Path) -> Iterator[TextIO]:
    """Where the `opsmith mcp` process's stderr goes (stdout is the protocol)."""
    with open(project / "mcp.stderr.log", "w") as handle:
        yield handle


async def test_the_canary_appears_nowhere(project: Path, errlog: TextIO) -> None:
    outputs: list[str] = []

    def ok(*args: str, code: int = 0) -> str:
        done = run(project, *args)
        outputs.extend((done.stdout, done.stderr))
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done.stdout

    called = json.loads(ok("call", "leaky", "show_config", "--args", '{"name": "ci"}', "--json"))
    # The structure survives; only the secret is gone, from values and keys alike.
    assert called["structured"]["replicas"] == 3
    assert called["structured"]["endpoint"] == "https://api.example.test/v1?key=***"
    assert "***" in called["structured"]
    ok("call", "leaky", "show_config", "--args", '{"name": "ci"}')
    ok("call", "leaky", "apply_config", "--args", '{"name": "ci"}', "--yes", code=1)

    plan = json.loads(ok("plan", "--file", "plan.yaml", "--json"))
    if plan["status"] == "pending_approval":
        ok("approve", plan["id"])
    ran = json.loads(ok("run", plan["id"], "--json", code=1))
    assert ran["status"] in ("failed", "rolled_back"), ran
    run_id = ran["run_id"]
    status = json.loads(ok("status", run_id, "--json"))
    read = next(s for s in status["steps"] if s["step_id"] == "read")
    assert read["output"]["clients"][0]["auth"] == "Bearer ***"
    ok("status", run_id)
    ok("logs", run_id, "--json")
    ok("logs", run_id)
    ok("show", plan["id"], "--json")
    ok("audit", "--json", "--limit", "500")
    ok("audit")
    ok("tools", "--json")

    params = StdioServerParameters(command=OPSMITH, args=["mcp"], cwd=project, env=child_env(CANARY=CANARY))
    async with Client(stdio_client(params, errlog=errlog)) as client:
        report = await client.call_tool("get_run_status", {"run_id": run_id})
        outputs.append(json.dumps(report.structured_content))
        outputs.extend(getattr(block, "text", "") for block in report.content)
    errlog.flush()
    outputs.append((project / "mcp.stderr.log").read_text())

    leaks = [text for text in outputs if CANARY in text]
    assert leaks == [], leaks[0][:2000]
    stored = everything_stored(project)
    assert stored, "the state directory holds the database and the logs"
    assert CANARY.encode() not in stored

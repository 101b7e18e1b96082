"""`opsmith plan --file`: a plan written by hand, validated, stored with risk and hash, run like any other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sandbox_servers
from tests.integration.test_cli import opsmith

pytestmark = pytest.mark.integration

SCALE = """
title: Scale my-application in staging by hand
environment: staging
steps:
  - {id: before, server: kubernetes, tool: get_deployment,
     args: {deployment_name: my-application, namespace: staging}}
  - id: scale
    server: kubernetes
    tool: scale_deployment
    depends_on: [before]
    args: {deployment_name: my-application, namespace: staging, replicas: 4}
    rollback:
      tool: scale_deployment
      args: {deployment_name: my-application, namespace: staging, replicas: "${steps.before.replicas}"}
    timeout: 60
  - {id: after, server: kubernetes, tool: get_deployment, depends_on: [scale],
     args: {deployment_name: my-application, namespace: staging},
     expect: [{path: replicas, op: "==", value: 4}]}
"""


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    names = ("kubernetes",)
    (tmp_path / "opsmith.yaml").write_text(f"mcpServers:\n{sandbox_servers(state_dir, names)}\n")
    return tmp_path


def test_a_hand_written_plan_is_stored_and_runs(project: Path) -> None:
    (project / "plan.yaml").write_text(SCALE)
    made = opsmith(project, "plan", "--file", "plan.yaml", "--json")
    assert made.returncode == 0, made.stderr
    plan = json.loads(made.stdout)
    assert [s["id"] for s in plan["steps"]] == ["before", "scale", "after"]
    assert plan["hash"].startswith("sha256:") and plan["risk"] in ("MEDIUM", "HIGH")
    assert plan["steps"][1]["timeout"] == 60
    if plan["status"] == "pending_approval":
        assert opsmith(project, "approve", plan["id"]).returncode == 0
    ran = opsmith(project, "run", plan["id"], "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "succeeded"


def test_a_cycle_and_an_unknown_tool_are_named(project: Path) -> None:
    cycle = SCALE.replace("depends_on: [before]", "depends_on: [before, after]")
    (project / "cycle.yaml").write_text(cycle)
    result = opsmith(project, "plan", "--file", "cycle.yaml", "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)
    assert "cycle" in error["error"] and "scale -> after -> scale" in error["error"]
    (project / "typo.yaml").write_text(SCALE.replace("tool: scale_deployment\n", "tool: scale_deploymnt\n"))
    result = opsmith(project, "plan", "--file", "typo.yaml")
    assert (
        result.returncode == 2 and "scale_deploymnt" in result.stderr and "scale_deployment" in result.stderr
    )
    assert json.loads(opsmith(project, "plans", "--json").stdout) == [], "nothing half-written"

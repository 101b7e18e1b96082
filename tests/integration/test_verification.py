"""Verification that can fail: the checks after a deploy hold the run to what the cluster shows.

The sandbox cluster runs as a real one does (--pod-start-ms): apply_deployment returns at once while
the new pods start, and a crash loop shows only afterwards. The verify step waits for the pods to
settle, its expectations fail on what it then sees, and the run rolls back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
from opsmith.sandbox.world import World
from tests.conftest import PYTHON
from tests.integration.test_approval_cli import CONFIG, as_user
from tests.integration.test_run import approved_plan, pods

pytestmark = pytest.mark.integration

REQUEST = "Deploy the code to Kubernetes production"  # my-application, production_deployment
POD_START_MS = 1500


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    """Sandbox servers with no latency; the cluster does not wait for the pods it starts."""
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        extra = f", --pod-start-ms, '{POD_START_MS}'" if name == "kubernetes" else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return tmp_path


def run(project: Path) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    plan = approved_plan(project, REQUEST)
    assert plan["playbook"] == "production_deployment"
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--auto-validate", "--json")
    assert out, err
    result = json.loads(out)
    return code, result, {s["step_id"]: s for s in result["steps"]}


@pytest.mark.timeout(300)  # a whole production run and its rollback, plus CLI reads, on a loaded machine
def test_pods_that_crash_after_the_apply_fail_verification_and_the_run_rolls_back(project: Path) -> None:
    before = pods(project, "my-application")
    old_images = {p["image"] for p in before}

    code, result, steps = run(project)  # the image lacks config/production.json: it crash-loops

    assert code == 1, result
    assert result["status"] == "rolled_back" and result["plan_status"] == "rolled_back"
    deploy, verify = steps["deploy"], steps["verify_pods"]
    assert deploy["output"]["status"] == "Progressing", "the apply returned before the pods started"
    assert deploy["status"] == "rolled_back"
    assert verify["status"] == "failed"
    assert "pods.*.status == 'Running'" in verify["error"] and "CrashLoopBackOff" in verify["error"]
    assert "config/production.json" in verify["error"], "the failing pod says why"
    seen = {p["status"] for p in verify["output"]["pods"]}
    assert "ContainerCreating" not in seen and "CrashLoopBackOff" in seen, "it waited for the pods to settle"
    assert steps["check_service"]["status"] == "pending", "nothing starts after a failure"
    assert "verify_pods" in result["failure"] or "check_logs" in result["failure"]

    after = pods(project, "my-application")
    assert {p["image"] for p in after} == old_images, "the previous image runs again"
    assert len(after) == len(before) and all(p["status"] == "Running" and p["ready"] for p in after)
    audit = json.loads(
        as_user(project, "ada", "audit", "--json", "--subject", result["run_id"], "--limit", "200")[1]
    )
    calls = [e["details"] for e in audit if e["action"] == "tool.called"]
    assert calls[-1]["tool"] == "kubernetes/rollback_deployment" and calls[-1]["ok"]
    assert calls[-1]["args"]["to_backup"] == steps["backup"]["output"]["backup_id"]


@pytest.mark.timeout(300)
def test_a_healthy_deploy_passes_verification_when_the_pods_start_after_the_apply(
    project: Path, state_dir: Path
) -> None:
    World(state_dir).commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config and copy it into the image",
    )

    code, result, steps = run(project)

    assert code == 0, result
    assert result["status"] == "succeeded"
    new_image = steps["push_image"]["output"]["image"]
    assert steps["deploy"]["output"]["status"] == "Progressing"
    verified = steps["verify_pods"]["output"]["pods"]
    assert {p["image"] for p in verified} == {new_image}
    assert all(p["status"] == "Running" and p["ready"] for p in verified)
    assert steps["check_logs"]["output"]["errors"] == 0
    assert steps["check_service"]["output"]["healthy"] is True
    running = pods(project, "my-application")
    assert {p["image"] for p in running} == {new_image} and all(p["ready"] for p in running)

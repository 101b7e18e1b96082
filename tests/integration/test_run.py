"""Runs of approved plans through the real sandbox servers, as a user drives them from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
from opsmith.sandbox.world import World
from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG, as_user

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def approved_plan(project: Path, request: str) -> dict[str, object]:
    code, out, err = as_user(project, "bob", "plan", request, "--json")
    assert code == 0, err
    plan = json.loads(out)
    if plan["status"] == "pending_approval":
        code, _, err = as_user(project, "alice", "approve", str(plan["id"]))
        assert code == 0, err
    return plan


def pods(project: Path, app: str, namespace: str = "production") -> list[dict[str, object]]:
    args = json.dumps({"namespace": namespace, "label_selector": f"app={app}"})
    code, out, err = as_user(project, "ada", "call", "kubernetes", "get_pods", "--args", args, "--json")
    assert code == 0, err
    return list(json.loads(out)["structured"]["pods"])


def test_a_crash_looping_deployment_is_rolled_back_for_real(project: Path) -> None:
    before = {p["image"] for p in pods(project, "my-application")}
    plan = approved_plan(project, "Deploy the code to Kubernetes production")
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--auto-validate", "--json")
    assert code == 1, err
    result = json.loads(out)
    assert result["status"] == "rolled_back" and result["plan_status"] == "rolled_back"
    assert "CrashLoopBackOff" in result["failure"] and "config/production.json" in result["failure"]
    steps = {s["step_id"]: s for s in result["steps"]}
    assert steps["deploy"]["status"] == "failed"
    assert steps["verify_pods"]["status"] == "pending", "nothing starts after a failure"
    after = pods(project, "my-application")
    assert {p["image"] for p in after} == before
    assert {p["status"] for p in after} == {"Running"}

    status = json.loads(as_user(project, "ada", "status", result["run_id"], "--json")[1])
    assert status["status"] == "rolled_back"
    audit = json.loads(
        as_user(project, "ada", "audit", "--json", "--subject", result["run_id"], "--limit", "200")[1]
    )
    calls = [e for e in audit if e["action"] == "tool.called"]
    assert calls[-1]["details"]["tool"] == "kubernetes/rollback_deployment" and calls[-1]["details"]["ok"]
    assert as_user(project, "ada", "audit", "verify")[0] == 0


def test_the_fix_is_pushed_and_the_redeploy_succeeds_after_validation(project: Path, state_dir: Path) -> None:
    World(state_dir).commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config and copy it into the image",
    )
    plan = approved_plan(project, "Deploy the code to Kubernetes production")
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--json")
    assert code == 0, err
    paused = json.loads(out)
    assert paused["status"] == "awaiting_validation"
    assert {s["step_id"]: s["status"] for s in paused["steps"]}["deploy"] == "succeeded"
    code, _, err = as_user(project, "vic", "continue", paused["run_id"])
    assert code == 2 and "vic (viewer) may not execute" in err
    code, out, err = as_user(project, "bob", "continue", paused["run_id"], "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    running = pods(project, "my-application")
    assert {p["status"] for p in running} == {"Running"}
    assert all(str(p["image"]).startswith("myorg/my-application:1.0.0-") for p in running)


def test_plans_that_may_not_run_are_refused(project: Path) -> None:
    code, out, _ = as_user(project, "bob", "plan", "Rollback production deployment", "--json")
    pending = json.loads(out)
    code, _, err = as_user(project, "bob", "run", pending["id"])
    assert code == 2 and "not approved" in err
    plan = approved_plan(project, "Rollback production deployment")
    code, _, err = as_user(project, "vic", "run", str(plan["id"]))
    assert code == 2 and "may not execute" in err
    as_user(project, "bob", "plan", "amend", str(plan["id"]), "--set", "tail_lines=5")
    code, _, err = as_user(project, "bob", "run", str(plan["id"]))
    assert code == 2 and "not approved" in err


def test_a_staging_deployment_runs_to_success(project: Path) -> None:
    plan = approved_plan(project, "Deploy microservice-two to staging")
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert all(s["status"] == "succeeded" for s in result["steps"])
    assert all(s["duration_seconds"] is not None for s in result["steps"])


SECURITY_FIRST = """
name: security_first
description: ship after a security scan only (test playbook)
title: "Ship {{ subject }}"
precedence: 100
match: {actions: [deploy], environments: [production]}
steps:
  - {id: build, capability: build, name: Build, args: {branch: main}}
  - {id: security_scan, capability: security_scan, name: Scan, depends_on: [build]}
  - {id: push_image, capability: push_image, name: Push, depends_on: [security_scan],
     args: {image: "{{ image_repository }}", build_number: "${steps.build.number}"}}
  - {id: deploy, capability: deploy, name: Deploy, depends_on: [push_image],
     args: {image: "${steps.push_image.image}"}, rollback: rollback}
"""


def test_a_step_does_not_start_while_its_compliance_evidence_fails(tmp_path: Path, state_dir: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "security_first.yaml").write_text(SECURITY_FIRST)
    config = CONFIG.replace("  microservice-two: {}", "  microservice-two: {}\n  payments-api: {}").replace(
        'planning: {default_application: my-application, image_repository: "myorg/{app}"}',
        "planning: {default_application: my-application, image_repository: 'myorg/{app}',"
        f" playbook_dirs: ['{playbooks}']}}",
    )
    policy = "policy: {compliance: {production: [security_scan_passed, approval_required]}}\n"
    (tmp_path / "opsmith.yaml").write_text(f"{config}{policy}mcpServers:\n{sandbox_servers(state_dir)}\n")
    before = {p["image"] for p in pods(tmp_path, "payments-api")}
    plan = approved_plan(tmp_path, "Deploy payments-api to production")
    assert plan["playbook"] == "security_first"
    code, out, err = as_user(tmp_path, "bob", "run", str(plan["id"]), "--json")
    assert code == 1, err
    result = json.loads(out)
    steps = {s["step_id"]: s for s in result["steps"]}
    assert steps["push_image"]["status"] == "succeeded"
    assert steps["deploy"]["status"] == "failed" and steps["deploy"]["attempts"] == 1
    assert (
        "security_scan_passed: step security_scan: counts.CRITICAL == 0 but was 1" in steps["deploy"]["error"]
    )
    assert {p["image"] for p in pods(tmp_path, "payments-api")} == before, "production was never touched"


def test_two_processes_never_run_the_same_plan(project: Path) -> None:
    import os
    import subprocess

    from tests.integration.test_cli import OPSMITH

    plan = approved_plan(project, "Deploy microservice-two to staging")
    assert plan["status"] == "approved"
    runners = [
        subprocess.Popen(
            [OPSMITH, "--as", "bob", "run", str(plan["id"]), "--json"],
            cwd=project,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [
        (r.wait(timeout=120), r.stdout.read() if r.stdout else "", r.stderr.read() if r.stderr else "")
        for r in runners
    ]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "already being run" in refused or "not approved" in refused

"""Approvals through the CLI with configured users: pinned to the hash, RBAC, four-eyes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import OS_USER, sandbox_servers
from tests.integration.test_cli import opsmith

pytestmark = pytest.mark.integration

CONFIG = f"""
applications:
  my-application: {{}}
  microservice-two: {{}}
planning: {{default_application: my-application, image_repository: "myorg/{{app}}"}}
rbac:
  allow_as: true
  users: {{alice: approver, carol: approver, bob: deployer, vic: viewer, ada: admin, {OS_USER}: admin}}
"""


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def as_user(project: Path, user: str, *args: str) -> tuple[int, str, str]:
    result = opsmith(project, "--as", user, *args)
    return result.returncode, result.stdout, result.stderr


def test_a_plan_is_approved_by_an_approver_and_amending_voids_it(project: Path) -> None:
    code, out, err = as_user(
        project, "bob", "plan", "Scale my-application in production", "--set", "replicas=3", "--json"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["requested_by"] == "bob" and plan["status"] == "pending_approval"

    code, _, err = as_user(project, "bob", "approve", plan["id"])
    assert code == 2 and "bob (deployer) may not approve" in err
    code, out, err = as_user(project, "alice", "approve", plan["id"], "--json", "-m", "looks right")
    assert code == 0, err
    assert json.loads(out)["status"] == "approved"

    code, out, _ = as_user(project, "alice", "audit", "--json", "--subject", plan["id"])
    entries = json.loads(out)
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("bob", "plan.approval_refused"),
        ("alice", "plan.approved"),
    ]
    assert "bob (deployer) may not approve" in entries[0]["details"]["why"]
    assert entries[1]["details"]["hash"] == plan["hash"]
    assert as_user(project, "alice", "audit", "verify")[0] == 0

    code, out, err = as_user(project, "bob", "plan", "amend", plan["id"], "--set", "replicas=4", "--json")
    assert code == 0, err
    amended = json.loads(out)
    assert amended["status"] == "pending_approval" and amended["hash"] != plan["hash"]


def test_critical_plans_need_two_approvers_other_than_the_requester(project: Path) -> None:
    code, out, err = as_user(project, "alice", "plan", "Delete microservice-two from staging", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["risk"] == "CRITICAL" and plan["approvals_needed"] == 2
    code, _, err = as_user(project, "alice", "approve", plan["id"])
    assert code == 2 and "four-eyes" in err
    code, out, _ = as_user(project, "carol", "approve", plan["id"], "--json")
    assert json.loads(out)["status"] == "pending_approval"
    code, _, err = as_user(project, "carol", "approve", plan["id"])
    assert code == 2 and "already approved" in err
    code, out, _ = as_user(project, "ada", "approve", plan["id"], "--json")
    assert json.loads(out)["status"] == "approved" and json.loads(out)["approvers"] == ["carol", "ada"]


def test_viewers_cannot_plan_and_roles_change_only_by_admins(project: Path) -> None:
    code, _, err = as_user(project, "vic", "plan", "Scale staging to 2 replicas")
    assert code == 2 and "vic (viewer) may not plan" in err
    code, _, err = as_user(project, "bob", "role", "set", "vic", "operator")
    assert code == 2 and "may not admin" in err
    code, _, err = as_user(project, "ada", "role", "set", "ada", "viewer")
    assert code == 2 and "own role" in err
    code, _, err = as_user(project, "ada", "role", "set", "vic", "operator")
    assert code == 0, err
    code, out, _ = as_user(project, "vic", "whoami", "--json")
    assert json.loads(out)["role"] == "operator"


def test_rejected_and_incomplete_plans_cannot_be_approved(project: Path) -> None:
    code, out, _ = as_user(project, "bob", "plan", "Scale my-application in staging", "--json")
    incomplete = json.loads(out)
    code, _, err = as_user(project, "alice", "approve", incomplete["id"])
    assert code == 2 and "incomplete" in err
    code, out, _ = as_user(project, "bob", "plan", "Rollback production deployment", "--json")
    plan = json.loads(out)
    assert as_user(project, "alice", "reject", plan["id"])[0] == 0
    code, _, err = as_user(project, "alice", "approve", plan["id"])
    assert code == 2 and "is rejected" in err

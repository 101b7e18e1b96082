"""`opsmith call` through the same rules as a run: RBAC on the tool, its risk, confirmation, audit."""

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
planning: {{default_application: my-application, image_repository: "myorg/{{app}}"}}
rbac:
  allow_as: true
  users: {{vic: viewer, olga: operator, bob: deployer, ada: admin, {OS_USER}: admin}}
"""

DELETE = ["call", "kubernetes", "delete_deployment", "--args"]
PRODUCTION = json.dumps({"deployment_name": "my-application", "namespace": "production"})


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def as_user(project: Path, user: str, *args: str) -> tuple[int, str, str]:
    result = opsmith(project, "--as", user, *args)
    return result.returncode, result.stdout, result.stderr


def audit(project: Path) -> list[dict[str, object]]:
    code, out, err = as_user(project, "ada", "audit", "--json", "--limit", "100")
    assert code == 0, err
    return [e for e in json.loads(out) if str(e["action"]).startswith("tool.")]


def pods(project: Path, user: str) -> tuple[int, str, str]:
    args = json.dumps({"namespace": "production", "label_selector": "app=my-application"})
    return as_user(project, user, "call", "kubernetes", "get_pods", "--args", args, "--json")


def test_a_viewer_may_read_but_not_delete_and_both_are_audited(project: Path) -> None:
    code, out, err = pods(project, "vic")
    assert code == 0, err
    assert json.loads(out)["structured"]["pods"], out

    code, out, err = as_user(project, "vic", *DELETE, PRODUCTION, "--yes")
    assert code == 2 and "vic (viewer) may not execute" in err, (out, err)

    entries = audit(project)
    assert [(e["actor"], e["action"], e["subject"]) for e in entries] == [
        ("vic", "tool.called", "kubernetes/get_pods"),
        ("vic", "tool.refused", "kubernetes/delete_deployment"),
    ]
    refused = entries[1]["details"]
    assert isinstance(refused, dict) and refused["risk"] == "CRITICAL"
    assert refused["environment"] == "production"
    # The deployment is still there: the refusal came before the call.
    code, out, _ = pods(project, "vic")
    assert code == 0 and json.loads(out)["structured"]["pods"]


def test_the_role_limits_environment_and_risk(project: Path) -> None:
    # An operator may execute in staging up to MEDIUM risk: a delete is CRITICAL, production is not theirs.
    code, _, err = as_user(project, "olga", *DELETE, PRODUCTION, "--yes")
    assert code == 2 and "may not execute in production" in err
    staging = json.dumps({"deployment_name": "my-application", "namespace": "staging"})
    code, _, err = as_user(project, "olga", *DELETE, staging, "--yes")
    assert code == 2 and "up to MEDIUM risk, this is CRITICAL" in err
    assert [e["action"] for e in audit(project)] == ["tool.refused", "tool.refused"]


def test_a_destructive_tool_needs_confirmation_then_runs_audited(project: Path) -> None:
    staging = json.dumps({"deployment_name": "my-application", "namespace": "staging"})
    code, out, err = as_user(project, "ada", *DELETE, staging, "--json")
    assert code == 2, (out, err)
    error = json.loads(out) if out.strip().startswith("{") else {"error": err}
    assert "not confirmed" in str(error["error"])

    code, out, err = as_user(project, "ada", *DELETE, staging, "--yes", "--json")
    assert code == 0, err
    entries = audit(project)
    assert [(e["action"], e["subject"]) for e in entries] == [
        ("tool.refused", "kubernetes/delete_deployment"),
        ("tool.called", "kubernetes/delete_deployment"),
    ]
    called = entries[1]["details"]
    assert isinstance(called, dict) and called["ok"] is True
    assert called["args"] == {"deployment_name": "my-application", "namespace": "staging"}


def test_secret_looking_arguments_never_reach_the_audit_trail(project: Path) -> None:
    args = json.dumps({"namespace": "production", "label_selector": "app=x", "api_token": "s3cr3t-value"})
    code, _, err = as_user(project, "vic", "call", "kubernetes", "get_pods", "--args", args)
    # The sandbox refuses the unknown argument, or answers: either way the call is audited redacted.
    assert code in (0, 2), err
    entries = audit(project)
    assert [e["subject"] for e in entries] == ["kubernetes/get_pods"]
    assert "s3cr3t-value" not in json.dumps(entries) and "***" in json.dumps(entries)


def test_the_os_user_comes_from_the_process_not_from_the_environment(tmp_path: Path) -> None:
    import os
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "opsmith.yaml").write_text(
        f"rbac:\n  users: {{{me}: viewer, mallory-admin: admin}}\nmcpServers: {{}}\n"
    )
    env = {**os.environ, "USER": "mallory-admin", "LOGNAME": "mallory-admin"}
    env.pop("OPSMITH_CONFIG", None)
    result = opsmith(tmp_path, "whoami", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user"] == me and json.loads(result.stdout)["role"] == "viewer"

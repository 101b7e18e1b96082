"""Someone who can write the database but cannot read the signing key: whatever they change, no
unapproved plan runs and no role is gained. Each probe edits the real database (the SQLite file, or
a PostgreSQL database), then uses the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsmith.domain.plan import Plan
from tests.bothdbs import execute, is_postgres
from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG, as_user

pytestmark = pytest.mark.integration

READ_ONLY_PLAN = """
title: Look at my-application in staging
environment: staging
steps:
  - {id: look, server: kubernetes, tool: get_deployment,
     args: {deployment_name: my-application, namespace: staging}}
"""


@pytest.fixture
def url(tmp_path: Path, database_url: str) -> str:
    """The project's database: on SQLite the default file in its state_dir, as users have it."""
    return database_url if is_postgres(database_url) else f"sqlite:///{tmp_path / '.opsmith' / 'opsmith.db'}"


@pytest.fixture
def project(tmp_path: Path, state_dir: Path, url: str) -> Path:
    servers = sandbox_servers(state_dir, ("kubernetes",))
    chosen = f"database_url: '{url}'\n" if is_postgres(url) else ""
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\n{chosen}mcpServers:\n{servers}\n")
    return tmp_path


def rewrite_plan(url: str, plan_id: str, change: Any) -> str:
    """Change the stored plan with `change(data)`, then recompute its hash as anyone could."""
    [(stored,)] = execute(url, "SELECT data FROM plans WHERE id = :id", id=plan_id)
    data = json.loads(stored) if isinstance(stored, str) else stored  # PostgreSQL's driver decodes JSON
    change(data)
    data["hash"] = Plan.model_validate(data).content_hash()
    execute(
        url,
        "UPDATE plans SET data = :data, hash = :hash, status = :status WHERE id = :id",
        data=json.dumps(data),
        hash=data["hash"],
        status=data["status"],
        id=plan_id,
    )
    return str(data["hash"])


def planned(project: Path, user: str, *args: str) -> dict[str, Any]:
    code, out, err = as_user(project, user, "plan", *args, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def refused_run(project: Path, plan_id: str) -> str:
    code, out, err = as_user(project, "bob", "run", plan_id)
    assert code == 2, (out, err)
    code, out, _ = as_user(project, "ada", "audit", "--json", "--subject", plan_id)
    assert "run.refused" in [e["action"] for e in json.loads(out)]
    return err


SCALE = ("Scale my-application in production", "--set", "replicas=3")


def test_an_approved_plan_rewritten_with_its_hash_and_approval_does_not_run(project: Path, url: str) -> None:
    plan = planned(project, "bob", *SCALE)
    assert as_user(project, "alice", "approve", plan["id"])[0] == 0

    def more_replicas(data: dict[str, Any]) -> None:
        for step in data["steps"]:
            if "replicas" in step["args"]:
                step["args"]["replicas"] = 99

    new_hash = rewrite_plan(url, plan["id"], more_replicas)
    execute(url, "UPDATE approvals SET plan_hash = :hash WHERE plan_id = :id", hash=new_hash, id=plan["id"])
    assert "signature does not verify" in refused_run(project, plan["id"])


# The rewrite itself is probed on PostgreSQL by the test above: SQLite only, to save the time.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_plan_that_needs_no_approval_cannot_be_rewritten_into_another(project: Path, url: str) -> None:
    (project / "look.yaml").write_text(READ_ONLY_PLAN)
    plan = planned(project, "bob", "--file", "look.yaml")
    assert plan["status"] == "approved" and not plan["requires_approval"]

    def delete_instead(data: dict[str, Any]) -> None:
        data["steps"][0]["tool"] = "delete_deployment"

    rewrite_plan(url, plan["id"], delete_instead)
    assert "changed outside opsmith" in refused_run(project, plan["id"])


# The rewrite itself is probed on PostgreSQL by the test above: SQLite only, to save the time.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rejected_plan_set_back_to_approved_does_not_run(project: Path, url: str) -> None:
    plan = planned(project, "bob", *SCALE)
    assert as_user(project, "alice", "approve", plan["id"])[0] == 0
    assert as_user(project, "carol", "reject", plan["id"], "-m", "not today")[0] == 0

    def approved_again(data: dict[str, Any]) -> None:
        data["status"] = "approved"

    rewrite_plan(url, plan["id"], approved_again)
    assert "changed outside opsmith" in refused_run(project, plan["id"])


def test_an_approval_row_written_by_hand_does_not_count(project: Path, url: str) -> None:
    plan = planned(project, "bob", *SCALE)
    now = datetime.now(UTC)
    execute(
        url,
        "INSERT INTO approvals (plan_id, plan_hash, approver, role, comment, at, expires_at, seal)"
        " VALUES (:id, :hash, 'alice', 'approver', '', :at, :expires, 'x')",
        id=plan["id"],
        hash=plan["hash"],
        at=now,
        expires=now.replace(year=now.year + 1),
    )
    execute(url, "UPDATE plans SET status = 'approved' WHERE id = :id", id=plan["id"])
    err = refused_run(project, plan["id"])
    assert "not approved" in err or "signature does not verify" in err


def test_a_role_row_written_by_hand_is_ignored(project: Path, url: str) -> None:
    assert as_user(project, "ada", "whoami")[0] == 0  # the database exists once a command ran
    execute(
        url,
        """INSERT INTO user_roles ("user", role, set_by, at, seal) VALUES ('vic', 'admin', 'ada', :at, '')""",
        at=datetime.now(UTC),
    )
    code, out, err = as_user(project, "vic", "whoami", "--json")
    assert code == 0, err
    assert json.loads(out)["role"] == "viewer"
    # A role an admin gives through opsmith is signed, and holds.
    assert as_user(project, "ada", "role", "set", "vic", "operator")[0] == 0
    assert json.loads(as_user(project, "vic", "whoami", "--json")[1])["role"] == "operator"

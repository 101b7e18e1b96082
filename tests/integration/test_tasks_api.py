"""Tasks through a real `opsmith serve` (its orchestrator loop on) and the CLI, over one real SQLite
database: a bug report with missing fields is a 422 naming them, a viewer may not report or assign,
a report whose text a rule explains is assigned and worked by the server's own loop, the agents,
dashboard, metrics and execution logs tell what happened, a person retries a failed task, and the
CLI lists, dry-runs and refuses the same way. A failed production run makes one emergency task."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmith.bootstrap import bootstrap
from opsmith.domain.tasks import Priority
from opsmith.services.tasks import task_for_failed_run
from tests.conftest import OS_USER
from tests.integration.test_cli import opsmith
from tests.served import Served, issue_tokens, serving
from tests.unit.test_explain import CRASH, the_plan, the_run

pytestmark = pytest.mark.integration

CONFIG = f"""
mcpServers: {{}}
rbac:
  users: {{{OS_USER}: admin, olga: operator, vic: viewer}}
tasks: {{orchestrate_seconds: 0.2}}
"""
BUG = {"title": "Checkout fails", "description": "\n".join(CRASH), "severity": "major"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    (root / "opsmith.yaml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with serving(project, need_token=True) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    return issue_tokens(served, {"olga": "operator", "vic": "viewer"}, "test")


def until(served: Served, token: str, path: str, done: Any, seconds: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    with served.client(token) as client:
        while True:
            found: dict[str, Any] = client.get(path).json()
            if done(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def test_bad_bug_reports_are_refused_naming_what_is_wrong(served: Served, tokens: dict[str, str]) -> None:
    with served.client(tokens["olga"]) as olga:
        missing = olga.post("/api/v1/tasks", json={"title": "x"})
        assert missing.status_code == 422 and "missing description, severity" in missing.json()["detail"]
        assert "severity" in missing.json()["hint"]
        broken = olga.post(
            "/api/v1/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422
        unknown_run = olga.post("/api/v1/tasks", json={**BUG, "run_id": "run-nope"})
        assert unknown_run.status_code == 404
    with served.client(tokens["vic"]) as vic:
        assert vic.post("/api/v1/tasks", json=BUG).status_code == 403


def test_a_bug_report_is_worked_by_the_servers_orchestrator(served: Served, tokens: dict[str, str]) -> None:
    with served.client(tokens["olga"]) as olga:
        made = olga.post("/api/v1/tasks", json=BUG)
        assert made.status_code == 201, made.text
        task = made.json()
    assert task["priority"] == "high" and task["status"] == "queued" and task["deadline"]
    done = until(served, tokens["olga"], f"/api/v1/tasks/{task['id']}", lambda t: t["status"] == "succeeded")
    assert done["status"] == "succeeded" and done["agent_id"] == "code-fix-agent"
    assert "code-fix-agent handles bug_report" in done["assignment"]["reason"]
    assert done["result"]["fix"]["file"] == "config/production.json"
    with served.client(tokens["vic"]) as vic:
        agents = vic.get("/api/v1/agents").json()
        assert {a["id"] for a in agents} >= {"deployment-agent", "general-backup"} and all(
            a["alive"] for a in agents
        )
        board = vic.get("/api/v1/status/dashboard").json()
        assert board["tasks"]["succeeded"] >= 1
        numbers = vic.get("/api/v1/status/metrics").json()
        assert numbers["attempts"] >= 1 and numbers["by_agent"]["code-fix-agent"]["succeeded"] >= 1
        logs = vic.get("/api/v1/execution-logs", params={"limit": 5}).json()
        assert any(e["task_id"] == task["id"] and e["outcome"] == "succeeded" for e in logs["items"])
        listed = vic.get("/api/v1/tasks", params={"status": "succeeded"}).json()["items"]
        assert task["id"] in {t["id"] for t in listed}
        assert vic.get("/api/v1/tasks", params={"status": "bogus"}).status_code == 422


def test_people_assign_and_retry_by_role(served: Served, tokens: dict[str, str]) -> None:
    with served.client(tokens["olga"]) as olga:
        task = olga.post(
            "/api/v1/tasks", json={"title": "odd", "description": "blue", "severity": "low"}
        ).json()
    failed = until(served, tokens["olga"], f"/api/v1/tasks/{task['id']}", lambda t: t["status"] == "failed")
    assert failed["status"] == "failed" and "no rule explains" in failed["last_error"]
    with served.client(tokens["vic"]) as vic:
        assert vic.post(f"/api/v1/tasks/{task['id']}/retry").status_code == 403
        assert (
            vic.post(f"/api/v1/tasks/{task['id']}/assign", json={"agent": "general-backup"}).status_code
            == 403
        )
    with served.client(tokens["olga"]) as olga:
        refused = olga.post(f"/api/v1/tasks/{task['id']}/assign", json={"agent": "monitoring-agent"})
        assert refused.status_code == 422 and "does not handle bug_report" in refused.json()["detail"]
        assert olga.post(f"/api/v1/tasks/{task['id']}/assign", json={"agent": "nobody"}).status_code == 404
        again = olga.post(f"/api/v1/tasks/{task['id']}/retry")
        assert again.status_code == 200 and again.json()["max_attempts"] > failed["attempts"]


def test_the_cli_lists_dry_runs_and_refuses_like_the_api(
    served: Served, tokens: dict[str, str], project: Path
) -> None:
    with served.client(tokens["olga"]) as olga:  # its own task: the test stands alone
        made = olga.post("/api/v1/tasks", json={**BUG, "title": "Listed by the CLI"})
        assert made.status_code == 201, made.text
    listed = opsmith(project, "tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    assert made.json()["id"] in {t["id"] for t in json.loads(listed.stdout)}
    agents = opsmith(project, "agents", "--json")
    assert agents.returncode == 0 and len(json.loads(agents.stdout)) == 5
    dry = opsmith(project, "orchestrate", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["dry_run"] is True
    bad = opsmith(project, "tasks", "report", "--title", "x")
    assert bad.returncode == 2 and "missing description, severity" in bad.stderr


def test_a_failed_production_run_makes_one_emergency_task_in_the_real_store(tmp_path: Path) -> None:
    (tmp_path / "opsmith.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    app = bootstrap(tmp_path / "opsmith.yaml", {})
    plan = the_plan()
    plan = plan.model_copy(update={"intent": plan.intent.model_copy(update={"environment": "production"})})
    run = the_run("\n".join(CRASH))
    first, again = task_for_failed_run(app, plan, run), task_for_failed_run(app, plan, run)
    assert first is not None and again is not None and first.id == again.id
    assert first.priority is Priority.EMERGENCY and app.tasks is not None
    assert [t.id for t in app.tasks.find()] == [first.id]

"""Seed 001's second half over the real sandbox and the real server: the deploy fails for lack of
config/production.json and is rolled back; the fix is committed to the sandbox repository and its
signed push delivered to POST /api/v1/webhooks/github (answered 202, re-planned after it); a plan
is made that builds the pushed commit incrementally, reuses the scans of the unchanged code, and
checks the image for the file. A replay and a bad signature are refused; the history lists both
attempts and what changed between them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmith.domain.push import signature_of
from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
from opsmith.sandbox.world import World
from tests.conftest import OS_USER, PYTHON
from tests.integration.test_approval_cli import as_user
from tests.integration.test_run import approved_plan
from tests.served import serving

pytestmark = pytest.mark.integration

SECRET = "push-secret-for-tests"
REPOSITORY = "org/my-application"
CONFIG = f"""
applications:
  my-application: {{}}
planning: {{default_application: my-application, image_repository: "myorg/{{app}}"}}
rbac:
  allow_as: true
  users:
    {{alice: approver, bob: deployer, vic: viewer, ada: admin, github-webhook: deployer, {OS_USER}: admin}}
webhooks:
  github:
    secret: ${{GITHUB_WEBHOOK_SECRET}}
    repositories:
      {REPOSITORY}: {{application: my-application, branches: [main], environment: production}}
"""


@pytest.fixture
def project(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        # The apply returns while the pods start: the checks after it see the crash loop.
        extra = ", --pod-start-ms, '1500'" if name == "kubernetes" else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return tmp_path


def push_body(before: str, after: str) -> bytes:
    commit = {
        "id": after,
        "message": "fix: add config/production.json and copy config/ into the image",
        "author": {"name": "Dev Team", "email": "dev@example.com"},
        "added": ["config/production.json"],
        "modified": ["Dockerfile"],
        "removed": [],
    }
    event = {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"full_name": REPOSITORY},
        "pusher": {"name": "dev"},
        "commits": [commit],
    }
    return json.dumps(event).encode()


def deliver(client: httpx.Client, body: bytes, delivery: str, signature: str | None) -> httpx.Response:
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/api/v1/webhooks/github", content=body, headers=headers)


def settled(client: httpx.Client, token: str, path: str, timeout: float = 120.0) -> dict[str, Any]:
    """The delivery at `path` once the server's worker settled it (bounded polling)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        if found["outcome"] != "received" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.timeout(300)  # a whole production run and its rollback, then a server, on a loaded machine
def test_a_signed_push_of_the_fix_replans_with_what_the_failure_taught(
    project: Path, state_dir: Path
) -> None:
    failed = approved_plan(project, "Deploy the code to Kubernetes production")
    code, out, err = as_user(project, "bob", "run", str(failed["id"]), "--auto-validate", "--json")
    assert code == 1 and json.loads(out)["status"] == "rolled_back", err

    world = World(state_dir)
    before = world.repos.resolve("my-application", "main")
    after = world.commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add config/production.json and copy config/ into the image",
    )
    body = push_body(before, after)

    with serving(project) as server, server.client(timeout=120) as client:
        bad = deliver(client, body, "delivery-bad-signature", signature_of("another secret", body))
        assert bad.status_code == 401, bad.text
        assert bad.json()["type"] == "urn:opsmith:problem:signature-mismatch"
        missing = deliver(client, body, "delivery-unsigned", None)
        assert missing.status_code == 401 and "no X-Hub-Signature-256" in missing.json()["detail"]

        answer = deliver(client, body, "delivery-1", signature_of(SECRET, body))
        assert answer.status_code == 202, answer.text  # recorded; the re-plan follows the answer
        assert answer.json()["outcome"] == "received"
        replayed = deliver(client, body, "delivery-1", signature_of(SECRET, body))
        assert replayed.status_code == 409 and "accepted before" in replayed.json()["detail"]

        assert server.token is not None
        result = settled(client, server.token, answer.json()["status"])
        assert result["outcome"] == "replanned", result
        history = client.get(
            "/api/v1/applications/my-application/history", headers={"Authorization": f"Bearer {server.token}"}
        )
        assert history.status_code == 200, history.text
        found = history.json()
        bearer = {"Authorization": f"Bearer {server.token}"}
        page = client.get("/applications/my-application/history", headers=bearer)
        assert (
            page.status_code == 200
            and "Attempt 2" in page.text
            and "config/production.json (added)" in page.text
        )
        assert 'href="/applications/my-application/history"' in client.get("/", headers=bearer).text

    replan = result["replan"]
    assert replan["failed_plan_id"] == failed["id"] and replan["match"]["verdict"] == "addressed"
    assert replan["cause"]["file"] == "config/production.json"
    assert (replan["before"], replan["after"]) == (before, after)
    plan = json.loads(as_user(project, "alice", "show", result["plan_id"], "--json")[1])
    assert plan["status"] == "pending_approval" and plan["requested_by"] == "github-webhook"
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["build"]["args"]["commit"] == after
    assert steps["build"]["args"]["parameters"]["incremental"] is True
    assert steps["build"]["args"]["parameters"]["since"] == before
    assert "config/production.json" in steps["verify_image"]["args"]["require_files"]
    # Neither scan reads config/ nor the Dockerfile: both recorded results stand, cited.
    assert "quality_scan" not in steps and "security_scan" not in steps
    assert any(s.startswith("quality_scan: skipped") and "quality gate PASSED" in s for s in plan["skipped"])
    met = {r["name"]: r for r in plan["compliance"]}
    assert met["quality_gate_passed"]["met"] is True and "recorded" in met["quality_gate_passed"]["reason"]
    assert any(
        r["rule"] == "replan-after-push" and "risk re-assessed" in r["reason"] for r in plan["context_rules"]
    )
    assert "removed quality_scan" in replan["difference"] and "security_scan" in replan["difference"]

    attempts = found["attempts"]
    assert [a["plan_id"] for a in attempts] == [failed["id"], result["plan_id"]]
    assert attempts[0]["outcome"] == "rolled back" and attempts[0]["commit"] == before
    assert attempts[1]["outcome"].startswith("not run") and attempts[1]["replanned_from"] == failed["id"]
    (change,) = found["changes"]
    assert change["files"] == ["config/production.json (added)", "Dockerfile (modified)"]
    assert change["verdict"] == "addressed"

    code, out, err = as_user(project, "vic", "history", "my-application")
    assert code == 0 and "Attempt 2" in out and "config/production.json (added)" in out, err

    audit = json.loads(as_user(project, "ada", "audit", "--json", "--limit", "500")[1])
    actions = {(e["action"], e["subject"]) for e in audit}
    assert ("plan.replanned", result["plan_id"]) in actions and ("webhook.push", "delivery-1") in actions
    assert not any("delivery-bad-signature" in json.dumps(e) for e in audit), (
        "a refused delivery writes nothing"
    )
    assert SECRET not in json.dumps(audit)


def test_an_unwatched_repository_and_malformed_json_are_refused_by_replay(project: Path) -> None:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "org/unknown"}}).encode()
    (project / "push.json").write_bytes(body)
    code, _, err = as_user(project, "ada", "webhook", "replay", "push.json", "--json")
    assert code == 2 and "before" in err, err  # the first field that is wrong
    event: dict[str, Any] = {
        "ref": "refs/heads/main",
        "before": "a" * 40,
        "after": "b" * 40,
        "repository": {"full_name": "org/unknown"},
        "commits": [],
    }
    (project / "push.json").write_text(json.dumps(event))
    code, _, err = as_user(project, "ada", "webhook", "replay", "push.json")
    assert code == 2 and "org/unknown are not watched" in err
    (project / "push.json").write_text("{not json")
    code, _, err = as_user(project, "ada", "webhook", "replay", "push.json")
    assert code == 2 and "not JSON" in err

"""Push deliveries off the request, against a real `opsmith serve`: a signed push is answered 202 at
once and settled by the server's worker (readable at GET /api/v1/webhooks/deliveries/{id}); a push
that a stopped server recorded but never handled is handled at the next start; a replay and an
unknown delivery are refused. On SQLite and PostgreSQL, a received delivery is taken by one process only."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmith.bootstrap import bootstrap
from opsmith.domain.push import DeliveryOutcome, DeliveryRecord, signature_of
from opsmith.services.replan import HANDLING
from opsmith.store import Database
from opsmith.store.webhooks import WebhookRepository
from tests.conftest import OS_USER
from tests.dbservers import PostgresServer
from tests.served import serving

pytestmark = pytest.mark.integration

SECRET = "push-secret-for-delivery-tests"
REPOSITORY = "org/my-application"
CONFIG = f"""
mcpServers: {{}}
applications:
  my-application: {{}}
rbac:
  users: {{github-webhook: deployer, {OS_USER}: admin}}
webhooks:
  github:
    secret: ${{GITHUB_WEBHOOK_SECRET}}
    repositories:
      {REPOSITORY}: {{application: my-application, branches: [main], environment: production}}
"""
BEFORE, AFTER = "a" * 40, "b" * 40


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    # An absolute state_dir: this test writes to the server's database before starting it.
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}state_dir: {tmp_path / 'state'}\n")
    return tmp_path


def push_body() -> bytes:
    commit = {
        "id": AFTER,
        "message": "fix",
        "added": ["config/production.json"],
        "modified": [],
        "removed": [],
    }
    event = {
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "repository": {"full_name": REPOSITORY},
        "commits": [commit],
    }
    return json.dumps(event).encode()


def settled(client: httpx.Client, token: str, delivery: str, timeout: float = 60.0) -> dict[str, Any]:
    """The delivery once it is no longer `received` (bounded polling), or as it is at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(
            f"/api/v1/webhooks/deliveries/{delivery}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        if found["outcome"] != "received" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_push_is_answered_at_once_and_what_a_stopped_server_left_is_handled_at_start(project: Path) -> None:
    # A server recorded this push, then stopped before handling it: its process is gone.
    app = bootstrap(project / "opsmith.yaml", {"GITHUB_WEBHOOK_SECRET": SECRET})
    assert app.webhooks is not None
    left = DeliveryRecord(
        delivery_id="left-behind",
        event="push",
        repository=REPOSITORY,
        received_at=datetime.now(UTC),
        detail=f"{HANDLING}{socket.gethostname()}:999999999:gone",
        push={
            "ref": "refs/heads/main",
            "before": BEFORE,
            "after": AFTER,
            "added": ["config/production.json"],
        },
    )
    assert app.webhooks.claim(left)
    app.database.dispose()

    body = push_body()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "fresh-1",
        "X-Hub-Signature-256": signature_of(SECRET, body),
        "Content-Type": "application/json",
    }
    with serving(project) as server, server.client(timeout=30) as client:
        assert server.token is not None
        answer = client.post("/api/v1/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert (
            accepted["outcome"] == "received" and accepted["status"] == "/api/v1/webhooks/deliveries/fresh-1"
        )
        replayed = client.post("/api/v1/webhooks/github", content=body, headers=headers)
        assert replayed.status_code == 409, replayed.text

        fresh = settled(client, server.token, "fresh-1")
        assert fresh["outcome"] == "no_failed_run" and "did not fail" in fresh["detail"], fresh
        assert fresh["push"]["added"] == ["config/production.json"] and "commits" not in fresh["push"]
        recovered = settled(client, server.token, "left-behind")
        assert recovered["outcome"] == "no_failed_run", recovered

        unknown = client.get(
            "/api/v1/webhooks/deliveries/nope", headers={"Authorization": f"Bearer {server.token}"}
        )
        assert unknown.status_code == 404 and "no webhook delivery" in unknown.json()["detail"]
        anonymous = client.get("/api/v1/webhooks/deliveries/fresh-1")
        assert anonymous.status_code == 401


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsmith.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def test_a_received_delivery_is_taken_by_one_process_only(url: str) -> None:
    store = WebhookRepository(Database(url))
    for n, delivery in enumerate(("d-2", "d-1")):
        at = datetime(2026, 12, 2, 9, n, tzinfo=UTC)
        assert store.claim(DeliveryRecord(delivery_id=delivery, event="push", received_at=at, detail="by a"))
    assert [d.delivery_id for d in store.unhandled()] == ["d-2", "d-1"]  # oldest first
    assert not store.take("d-1", "by b", seen="by someone else")
    assert store.take("d-1", "by b", seen="by a")
    assert not store.take("d-1", "by c", seen="by a")  # b took it first
    store.settle("d-1", DeliveryOutcome.NO_FAILED_RUN, "nothing failed")
    assert not store.take("d-1", "by c", seen="nothing failed")  # settled: no longer received
    assert [d.delivery_id for d in store.unhandled()] == ["d-2"]
    found = store.delivery("d-1")
    assert found is not None and found.outcome is DeliveryOutcome.NO_FAILED_RUN

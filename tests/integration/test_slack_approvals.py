"""Approve and reject from Slack through the real API: opsmith's FastAPI app served by uvicorn on
127.0.0.1 over a real SQLite store (the whole migration chain), driven with requests signed as Slack
signs them. The approval request itself is delivered first to a local HTTP receiver standing in for
Slack's webhook, and each click is built from the buttons it received; the message updates sent to
the click's response_url arrive at the same receiver. Checked: approval by mapped approvers until
the plan is approved, four-eyes, a stale hash, a double click and Slack's retry deciding once, a bad
signature, a stale timestamp, an unknown user and malformed JSON each a clear refusal, and the
signing secret in no answer, log line, stored byte or reply."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from opsmith.api.app import create_api
from opsmith.bootstrap import App, bootstrap, serving
from opsmith.domain.identity import Identity
from opsmith.domain.plan import PlanStatus
from opsmith.domain.slack import sign
from opsmith.services.hosting import Host
from opsmith.services.notifications import deliver_due, notify_plan
from tests.canary import everything_stored, leaked_forms
from tests.integration.test_notifications import Receiver
from tests.unit.test_slack_approvals import the_plan

pytestmark = pytest.mark.integration

SIGNING_SECRET = "slack-signing-secret-it-5e0c2a"
PATH = "/api/v1/chat/slack/interactions"


def write_project(root: Path, receiver: Receiver) -> Path:
    (root / "opsmith.yaml").write_text(
        f"""
state_dir: {root / ".opsmith"}
rbac:
  users: {{alice: approver, carol: approver, dave: approver}}
notifications:
  send_timeout: 3
  channels:
    chat:
      type: slack
      webhook_url: "${{SLACK_URL}}"
      signing_secret: "${{SLACK_SIGNING_SECRET}}"
      team_id: T0TEAM
      users: {{U0ALICE: alice, U0CAROL: carol, U0DAVE: dave}}
      response_url_prefixes: ["{receiver.url}/actions/"]
  rules:
    - {{events: [approval_requested], channels: [chat]}}
"""
    )
    return root / "opsmith.yaml"


@dataclass
class Site:
    app: App
    url: str
    receiver: Receiver

    def post(
        self, body: bytes, *, secret: str = SIGNING_SECRET, skew: int = 0, **headers: str
    ) -> httpx.Response:
        timestamp = str(int(time.time()) + skew)
        sent = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(secret.encode(), timestamp, body),
            **headers,
        }
        return httpx.post(self.url + PATH, content=body, headers=sent, timeout=10)

    def replies(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first `count` bodies posted to a response_url, once they arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [json.loads(r.body) for r in self.receiver.requests if r.path.startswith("/actions/")]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} replies at the receiver, got {len(found)}")


@contextmanager
def served(project: Path, receiver: Receiver) -> Iterator[Site]:
    environ = {"SLACK_URL": f"{receiver.url}/services/T0TEAM/B0/hook", "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    app, kept = serving(bootstrap(project, environ))
    host = Host(app=app, servers=kept, owner=Identity(user="ops", role="admin", source="embedded-admin"))
    config = uvicorn.Config(
        create_api(host, duties=False), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Site(app, f"http://127.0.0.1:{port}", receiver)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def slack() -> Iterator[Receiver]:
    """Slack's side on loopback: the incoming webhook and the response_urls."""
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def site(tmp_path: Path, slack: Receiver) -> Iterator[Site]:
    with served(write_project(tmp_path, slack), slack) as found:
        found.app.plans.save(the_plan())
        # The approval request goes out as opsmith sends it; the clicks below use its buttons.
        assert [d.channel for d in notify_plan(found.app, found.app.plans.get("plan_x"))] == ["chat"]
        asyncio.run(deliver_due(found.app))
        yield found


def the_message(site: Site) -> dict[str, Any]:
    (message,) = [json.loads(r.body) for r in site.receiver.requests if r.path.startswith("/services/")]
    found: dict[str, Any] = message
    return found


def click(site: Site, user: str, action: str = "opsmith_approve", **changes: Any) -> bytes:
    """The block_actions Slack sends when `user` clicks a button of the delivered message."""
    message = the_message(site)
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    (button,) = [e for e in actions["elements"] if e["action_id"] == action]
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0TEAM"},
        "response_url": f"{site.receiver.url}/actions/T0TEAM/1/{user}",
        "message": {"blocks": message["blocks"]},
        "actions": [{"action_id": action, "value": button["value"], "action_ts": "1.2", **changes}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def problem_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["detail"] and body["hint"] and SIGNING_SECRET not in answer.text
    return body


def test_two_mapped_approvers_approve_from_slack_and_the_message_follows(site: Site) -> None:
    first = site.post(click(site, "U0ALICE"))
    assert first.status_code == 200, first.text
    assert first.json() == {"outcome": "approved", "plan_id": "plan_x", "text": "approved by alice, 1 of 2"}
    second = site.post(click(site, "U0DAVE"))
    assert second.json()["text"] == "approved by alice, dave, 2 of 2"
    assert site.app.plans.get("plan_x").status is PlanStatus.APPROVED
    one, two = site.replies(2)
    assert one["replace_original"] is True and one["text"] == "approved by alice, 1 of 2"
    assert any(b["type"] == "actions" for b in one["blocks"]), "the buttons stay for the second approver"
    assert two["text"] == "approved by alice, dave, 2 of 2"
    assert not any(b["type"] == "actions" for b in two["blocks"])
    assert [a.approver for a in site.app.approvals.for_plan("plan_x")] == ["alice", "dave"]


def test_the_requesters_own_click_is_refused_by_four_eyes(site: Site) -> None:
    answer = site.post(click(site, "U0CAROL"))
    assert answer.json()["outcome"] == "refused" and "four-eyes" in answer.json()["text"]
    (reply,) = site.replies(1)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert site.app.approvals.for_plan("plan_x") == []


def test_a_plan_amended_after_the_message_is_not_approved_from_it(site: Site) -> None:
    body = click(site, "U0ALICE")
    site.app.plans.save(the_plan(replicas=9))
    answer = site.post(body)
    assert answer.json()["outcome"] == "refused" and "not the plan you reviewed" in answer.json()["text"]
    assert site.app.approvals.for_plan("plan_x") == []


def test_a_double_click_and_slacks_retry_decide_once(site: Site) -> None:
    body = click(site, "U0ALICE")
    assert site.post(body).json()["outcome"] == "approved"
    entries = len(site.app.audit.entries(limit=1000))
    for again in (
        site.post(body),
        site.post(body, **{"X-Slack-Retry-Num": "1"}),
        site.post(click(site, "U0ALICE", "opsmith_reject")),
    ):
        assert again.json() == {
            "outcome": "already_decided",
            "plan_id": "plan_x",
            "text": "approved by alice, 1 of 2",
        }
    assert len(site.app.approvals.for_plan("plan_x")) == 1
    assert len(site.app.audit.entries(limit=1000)) == entries, "nothing new is recorded"
    assert site.app.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL
    assert {r["text"] for r in site.replies(4)} == {"approved by alice, 1 of 2"}


def test_a_rejection_from_slack_closes_the_plan(site: Site) -> None:
    answer = site.post(click(site, "U0DAVE", "opsmith_reject"))
    assert answer.json()["text"] == "rejected by dave"
    assert site.app.plans.get("plan_x").status is PlanStatus.REJECTED
    (reply,) = site.replies(1)
    assert reply["text"] == "rejected by dave" and not any(b["type"] == "actions" for b in reply["blocks"])


def test_bad_input_is_a_clear_refusal_and_decides_nothing(site: Site) -> None:
    body = click(site, "U0ALICE")
    wrong = problem_of(site.post(body, secret="not-the-apps-secret"), 401)
    assert "does not match the body" in wrong["detail"]
    stale = problem_of(site.post(body, skew=-600), 401)
    assert "more than 300 s is refused" in stale["detail"]
    unsigned = httpx.post(site.url + PATH, content=body, timeout=10)
    assert "no X-Slack-Request-Timestamp" in problem_of(unsigned, 401)["detail"]
    malformed = problem_of(site.post(b"payload=%7Bnot-json"), 400)
    assert "payload= is not JSON" in malformed["detail"]
    unknown = problem_of(site.post(click(site, "U0ALICE", action_id="something_else")), 400)
    assert "unknown action 'something_else'" in unknown["detail"]
    stranger = site.post(click(site, "U0NOBODY"))
    assert stranger.status_code == 200
    assert stranger.json()["outcome"] == "refused" and "not mapped" in stranger.json()["text"]
    (reply,) = site.replies(1)
    assert reply["response_type"] == "ephemeral" and "U0NOBODY" in reply["text"]
    assert site.app.approvals.for_plan("plan_x") == []
    assert site.app.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL
    audited = [e.action for e in site.app.audit.entries(limit=1000)]
    assert audited.count("plan.slack_refused") == 1 and "plan.approved" not in audited


def test_the_signing_secret_is_in_no_stored_byte_and_no_reply(site: Site, tmp_path: Path) -> None:
    site.post(click(site, "U0ALICE"))
    site.post(click(site, "U0NOBODY"))
    site.post(click(site, "U0ALICE"), secret="wrong")
    site.replies(2)
    sent = b"".join(r.body for r in site.receiver.requests)
    stored = everything_stored(tmp_path)
    assert b"slack_decisions" in stored  # the store was written where it is searched
    for form in leaked_forms(SIGNING_SECRET):
        assert form not in sent and form not in stored

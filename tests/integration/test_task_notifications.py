"""A task's escalations as notifications, through the real outbox (SQLite) to a real HTTP receiver
on loopback: each level is queued once (a second pass, and a new process over the same database,
queue nothing more), delivered signed to the webhook and to Slack, and recorded delivered; a
receiver answering 500 first makes a recorded failure with a retry time, then a delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from opsmith.bootstrap import App, bootstrap
from opsmith.domain.identity import Identity
from opsmith.domain.notifications import DeliveryStatus, NotifyEvent, signature_valid
from opsmith.services.notifications import deliver_due, recent_deliveries
from opsmith.services.tasks import orchestrate_once, report_bug
from tests.fakes import FakeClock
from tests.integration.test_notifications import Receiver

pytestmark = pytest.mark.integration

HOOK_SECRET = "hook-secret-for-tasks-31b7"
ADA = Identity(user="ada", role="admin", source="config")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def open_app(project: Path, receiver: Receiver, clock: FakeClock) -> App:
    environ = {"HOOK_SECRET": HOOK_SECRET, "SLACK_URL": f"{receiver.url}/slack/T0/B0/x"}
    return replace(bootstrap(project / "opsmith.yaml", environ), clock=clock)


@pytest.fixture
def project(tmp_path: Path, receiver: Receiver) -> Path:
    # No agent may take a bug report: it stays queued, runs late and climbs the levels.
    (tmp_path / "opsmith.yaml").write_text(
        f"""
state_dir: {tmp_path / ".opsmith"}
mcpServers: {{}}
rbac:
  users: {{ada: admin}}
tasks:
  agents: {{code-fix-agent: {{enabled: false}}, general-backup: {{enabled: false}}}}
notifications:
  backoff_initial: 30
  channels:
    hook: {{type: webhook, url: "{receiver.url}/hook", secret: "${{HOOK_SECRET}}"}}
    chat: {{type: slack, webhook_url: "${{SLACK_URL}}"}}
  rules:
    - {{events: [task_escalated], channels: [hook, chat]}}
"""
    )
    return tmp_path


def test_each_escalation_level_is_notified_once_and_delivered_signed(
    project: Path, receiver: Receiver
) -> None:
    clock = FakeClock()
    app = open_app(project, receiver, clock)
    task = report_bug(
        app, ADA, {"title": "Checkout fails", "description": "500 on /pay", "severity": "emergency"}
    )

    clock.advance(61 * 60)  # a minute past its one-hour deadline: level 1
    asyncio.run(orchestrate_once(app))
    asyncio.run(orchestrate_once(app))
    receiver.answers = [500]  # the first send fails: recorded, tried again later
    sent = asyncio.run(deliver_due(app, owner="w1"))
    assert sorted(d.status for d in sent) == [DeliveryStatus.DELIVERED, DeliveryStatus.PENDING]
    (failed,) = [d for d in sent if d.status is DeliveryStatus.PENDING]
    assert failed.last_error and "500" in failed.last_error and failed.next_attempt_at is not None
    clock.moment = failed.next_attempt_at
    assert [d.status for d in asyncio.run(deliver_due(app, owner="w1"))] == [DeliveryStatus.DELIVERED]

    (hook,) = receiver.on("/hook")
    assert signature_valid(HOOK_SECRET.encode(), hook.body, hook.headers["X-Opsmith-Signature"])
    body = json.loads(hook.body)
    assert body["event"] == "task_escalated" and body["title"] == f"Task escalated: {task.id}"
    summary = body["notice"]["summary"]
    assert f"Task {task.id} (Checkout fails) escalated to level 1, to the on-call engineer" in summary
    assert "overdue by 1 min" in summary and body["notice"]["task_id"] == task.id
    (slack,) = receiver.on("/slack/T0/B0/x")
    assert json.loads(slack.body)["text"].startswith(f"Task escalated: {task.id}: Task {task.id}")

    # Another process over the same database, 31 minutes on: level 2, told once; level 1 not again.
    clock.advance(31 * 60)
    again = open_app(project, receiver, clock)
    asyncio.run(orchestrate_once(again))
    asyncio.run(orchestrate_once(again))
    asyncio.run(deliver_due(again, owner="w2"))
    told = [d for d in recent_deliveries(again, limit=50) if d.notice.event is NotifyEvent.TASK_ESCALATED]
    assert sorted((d.subject, d.channel) for d in told) == [
        (f"{task.id}@{level}", channel) for level in (1, 2) for channel in ("chat", "hook")
    ]
    assert {d.status for d in told} == {DeliveryStatus.DELIVERED}
    (_, second) = receiver.on("/hook")
    assert "escalated to level 2, to the team lead" in json.loads(second.body)["notice"]["summary"]
    assert [e.action for e in again.audit.entries(subject=task.id)].count("task.escalated") == 2

"""Notifications over fakes: routing by event and environment, one queued row per notice and
channel, the messages (Slack buttons naming plan and hash, a signed webhook body, plain e-mail),
retries on a stored, jittered, growing delay, giving up, the admin's retry, and no secret anywhere.
Property tests: the HMAC signature and the parsing of routes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.config import NotificationsConfig, parse_config
from opsmith.domain.errors import ConfigError, UsageError
from opsmith.domain.identity import Identity
from opsmith.domain.intent import Intent
from opsmith.domain.notifications import (
    DeliveryFailed,
    DeliveryStatus,
    Notice,
    NotifyEvent,
    UnknownNotificationError,
    backoff,
    sign,
    signature_valid,
)
from opsmith.domain.notify_messages import (
    APPROVE_ACTION,
    REJECT_ACTION,
    email_text,
    slack_payload,
    webhook_body,
)
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.state import RunStatus
from opsmith.services.access import AccessRefused
from opsmith.services.approvals import approve
from opsmith.services.notifications import (
    deliver_due,
    notify,
    notify_plan,
    notify_run,
    recent_deliveries,
    retry_delivery,
)
from opsmith.services.planning import make_plan
from opsmith.services.running import start_run
from tests.fakes import FakeOutbox, FakeSenders, FakeTools, FakeWorld, fake_app
from tests.unit.test_explain import CANARY, the_plan, the_run
from tests.unit.test_services import CONFIG as SERVICES
from tests.unit.test_services import SCALE, SPECS, answers, who

HOOK_SECRET = "hook-secret-4f1a9c"
SLACK_URL = "https://hooks.slack.test/services/T000/B000/XXXXSECRET"
CONFIG = """
mcpServers:
  kubernetes: {command: "unused-in-unit-tests", env: {API_TOKEN: "${K8S_TOKEN}"}}
rbac:
  users: {ada: admin, vic: viewer}
api: {public_url: "https://opsmith.example.com/"}
notifications:
  max_attempts: 3
  backoff_initial: 10
  backoff_max: 60
  channels:
    chat: {type: slack, webhook_url: "${SLACK_URL}"}
    hook: {type: webhook, url: "https://receiver.test/hook", secret: "${HOOK_SECRET}"}
    mail: {type: email, host: smtp.test, username: ops, password: "${SMTP_PASSWORD}", from: ops@x.test,
           to: [oncall@x.test]}
  rules:
    - {events: [approval_requested], channels: [chat]}
    - {events: [run_failed, rolled_back], environments: [production], channels: [chat, mail]}
    - {events: [rolled_back, succeeded], channels: [hook]}
"""
ADMIN = Identity(user="ada", role="admin", source="config")
VIEWER = Identity(user="vic", role="viewer", source="config")


def world(failures: list[Exception] | None = None) -> tuple[FakeWorld, FakeOutbox, FakeSenders]:
    found = fake_app(CONFIG, FakeTools(specs=[]))
    outbox, senders = FakeOutbox(), FakeSenders(failures or [])
    environ = {
        "K8S_TOKEN": CANARY,
        "SLACK_URL": SLACK_URL,
        "HOOK_SECRET": HOOK_SECRET,
        "SMTP_PASSWORD": "pw-1234",
    }
    found.app = replace(found.app, outbox=outbox, senders=senders, environ=environ)
    return found, outbox, senders


def production(plan: Plan, **update: Any) -> Plan:
    intent = Intent(request="deploy", action="deploy", environment="production")
    return plan.model_copy(update={"intent": intent, **update})


def waiting_plan() -> Plan:
    return production(
        the_plan(),
        status=PlanStatus.PENDING_APPROVAL,
        requires_approval=True,
        approvals_needed=2,
        hash="sha256:abc",
    )


def deliver(w: FakeWorld) -> list[Any]:
    return asyncio.run(deliver_due(w.app, owner="worker-1"))


def test_an_approval_request_goes_to_its_rule_s_channel_once_with_approve_and_reject_buttons() -> None:
    w, _outbox, senders = world()
    plan = waiting_plan()
    assert [d.channel for d in notify_plan(w.app, plan)] == ["chat"]
    assert notify_plan(w.app, plan) == []  # decided twice, queued once
    assert notify_plan(w.app, plan.model_copy(update={"status": PlanStatus.APPROVED})) == []
    assert [d.status for d in deliver(w)] == [DeliveryStatus.DELIVERED]
    (delivery, channel), = senders.sent  # fmt: skip
    assert channel.type == "slack"
    payload = slack_payload(delivery.notice)
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: json.loads(e["value"]) for e in actions["elements"]}
    assert buttons == {
        APPROVE_ACTION: {"plan_id": "plan-1", "plan_hash": "sha256:abc"},
        REJECT_ACTION: {"plan_id": "plan-1", "plan_hash": "sha256:abc"},
    }
    text = json.dumps(payload)
    assert "production" in text and "HIGH" in text and "https://opsmith.example.com/plans/plan-1" in text
    # An amended plan (a new hash) needs approving again: it is asked again.
    assert len(notify_plan(w.app, plan.model_copy(update={"hash": "sha256:def"}))) == 1


def test_a_rolled_back_production_run_carries_its_root_cause_to_chat_mail_and_hook() -> None:
    w, _outbox, _senders = world()
    plan = production(the_plan())
    run = the_run("CrashLoopBackOff: Error: Cannot find module './config/production.json'")
    queued = notify_run(w.app, plan, run)
    assert sorted(d.channel for d in queued) == ["chat", "hook", "mail"]
    notice = queued[0].notice
    assert notice.event is NotifyEvent.ROLLED_BACK and notice.run_id == "run-1"
    assert notice.root_cause is not None and "production.json" in notice.root_cause
    assert notice.fix and notice.confidence and notice.link == "https://opsmith.example.com/runs/run-1"
    subject, body = email_text(notice)
    assert subject == "[opsmith] Run rolled back: plan-1 (production)"
    assert "Root cause:" in body and "opsmith explain run-1" in body
    assert notify_run(w.app, plan, run) == []


def test_rules_route_by_environment_and_event() -> None:
    w, _, _ = world()
    staging = the_plan().model_copy(
        update={"intent": Intent(request="x", action="deploy", environment="staging")}
    )
    rolled = the_run("boom")
    assert [d.channel for d in notify_run(w.app, staging, rolled)] == ["hook"]
    succeeded = the_run("boom", status=RunStatus.SUCCEEDED).model_copy(update={"run_id": "run-2"})
    assert [d.channel for d in notify_run(w.app, staging, succeeded)] == ["hook"]
    cancelled = the_run("boom", status=RunStatus.CANCELLED).model_copy(update={"run_id": "run-3"})
    assert notify_run(w.app, staging, cancelled) == []


def test_no_secret_reaches_a_notice_or_a_failure_reason() -> None:
    w, outbox, _ = world([DeliveryFailed(f"POST to {SLACK_URL} failed with pw-1234 and {CANARY}")])
    plan = production(the_plan(), request=f"deploy with token {CANARY}")
    notify_run(w.app, plan, the_run(f"CrashLoopBackOff; env API_TOKEN={CANARY} {CANARY}"))
    asyncio.run(deliver_due(w.app))
    text = json.dumps([d.model_dump(mode="json") for d in outbox.rows.values()])
    assert "***" in text
    for secret in (CANARY, SLACK_URL, "pw-1234", HOOK_SECRET):
        assert secret not in text


def test_a_failed_send_waits_a_growing_jittered_delay_then_gives_up() -> None:
    failures: list[Exception] = [DeliveryFailed("receiver down") for _ in range(3)]
    w, outbox, senders = world(failures)
    (queued,) = notify_plan(w.app, waiting_plan())
    t0 = w.clock.now()
    (first,) = deliver(w)
    assert (
        first.status is DeliveryStatus.PENDING and first.attempts == 1 and first.last_error == "receiver down"
    )
    assert t0 + timedelta(seconds=5) <= first.next_attempt_at <= t0 + timedelta(seconds=10)
    assert deliver(w) == []  # not straight back: not due yet
    w.clock.advance(10)
    (second,) = deliver(w)
    assert second.attempts == 2
    waited = second.next_attempt_at - w.clock.now()
    assert timedelta(seconds=10) <= waited <= timedelta(seconds=20)
    w.clock.advance(20)
    (third,) = deliver(w)
    assert third.status is DeliveryStatus.FAILED and third.attempts == 3 and third.next_attempt_at is None
    assert outbox.get(queued.id).status is DeliveryStatus.FAILED and senders.sent == []


def test_a_failure_no_retry_mends_gives_up_at_once_and_a_receiver_s_retry_after_is_kept() -> None:
    w, outbox, _ = world([DeliveryFailed("answered 404", retryable=False)])
    (queued,) = notify_plan(w.app, waiting_plan())
    (done,) = deliver(w)
    assert done.status is DeliveryStatus.FAILED and outbox.get(queued.id).last_error == "answered 404"
    w, _, _ = world([DeliveryFailed("answered 429", retry_after=50)])
    notify_plan(w.app, waiting_plan())
    (later,) = deliver(w)
    assert later.next_attempt_at == w.clock.now() + timedelta(seconds=50)


def test_only_an_admin_retries_a_given_up_delivery_and_it_is_audited() -> None:
    w, _outbox, senders = world([DeliveryFailed("nope", retryable=False)])
    (queued,) = notify_plan(w.app, waiting_plan())
    deliver(w)
    with pytest.raises(AccessRefused):
        retry_delivery(w.app, VIEWER, queued.id)
    with pytest.raises(UnknownNotificationError):
        retry_delivery(w.app, ADMIN, "ntf_none")
    retried = retry_delivery(w.app, ADMIN, queued.id)
    assert retried.status is DeliveryStatus.PENDING and retried.max_attempts == 1 + 3
    assert [e.action for e in w.audit.entries(queued.id)] == ["notification.retried"]
    with pytest.raises(UsageError, match="only a failed one"):
        retry_delivery(w.app, ADMIN, queued.id)
    assert [d.status for d in deliver(w)] == [DeliveryStatus.DELIVERED] and len(senders.sent) == 1
    assert recent_deliveries(w.app)[0].status is DeliveryStatus.DELIVERED


def test_a_channel_removed_from_the_configuration_is_given_up_with_the_reason() -> None:
    w, _outbox, _ = world()
    notify(w.app, NotifyEvent.SUCCEEDED, "run-9", {"summary": "ok", "plan_id": "p", "environment": "dev"})
    bare = NotificationsConfig()
    w.app = replace(w.app, config=w.app.config.model_copy(update={"notifications": bare}))
    (done,) = deliver(w)
    assert done.status is DeliveryStatus.FAILED and "no longer configured" in (done.last_error or "")


def test_the_webhook_body_is_stable_and_holds_the_signed_timestamp() -> None:
    w, _, _ = world()
    (queued,) = notify(w.app, "succeeded", "run-9", {"summary": "ok", "plan_id": "p"})
    body = webhook_body(queued, 1700000000)
    assert json.loads(body)["timestamp"] == 1700000000 and json.loads(body)["id"] == queued.id
    assert body == webhook_body(queued, 1700000000)


@settings(max_examples=200, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), other=st.binary(max_size=512))
def test_a_signature_verifies_its_body_only(secret: bytes, body: bytes, other: bytes) -> None:
    header = sign(secret, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_valid(secret, body, header)
    assert signature_valid(secret, other, header) is (other == body)
    assert not signature_valid(secret + b"x", body, header)
    assert not signature_valid(secret, body, None) and not signature_valid(secret, body, header[:-1])


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(1, 60), initial=st.floats(0.01, 100), draw=st.floats(0, 1))
def test_backoff_grows_is_capped_and_never_comes_straight_back(
    attempt: int, initial: float, draw: float
) -> None:
    maximum = initial * 8
    wait = backoff(attempt, initial=initial, maximum=maximum, draw=draw)
    base = min(maximum, initial * 2 ** (attempt - 1))
    assert base / 2 <= wait <= base + 1e-9 and wait > 0


_EVENTS = st.sampled_from([e.value for e in NotifyEvent])
_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
_ENVS = st.lists(st.sampled_from(["*", "production", "staging", "none"]), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None)
@given(
    channels=st.lists(_NAMES, min_size=1, max_size=4, unique=True),
    rules=st.lists(
        st.tuples(st.lists(_EVENTS, min_size=1, max_size=4), _ENVS, st.lists(_NAMES, min_size=1, max_size=3)),
        max_size=4,
    ),
    event=_EVENTS,
    environment=st.sampled_from([None, "production", "staging", "development"]),
)
def test_routes_parse_when_they_name_configured_channels_and_match_as_written(
    channels: list[str],
    rules: list[tuple[list[str], list[str], list[str]]],
    event: str,
    environment: str | None,
) -> None:
    spec = {
        "notifications": {
            "channels": {n: {"type": "slack", "webhook_url": "${URL}"} for n in channels},
            "rules": [{"events": e, "environments": envs, "channels": names} for e, envs, names in rules],
        }
    }
    text = json.dumps(spec)  # JSON is YAML
    if any(n not in channels for _, _, names in rules for n in names):
        with pytest.raises(ConfigError, match="not configured"):
            parse_config(text, source="t")
        return
    config = parse_config(text, source="t").notifications
    expected = [
        n
        for events, envs, names in rules
        if event in events and any(e in ("*", environment or "none") for e in envs)
        for n in names
    ]
    assert config.channels_for(NotifyEvent(event), environment) == list(dict.fromkeys(expected))


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        ('{type: slack, webhook_url: "https://hooks.slack.com/services/T/B/secret"}', "environment variable"),
        ('{type: webhook, url: "https://x", secret: "inline-secret"}', "environment variable"),
        ('{type: webhook, url: "ftp://x", secret: "${S}"}', "http"),
        (
            '{type: email, host: h, username: u, password: "${P}", starttls: false, from: a@b, to: [c@d]}',
            "starttls",
        ),
        ("{type: email, host: h, from: a@b, to: []}", "to"),
        ('{type: pager, url: "https://x"}', "type"),
    ],
)
def test_a_channel_with_an_inline_secret_or_a_bad_value_is_refused(channel: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(f"notifications:\n  channels:\n    c: {channel}\n", source="t")


def test_a_notice_round_trips_through_json() -> None:
    w, _, _ = world()
    (queued,) = notify_plan(w.app, waiting_plan())
    assert Notice.model_validate_json(queued.notice.model_dump_json()) == queued.notice


def test_the_planner_and_the_run_queue_their_notices_where_they_decide_them() -> None:
    routes = """
notifications:
  channels: {chat: {type: slack, webhook_url: "${SLACK_URL}"}}
  rules: [{events: [approval_requested, succeeded], environments: [production], channels: [chat]}]
"""
    w = fake_app(SERVICES + routes, FakeTools(specs=list(SPECS), answers=answers()))
    outbox = FakeOutbox()
    w.app = replace(w.app, outbox=outbox, senders=FakeSenders())
    plan = asyncio.run(make_plan(w.app, who("bob", "deployer"), SCALE, {}))
    (asked,) = outbox.rows.values()
    assert asked.notice.event is NotifyEvent.APPROVAL_REQUESTED and asked.subject == f"{plan.id}@{plan.hash}"
    approve(w.app, who("alice", "approver"), plan.id, "ok")
    _, state, _ = asyncio.run(start_run(w.app, who("bob", "deployer"), plan.id))
    events = sorted(d.notice.event.value for d in outbox.rows.values())
    assert events == ["approval_requested", "succeeded"]
    (done,) = [d for d in outbox.rows.values() if d.notice.event is NotifyEvent.SUCCEEDED]
    assert done.subject == state.run_id and done.notice.environment == "production"


def test_the_server_delivers_due_notifications_among_its_duties() -> None:
    import time

    from fastapi.testclient import TestClient

    from opsmith.api.app import create_api
    from opsmith.services.hosting import Host
    from tests.fakes import FakeServerHost

    w, outbox, senders = world()
    quick = w.app.config.notifications.model_copy(update={"deliver_seconds": 0.05})
    w.app = replace(w.app, config=w.app.config.model_copy(update={"notifications": quick}))
    (queued,) = notify_plan(w.app, waiting_plan())
    host = Host(app=w.app, servers=FakeServerHost(w.tools), owner=ADMIN)
    with TestClient(create_api(host, duties=True)):
        deadline = time.monotonic() + 5
        while outbox.get(queued.id).status is DeliveryStatus.PENDING and time.monotonic() < deadline:
            time.sleep(0.02)
    assert outbox.get(queued.id).status is DeliveryStatus.DELIVERED and len(senders.sent) == 1


def test_a_sender_s_unexpected_error_is_a_retried_failure_that_quotes_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, _, _ = world([RuntimeError(f"bug while posting to {SLACK_URL}")])
    notify_plan(w.app, waiting_plan())
    (done,) = deliver(w)
    assert (
        done.status is DeliveryStatus.PENDING
        and done.last_error == "sending to channel 'chat' failed: RuntimeError"
    )
    assert "bug while posting" in caplog.text and SLACK_URL not in caplog.text


def test_a_channel_whose_variable_is_not_set_fails_without_retrying_and_names_the_variable() -> None:
    from opsmith.config import SlackChannel
    from opsmith.tools.notify import ChannelSenders

    w, _, _ = world()
    (queued,) = notify_plan(w.app, waiting_plan())
    channel = SlackChannel(type="slack", webhook_url="${UNSET_SLACK_URL}")
    with pytest.raises(DeliveryFailed) as failed:
        asyncio.run(ChannelSenders({}, timeout=1).send(queued, channel))
    assert not failed.value.retryable and "${UNSET_SLACK_URL}" in failed.value.message
    assert failed.value.hint is not None and "export UNSET_SLACK_URL" in failed.value.hint

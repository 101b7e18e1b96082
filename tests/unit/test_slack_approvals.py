"""Approve and reject from Slack over fakes: a signed click decides as the mapped opsmith user with
the CLI's RBAC, four-eyes and hash pinning; a click decides once; unknown Slack users, wrong
workspaces, stale hashes and bad signatures are refused clearly; the reply goes only to an allowed
response_url, and a reply that fails leaves the decision standing. No secret anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest

from opsmith.domain.notifications import DeliveryFailed
from opsmith.domain.notify_messages import APPROVE_ACTION, REJECT_ACTION
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.risk import Risk
from opsmith.domain.slack import DecisionStatus, SignatureRefused, sign
from opsmith.services.chat_approvals import Outcome, SlackReply, SlackRequest, handle_interaction, send_reply
from tests.fakes import FakeChatDecisions, FakeResponder, FakeTools, FakeWorld, fake_app
from tests.unit.test_engine_helpers import plan_to_approve

SIGNING_SECRET = "slack-signing-secret-1b7e90c4"
REPLY_URL = "https://hooks.slack.com/actions/T0TEAM/123/reply-capability-9d2f"
CONFIG = """
rbac:
  users: {alice: approver, carol: approver, dave: approver, vic: viewer}
notifications:
  channels:
    chat:
      type: slack
      webhook_url: "${SLACK_URL}"
      signing_secret: "${SLACK_SIGNING_SECRET}"
      team_id: T0TEAM
      users: {U0ALICE: alice, U0CAROL: carol, U0DAVE: dave, U0VIC: vic, U0GHOST: ghost}
"""
BLOCKS = [{"type": "header"}, {"type": "actions", "block_id": "opsmith_decision:plan_x"}]


def the_plan(risk: Risk = Risk.CRITICAL, needed: int = 2, replicas: int = 3) -> Plan:
    now = fake_app("{}", FakeTools(specs=[])).clock.now()
    return plan_to_approve(
        risk=risk, needed=needed, created_at=now, requested_by="carol", args={"replicas": replicas}
    )


def world(config: str = CONFIG, environ: dict[str, str] | None = None) -> tuple[FakeWorld, FakeResponder]:
    found = fake_app(config, FakeTools(specs=[]))
    responder = FakeResponder()
    environ = {"SLACK_URL": "https://hooks.slack.com/services/T/B/x", "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    found.app = replace(
        found.app, environ=environ, chat_decisions=FakeChatDecisions(), chat_responder=responder
    )
    found.plans.save(the_plan())
    return found, responder


def click_body(user: str, action: str = APPROVE_ACTION, plan_hash: str | None = None, **extra: Any) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": extra.pop("team", "T0TEAM")},
        "response_url": extra.pop("response_url", REPLY_URL),
        "message": {"blocks": BLOCKS},
        "actions": [
            {
                "action_id": action,
                "value": json.dumps({"plan_id": "plan_x", "plan_hash": plan_hash or the_plan().hash}),
                "action_ts": "1700000000.000100",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(
    w: FakeWorld, body: bytes, secret: str = SIGNING_SECRET, skew: int = 0, **headers: str
) -> SlackRequest:
    timestamp = str(int(w.clock.now().timestamp()) + skew)
    return SlackRequest(
        body=body, timestamp=timestamp, signature=sign(secret.encode(), timestamp, body), **headers
    )


def click(w: FakeWorld, user: str, action: str = APPROVE_ACTION, **extra: Any) -> SlackReply:
    return handle_interaction(w.app, signed(w, click_body(user, action, **extra)))


def everything_kept(w: FakeWorld, responder: FakeResponder) -> str:
    chat = w.app.chat_decisions
    assert isinstance(chat, FakeChatDecisions)
    return json.dumps(
        [
            [e.model_dump(mode="json") for e in w.audit.chain],
            [a.model_dump(mode="json") for a in w.approvals.approvals],
            [d.model_dump(mode="json") for d in chat.rows.values()],
            responder.sent,
        ]
    )


def test_mapped_approvers_approve_one_by_one_and_the_message_tells_the_tally() -> None:
    w, _ = world()
    first = click(w, "U0ALICE")
    assert (first.outcome, first.text) == (Outcome.APPROVED, "approved by alice, 1 of 2")
    assert first.response_url == REPLY_URL and first.message["replace_original"] is True
    assert [b["type"] for b in first.message["blocks"]] == ["header", "actions", "context"], "buttons stay"
    assert w.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL
    second = click(w, "U0DAVE")
    assert (second.outcome, second.text) == (Outcome.APPROVED, "approved by alice, dave, 2 of 2")
    assert [b["type"] for b in second.message["blocks"]] == ["header", "context"], "no buttons once decided"
    assert w.plans.get("plan_x").status is PlanStatus.APPROVED
    approvals = w.approvals.for_plan("plan_x")
    assert [(a.approver, a.role, a.plan_hash) for a in approvals] == [
        ("alice", "approver", the_plan().hash),
        ("dave", "approver", the_plan().hash),
    ]
    assert "U0ALICE" in approvals[0].comment
    assert [(actor, action) for actor, action, _ in w.audit.actions()] == [
        ("alice", "plan.approved"),
        ("dave", "plan.approved"),
    ]


def test_the_requesters_own_click_is_refused_by_four_eyes_and_only_they_see_it() -> None:
    w, _ = world()
    refused = click(w, "U0CAROL")
    assert refused.outcome is Outcome.REFUSED
    assert "four-eyes" in refused.text and "ask another approver" in refused.text
    assert refused.message == {"response_type": "ephemeral", "replace_original": False, "text": refused.text}
    assert w.approvals.approvals == []
    assert [a for _, a, _ in w.audit.actions()] == ["plan.approval_refused"]
    again = click(w, "U0CAROL")  # a refusal decided nothing: the next click is judged afresh
    assert again.outcome is Outcome.REFUSED


def test_a_plan_amended_after_the_message_cannot_be_approved_or_rejected_from_it() -> None:
    w, _ = world()
    old_hash = the_plan().hash
    w.plans.save(the_plan(replicas=9))  # the same plan, amended: another hash
    approve = click(w, "U0ALICE", plan_hash=old_hash)
    reject = click(w, "U0DAVE", REJECT_ACTION, plan_hash=old_hash)
    for refused in (approve, reject):
        assert refused.outcome is Outcome.REFUSED and "not the plan you reviewed" in refused.text
    assert w.approvals.approvals == [] and w.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL


def test_a_double_click_or_slacks_retry_decides_once_and_records_nothing_new() -> None:
    w, _ = world()
    body = click_body("U0ALICE")
    assert handle_interaction(w.app, signed(w, body)).outcome is Outcome.APPROVED
    kept = (len(w.audit.chain), len(w.approvals.approvals))
    retried = handle_interaction(w.app, signed(w, body, retry="1"))
    again = click(w, "U0ALICE")
    change_of_mind = click(w, "U0ALICE", REJECT_ACTION)
    for reply in (retried, again, change_of_mind):
        assert (reply.outcome, reply.text) == (Outcome.ALREADY_DECIDED, "approved by alice, 1 of 2")
        assert reply.message["replace_original"] is True
    assert (len(w.audit.chain), len(w.approvals.approvals)) == kept
    assert w.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL


def test_a_click_left_deciding_by_a_stopped_process_is_taken_over_after_a_minute() -> None:
    w, _ = world()
    chat = w.app.chat_decisions
    assert isinstance(chat, FakeChatDecisions)
    body = click_body("U0ALICE")
    assert handle_interaction(w.app, signed(w, body)).outcome is Outcome.APPROVED
    key = next(iter(chat.rows))
    chat.rows[key] = chat.rows[key].model_copy(update={"status": DecisionStatus.DECIDING})
    w.approvals.approvals.clear()  # as if the process stopped before recording the approval
    busy = handle_interaction(w.app, signed(w, body))
    assert busy.outcome is Outcome.ALREADY_DECIDED and "being decided" in busy.text
    w.clock.advance(61)
    assert handle_interaction(w.app, signed(w, body)).outcome is Outcome.APPROVED


def test_a_rejection_names_who_rejected_and_closes_the_message() -> None:
    w, _ = world()
    click(w, "U0ALICE")
    rejected = click(w, "U0DAVE", REJECT_ACTION)
    assert (rejected.outcome, rejected.text) == (Outcome.REJECTED, "rejected by dave")
    assert [b["type"] for b in rejected.message["blocks"]] == ["header", "context"]
    assert w.plans.get("plan_x").status is PlanStatus.REJECTED
    late = click(w, "U0CAROL")
    assert late.outcome is Outcome.REFUSED and "rejected" in late.text


@pytest.mark.parametrize(
    ("user", "extra", "said"),
    [
        ("U0NOBODY", {}, "Slack user U0NOBODY is not mapped to an opsmith user"),
        ("U0ALICE", {"team": "T0OTHER"}, "Slack workspace T0OTHER is not the one channel chat accepts"),
        ("U0GHOST", {}, "ghost (Slack user U0GHOST) is not among rbac.users"),
    ],
)
def test_an_unknown_slack_user_is_refused_in_slack_and_audited_never_approving(
    user: str, extra: dict[str, str], said: str
) -> None:
    w, _ = world()
    refused = click(w, user, **extra)
    assert refused.outcome is Outcome.REFUSED and said in refused.text
    assert refused.message["response_type"] == "ephemeral"
    assert w.approvals.approvals == [] and w.plans.get("plan_x").status is PlanStatus.PENDING_APPROVAL
    ((actor, action, subject),) = w.audit.actions()
    assert (actor, action, subject) == (f"slack:{user}", "plan.slack_refused", "plan_x")


def test_a_mapped_viewer_may_not_approve() -> None:
    w, _ = world()
    refused = click(w, "U0VIC")
    assert refused.outcome is Outcome.REFUSED and "vic (viewer) may not approve" in refused.text
    assert w.approvals.approvals == []


def test_without_rbac_no_slack_user_can_decide() -> None:
    w, _ = world(
        CONFIG.replace(
            "rbac:\n  users: {alice: approver, carol: approver, dave: approver, vic: viewer}\n", ""
        )
    )
    refused = click(w, "U0ALICE")
    assert refused.outcome is Outcome.REFUSED and "no rbac section" in refused.text
    assert w.approvals.approvals == []


@pytest.mark.parametrize(
    ("secret", "skew", "said"),
    [
        ("another-apps-secret-0000", 0, "does not match the body"),
        (SIGNING_SECRET, -301, "more than 300 s is refused"),
        (SIGNING_SECRET, 301, "more than 300 s is refused"),
    ],
)
def test_a_bad_signature_or_a_stale_timestamp_is_refused_writing_nothing(
    secret: str, skew: int, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    w, _ = world()
    caplog.set_level(logging.INFO)
    with pytest.raises(SignatureRefused, match=said):
        handle_interaction(w.app, signed(w, click_body("U0ALICE"), secret=secret, skew=skew))
    assert w.audit.chain == [] and w.approvals.approvals == []
    assert SIGNING_SECRET not in caplog.text and "refused a Slack callback" in caplog.text


def test_without_a_signing_secret_set_every_callback_is_refused() -> None:
    w, _ = world()
    w.app = replace(w.app, environ={"SLACK_URL": "https://hooks.slack.com/services/T/B/x"})
    with pytest.raises(SignatureRefused, match="no Slack channel has a signing secret") as refused:
        handle_interaction(w.app, signed(w, click_body("U0ALICE")))
    assert "SLACK_SIGNING_SECRET" in (refused.value.hint or "")


def test_a_response_url_outside_the_allowed_prefixes_gets_no_reply_but_the_click_counts() -> None:
    w, responder = world()
    reply = click(w, "U0ALICE", response_url="http://169.254.169.254/latest/meta-data/")
    assert reply.outcome is Outcome.APPROVED and reply.response_url is None
    assert asyncio.run(send_reply(w.app, reply)) is False
    assert responder.sent == [] and len(w.approvals.approvals) == 1


def test_the_reply_is_sent_to_the_response_url_and_a_failure_leaves_the_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, responder = world()
    reply = click(w, "U0ALICE")
    assert asyncio.run(send_reply(w.app, reply)) is True
    ((url, message),) = responder.sent
    assert url == REPLY_URL and message["text"] == "approved by alice, 1 of 2"
    responder.failures = [DeliveryFailed(f"POST to {REPLY_URL} was answered 404 Not Found")]
    second = click(w, "U0DAVE")
    assert asyncio.run(send_reply(w.app, second)) is False
    assert w.plans.get("plan_x").status is PlanStatus.APPROVED
    assert "could not update the Slack message of plan plan_x" in caplog.text
    assert REPLY_URL not in caplog.text, "the response_url is a capability: never logged"
    assert SIGNING_SECRET not in everything_kept(w, responder)


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ('signing_secret: "8f742231b10e8888abcd"', "must be an environment variable reference"),
        ('response_url_prefixes: ["https://hooks.slack.com"]', "must be http(s)://HOST[:PORT]/PATH"),
        ('response_url_prefixes: ["https://user@hooks.slack.com/"]', "must be http(s)://HOST[:PORT]/PATH"),
        ("response_url_prefixes: []", "at least 1 item"),
        ("users: {alice: alice}", "should match pattern"),
    ],
)
def test_the_slack_settings_are_checked_where_they_are_written(field: str, said: str) -> None:
    from opsmith.config import parse_config
    from opsmith.domain.errors import ConfigError

    text = f"""
notifications:
  channels:
    chat:
      type: slack
      webhook_url: "${{SLACK_URL}}"
      {field}
"""
    with pytest.raises(ConfigError, match=re.escape(said)):
        parse_config(text, source="opsmith.yaml (test)")


def test_the_signing_secret_is_one_of_the_values_redacted() -> None:
    w, _ = world()
    assert SIGNING_SECRET in w.app.config.notifications.secret_values(w.app.environ)

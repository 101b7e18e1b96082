"""The messages of a notice, one per kind of channel. Pure: the senders only transmit them.

- Slack: an incoming-webhook JSON body with blocks; an approval request carries Approve and Reject
  buttons whose `value` names the plan id and the plan hash (a decision from Slack is pinned to the
  hash it was shown, as `opsmith approve` is).
- Webhook: a JSON body; the sender signs its exact bytes (X-Opsmith-Signature). The body carries
  the same `timestamp` as the X-Opsmith-Timestamp header, so the signed bytes hold it: a receiver
  that refuses old timestamps refuses a replayed body.
- E-mail: a subject line and plain text.
"""

from __future__ import annotations

import json
from typing import Any

from opsmith.domain.notifications import Delivery, Notice, NotifyEvent

APPROVE_ACTION = "opsmith_approve"
REJECT_ACTION = "opsmith_reject"

_TITLES = {
    NotifyEvent.APPROVAL_REQUESTED: "Approval requested",
    NotifyEvent.RUN_FAILED: "Run failed",
    NotifyEvent.ROLLED_BACK: "Run rolled back",
    NotifyEvent.SUCCEEDED: "Run succeeded",
    NotifyEvent.NEEDS_ATTENTION: "Run needs attention",
    NotifyEvent.CANCELLED: "Run cancelled",
    NotifyEvent.TASK_ESCALATED: "Task escalated",
}


def title(notice: Notice) -> str:
    where = f" ({notice.environment})" if notice.environment else ""
    return f"{_TITLES[notice.event]}: {notice.task_id or notice.plan_id}{where}"


def facts(notice: Notice) -> list[tuple[str, str]]:
    """The labelled facts every channel shows, in order; absent ones left out."""
    found = [
        ("Task", notice.task_id),
        ("Plan", notice.plan_id),
        ("Run", notice.run_id),
        ("Environment", notice.environment),
        ("Risk", notice.risk),
        ("Requested by", notice.requested_by or None),
        ("Approvals needed", str(notice.approvals_needed) if notice.approvals_needed else None),
        ("Root cause", notice.root_cause),
        ("Fix", notice.fix),
        ("Confidence", notice.confidence),
        ("Console", notice.link),
    ]
    return [(label, value) for label, value in found if value]


def button_value(notice: Notice) -> str:
    """What a Slack button carries back: the plan and the hash the approver was shown."""
    return json.dumps({"plan_id": notice.plan_id, "plan_hash": notice.plan_hash}, separators=(",", ":"))


def slack_payload(notice: Notice) -> dict[str, Any]:
    """The incoming-webhook body: `text` for notifications and clients without blocks, then blocks."""
    heading = title(notice)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(notice.summary)}},
    ]
    short = [(label, value) for label, value in facts(notice) if label in _SHORT]
    if short:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"} for label, value in short
                ],
            }
        )
    if notice.root_cause:
        text = f"*Root cause*: {_slack_escape(notice.root_cause)}"
        if notice.fix:
            text += f"\n*Fix*: {_slack_escape(notice.fix)}"
        if notice.confidence:
            text += f"\n*Confidence*: {notice.confidence}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if notice.link:
        link = {"type": "mrkdwn", "text": f"<{notice.link}|Open in the console>"}
        blocks.append({"type": "context", "elements": [link]})
    if notice.event is NotifyEvent.APPROVAL_REQUESTED:
        value = button_value(notice)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"opsmith_decision:{notice.plan_id}"[:255],
                "elements": [
                    _button("Approve", APPROVE_ACTION, value, "primary"),
                    _button("Reject", REJECT_ACTION, value, "danger"),
                ],
            }
        )
    return {"text": f"{heading}: {notice.summary}", "blocks": blocks}


_SHORT = ("Task", "Plan", "Run", "Environment", "Risk", "Requested by", "Approvals needed")


def _button(text: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn gives <, > and & meaning (links, mentions); a plan's text must not.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(delivery: Delivery, timestamp: int) -> bytes:
    """The exact bytes a generic webhook receives and whose HMAC it checks."""
    notice = delivery.notice
    body = {
        "id": delivery.id,
        "event": notice.event.value,
        "timestamp": timestamp,
        "attempt": delivery.attempts,
        "title": title(notice),
        "notice": notice.model_dump(mode="json"),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def email_text(notice: Notice) -> tuple[str, str]:
    """The subject and the plain-text body of the e-mail."""
    lines = [notice.summary, ""]
    width = max((len(label) for label, _ in facts(notice)), default=0)
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in facts(notice)]
    if notice.request:
        lines += ["", f"Request: {notice.request}"]
    if notice.event is NotifyEvent.APPROVAL_REQUESTED:
        lines += ["", f"To approve: opsmith approve {notice.plan_id}"]
    elif notice.run_id and notice.event is not NotifyEvent.SUCCEEDED:
        lines += ["", f"Details: opsmith explain {notice.run_id}"]
    return f"[opsmith] {title(notice)}", "\n".join(lines) + "\n"

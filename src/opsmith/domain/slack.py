"""Slack's interactive callbacks, as data: the request signature, the `block_actions` payload of an
Approve or Reject click, the origins a `response_url` may have, and the messages sent back. Pure.

Slack signs each request with the app's signing secret: `X-Slack-Signature: v0=<hex HMAC-SHA256
of "v0:" + X-Slack-Request-Timestamp + ":" + the raw body>`. A request is accepted only when that
signature matches (compared in constant time) and its timestamp is within five minutes of now,
either way, so a captured request cannot be replayed later.

A click decides once per Slack user and plan version: the decision is recorded under the key
`team:user:plan_id:plan_hash` (`ChatDecision`) before the approval is asked for, so a second click
or Slack's own retry (X-Slack-Retry-Num) finds it and only shows the state the plan is in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict

from opsmith.domain.errors import AuthenticationError, UsageError
from opsmith.domain.notify_messages import APPROVE_ACTION, REJECT_ACTION

__all__ = [
    "MAX_BODY",
    "MAX_SKEW_SECONDS",
    "RETRY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ChatDecision",
    "DecisionStatus",
    "Interaction",
    "InteractionRefused",
    "SignatureRefused",
    "Verdict",
    "decided_message",
    "ephemeral_message",
    "parse_interaction",
    "response_url_allowed",
    "sign",
    "state_line",
    "verify",
]

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RETRY_HEADER = "X-Slack-Retry-Num"
MAX_SKEW_SECONDS = 300
# Slack's interaction payloads are a few kilobytes, the original message's blocks included.
MAX_BODY = 256 * 1024
STATUS_BLOCK = "opsmith_status"

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_SIGN_HINT = "send it from the Slack app whose signing secret the channel's signing_secret references"


class SignatureRefused(AuthenticationError):
    """A Slack callback whose signature is missing or wrong, or whose timestamp is missing, not a
    number, or more than five minutes from now. The message never quotes the secret."""


class InteractionRefused(UsageError):
    """A signed Slack callback opsmith cannot act on: a payload that is not the JSON of a
    `block_actions` click, or a click on a button opsmith did not make."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Slack-Signature Slack sends for `body` at `timestamp`."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def verify(
    secrets: Sequence[bytes], timestamp: str | None, signature: str | None, body: bytes, now: float
) -> int:
    """Which of `secrets` signed `body` (its index); SignatureRefused saying what was wrong
    otherwise. `now`: Unix seconds."""
    if not timestamp or not signature:
        missing = TIMESTAMP_HEADER if not timestamp else SIGNATURE_HEADER
        raise SignatureRefused(f"the Slack request has no {missing} header", hint=_SIGN_HINT)
    if not _TIMESTAMP.match(timestamp):
        raise SignatureRefused(
            f"the Slack request's {TIMESTAMP_HEADER} is not a number of seconds", hint=_SIGN_HINT
        )
    skew = abs(now - int(timestamp))
    if skew > MAX_SKEW_SECONDS:
        raise SignatureRefused(
            f"the Slack request's timestamp is {skew:.0f} s from now; more than {MAX_SKEW_SECONDS} s is"
            " refused, so a captured request cannot be replayed",
            hint="check this host's clock, or send a new request",
        )
    presented = signature.strip().encode("utf-8", "replace")
    found = None
    for index, secret in enumerate(secrets):
        # Every secret is compared, in constant time each: which one matched takes no shorter.
        if hmac.compare_digest(sign(secret, timestamp, body).encode(), presented) and found is None:
            found = index
    if found is None:
        if _SIGNATURE.match(signature.strip()):
            what = "does not match the body under any configured signing secret"
        else:
            what = "is not of the form v0=<64 hex digits>"
        raise SignatureRefused(f"the Slack request's {SIGNATURE_HEADER} {what}", hint=_SIGN_HINT)
    return found


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


_VERDICTS = {APPROVE_ACTION: Verdict.APPROVE, REJECT_ACTION: Verdict.REJECT}


class Interaction(BaseModel):
    """One click on an opsmith Approve or Reject button, as the signed payload tells it."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    user_id: str
    user_name: str = ""
    verdict: Verdict
    plan_id: str
    plan_hash: str
    response_url: str | None = None
    action_ts: str = ""
    blocks: list[dict[str, Any]] = []  # the original message's, to show it again with the outcome

    @property
    def key(self) -> str:
        """One decision per Slack user and plan version."""
        return f"{self.team_id}:{self.user_id}:{self.plan_id}:{self.plan_hash}"


def parse_interaction(body: bytes) -> Interaction:
    """The click in a form-encoded `payload=<JSON>` body; InteractionRefused saying what is wrong."""
    if len(body) > MAX_BODY:
        raise _malformed(f"the body is {len(body)} bytes, more than {MAX_BODY}")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed("the body is not form-encoded UTF-8") from exc
    payloads = form.get("payload", [])
    if len(payloads) != 1:
        raise _malformed("the body must have exactly one payload= field")
    try:
        payload = json.loads(payloads[0])
    except ValueError as exc:
        raise _malformed("payload= is not JSON") from exc
    if not isinstance(payload, dict):
        raise _malformed("payload= is not a JSON object")
    if payload.get("type") != "block_actions":
        raise _malformed(f"payload type {_shown(payload.get('type'))} is not block_actions")
    user, team = payload.get("user"), payload.get("team")
    user_id = _text(user.get("id") if isinstance(user, dict) else None, "user.id")
    team_id = _text(team.get("id") if isinstance(team, dict) else None, "team.id")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise _malformed("payload has no actions")
    ours = [a for a in actions if isinstance(a, dict) and a.get("action_id") in _VERDICTS]
    if not ours:
        named = [_shown(a.get("action_id")) for a in actions if isinstance(a, dict)]
        raise InteractionRefused(
            f"unknown action {', '.join(named) or 'without an action_id'}: opsmith's buttons are"
            f" {APPROVE_ACTION} and {REJECT_ACTION}",
            hint="only the Approve and Reject buttons of an opsmith approval request are handled here",
        )
    action = ours[0]
    plan_id, plan_hash = _button_value(action.get("value"))
    response_url = payload.get("response_url")
    if response_url is not None and not isinstance(response_url, str):
        raise _malformed("response_url is not a string")
    message = payload.get("message")
    blocks = message.get("blocks") if isinstance(message, dict) else None
    return Interaction(
        team_id=team_id,
        user_id=user_id,
        user_name=str(user.get("username") or user.get("name") or "") if isinstance(user, dict) else "",
        verdict=_VERDICTS[action["action_id"]],
        plan_id=plan_id,
        plan_hash=plan_hash,
        response_url=response_url or None,
        action_ts=str(action.get("action_ts") or ""),
        blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
    )


def _button_value(value: object) -> tuple[str, str]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _malformed("the button's value is not the JSON opsmith put there ({plan_id, plan_hash})")
    return _text(parsed.get("plan_id"), "value.plan_id"), _text(parsed.get("plan_hash"), "value.plan_hash")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _malformed(f"{where} is missing or not a short string")
    return value


def _shown(value: object) -> str:
    return repr(value)[:60]


def _malformed(reason: str) -> InteractionRefused:
    return InteractionRefused(
        f"malformed Slack interaction: {reason}",
        hint="send Slack's block_actions callback as it is: form-encoded payload=<JSON>",
    )


def response_url_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """Whether opsmith may POST to `url`: the same scheme, host and port as one of `prefixes`, and a
    path under that prefix's; no user info, no backslash, no whitespace or control character, so no
    parser can read another host into it (the URL comes from the payload: a server-side request
    forgery would otherwise be one signed click away)."""
    if any(c in url for c in "\\@") or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        target = urlsplit(url)
        port = target.port
    except ValueError:
        return False
    if target.scheme not in ("http", "https") or not target.hostname:
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (
            target.scheme == allowed.scheme
            and target.hostname == allowed.hostname
            and (port or _PORTS[target.scheme]) == (allowed.port or _PORTS[allowed.scheme])
            and target.path.startswith(allowed.path or "/")
        ):
            return True
    return False


_PORTS = {"http": 80, "https": 443}


def state_line(status: str, approvers: Sequence[str], needed: int, *, rejected_by: str | None = None) -> str:
    """What the message says of the plan now: "approved by alice, 1 of 2", "rejected by bob"."""
    if status == "rejected":
        return f"rejected by {rejected_by}" if rejected_by else "rejected"
    if approvers:
        return f"approved by {', '.join(approvers)}, {len(approvers)} of {needed}"
    if status == "pending_approval":
        return f"waiting for approval, 0 of {needed}"
    return status.replace("_", " ")


def decided_message(blocks: Sequence[dict[str, Any]], line: str, *, open_: bool) -> dict[str, Any]:
    """The original message again, with `line` as its status; its buttons only while the plan is
    `open_` (still waiting for approvals)."""
    kept = [b for b in blocks if b.get("block_id") != STATUS_BLOCK and (open_ or b.get("type") != "actions")]
    status = {"type": "context", "block_id": STATUS_BLOCK, "elements": [{"type": "mrkdwn", "text": line}]}
    return {"replace_original": True, "text": line, "blocks": [*kept, status]}


def ephemeral_message(text: str) -> dict[str, Any]:
    """A reply only the clicker sees; the message and its buttons stay for the others."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


class DecisionStatus(StrEnum):
    DECIDING = "deciding"  # claimed; the approval is being recorded
    DECIDED = "decided"


class ChatDecision(BaseModel):
    """A Slack user's decision on one plan version, recorded so it is taken once."""

    model_config = ConfigDict(frozen=True)

    key: str
    plan_id: str
    plan_hash: str
    slack_team: str
    slack_user: str
    user: str  # the opsmith user it was made as
    verdict: Verdict
    status: DecisionStatus = DecisionStatus.DECIDING
    outcome: str | None = None
    created_at: datetime
    updated_at: datetime

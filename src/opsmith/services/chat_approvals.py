"""Approve and reject from Slack: a signed click becomes `approvals.approve` or `approvals.reject`
as the Slack user's opsmith identity, so RBAC, four-eyes and hash pinning are the CLI's.

1. The request is verified against the signing secret of every Slack channel that has one (the
   channel whose secret signed it is the one whose user map applies); a request no secret signed,
   or whose timestamp is more than five minutes away, is refused (SignatureRefused). Nothing is
   written for it: an unauthenticated caller must not grow the audit trail; it is logged.
2. The Slack user (and workspace, when the channel names one) maps to an opsmith user through the
   channel's `users`; their role is the one `rbac.users` (or an admin's stored change) gives them.
   Someone unmapped gets a refusal only they see in Slack, and an audit entry; never an approval.
3. The decision is claimed first under `team:user:plan:hash`, so a second click on the same
   message, or Slack's retry of a slow answer, decides nothing and shows the plan's state.
4. The message is updated through the click's response_url, only when its origin is allowed:
   "approved by alice, 1 of 2", "rejected by bob"; a refusal goes to the clicker alone (ephemeral),
   so the buttons stay for the other approvers. A reply that fails is logged; the decision stands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from opsmith.bootstrap import App
from opsmith.config import SlackChannel, resolve
from opsmith.domain.approval import ApprovalError, PlanChanged
from opsmith.domain.errors import ConfigError, NotFoundError, OpsmithError
from opsmith.domain.identity import Identity
from opsmith.domain.plan import PlanStatus
from opsmith.domain.redaction import Redactor
from opsmith.domain.slack import (
    ChatDecision,
    DecisionStatus,
    Interaction,
    SignatureRefused,
    Verdict,
    decided_message,
    ephemeral_message,
    parse_interaction,
    response_url_allowed,
    state_line,
    verify,
)
from opsmith.services import approvals
from opsmith.services.identity import current_role

__all__ = ["Outcome", "SlackReply", "SlackRequest", "handle_interaction", "send_reply"]

_log = logging.getLogger(__name__)

# A claim left `deciding` this long belongs to a process that stopped mid-decision.
_STALE_CLAIM = timedelta(seconds=60)


@dataclass(frozen=True)
class SlackRequest:
    """What the face read from Slack's request: the raw body, as signed, and the headers."""

    body: bytes
    timestamp: str | None
    signature: str | None
    retry: str | None = None  # X-Slack-Retry-Num: Slack sends a click again when answered late


class Outcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    REFUSED = "refused"
    ALREADY_DECIDED = "already_decided"


@dataclass(frozen=True)
class SlackReply:
    """What became of a click, and the message for its response_url (None: none may be sent)."""

    outcome: Outcome
    text: str
    plan_id: str
    response_url: str | None = None
    message: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, str]:
        return {"outcome": self.outcome.value, "plan_id": self.plan_id, "text": self.text}


def handle_interaction(app: App, request: SlackRequest) -> SlackReply:
    """Verify, map and decide one click. SignatureRefused when Slack did not sign it (or long ago),
    InteractionRefused when it is not a click on opsmith's buttons; any other refusal is a reply."""
    now = app.clock.now().astimezone(UTC)
    channels = _signing_channels(app)
    try:
        index = verify(
            [secret for _, _, secret in channels],
            request.timestamp,
            request.signature,
            request.body,
            now.timestamp(),
        )
    except SignatureRefused as refused:
        _log.warning("refused a Slack callback: %s", refused.message)
        raise
    name, channel, _ = channels[index]
    click = parse_interaction(request.body)
    if request.retry:
        _log.info("Slack retried a click on plan %s (retry %s)", click.plan_id, request.retry[:8])
    url = click.response_url
    if url is not None and not response_url_allowed(url, channel.response_url_prefixes):
        _log.warning(
            "a Slack click on plan %s named a response_url outside the allowed prefixes of channel %s;"
            " its message is not updated",
            click.plan_id,
            name,
        )
        url = None
    identity = _identity(app, name, channel, click)
    if isinstance(identity, str):
        return SlackReply(Outcome.REFUSED, identity, click.plan_id, url, ephemeral_message(identity))
    return _decide(app, identity, click, url, now)


async def send_reply(app: App, reply: SlackReply) -> bool:
    """Show the outcome in Slack; whether it was accepted. A failure is logged, never raised: the
    decision was taken and stays."""
    if reply.response_url is None or app.chat_responder is None:
        return False
    redactor = Redactor([reply.response_url, *_secret_values(app)])
    timeout = min(app.config.notifications.send_timeout, 5.0) * 2
    try:
        await asyncio.wait_for(app.chat_responder.respond(reply.response_url, reply.message), timeout)
    except TimeoutError:
        _log.warning("the Slack reply about plan %s took longer than %g s", reply.plan_id, timeout)
        return False
    except OpsmithError as failed:
        _log.warning(
            "could not update the Slack message of plan %s: %s", reply.plan_id, redactor.text(str(failed))
        )
        return False
    except Exception as error:  # a responder's bug must not reach the request that already answered
        _log.error(
            "the Slack reply about plan %s failed unexpectedly: %s",
            reply.plan_id,
            redactor.text(f"{type(error).__name__}: {error}"),
        )
        return False
    return True


def _signing_channels(app: App) -> list[tuple[str, SlackChannel, bytes]]:
    found = []
    for name, channel in app.config.notifications.channels.items():
        if not isinstance(channel, SlackChannel) or channel.signing_secret is None:
            continue
        try:
            secret = resolve(channel.signing_secret, app.environ, where=f"notification channel {name!r}")
        except ConfigError as missing:
            _log.warning("Slack callbacks cannot be checked for channel %s: %s", name, missing.message)
            continue
        if secret:
            found.append((name, channel, secret.encode()))
    if not found:
        raise SignatureRefused(
            "no Slack channel has a signing secret to check this callback with",
            hint="set signing_secret: ${SLACK_SIGNING_SECRET} on the slack channel, and export the"
            " Slack app's signing secret in that variable",
        )
    return found


def _identity(app: App, name: str, channel: SlackChannel, click: Interaction) -> Identity | str:
    """The opsmith identity the Slack user acts as, or the reason they may not act (audited)."""
    where = f"notifications.channels.{name}.users"
    user = channel.users.get(click.user_id)
    if channel.team_id is not None and click.team_id != channel.team_id:
        why = f"Slack workspace {click.team_id} is not the one channel {name} accepts ({channel.team_id})"
    elif user is None:
        why = (
            f"Slack user {click.user_id} is not mapped to an opsmith user, so cannot approve or reject:"
            f" ask an admin to add it under {where}"
        )
    elif app.config.rbac is None:
        why = (
            f"{user} cannot decide from Slack: this opsmith has no rbac section, so it has no users"
            " to map Slack users to; add rbac.users"
        )
    else:
        role = current_role(app, user)
        if role is not None:
            return Identity(user=user, role=role, source="slack")
        why = f"{user} (Slack user {click.user_id}) is not among rbac.users; ask an admin to add them"
    details = {"slack_user": click.user_id, "slack_team": click.team_id, "channel": name, "why": why}
    app.audit.append(f"slack:{click.user_id}", "plan.slack_refused", click.plan_id, details)
    return why


def _decide(app: App, identity: Identity, click: Interaction, url: str | None, now: datetime) -> SlackReply:
    claim = ChatDecision(
        key=click.key,
        plan_id=click.plan_id,
        plan_hash=click.plan_hash,
        slack_team=click.team_id,
        slack_user=click.user_id,
        user=identity.user,
        verdict=click.verdict,
        created_at=now,
        updated_at=now,
    )
    store = app.chat_decisions
    earlier = None if store is None else store.claim(claim, stale_before=now - _STALE_CLAIM)
    if earlier is not None:
        return _as_it_stands(app, earlier, click, url, now)
    comment = f"from Slack ({click.user_id})"
    try:
        if click.verdict is Verdict.APPROVE:
            plan, state = approvals.approve(
                app, identity, click.plan_id, comment, now, seen_hash=click.plan_hash
            )
            line = state_line(plan.status.value, state.approvers, state.needed)
            outcome = Outcome.APPROVED
        else:
            _pinned(app, click)
            plan = approvals.reject(app, identity, click.plan_id, comment)
            line = state_line(plan.status.value, [], plan.approvals_needed, rejected_by=identity.user)
            outcome = Outcome.REJECTED
    except (ApprovalError, NotFoundError) as refused:
        if store is not None:
            store.release(click.key)
        text = f"Not {click.verdict.value}d: {refused.message}" + (
            f" ({refused.hint})" if refused.hint else ""
        )
        return SlackReply(Outcome.REFUSED, text, click.plan_id, url, ephemeral_message(text))
    except BaseException:
        if store is not None:
            store.release(click.key)
        raise
    if store is not None:
        store.settle(click.key, line, now)
    waiting = plan.status is PlanStatus.PENDING_APPROVAL
    return SlackReply(outcome, line, plan.id, url, decided_message(click.blocks, line, open_=waiting))


def _pinned(app: App, click: Interaction) -> None:
    # A rejection from Slack is pinned to the version shown, as an approval is: the plan it names
    # may since have become another one, which its reviewers have not seen.
    plan = app.plans.get(click.plan_id)
    if plan.hash != click.plan_hash:
        raise PlanChanged(
            f"plan {plan.id} is not the plan you reviewed: you saw {click.plan_hash[:19]}, it is now"
            f" {plan.hash[:19]}",
            hint="review the plan as it is now, then decide on that",
        )


def _as_it_stands(
    app: App, earlier: ChatDecision, click: Interaction, url: str | None, now: datetime
) -> SlackReply:
    """A click already decided (or being decided): the plan's state now; nothing is recorded."""
    if earlier.status is DecisionStatus.DECIDING:
        text = f"your click on plan {click.plan_id} is being decided; it counts once"
        return SlackReply(Outcome.ALREADY_DECIDED, text, click.plan_id, url, ephemeral_message(text))
    plan = app.plans.get(click.plan_id)
    state = approvals.state_of(app, plan, now)
    rejected_by = earlier.user if earlier.verdict is Verdict.REJECT else None
    line = state_line(plan.status.value, state.approvers, state.needed, rejected_by=rejected_by)
    waiting = plan.status is PlanStatus.PENDING_APPROVAL
    return SlackReply(
        Outcome.ALREADY_DECIDED, line, plan.id, url, decided_message(click.blocks, line, open_=waiting)
    )


def _secret_values(app: App) -> list[str]:
    return app.config.notifications.secret_values(app.environ)

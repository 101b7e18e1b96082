"""Notifications: queue a notice for every channel the rules route its event to, deliver the due
ones, list them, retry a given-up one.

`notify` writes to the outbox right after the event is decided (a plan stored needing approval, a
run settled), so a process that stops before sending loses nothing. `deliver_due` is the worker:
`opsmith serve` runs it every `notifications.deliver_seconds`, `opsmith notify deliver` once. It
claims due rows under a lease, sends each, and records it delivered, or failed with the reason and,
while attempts remain and the failure is one a retry can mend, the time of the next attempt
(exponential backoff with jitter, or later when the receiver asked so).

Slack's interactive buttons (Approve, Reject) carry the plan id and hash. Their callbacks arrive at
POST /api/v1/chat/slack/interactions (services.chat_approvals): Slack's signature is verified under
the channel's `signing_secret` (HMAC-SHA256 over `v0:timestamp:body`, constant time, timestamps more
than five minutes away refused), the Slack user is mapped through the channel's `users` to an
opsmith user, and services.approvals.approve(..., seen_hash=<the button's plan_hash>) or reject is
called as them, so RBAC, four-eyes and hash pinning stay the CLI's. A click decides once; the
message is updated through the click's response_url ("approved by alice, 1 of 2").
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.audit import jsonable
from opsmith.domain.errors import OpsmithError, UsageError
from opsmith.domain.identity import Action, Identity
from opsmith.domain.notifications import (
    Delivery,
    DeliveryFailed,
    DeliveryStatus,
    Notice,
    NotifyEvent,
    backoff,
)
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.redaction import Redactor
from opsmith.domain.tasks import Task
from opsmith.engine.state import RunState, RunStatus, StepStatus, UndoStatus
from opsmith.services.known_secrets import secret_values

__all__ = [
    "deliver_due",
    "deliveries_for",
    "escalation_notices",
    "notify",
    "notify_attention",
    "notify_plan",
    "notify_run",
    "recent_deliveries",
    "retry_delivery",
]

_log = logging.getLogger(__name__)

_RUN_EVENTS = {
    RunStatus.FAILED: NotifyEvent.RUN_FAILED,
    RunStatus.ROLLED_BACK: NotifyEvent.ROLLED_BACK,
    RunStatus.SUCCEEDED: NotifyEvent.SUCCEEDED,
    RunStatus.CANCELLED: NotifyEvent.CANCELLED,
}


def notify(app: App, event: NotifyEvent | str, subject: str, details: Mapping[str, Any]) -> list[Delivery]:
    """Queue `details` (the fields of a Notice: summary, plan_id, environment...) for each channel
    the rules route `event` to in its environment, once per (event, subject, channel). The deliveries
    queued now; none when no rule matches. A store that cannot be written is logged, never raised:
    a notification must not undo the event it tells of."""
    kind = NotifyEvent(event)
    deliveries = deliveries_for(app, kind, subject, details)
    if app.outbox is None or not deliveries:
        return []
    try:
        return app.outbox.enqueue(deliveries)
    except OpsmithError as error:
        _log.error("could not queue the %s notification of %s: %s", kind.value, subject, error)
        return []


def deliveries_for(
    app: App, event: NotifyEvent | str, subject: str, details: Mapping[str, Any]
) -> list[Delivery]:
    """The deliveries `notify` would queue, built but not stored: for a store that writes them in
    the transaction of the change they tell of (none without an outbox or a routed channel)."""
    kind = NotifyEvent(event)
    settings = app.config.notifications
    channels = settings.channels_for(kind, details.get("environment"))
    if app.outbox is None or not channels:
        return []
    now = _now(app)
    redactor = Redactor(secret_values(app))
    notice = Notice.model_validate({**redactor.data(jsonable(dict(details))), "event": kind, "at": now})
    deliveries = [
        Delivery(
            id=f"ntf_{secrets.token_hex(8)}",
            key=f"{kind.value}:{subject}:{channel}",
            subject=subject,
            channel=channel,
            notice=notice,
            max_attempts=settings.max_attempts,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for channel in channels
    ]
    return deliveries


def notify_plan(app: App, plan: Plan) -> list[Delivery]:
    """An approval request, for a plan stored waiting for approval (once per plan hash)."""
    if plan.status is not PlanStatus.PENDING_APPROVAL:
        return []
    details = _plan_details(app, plan)
    details["summary"] = f"{plan.title or plan.request} needs approval ({plan.risk.value} risk)"
    details["link"] = _link(app, f"plans/{plan.id}")
    return notify(app, NotifyEvent.APPROVAL_REQUESTED, f"{plan.id}@{plan.hash}", details)


def notify_run(app: App, plan: Plan, state: RunState) -> list[Delivery]:
    """A run that ended: failed, rolled back, succeeded or cancelled (once per run); a failure carries
    the root cause from what the run recorded (no tool is asked for more)."""
    event = _RUN_EVENTS.get(state.status)
    settings = app.config.notifications
    if event is None or app.outbox is None or not settings.channels_for(event, plan.intent.environment):
        return []
    details = _plan_details(app, plan)
    details["run_id"] = state.run_id
    details["link"] = _link(app, f"runs/{state.run_id}")
    words = {
        NotifyEvent.RUN_FAILED: "failed",
        NotifyEvent.ROLLED_BACK: "failed and was rolled back",
        NotifyEvent.SUCCEEDED: "succeeded",
        NotifyEvent.CANCELLED: "was cancelled",
    }
    details["summary"] = f"Run {state.run_id} of {plan.title or plan.request} {words[event]}"
    if event not in (NotifyEvent.SUCCEEDED, NotifyEvent.CANCELLED):
        details.update(_root_cause(app, plan, state))
    return notify(app, event, state.run_id, details)


def escalation_notices(app: App, task: Task, level: int, to: str, why: str) -> list[Delivery]:
    """The notices of a task raised to escalation `level` (handed to `to`), once per task and level:
    "task T escalated to level N (why)", routed by the environment of the run that made it, if any.
    Built, not queued: the task store writes them with the escalation, so that neither is kept
    without the other (a crash between the two would lose the notice for good, as the task's
    level is not raised twice)."""
    details: dict[str, Any] = {
        "task_id": task.id,
        "plan_id": str(task.details.get("plan_id") or ""),
        "run_id": task.run_id,
        "environment": task.details.get("environment"),
        "request": task.title,
        "requested_by": task.reported_by,
        "summary": f"Task {task.id} ({task.title[:120]}) escalated to level {level}, to the {to} ({why})",
    }
    return deliveries_for(app, NotifyEvent.TASK_ESCALATED, f"{task.id}@{level}", details)


def notify_attention(app: App, plan: Plan, state: RunState, *, why: str | None = None) -> list[Delivery]:
    """A run held for a person (needs_attention: a step a crash interrupted, an undo that waits or
    failed), told once per hold: called right after the hold is committed, the run's newest event
    is the one that held it, and names the hold; a hold told again (a resume that changed nothing)
    queues nothing new. `why`: what the person is asked to decide."""
    event = NotifyEvent.NEEDS_ATTENTION
    settings = app.config.notifications
    if state.status is not RunStatus.NEEDS_ATTENTION or app.outbox is None:
        return []
    if not settings.channels_for(event, plan.intent.environment):
        return []
    try:
        hold = app.journal().last_seq(state.run_id)
    except OpsmithError as error:  # as `notify`: telling must not undo the hold it tells of
        _log.error("could not read the events of run %s to tell of its hold: %s", state.run_id, error)
        return []
    details = _plan_details(app, plan)
    details["run_id"] = state.run_id
    details["link"] = _link(app, f"runs/{state.run_id}")
    said = "; ".join(part for part in (_waiting(state), why) if part)
    said = f": {said[:500]}" if said else ""
    details["summary"] = f"Run {state.run_id} of {plan.title or plan.request} needs attention{said}"
    if any(s.status in (StepStatus.FAILED, StepStatus.ROLLBACK_FAILED) for s in state.steps.values()):
        details.update(_root_cause(app, plan, state))  # a rollback held after a failure
    return notify(app, event, f"{state.run_id}@{hold}", details)


async def deliver_due(app: App, *, owner: str | None = None) -> list[Delivery]:
    """Send the deliveries due now (up to notifications.batch), each claimed first; the deliveries
    as they stand after this attempt."""
    if app.outbox is None or app.senders is None:
        return []
    settings = app.config.notifications
    owner = owner or f"notify-{secrets.token_hex(4)}"
    claimed = app.outbox.claim_due(
        owner, _now(app), limit=settings.batch, lease_seconds=settings.lease_seconds
    )
    # A few at a time: receivers (Slack's webhooks among them) refuse or throttle a burst.
    gate = asyncio.Semaphore(settings.max_parallel)

    async def one(delivery: Delivery) -> Delivery:
        async with gate:
            return await _deliver(app, delivery, owner)

    return list(await asyncio.gather(*(one(delivery) for delivery in claimed)))


async def _deliver(app: App, delivery: Delivery, owner: str) -> Delivery:
    outbox = app.outbox
    assert outbox is not None
    problem = await _send(app, delivery)
    if problem is not None:
        return _record_failure(app, delivery, owner, problem)
    now = _now(app)
    if not outbox.delivered(delivery.id, owner, now):
        _log.warning("notification %s was delivered after its lease passed to another worker", delivery.id)
    _log.info("delivered notification %s (%s) to %s", delivery.id, delivery.notice.event, delivery.channel)
    update = {"status": DeliveryStatus.DELIVERED, "delivered_at": now, "last_error": None, "updated_at": now}
    return delivery.model_copy(update=update)


async def _send(app: App, delivery: Delivery) -> DeliveryFailed | None:
    """Send it; what went wrong, or None."""
    senders = app.senders
    assert senders is not None
    settings = app.config.notifications
    channel = settings.channels.get(delivery.channel)
    if channel is None:
        return DeliveryFailed(
            f"notification channel {delivery.channel!r} is no longer configured",
            hint="configure it again under notifications.channels, then retry the delivery",
            retryable=False,
        )
    try:
        # Bounded here too: a sender's own timeouts cover one connection, not a slow trickle.
        await asyncio.wait_for(senders.send(delivery, channel), timeout=settings.send_timeout * 3)
    except DeliveryFailed as failed:
        return failed
    except TimeoutError:
        return DeliveryFailed(f"sending to channel {delivery.channel!r} took longer than allowed")
    except Exception as error:  # a sender's bug must not stop the other deliveries; logged with its cause
        # Redacted: an unexpected error's text may quote the URL or the login it was given.
        trace = Redactor(secret_values(app)).text("".join(traceback.format_exception(error)))
        _log.error(
            "sending notification %s to %s failed unexpectedly: %s", delivery.id, delivery.channel, trace
        )
        return DeliveryFailed(f"sending to channel {delivery.channel!r} failed: {type(error).__name__}")
    return None


def _record_failure(app: App, delivery: Delivery, owner: str, failed: DeliveryFailed) -> Delivery:
    assert app.outbox is not None
    settings = app.config.notifications
    now = _now(app)
    reason = Redactor(secret_values(app)).text(failed.message)
    next_at: datetime | None = None
    if failed.retryable and delivery.attempts < delivery.max_attempts:
        wait = backoff(
            delivery.attempts,
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            draw=random.random(),
        )
        next_at = now + timedelta(seconds=max(wait, failed.retry_after or 0.0))
    app.outbox.failed(delivery.id, owner, reason, now, next_at)
    if next_at is None:
        what = (
            f"gave up notification {delivery.id} to {delivery.channel} after {delivery.attempts} attempt(s)"
        )
        _log.error("%s: %s", what, reason)
    else:
        what = f"notification {delivery.id} to {delivery.channel} failed (attempt {delivery.attempts})"
        _log.warning("%s, next at %s: %s", what, f"{next_at:%H:%M:%S}", reason)
    status = DeliveryStatus.FAILED if next_at is None else DeliveryStatus.PENDING
    return delivery.model_copy(
        update={"status": status, "last_error": reason, "next_attempt_at": next_at, "updated_at": now}
    )


def recent_deliveries(app: App, *, limit: int = 50, status: DeliveryStatus | None = None) -> list[Delivery]:
    """The newest deliveries, each with its status, attempts, next attempt and last reason."""
    if app.outbox is None:
        return []
    return app.outbox.recent(limit=limit, status=status)


def retry_delivery(app: App, identity: Identity, delivery_id: str) -> Delivery:
    """An admin sends a given-up delivery again: pending now, with notifications.max_attempts more
    attempts. Audited."""
    from opsmith.services.access import require

    require(app, identity, Action.ADMIN, hint="ask an admin to retry the notification")
    if app.outbox is None:
        raise UsageError(
            "this opsmith keeps no notifications", hint="configure notifications: in opsmith.yaml"
        )
    delivery = app.outbox.get(delivery_id)
    if delivery.status is not DeliveryStatus.FAILED:
        raise UsageError(
            f"notification {delivery_id} is {delivery.status.value}; only a failed one is retried",
            hint="a pending one is retried by itself at its next attempt time",
        )
    retried = app.outbox.retry(delivery_id, _now(app), extra_attempts=app.config.notifications.max_attempts)
    app.audit.append(
        identity.user,
        "notification.retried",
        delivery_id,
        {"channel": delivery.channel, "event": delivery.notice.event.value, "attempts": delivery.attempts},
    )
    return retried


def _waiting(state: RunState) -> str:
    """What a held run waits for a person about, from its state."""
    parts = []
    for step_id, step in state.steps.items():
        if step.undo is UndoStatus.FAILED:
            parts.append(f"the undo of {step_id} failed")
        elif step.undo is UndoStatus.HELD:
            parts.append(f"the undo of {step_id} waits for a decision")
        elif step.status is StepStatus.RUNNING:
            parts.append(f"{step_id} was interrupted mid-call")
    return ", ".join(parts)


def _plan_details(app: App, plan: Plan) -> dict[str, Any]:
    return {
        "plan_id": plan.id,
        "plan_hash": plan.hash,
        "environment": plan.intent.environment,
        "risk": plan.risk.value,
        "request": plan.request,
        "requested_by": plan.requested_by,
        "approvals_needed": plan.approvals_needed if plan.requires_approval else 0,
    }


def _root_cause(app: App, plan: Plan, state: RunState) -> dict[str, Any]:
    from opsmith.engine.run_evidence import recorded_artifacts
    from opsmith.services.explain import analysis_of, rules_of

    redactor = Redactor(secret_values(app))
    try:
        found = analysis_of(
            rules_of(app), plan, state, recorded_artifacts(plan, state, redactor), redactor=redactor
        )
    except OpsmithError as error:  # a broken rule file must not keep the failure untold
        return {"root_cause": f"not analysed: {redactor.text(error.message)}"}
    return {
        "root_cause": found.root_cause,
        "fix": None if found.fix is None else found.fix.summary,
        "confidence": found.confidence,
    }


def _link(app: App, path: str) -> str | None:
    base = app.config.api.public_url
    return None if base is None else f"{base.rstrip('/')}/{path}"


def _now(app: App) -> datetime:
    return app.clock.now().astimezone(UTC)

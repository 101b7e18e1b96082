"""Notifications as data: what happened (a Notice), one delivery of it to one channel, the retry
timing of a failed delivery, and the signature a webhook receiver checks. Pure: no I/O.

A delivery is a row of the outbox (store.notifications), written when the event is decided and
sent later by a worker that claims it first, so a restart loses nothing and two workers never send
the same row at once. A failed send is tried again after an exponential, jittered delay kept in the
row (never straight back), until `max_attempts` attempts were made.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import NotFoundError, OperationError

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Delivery",
    "DeliveryFailed",
    "DeliveryStatus",
    "Notice",
    "NotifyEvent",
    "UnknownNotificationError",
    "backoff",
    "sign",
    "signature_valid",
]

SIGNATURE_HEADER = "X-Opsmith-Signature"
TIMESTAMP_HEADER = "X-Opsmith-Timestamp"
DELIVERY_HEADER = "X-Opsmith-Delivery"


class NotifyEvent(StrEnum):
    APPROVAL_REQUESTED = "approval_requested"
    RUN_FAILED = "run_failed"
    ROLLED_BACK = "rolled_back"
    SUCCEEDED = "succeeded"
    NEEDS_ATTENTION = "needs_attention"  # a run held for a person: once per hold
    CANCELLED = "cancelled"
    TASK_ESCALATED = "task_escalated"  # an overdue task raised to its next escalation level


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being sent, while a worker holds it)
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: out of attempts, or a failure no retry mends


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Notice(_Frozen):
    """What happened, as every channel tells it. Already redacted when it is made."""

    event: NotifyEvent
    summary: str = Field(description="one line: what happened")
    plan_id: str = Field(default="", description="empty for a task that no plan led to (a bug report)")
    task_id: str | None = None
    plan_hash: str = ""
    run_id: str | None = None
    environment: str | None = None
    risk: str | None = None
    request: str = ""
    requested_by: str = ""
    approvals_needed: int = 0
    root_cause: str | None = Field(default=None, description="for failures: the analysis' root cause")
    fix: str | None = None
    confidence: str | None = None
    link: str | None = Field(default=None, description="the console's page, when api.public_url is set")
    at: datetime


class Delivery(_Frozen):
    """One notice to one channel, and how its delivery stands."""

    id: str
    key: str = Field(description="event, subject and channel: a notice is queued once per channel")
    subject: str = Field(description="what it is about: a run id, or a plan id and its hash")
    channel: str
    notice: Notice
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    max_attempts: int = 8
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None


class DeliveryFailed(OperationError):
    """A notification could not be delivered. `retryable`: the same send may succeed later (a
    receiver down, a timeout, a 5xx); `retry_after`: seconds the receiver asked to wait (429)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.retry_after = retry_after


class UnknownNotificationError(NotFoundError):
    """A notification id that is not in the outbox."""


def backoff(attempt: int, *, initial: float, maximum: float, draw: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first): the exponential
    delay capped at `maximum`, of which a random half (`draw` in [0, 1)) is jitter, so workers that
    failed together do not come back together, and no retry comes straight back."""
    base = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + base / 2 * min(max(draw, 0.0), 1.0)


def sign(secret: bytes, body: bytes) -> str:
    """The value of the X-Opsmith-Signature header: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret`, compared in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())

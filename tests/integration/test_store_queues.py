"""The stores of queued and once-only work on real SQLite and PostgreSQL: the notification outbox,
webhook deliveries, Slack decisions and the issue tracker. What is queued once stays once, leases
fence their holder, and what is written reads back alike on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from opsmith.domain.issues import Fingerprint, IssueState, Occurrence, Recurrence, SyncState, UpdateKind
from opsmith.domain.notifications import Delivery, DeliveryStatus, Notice, NotifyEvent
from opsmith.domain.push import DeliveryOutcome, DeliveryRecord
from opsmith.domain.slack import ChatDecision, DecisionStatus, Verdict
from opsmith.store import Database
from opsmith.store.chat import ChatDecisionRepository
from opsmith.store.issues import IssueRepository
from opsmith.store.notifications import NotificationRepository
from opsmith.store.webhooks import WebhookRepository

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, 0, 250000, tzinfo=UTC)
T = TypeVar("T")


@pytest.fixture
def database(database_url: str) -> Database:
    found = Database(database_url)
    found.migrate()
    return found


def together(count: int, work: Callable[[int], T]) -> list[T]:
    """`work(i)` in `count` threads released at once, each to use its own engine."""
    gate = threading.Barrier(count, timeout=30)

    def one(i: int) -> T:
        gate.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return [f.result(timeout=60) for f in [pool.submit(one, i) for i in range(count)]]


# -- the notification outbox -----------------------------------------------------------------------


def _delivery(n: int, *, channel: str = "ops") -> Delivery:
    notice = Notice(
        event=NotifyEvent.RUN_FAILED, summary=f"run {n} failed: é", plan_id=f"p{n}", run_id=f"r{n}", at=NOW
    )
    return Delivery(
        id=f"d{n}-{channel}",
        key=f"run_failed:r{n}:{channel}",
        subject=f"r{n}",
        channel=channel,
        notice=notice,
        max_attempts=2,
        next_attempt_at=NOW,
        created_at=NOW + timedelta(milliseconds=n),
        updated_at=NOW,
    )


def test_the_outbox_queues_once_leases_and_settles(database: Database) -> None:
    outbox = NotificationRepository(database)
    first, second = _delivery(1), _delivery(2)
    assert outbox.enqueue([first, second, _delivery(1)]) == [first, second], "a key is queued once"
    assert outbox.enqueue([first]) == []
    assert outbox.get(first.id) == first, "read back exactly as written: times, JSON, text"

    assert outbox.claim_due("w1", NOW - timedelta(seconds=1), limit=10, lease_seconds=60) == []
    (taken,) = outbox.claim_due("w1", NOW, limit=1, lease_seconds=60)
    assert (taken.id, taken.attempts) == (first.id, 1), "the oldest due first"
    (other,) = outbox.claim_due("w2", NOW, limit=10, lease_seconds=60)
    assert other.id == second.id, "a held row is not handed out again"
    assert not outbox.delivered(first.id, "w2", NOW), "only the holder settles it"
    assert outbox.delivered(first.id, "w1", NOW + timedelta(seconds=1))
    assert outbox.get(first.id).status is DeliveryStatus.DELIVERED

    later = NOW + timedelta(seconds=30)
    assert outbox.failed(second.id, "w2", "receiver said 503", NOW, next_attempt_at=later)
    assert outbox.claim_due("w3", NOW + timedelta(seconds=5), limit=10, lease_seconds=60) == []
    (again,) = outbox.claim_due("w3", later, limit=10, lease_seconds=60)
    assert again.attempts == 2 and again.last_error == "receiver said 503"
    # Its worker stopped while sending its last attempt: when the lease runs out it is given up.
    assert outbox.claim_due("w4", later + timedelta(seconds=61), limit=10, lease_seconds=60) == []
    gave_up = outbox.get(second.id)
    assert gave_up.status is DeliveryStatus.FAILED and (gave_up.last_error or "").startswith("gave up")
    retried = outbox.retry(second.id, later, extra_attempts=1)
    assert (retried.status, retried.max_attempts) == (DeliveryStatus.PENDING, 3)
    assert [d.id for d in outbox.recent()] == [second.id, first.id], "newest first"
    assert [d.id for d in outbox.recent(status=DeliveryStatus.DELIVERED)] == [first.id]


def test_a_notice_queued_by_several_processes_at_once_is_queued_once(database_url: str) -> None:
    Database(database_url).migrate()
    outboxes = [NotificationRepository(Database(database_url)) for _ in range(4)]
    added = together(4, lambda i: outboxes[i].enqueue([_delivery(7)]))
    assert sum(len(a) for a in added) == 1
    assert [d.key for d in outboxes[0].recent()] == [_delivery(7).key]


# -- webhook deliveries ----------------------------------------------------------------------------


def _push(delivery_id: str) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=delivery_id,
        event="push",
        repository="acme/shop",
        received_at=NOW,
        push={"ref": "refs/heads/main", "files": ["é.py"]},
    )


def test_a_webhook_delivery_is_taken_once_and_a_failed_one_again(database: Database) -> None:
    hooks = WebhookRepository(database)
    assert hooks.claim(_push("g-1")) and not hooks.claim(_push("g-1")), "a replay is refused"
    assert hooks.delivery("g-1") == _push("g-1")
    assert [d.delivery_id for d in hooks.unhandled()] == ["g-1"]
    assert hooks.take("g-1", "re-planning", seen="") and not hooks.take("g-1", "twice", seen="")
    hooks.settle("g-1", DeliveryOutcome.FAILED, "the planner was down")
    assert hooks.unhandled() == []
    assert hooks.claim(_push("g-1")), "a failed delivery may be sent again"
    hooks.settle("g-1", DeliveryOutcome.REPLANNED, "made plan p9", plan_id="p9")
    assert not hooks.claim(_push("g-1"))
    stored = hooks.delivery("g-1")
    assert stored is not None and (stored.outcome, stored.plan_id) == (DeliveryOutcome.REPLANNED, "p9")


def test_one_delivery_claimed_by_several_processes_at_once_is_taken_once(database_url: str) -> None:
    Database(database_url).migrate()
    hooks = [WebhookRepository(Database(database_url)) for _ in range(4)]
    assert sum(together(4, lambda i: hooks[i].claim(_push("g-race")))) == 1


# -- Slack decisions -------------------------------------------------------------------------------


def _decision(at: datetime, user: str = "ana") -> ChatDecision:
    return ChatDecision(
        key="T1:U1:p1:sha256:abc",
        plan_id="p1",
        plan_hash="sha256:abc",
        slack_team="T1",
        slack_user="U1",
        user=user,
        verdict=Verdict.APPROVE,
        created_at=at,
        updated_at=at,
    )


def test_a_slack_decision_is_taken_once(database: Database) -> None:
    decisions = ChatDecisionRepository(database)
    assert decisions.claim(_decision(NOW), stale_before=NOW - timedelta(minutes=5)) is None, "ours"
    held = decisions.claim(_decision(NOW, "bob"), stale_before=NOW - timedelta(minutes=5))
    assert held is not None and held.user == "ana" and held.status is DecisionStatus.DECIDING
    # A claim whose process died is stale after a while: the next click takes it over.
    assert decisions.claim(_decision(NOW, "bob"), stale_before=NOW + timedelta(seconds=1)) is None
    decisions.settle(_decision(NOW).key, "approved", NOW)
    done = decisions.claim(_decision(NOW, "cy"), stale_before=NOW + timedelta(days=1))
    assert done is not None and (done.user, done.status, done.outcome) == (
        "bob",
        DecisionStatus.DECIDED,
        "approved",
    )


def test_one_slack_click_delivered_to_several_processes_at_once_is_decided_once(database_url: str) -> None:
    Database(database_url).migrate()
    stores = [ChatDecisionRepository(Database(database_url)) for _ in range(4)]
    found = together(
        4, lambda i: stores[i].claim(_decision(NOW, f"u{i}"), stale_before=NOW - timedelta(hours=1))
    )
    assert sum(1 for f in found if f is None) == 1, "exactly one claim is its own"
    assert len({f.user for f in found if f is not None}) == 1, "the others all see that one's"


# -- the issue tracker -----------------------------------------------------------------------------


def _failure(run_id: str, at: datetime, cause: str = "rule:image-missing") -> Occurrence:
    fingerprint = Fingerprint(
        subject="shop", environment="production", tool="kubernetes.apply", cause=cause, value=f"fp-{cause}"
    )
    return Occurrence(
        run_id=run_id,
        fingerprint=fingerprint,
        title="shop: image missing in production",
        body="## what failed\né ü",
        evidence=f"run {run_id}",
        link=None,
        labels=["opsmith", "production"],
        at=at,
    )


def test_issues_open_comment_close_and_reopen(database: Database) -> None:
    issues = IssueRepository(database)
    opened = issues.record(_failure("r1", NOW), on_recurrence=Recurrence.REOPEN, sync=SyncState.PENDING)
    assert opened is not None and opened.state is IssueState.OPEN and opened.created_at == NOW
    assert issues.record(_failure("r1", NOW), on_recurrence=Recurrence.REOPEN, sync=SyncState.PENDING) is None
    later = NOW + timedelta(minutes=1)
    again = issues.record(_failure("r2", later), on_recurrence=Recurrence.REOPEN, sync=SyncState.PENDING)
    assert again is not None and again.id == opened.id and again.occurrences == 2
    assert issues.due(later, limit=10) == [opened.id]
    leased = issues.claim(opened.id, "w1", later, lease_seconds=60)
    assert leased is not None and [u.kind for u in leased.updates] == [UpdateKind.OPEN, UpdateKind.COMMENT]
    assert issues.claim(opened.id, "w2", later, lease_seconds=60) is None, "held by w1"
    for update in leased.updates:
        issues.mirrored(update.id, later)
    settled = issues.settle(opened.id, "w1", later, error=None, next_attempt_at=None)
    assert settled.sync is SyncState.SYNCED
    closed = issues.close(opened.id, later)
    assert closed.state is IssueState.CLOSED and closed.closed_at == later
    reopened = issues.record(
        _failure("r3", later + timedelta(minutes=1)), on_recurrence=Recurrence.REOPEN, sync=SyncState.PENDING
    )
    assert reopened is not None and reopened.id == opened.id and reopened.state is IssueState.OPEN
    assert issues.for_run("r3") == reopened
    assert [i.id for i in issues.recent()] == [opened.id]
    shown = issues.get(opened.id, with_updates=True)
    assert [u.run_id for u in shown.updates] == ["r1", "r2", "r3"]


def test_one_failure_recorded_by_several_processes_at_once_opens_one_issue(database_url: str) -> None:
    Database(database_url).migrate()
    trackers = [IssueRepository(Database(database_url)) for _ in range(4)]
    together(
        4,
        lambda i: trackers[i].record(
            _failure(f"r{i}", NOW), on_recurrence=Recurrence.NEW, sync=SyncState.LOCAL
        ),
    )
    (issue,) = trackers[0].recent()
    assert issue.occurrences == 4 and sorted(issue.run_ids) == ["r0", "r1", "r2", "r3"]

"""The task store on real SQLite and PostgreSQL: a task, its log and its audit entry are one commit
(nothing half-written when any part fails), the witness follows the committed head, and writers in
several threads, each with its own connection pool, still make one audit chain."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsmith.domain.audit import AuditEntry
from opsmith.domain.journal import AuditNote
from opsmith.domain.notifications import Delivery, Notice, NotifyEvent
from opsmith.domain.tasks import Task, TaskLogEntry, TaskStatus
from opsmith.errors import StoreError
from opsmith.store import Database
from opsmith.store.audit import AuditLog
from opsmith.store.keys import load_seal
from opsmith.store.notifications import NotificationRepository
from opsmith.store.tasks import TaskRepository
from opsmith.store.witness import FileWitness
from tests.dbservers import PostgresServer

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsmith.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def wired(url: str, state: Path) -> tuple[TaskRepository, AuditLog]:
    """The task store as bootstrap wires it: over a signed, witnessed audit log."""
    database = Database(url)
    audit = AuditLog(
        database, seal=load_seal(state / "integrity.key", {}), witness=FileWitness(state / "audit.head")
    )
    return TaskRepository(database, audit), audit


def task(n: int, key: str | None = None) -> Task:
    return Task(
        id=f"tsk_{n:016x}", key=key, type="bug_report", title=f"bug {n}", created_at=NOW, updated_at=NOW
    )


def created(t: Task, detail: object = "report") -> TaskLogEntry:
    return TaskLogEntry(task_id=t.id, kind="created", detail={"by": detail}, at=t.created_at)


def note(t: Task, action: str = "task.reported", **details: object) -> AuditNote:
    return AuditNote("ana", action, t.id, dict(details))


def test_a_task_its_log_and_its_audit_entry_are_committed_together(url: str, tmp_path: Path) -> None:
    store, audit = wired(url, tmp_path)
    first = task(1, key="run:r1")
    assert store.add(first, [created(first)], audit=[note(first, priority="high")]) == (first, True)
    again = task(2, key="run:r1")  # the same key: the stored one, and no second entry
    assert store.add(again, [created(again)], audit=[note(again)]) == (first, False)

    entries = audit.entries()
    assert [(e.actor, e.action, e.subject, e.details) for e in entries] == [
        ("ana", "task.reported", first.id, {"priority": "high"})
    ]
    assert [e.task_id for e in store.logs(kind="created")] == [first.id]
    head = FileWitness(tmp_path / "audit.head").read()
    assert head is not None and head.seq == entries[-1].seq
    assert audit.verify().ok

    moved = first.model_copy(update={"status": TaskStatus.ASSIGNED, "updated_at": NOW + timedelta(seconds=1)})
    assert not store.save(moved, expected=TaskStatus.RUNNING, audit=[note(first, "task.assigned")])
    assert store.save(moved, expected=TaskStatus.QUEUED, audit=[note(first, "task.assigned")])
    assert [e.action for e in audit.entries()] == ["task.reported", "task.assigned"]
    assert store.get(first.id).status is TaskStatus.ASSIGNED
    verified = audit.verify()
    assert verified.ok and verified.checked == 2


class BrokenAfterInsert(AuditLog):
    """Fails the transaction right after its entry's row went in: the database errs mid-commit."""

    def append_on(self, *args: Any, **options: Any) -> AuditEntry:
        super().append_on(*args, **options)
        raise StoreError("cannot write to the database: disk I/O error")


def test_nothing_is_written_when_the_audit_entry_or_the_log_cannot_be(url: str, tmp_path: Path) -> None:
    store, audit = wired(url, tmp_path)
    kept = task(1)
    store.add(kept, [created(kept)], audit=[note(kept)])
    # Each fails after the task's row was inserted, inside the same transaction.
    no_entry = task(2)
    broken = TaskRepository(Database(url), BrokenAfterInsert(Database(url)))
    with pytest.raises(StoreError, match="disk I/O"):
        broken.add(no_entry, [created(no_entry)], audit=[note(no_entry)])
    no_log = task(3)
    with pytest.raises((TypeError, ValueError)):
        store.add(no_log, [created(no_log, detail=object())], audit=[note(no_log)])

    assert [t.id for t in store.find()] == [kept.id]
    assert [e.subject for e in audit.entries()] == [kept.id]
    assert [e.task_id for e in store.logs(kind=None)] == [kept.id]
    head = FileWitness(tmp_path / "audit.head").read()
    assert head is not None and head.seq == 1  # the witness never saw a rolled-back entry
    assert audit.verify().ok


def test_concurrent_writers_keep_one_chain(url: str, tmp_path: Path) -> None:
    writers, each = 3, 8
    wired(url, tmp_path)[1].entries()  # migrate once, before the writers start
    problems: list[BaseException] = []

    def write(w: int) -> None:
        store, audit = wired(url, tmp_path)  # its own pool, as another process would have
        try:
            for n in range(each):
                t = task(w * 100 + n)
                store.add(t, [created(t)], audit=[note(t)])
                audit.append("bob", "other.thing", f"x-{w}-{n}")  # an appender outside the task store
        except BaseException as error:  # reported by the assertion below, with its cause
            problems.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and problems == []

    store, audit = wired(url, tmp_path)
    entries = audit.entries()
    assert [e.seq for e in entries] == list(range(1, 2 * writers * each + 1))
    assert len(store.find(limit=500)) == writers * each
    assert sorted(e.subject for e in entries if e.action == "task.reported") == sorted(
        t.id for t in store.find(limit=500)
    )
    verified = audit.verify()
    assert verified.ok, verified.problem


def notice_for(t: Task, n: int = 1) -> Delivery:
    summary = Notice(event=NotifyEvent.TASK_ESCALATED, summary=f"{t.id} escalated", task_id=t.id, at=NOW)
    return Delivery(
        id=f"ntf_{n:016x}", key=f"task_escalated:{t.id}@{n}:pager", subject=f"{t.id}@{n}", channel="pager",
        notice=summary, max_attempts=3, next_attempt_at=NOW, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def test_a_notice_is_queued_with_the_change_it_tells_of_or_not_at_all(url: str, tmp_path: Path) -> None:
    store, audit = wired(url, tmp_path)
    outbox = NotificationRepository(Database(url))
    first = task(1)
    store.add(first, [created(first)], audit=[note(first)])
    raised = first.model_copy(update={"status": TaskStatus.ESCALATED, "escalation_level": 1})
    # A writer that lost the compare-and-set queues nothing.
    assert not store.save(raised, expected=TaskStatus.RUNNING, notices=[notice_for(first)])
    assert outbox.recent() == []
    # The audit entry fails inside the transaction: neither the escalation nor its notice is kept.
    broken = TaskRepository(Database(url), BrokenAfterInsert(Database(url)))
    with pytest.raises(StoreError, match="disk I/O"):
        broken.save(raised, expected=TaskStatus.QUEUED, audit=[note(first, "task.escalated")],
                    notices=[notice_for(first)])  # fmt: skip
    assert outbox.recent() == [] and store.get(first.id).escalation_level == 0
    # Written: the escalation, its entry and the notice, once per key.
    assert store.save(raised, expected=TaskStatus.QUEUED, audit=[note(first, "task.escalated")],
                      notices=[notice_for(first)])  # fmt: skip
    (queued,) = outbox.recent()
    assert queued.key == f"task_escalated:{first.id}@1:pager" and queued.notice.task_id == first.id
    assert store.get(first.id).escalation_level == 1 and audit.verify().ok

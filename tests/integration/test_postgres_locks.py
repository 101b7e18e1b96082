"""Concurrency on a real PostgreSQL: writers in threads of their own, each with its own engine (as
separate processes would be), race for the same run lease, the same outbox rows and the head of the
audit chain. Each lease and row goes to exactly one of them; the chain stays one chain."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from opsmith.bootstrap import wire
from opsmith.config import load_config
from opsmith.domain.journal import AuditNote
from opsmith.domain.notifications import Delivery, Notice, NotifyEvent
from opsmith.engine.state import RunStatus, new_run, with_run_status
from opsmith.services.audit import verify_audit
from opsmith.store import Database
from opsmith.store.audit import AuditLog
from opsmith.store.keys import load_seal
from opsmith.store.notifications import NotificationRepository
from opsmith.store.runs import RunRepository
from opsmith.store.witness import FileWitness
from tests.unit.test_engine_helpers import plan_of, step

pytestmark = pytest.mark.integration

WORKERS = 6
T = TypeVar("T")
NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def race(count: int, work: Callable[[int], T]) -> list[T]:
    """`work(i)` for i in range(count), in threads released together (bounded waits only)."""
    gate = threading.Barrier(count, timeout=30)

    def one(i: int) -> T:
        gate.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return [f.result(timeout=120) for f in [pool.submit(one, i) for i in range(count)]]


@pytest.fixture
def databases(postgres_url: str) -> Iterator[list[Database]]:
    """One Database (engine, pool) per worker, on one PostgreSQL database migrated beforehand."""
    Database(postgres_url).migrate()
    found = [Database(postgres_url) for _ in range(WORKERS)]
    yield found
    for database in found:
        database.dispose()


def test_each_free_run_lease_is_taken_by_exactly_one_claimer(databases: list[Database]) -> None:
    plan = plan_of(step("a"))
    creator = RunRepository(databases[0])
    run_ids = [f"r{n}" for n in range(15)]
    for run_id in run_ids:
        creator.commit(with_run_status(new_run(plan, run_id=run_id), RunStatus.RUNNING), owner="creator")
        creator.release(run_id, "creator")
    repositories = [RunRepository(database) for database in databases]
    for run_id in run_ids:

        def claim(i: int, run_id: str = run_id) -> bool:
            return repositories[i].claim(run_id, f"worker{i}", seconds=60) is not None

        taken = [i for i, won in enumerate(race(WORKERS, claim)) if won]
        assert len(taken) == 1, f"{run_id}: claimed by workers {taken}"
        assert creator.lease(run_id).owner == f"worker{taken[0]}"


def _delivery(n: int) -> Delivery:
    notice = Notice(event=NotifyEvent.SUCCEEDED, summary=f"run {n} succeeded", plan_id=f"p{n}", at=NOW)
    return Delivery(
        id=f"d{n:03d}",
        key=f"succeeded:r{n}:ops",
        subject=f"r{n}",
        channel="ops",
        notice=notice,
        next_attempt_at=NOW,
        created_at=NOW + timedelta(microseconds=n),
        updated_at=NOW,
    )


def test_each_due_outbox_row_is_claimed_by_exactly_one_worker(databases: list[Database]) -> None:
    outbox = [NotificationRepository(database) for database in databases]
    assert len(outbox[0].enqueue([_delivery(n) for n in range(60)])) == 60
    assert outbox[0].enqueue([_delivery(0)]) == [], "a key is queued once"
    claimed: list[list[str]] = [[] for _ in range(WORKERS)]

    def drain(i: int) -> None:
        while True:  # bounded: 60 rows, and every pass takes at least one or stops
            got = outbox[i].claim_due(f"worker{i}", NOW + timedelta(seconds=1), limit=4, lease_seconds=300)
            if not got:
                return
            claimed[i].extend(d.id for d in got)

    race(WORKERS, drain)
    every = [d for ids in claimed for d in ids]
    assert sorted(every) == [f"d{n:03d}" for n in range(60)], "each row once: none lost, none twice"
    assert sum(1 for ids in claimed if ids) > 1, "the workers shared the rows (nobody waited the race out)"
    for i, ids in enumerate(claimed):
        for delivery_id in ids:
            stored = outbox[0].get(delivery_id)
            assert stored.attempts == 1
            assert outbox[i].delivered(delivery_id, f"worker{i}", NOW), "the claimer holds it"


def test_concurrent_appenders_keep_one_chain_that_verifies(tmp_path: Path, postgres_url: str) -> None:
    """Four writers x 50 entries: two append alone (AuditLog.append), two through a run's commit
    (the hot path, which remembers the head it wrote last and skips reading it)."""
    state = tmp_path / ".opsmith"
    (tmp_path / "opsmith.yaml").write_text(
        f"mcpServers: {{}}\nstate_dir: '{state}'\ndatabase_url: '{postgres_url}'\n"
    )
    app = wire(load_config(tmp_path / "opsmith.yaml", {}), {})
    assert verify_audit(app).ok  # migrates, and makes the signing key the writers share
    seal = load_seal(state / "integrity.key", {})
    plan = plan_of(step("a"))

    def write(i: int) -> None:
        database = Database(postgres_url)
        log = AuditLog(database, seal=seal, witness=FileWitness(state / "audit.head"))
        try:
            if i < 2:
                for n in range(50):
                    log.append(f"writer{i}", "tool.called", f"subject-{i}", {"n": n})
                return
            runs = RunRepository(database, log, seal)
            run = with_run_status(new_run(plan, run_id=f"run-{i}"), RunStatus.RUNNING)
            for n in range(50):
                note = AuditNote(f"writer{i}", "tool.called", f"run-{i}", {"n": n})
                runs.commit(run, owner=f"writer{i}", audits=[note], lease_seconds=300)
        finally:
            database.dispose()

    race(4, write)
    result = verify_audit(app)
    assert result.ok, result.problem
    assert result.checked == 200
    entries = app.audit.entries()
    assert [e.seq for e in entries] == list(range(1, 201)), "unique, contiguous sequence numbers"
    for i in range(4):
        assert [e.details["n"] for e in entries if e.actor == f"writer{i}"] == list(range(50))
    head = FileWitness(state / "audit.head").read()
    assert head is not None and head.seq == 200


def _locked_elsewhere(url: str, sql: str) -> Connection:
    """A transaction of another process holding the row lock on what `sql` selects, until closed."""
    engine = create_engine(url, poolclass=NullPool)
    connection = engine.connect()
    assert connection.execute(text(sql)).first() is not None
    return connection


def test_a_claimer_passes_over_a_row_another_transaction_holds(databases: list[Database]) -> None:
    """SKIP LOCKED: a claim does not queue behind a transaction that has the row; it says `held`
    (the run) or takes the next row (the outbox) at once, and gets the row once it is let go."""
    url = databases[0].engine.url.render_as_string(hide_password=False)
    runs = RunRepository(databases[0])
    runs.commit(with_run_status(new_run(plan_of(step("a")), run_id="r1"), RunStatus.RUNNING), owner="c")
    runs.release("r1", "c")
    outbox = NotificationRepository(databases[1])
    outbox.enqueue([_delivery(1), _delivery(2)])

    holder = _locked_elsewhere(url, "SELECT id FROM runs WHERE id = 'r1' FOR UPDATE")
    with ThreadPoolExecutor(1) as pool:  # bounded: a claim that queued behind the lock fails here
        try:
            assert pool.submit(runs.claim, "r1", "w1").result(timeout=20) is None
        finally:
            holder.close()  # (and a claim that queued goes on, so the pool can end)
    assert runs.claim("r1", "w1") is not None

    holder = _locked_elsewhere(url, "SELECT id FROM notifications WHERE id = 'd001' FOR UPDATE")
    with ThreadPoolExecutor(1) as pool:
        try:
            work = pool.submit(outbox.claim_due, "w1", NOW, limit=10, lease_seconds=60)
            assert [d.id for d in work.result(timeout=20)] == ["d002"]
        finally:
            holder.close()
    assert [d.id for d in outbox.claim_due("w2", NOW, limit=10, lease_seconds=60)] == ["d001"]

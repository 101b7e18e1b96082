"""The run's commit path on real SQLite and PostgreSQL: statements run on the driver's cursor
(`Prepared`, SQLite) write what SQLAlchemy would, driver errors keep their types, and a claim returns
the run read with the lease."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from opsmith.domain.journal import AuditNote
from opsmith.domain.seal import Seal
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.scheduler import apply_result, start_step
from opsmith.engine.state import RunStatus, new_run, with_run_status
from opsmith.errors import StoreConflictError, StoreError
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database, EncodedJSON, Prepared
from opsmith.store.models import AuditRow
from opsmith.store.run_models import EventRow
from opsmith.store.runs import RunRepository, UnknownRunError
from opsmith.store.witness import FileWitness
from tests.unit.test_engine_helpers import plan_of, step

pytestmark = pytest.mark.integration

MOMENT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture
def database(database_url: str) -> Database:
    db = Database(database_url)
    db.migrate()
    return db


_EVENT = insert(EventRow).values(
    run_id=bindparam("run_id"),
    seq=bindparam("seq"),
    at=bindparam("at"),
    type=bindparam("type"),
    step_id=bindparam("step_id"),
    message=bindparam("message"),
    data=bindparam("data"),
)


def _event(seq: int) -> dict[str, object]:
    return {
        "run_id": "r",
        "seq": seq,
        "at": MOMENT,
        "type": "step.started",
        "step_id": None,
        "message": "é ünïcode",
        "data": {"n": seq, "nested": [1, None, "x"]},
    }


def _stored_events(database: Database) -> list[tuple[object, ...]]:
    with database.transaction() as connection:
        rows = connection.execute(select(EventRow.seq, EventRow.at, EventRow.message, EventRow.data))
        return [tuple(r) for r in rows]


def test_prepared_writes_what_sqlalchemy_writes(tmp_path: Path) -> None:
    through_sqlalchemy = Database(f"sqlite:///{tmp_path / 'a.db'}")
    through_sqlalchemy.migrate()
    with through_sqlalchemy.transaction() as connection:
        connection.execute(_EVENT, [_event(1), _event(2)])
    prepared_db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    prepared_db.migrate()
    prepared = Prepared(prepared_db, _EVENT)
    with prepared_db.transaction() as connection:  # not immediate: Prepared begins what is committed
        prepared.run(connection, _event(1))
        prepared.many(connection, [_event(2)])
    raw = [
        sqlite3.connect(tmp_path / f"{name}.db").execute("SELECT at, data FROM run_events").fetchall()
        for name in "ab"
    ]
    assert raw[0] == raw[1], "the same text in the file: DateTime and JSON went through the same processors"
    assert _stored_events(prepared_db) == _stored_events(through_sqlalchemy)


def test_prepared_reads_a_row_and_counts_changes(database: Database) -> None:
    with database.transaction() as connection:
        Prepared(database, _EVENT).many(connection, [_event(1), _event(2), _event(3)])
    newest = Prepared(database, select(EventRow.seq).order_by(EventRow.seq.desc()).limit(1))
    with database.transaction() as connection:
        assert newest.first(connection, {}) == (3,)
        renamed = Prepared(
            database, EventRow.__table__.update().where(EventRow.seq > bindparam("after")).values(message="m")
        )
        assert renamed.run(connection, {"after": 1}) == 2


def test_a_missing_parameter_is_refused_before_anything_runs(database: Database) -> None:
    # SQLite's driver path refuses it as KeyError; SQLAlchemy's (PostgreSQL) as its StatementError.
    refused = KeyError if database.engine.dialect.name == "sqlite" else StoreError
    with pytest.raises(refused, match="'data'"), database.transaction() as connection:
        Prepared(database, _EVENT).run(connection, {k: v for k, v in _event(1).items() if k != "data"})
    assert _stored_events(database) == []


def test_a_duplicate_key_through_prepared_is_a_conflict(database: Database) -> None:
    statement = insert(AuditRow).values({c.key: bindparam(c.key) for c in AuditRow.__table__.c})
    row = {
        "seq": 1,
        "at": MOMENT,
        "actor": "a",
        "action": "b",
        "subject": "c",
        "details": {},
        "prev_hash": "p",
        "hash": "h",
        "mac": "",
    }
    prepared = Prepared(database, statement)
    with database.transaction(immediate=True) as connection:
        prepared.run(connection, row)
    with pytest.raises(StoreConflictError) as caught, database.transaction(immediate=True) as connection:
        prepared.run(connection, row)
    code = "SQLITE_CONSTRAINT_PRIMARYKEY" if database.engine.dialect.name == "sqlite" else "23505"
    assert caught.value.retryable and code in caught.value.message


def test_encoded_json_is_stored_as_is_on_sqlite_and_decoded_elsewhere() -> None:
    encoded = EncodedJSON()
    assert encoded.process_bind_param('{"a":1}', sqlite.dialect()) == '{"a":1}'
    assert encoded.process_bind_param('{"a":1}', postgresql.dialect()) == {"a": 1}


def _signed(database: Database, folder: Path) -> tuple[RunRepository, AuditLog]:
    seal = Seal(b"a test key of thirty-two bytes or more")
    audit = AuditLog(database, seal=seal, witness=FileWitness(folder / "head"))
    return RunRepository(database, audit, seal), audit


def test_a_chain_of_commits_reads_back_as_written_and_keeps_the_status_column(
    database: Database, tmp_path: Path
) -> None:
    plan = plan_of(step("a"), step("b", "a"), step("c", "b"))
    runs, audit = _signed(database, tmp_path)
    state = with_run_status(new_run(plan, run_id="r1"), RunStatus.RUNNING)
    runs.commit(state, owner="me")
    for done, starts in (("a", "b"), ("b", "c")):
        if done == "a":
            state = start_step(plan, state, "a", at=MOMENT)
        state = apply_result(state, done, ok=True, output={"ok": done}, error=None, at=MOMENT)
        state = start_step(plan, state, starts, at=MOMENT)
        event = RunEvent(run_id="r1", at=MOMENT, type=EventType.STEP_SUCCEEDED, step_id=done)
        note = AuditNote("ana", "tool.called", "r1", {"step": done, "ok": True})
        runs.commit(state, owner="me", events=[event], audits=[note], changed=[done, starts])
        assert RunRepository(database).get("r1") == state
        assert runs.ids([RunStatus.RUNNING]) == ["r1"]
    last = apply_result(state, "c", ok=True, output={}, error=None, at=MOMENT)
    finished = with_run_status(last, RunStatus.SUCCEEDED)
    runs.commit(finished, owner="me", changed=["c"])
    assert runs.ids([RunStatus.RUNNING]) == [] and runs.ids([RunStatus.SUCCEEDED]) == ["r1"]
    assert [e.seq for e in runs.events("r1")] == [1, 2]
    checked = audit.verify()  # signed, chained, and witnessed up to the newest entry
    assert checked.ok and checked.checked == 2


def test_a_claim_returns_the_run_as_the_previous_holder_left_it(database: Database) -> None:
    plan = plan_of(step("a"), step("b", "a"))
    first = RunRepository(database)
    state = start_step(plan, with_run_status(new_run(plan, run_id="r1"), RunStatus.RUNNING), "a", at=MOMENT)
    first.commit(state, owner="first", lease_seconds=60)
    later = RunRepository(database)
    assert later.claim("r1", "second") is None, "the first holder's lease is still valid"
    first.release("r1", "first")
    claimed = later.claim("r1", "second")
    assert claimed == state
    assert later.lease("r1").owner == "second"


def test_claiming_an_unknown_run_names_the_recent_ones(database: Database) -> None:
    plan = plan_of(step("a"))
    RunRepository(database).commit(new_run(plan, run_id="r1"), owner="me")
    with pytest.raises(UnknownRunError) as caught:
        RunRepository(database).claim("nope", "me")
    assert caught.value.hint == "recent runs: r1"


def test_a_witness_another_writer_moved_meanwhile_is_read_again(tmp_path: Path) -> None:
    from opsmith.domain.audit import Head

    path = tmp_path / "head"
    ours, theirs = FileWitness(path), FileWitness(path)
    ours.advance(Head(seq=5, hash="h5"))
    theirs.advance(Head(seq=9, hash="h9"))
    ours.advance(Head(seq=6, hash="h6"))  # what it wrote last is no longer there: it reads the file
    assert FileWitness(path).read() == Head(seq=9, hash="h9")
    ours.advance(Head(seq=10, hash="h10"))
    assert FileWitness(path).read() == Head(seq=10, hash="h10")

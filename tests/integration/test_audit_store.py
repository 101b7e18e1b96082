"""The audit trail on real SQLite and PostgreSQL: round trip, redaction at rest, tampering seen by the
real CLI, concurrent appenders in several processes keeping one chain."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain.audit import GENESIS
from opsmith.errors import StoreError
from opsmith.store import Database
from opsmith.store.audit import AuditLog
from opsmith.store.keys import load_seal
from opsmith.store.witness import FileWitness
from tests.bothdbs import execute, is_postgres
from tests.fakes import FakeAudit, FakeClock

pytestmark = pytest.mark.integration

OPSMITH = str(Path(sys.executable).with_name("opsmith"))


def opsmith(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG"}
    return subprocess.run([OPSMITH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def signed_log(state: Path, url: str | None = None) -> AuditLog:
    """The audit log as opsmith wires it: signed with the key in `state`, witnessed beside it."""
    return AuditLog(
        Database(url or f"sqlite:///{state / 'opsmith.db'}"),
        seal=load_seal(state / "integrity.key", {}),
        witness=FileWitness(state / "audit.head"),
    )


def project(tmp_path: Path, url: str) -> AuditLog:
    """A project directory the CLI will use on the database at `url`, and the audit log of it."""
    (tmp_path / "opsmith.yaml").write_text(f"mcpServers: {{}}\nstate_dir: .opsmith\ndatabase_url: '{url}'\n")
    return signed_log(tmp_path / ".opsmith", url)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_append_list_verify_round_trip(database_url: str) -> None:
    log = AuditLog(Database(database_url), clock=Clock())
    first = log.append("ana", "plan.approved", "plan-1", {"hash": "sha256:abc", "comment": "ok"})
    log.append("bob", "run.state", "run-1", {"from": "pending", "to": "running"})
    log.append("ana", "tool.called", "run-1", {"tool": "deploy", "args": {"replicas": 3, "tags": ["a"]}})
    assert first.seq == 1 and first.prev_hash == GENESIS

    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0] == first  # times and details read back exactly as they were hashed
    assert entries[2].details == {"tool": "deploy", "args": {"replicas": 3, "tags": ["a"]}}
    assert [e.seq for e in log.entries(subject="run-1")] == [2, 3]
    assert [e.seq for e in log.entries(limit=2)] == [2, 3]  # the newest, oldest first
    assert log.entries(subject="nothing") == []

    result = log.verify()
    assert result.ok and result.checked == 3 and result.head == entries[-1].hash


def test_secrets_are_redacted_before_they_are_stored(tmp_path: Path, database_url: str) -> None:
    log = AuditLog(Database(database_url))
    entry = log.append(
        "ci",
        "tool.called",
        "run-7",
        {"args": {"url": "https://x?key=hunter2-secret"}, "api_token": "tok-999999"},
        secrets=["hunter2-secret"],
    )
    assert entry.details == {"args": {"url": "https://x?key=***"}, "api_token": "***"}
    if is_postgres(database_url):  # every stored row as PostgreSQL renders it
        raw = "".join(row[0] for row in execute(database_url, "SELECT CAST(a AS TEXT) FROM audit a")).encode()
    else:  # the database file itself, with its write-ahead log
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("opsmith.db*"))
    assert b"run-7" in raw, "the rows were read"
    assert b"hunter2-secret" not in raw and b"tok-999999" not in raw
    assert log.verify().ok


def test_tampering_with_raw_sql_is_reported_by_the_cli_with_exit_code_1(
    tmp_path: Path, database_url: str
) -> None:
    log = project(tmp_path, database_url)
    for i in range(6):
        log.append(f"user{i}", "plan.approved", f"plan-{i}", {"i": i})

    intact = opsmith(tmp_path, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "audit trail intact: 6 entries" in intact.stdout

    listed = opsmith(tmp_path, "audit", "--json", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    assert [e["seq"] for e in json.loads(listed.stdout)] == [4, 5, 6]
    table = opsmith(tmp_path, "audit", "--subject", "plan-2")
    assert table.returncode == 0 and "plan-2" in table.stdout and "plan-3" not in table.stdout

    execute(database_url, "UPDATE audit SET details = :d WHERE seq = 4", d=json.dumps({"i": 40}))
    edited = opsmith(tmp_path, "audit", "verify")
    assert edited.returncode == 1
    assert "entry 4 was edited" in edited.stdout
    assert "entry 4 was edited" in edited.stderr

    as_json = opsmith(tmp_path, "audit", "verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["first_bad_seq"] == 4 and report["checked"] == 3


def test_a_removed_row_is_reported_by_the_cli(tmp_path: Path, database_url: str) -> None:
    log = project(tmp_path, database_url)
    for i in range(5):
        log.append("ana", "run.state", "run-1", {"i": i})
    execute(database_url, "DELETE FROM audit WHERE seq = 3")
    result = opsmith(tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert "entry 3 is missing (removed): seq jumps from 2 to 4" in result.stdout


# Cut by the witness, whatever the database: SQLite only, for time (a removed row is probed on both).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("removed", [1, 3, 6])
def test_a_removed_tail_is_reported_with_the_missing_range(
    tmp_path: Path, database_url: str, removed: int
) -> None:
    log = project(tmp_path, database_url)
    for i in range(6):
        log.append("ana", "run.state", "run-1", {"i": i})
    execute(database_url, "DELETE FROM audit WHERE seq > :seq", seq=6 - removed)
    result = opsmith(tmp_path, "audit", "verify", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    first = 7 - removed
    assert report["ok"] is False and report["missing"] == [first, 6] and report["first_bad_seq"] == first
    assert "removed from the tail" in report["problem"]


def test_a_rewritten_entry_with_the_chain_recomputed_is_named_by_its_signature(
    tmp_path: Path, database_url: str
) -> None:
    log = project(tmp_path, database_url)
    for i in range(5):
        log.append("ana", "plan.approved", f"plan-{i}", {"i": i})
    # What someone with the database but not the key can do: change entry 2 and recompute every
    # hash and link after it, so that the unkeyed chain is consistent again.
    entries = log.entries()
    rewritten = [*entries[:1]]
    for entry in entries[1:]:
        changes: dict[str, object] = {"prev_hash": rewritten[-1].hash}
        if entry.seq == 2:
            changes["actor"] = "mallory"
        entry = entry.model_copy(update=changes)
        rewritten.append(entry.model_copy(update={"hash": entry.computed_hash()}))
    for entry in rewritten[1:]:
        execute(
            database_url,
            "UPDATE audit SET actor = :actor, prev_hash = :prev, hash = :hash WHERE seq = :seq",
            actor=entry.actor,
            prev=entry.prev_hash,
            hash=entry.hash,
            seq=entry.seq,
        )
    result = opsmith(tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert "entry 2 was rewritten outside opsmith: its signature does not verify" in result.stderr


def test_an_unreadable_row_is_a_finding_not_a_crash(database_url: str) -> None:
    log = AuditLog(Database(database_url))
    for i in range(3):
        log.append("ana", "run.state", "run-1", {"i": i})
    if is_postgres(database_url):  # its typed columns take no text that is not JSON: JSON that is no entry's
        execute(database_url, "UPDATE audit SET details = '[1, 2]' WHERE seq = 2")
    else:
        execute(database_url, "UPDATE audit SET details = 'not json', at = 'yesterday' WHERE seq = 2")
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 2, 1)
    assert "entry 2 was edited" in (result.problem or "")
    with pytest.raises(StoreError, match="cannot be read"):
        log.entries()


def _append_many(state: Path, url: str, worker: int, count: int) -> list[int]:
    log = signed_log(state, url)
    return [log.append(f"worker{worker}", "tool.called", f"run-{worker}", {"n": n}).seq for n in range(count)]


def test_concurrent_appenders_in_four_processes_keep_one_chain(tmp_path: Path, database_url: str) -> None:
    log = signed_log(tmp_path, database_url)
    Database(database_url).migrate()  # workers race on appends, not the schema
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_append_many, [(tmp_path, database_url, worker, 25) for worker in range(4)])
    seqs = sorted(seq for worker_seqs in results for seq in worker_seqs)
    assert seqs == list(range(1, 101))  # none duplicated, none lost
    # The witness only moved forward, whichever process's commit reached it first.
    head = FileWitness(tmp_path / "audit.head").read()
    assert head is not None and head.seq == 100
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(1, 101))
    for worker in range(4):
        mine = [e.details["n"] for e in entries if e.actor == f"worker{worker}"]
        assert mine == list(range(25))  # each process's entries in the order it wrote them
    result = log.verify()
    assert result.ok and result.checked == 100


def test_a_run_that_remembers_a_stale_chain_head_chains_after_what_others_appended(database_url: str) -> None:
    from opsmith.engine.state import new_run
    from opsmith.store.runs import AuditNote, RunRepository
    from tests.unit.test_engine_helpers import plan_of, step

    database = Database(database_url)
    runs = RunRepository(database)
    state = new_run(plan_of(step("a")), run_id="r1")
    runs.commit(state, owner="me", audits=[AuditNote("ana", "tool.called", "r1", {"n": 1})])
    AuditLog(database).append("bob", "plan.approved", "p1", {})  # another process, meanwhile
    runs.commit(state, owner="me", audits=[AuditNote("ana", "tool.called", "r1", {"n": 2})])
    entries = AuditLog(database).entries()
    assert [(e.seq, e.actor) for e in entries] == [(1, "ana"), (2, "bob"), (3, "ana")]
    assert AuditLog(database).verify().ok


_CALL_DETAILS = st.fixed_dictionaries(
    {},
    optional={
        "tool": st.sampled_from(["kubernetes.apply", "jenkins.build", "hosts.service_stop"]),
        "ok": st.sampled_from([True, True, False]),
        "ms": st.one_of(st.integers(0, 600_000), st.floats(0, 600_000, allow_nan=False)),
    },
)


@st.composite
def _entries_and_window(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, object]]], int]:
    actions = st.sampled_from(["tool.called", "tool.called", "tool.refused", "plan.created"])
    entries = draw(st.lists(st.tuples(actions, _CALL_DETAILS), min_size=1, max_size=30))
    return entries, draw(st.integers(1, len(entries) + 2))  # mostly inside the trail, at times past it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_entries_and_window())
def test_call_durations_averages_what_the_newest_entries_say(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[list[tuple[str, dict[str, object]]], int]
) -> None:
    """The database's average (what planning reads) agrees with the entries read one by one: only
    successful `tool.called` entries with a duration, only within the newest `window`."""
    entries, window = case
    log = AuditLog(Database(f"sqlite:///{tmp_path_factory.mktemp('durations') / 'o.db'}"))
    reference = FakeAudit(FakeClock())
    for action, details in entries:
        log.append("alice", action, "plan_x", details)
        reference.append("alice", action, "plan_x", details)
    found = log.call_durations(window)
    expected = reference.call_durations(window)
    assert found.keys() == expected.keys()
    for tool, seconds in expected.items():
        assert found[tool] == pytest.approx(seconds, rel=1e-9, abs=1e-9)

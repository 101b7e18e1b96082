"""Errors carry their semantics: the drawn tree is the real one, and translating a library's error
sets the type that retry and replay decisions read (never the message)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import MCPError
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

import opsmith
from opsmith.domain import errors as errors_module
from opsmith.domain.errors import (
    ConnectionLostError,
    OpsmithError,
    ServerUnavailableError,
    StoreBusyError,
    StoreConflictError,
    StoreError,
)
from opsmith.engine.state import new_run
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database
from opsmith.store.failures import store_failure
from opsmith.tools.mcp.failures import call_failure
from tests.integration.test_engine_local import Tools, executor, idempotent
from tests.unit.test_engine_helpers import plan_of, step

# -- the drawn tree -------------------------------------------------------------------------------

_DRAWN = re.compile(
    r"^    (?P<branch>(?:[│ ]   )*(?:[├└]── )?)(?P<name>[A-Z]\w*)(?: \[(?P<module>[\w.]+)\])?"
)


def drawn_tree() -> dict[str, tuple[str | None, str]]:
    """name -> (parent name, module) as drawn in opsmith.domain.errors' docstring."""
    doc = errors_module.__doc__ or ""
    tree: dict[str, tuple[str | None, str]] = {}
    path: list[str] = []
    for line in doc.splitlines():
        found = _DRAWN.match(line)
        if not found:
            continue
        depth = len(found["branch"]) // 4
        assert depth <= len(path), f"drawn too deep, no parent above it: {line!r}"
        del path[depth:]
        name = found["name"]
        assert name not in tree, f"{name} is drawn twice"
        module = f"opsmith.{found['module']}" if found["module"] else errors_module.__name__
        tree[name] = (path[-1] if path else None, module)
        path.append(name)
    return tree


def real_tree() -> dict[str, tuple[str | None, str]]:
    """name -> (parent name, module) of OpsmithError and every subclass defined in opsmith."""
    for info in pkgutil.walk_packages(opsmith.__path__, "opsmith."):
        importlib.import_module(info.name)
    tree: dict[str, tuple[str | None, str]] = {OpsmithError.__name__: (None, OpsmithError.__module__)}
    for cls in _subclasses(OpsmithError):
        if not cls.__module__.startswith("opsmith."):
            continue  # defined by a test
        parents = [base for base in cls.__bases__ if issubclass(base, OpsmithError)]
        assert len(parents) == 1, f"{cls.__qualname__} has {len(parents)} parents in the tree"
        assert cls.__name__ not in tree, f"two error classes are called {cls.__name__}"
        tree[cls.__name__] = (parents[0].__name__, cls.__module__)
    return tree


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_drawn_tree_is_the_real_class_hierarchy() -> None:
    drawn, real = drawn_tree(), real_tree()
    missing = {name: real[name] for name in real.keys() - drawn.keys()}
    assert not missing, f"subclasses of OpsmithError not drawn in opsmith.domain.errors: {missing}"
    stale = sorted(drawn.keys() - real.keys())
    assert not stale, f"drawn in opsmith.domain.errors but not defined (under that name): {stale}"
    assert drawn == real


def test_the_tree_is_read_from_the_drawing() -> None:
    drawn = drawn_tree()
    assert drawn["OpsmithError"] == (None, "opsmith.domain.errors")
    assert drawn["StoreBusyError"] == ("StoreError", "opsmith.domain.errors")
    assert drawn["RunRefused"] == ("UsageError", "opsmith.services.running")
    assert drawn["EvidenceUnmet"] == ("OperationError", "opsmith.engine.errors")


# -- MCP: may the call have reached the server? -----------------------------------------------------


def test_a_connection_closed_during_a_call_may_have_reached_the_server() -> None:
    closed = MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
    error = call_failure("jenkins", "trigger_build", closed, 30)
    assert type(error) is ConnectionLostError
    assert error.may_have_reached and error.retryable
    assert "closed the connection during trigger_build" in error.message


def test_a_connection_closed_inside_an_exception_group_is_found() -> None:
    closed = MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
    error = call_failure("jenkins", "trigger_build", ExceptionGroup("session", [closed]), 30)
    assert isinstance(error, ConnectionLostError)


def test_a_refused_connection_never_reached_the_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx2.ConnectError) as refused:
        httpx2.post(f"http://127.0.0.1:{port}/mcp", json={})
    error = call_failure("remote", "echo", refused.value, 30)
    assert type(error) is ServerUnavailableError
    assert not error.may_have_reached and error.retryable


# -- the store: was the database busy? ------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'o.db'}")
    db.migrate()

    # Fail at once instead of waiting out the store's busy_timeout; runs after its own pragmas.
    @event.listens_for(db.engine, "connect")
    def no_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    db.dispose()  # connections made before the listener are dropped
    return db


def _file(database: Database) -> str:
    return str(database.engine.url.database)


def test_a_locked_sqlite_database_is_a_busy_store_error(database: Database) -> None:
    holder = sqlite3.connect(_file(database), timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusyError) as caught, database.transaction(immediate=True):
            pass
    finally:
        holder.rollback()
        holder.close()
    error = caught.value
    assert error.retryable and "busy (SQLITE_BUSY)" in error.message
    cause = error.__cause__
    assert isinstance(cause, OperationalError) and isinstance(cause.orig, sqlite3.OperationalError)
    assert cause.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY


def test_a_stale_wal_snapshot_is_busy_too(database: Database) -> None:
    AuditLog(database).append("ana", "first", "s")
    with database.engine.connect() as reader:
        reader.exec_driver_sql("BEGIN")
        reader.exec_driver_sql("SELECT count(*) FROM audit").all()  # the snapshot is taken here
        AuditLog(database).append("bob", "second", "s")
        with pytest.raises(OperationalError) as caught:
            reader.exec_driver_sql("DELETE FROM audit WHERE seq = 0")
    assert caught.value.orig.sqlite_errorname == "SQLITE_BUSY_SNAPSHOT"
    assert isinstance(store_failure(caught.value, "write"), StoreBusyError)


def test_the_audit_append_waits_out_a_lock_by_its_type(database: Database) -> None:
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(_file(database), timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        holder.rollback()
        holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    started = time.monotonic()
    threading.Timer(0.2, release.set).start()
    try:
        entry = AuditLog(database).append("ana", "plan.approved", "p1")
    finally:
        release.set()
        thread.join()
    assert time.monotonic() - started >= 0.2, "the first attempts found the database busy"
    assert [e.seq for e in AuditLog(database).entries()] == [entry.seq]


def test_a_seq_taken_by_another_appender_is_a_conflict(database: Database) -> None:
    audit = AuditLog(database)
    first = audit.append("ana", "one", "s")
    audit.append("bob", "two", "s")
    with pytest.raises(StoreConflictError) as caught, database.transaction(immediate=True) as connection:
        audit.append_on(connection, "cid", "three", "s", {}, previous=first)  # chains after a stale head
    assert caught.value.retryable
    assert caught.value.__cause__ is not None
    assert "SQLITE_CONSTRAINT_PRIMARYKEY" in caught.value.message


def test_other_database_errors_are_not_retryable(database: Database) -> None:
    with pytest.raises(StoreError) as caught, database.transaction() as connection:
        connection.exec_driver_sql("SELECT * FROM no_such_table")
    assert type(caught.value) is StoreError and not caught.value.retryable
    assert "no such table" in caught.value.message


class _PostgresError(Exception):
    """What psycopg raises: the SQLSTATE is an attribute (psycopg is not installed here)."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("40001", StoreBusyError),  # serialization_failure
        ("40P01", StoreBusyError),  # deadlock_detected
        ("55P03", StoreBusyError),  # lock_not_available
        ("23505", StoreConflictError),  # unique_violation
        ("23503", StoreError),  # foreign_key_violation
        ("08006", StoreError),  # connection_failure
    ],
)
def test_postgres_errors_are_read_by_sqlstate(sqlstate: str, kind: type[StoreError]) -> None:
    # The message says "locked" even where the code does not: only the code may decide.
    wrapped = OperationalError("UPDATE runs ...", {}, _PostgresError("table is locked", sqlstate))
    assert type(store_failure(wrapped, "write to postgresql://db")) is kind


# -- the engine replays by the type ----------------------------------------------------------------


async def _fail_once_with(error: OpsmithError, *, steps_idempotent: bool, tmp_path: Path) -> list[str]:
    db = Database(f"sqlite:///{tmp_path / 'engine.db'}")
    db.migrate()
    failures = iter([True])

    async def flaky(_: dict[str, Any]) -> dict[str, Any]:
        if next(failures, False):
            raise error
        return {"ok": True}

    plan = plan_of(step("push"))
    if steps_idempotent:
        plan = idempotent(plan, "push")
    tools = Tools({"do_push": flaky})
    await executor(plan, tools, db).execute(new_run(plan, run_id="r1"))
    return tools.calls


@pytest.mark.anyio
async def test_a_call_that_never_reached_the_server_is_sent_again(tmp_path: Path) -> None:
    down = ServerUnavailableError("server 'registry' is restarting")
    assert await _fail_once_with(down, steps_idempotent=False, tmp_path=tmp_path) == ["do_push"] * 2


@pytest.mark.anyio
async def test_a_call_that_may_have_reached_the_server_is_not_repeated(tmp_path: Path) -> None:
    # Whatever the message says: the type decides.
    lost = ConnectionLostError("server 'registry' is restarting")
    assert await _fail_once_with(lost, steps_idempotent=False, tmp_path=tmp_path) == ["do_push"]


@pytest.mark.anyio
async def test_an_idempotent_call_is_repeated_after_a_lost_connection(tmp_path: Path) -> None:
    lost = ConnectionLostError("server 'registry' closed the connection during push")
    assert await _fail_once_with(lost, steps_idempotent=True, tmp_path=tmp_path) == ["do_push"] * 2

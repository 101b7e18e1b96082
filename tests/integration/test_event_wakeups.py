"""The LISTEN side of the event wake-ups against a real PostgreSQL: a notice comes when the journal's
transaction commits and never for one rolled back, and a listener whose connection the server cut
comes back by itself (saying so, so the hub reads every run again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import create_engine

from opsmith.store.wakeups import PostgresWakeups, announce

pytestmark = pytest.mark.integration

Woken = list[tuple[str | None, int]]


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not true after {seconds} s")
        await asyncio.sleep(0.02)


def commit_events(url: str, run_id: str, seq: int, *, rollback: bool = False) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            announce(connection, run_id, seq)
            (transaction.rollback if rollback else transaction.commit)()
    finally:
        engine.dispose()


def test_notices_follow_commits_and_survive_a_cut_connection(postgres_url: str) -> None:
    wakeups = PostgresWakeups.for_url(postgres_url)
    assert wakeups is not None and PostgresWakeups.for_url("sqlite:///x.db") is None
    woken: Woken = []

    async def scenario() -> None:
        listening = asyncio.create_task(wakeups.listen(lambda run, seq: woken.append((run, seq))))
        try:
            await until(lambda: wakeups.live and woken == [(None, 0)])
            await asyncio.to_thread(commit_events, postgres_url, "run-rolled-back", 3, rollback=True)
            await asyncio.to_thread(commit_events, postgres_url, "run-1", 7)
            await until(lambda: ("run-1", 7) in woken)
            assert ("run-rolled-back", 3) not in woken, "a notice only for what was committed"

            await asyncio.to_thread(_terminate_listener, postgres_url)
            await until(lambda: woken.count((None, 0)) >= 3 and wakeups.live)  # lost, then back
            await asyncio.to_thread(commit_events, postgres_url, "run-1", 9)
            await until(lambda: ("run-1", 9) in woken)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    asyncio.run(scenario())


def _terminate_listener(url: str) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        cut = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'opsmith-events' AND datname = current_database()"
        ).fetchall()
    assert cut == [(True,)], cut

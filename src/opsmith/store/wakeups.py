"""Wake-ups for the API's event watchers on PostgreSQL: LISTEN on one channel, NOTIFY in the commit.

The run journal is the truth and every API replica already reads it; what a replica lacks is the
moment to read. The journal's commit sends `pg_notify('opsmith_events', 'RUN_ID:SEQ')` inside the
transaction that writes the events, and PostgreSQL delivers a notification only when (and only if)
that transaction commits: a watcher woken by it always finds the rows. The payload says which run,
never what happened: the hub still reads the events from the journal, so a lost notice (the
listener was reconnecting) costs latency until the fallback poll, never an event or its order.

Why not Redis pub/sub, which `executor: celery` brings along anyway: a Redis message would be
published after the database commit, by a second system that can be down while the database is
up, and could arrive before the rows are visible or not at all; keeping the two in order is the
job LISTEN/NOTIFY does for nothing. SQLite has no such channel across processes, so there the hub
polls as it always did.

Cost: PostgreSQL serialises the commits that NOTIFY (a short lock at commit, cluster-wide); one
notice per journal commit that writes events keeps that to the commits that matter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_log = logging.getLogger(__name__)

CHANNEL = "opsmith_events"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :payload)")

Wake = Callable[[str | None, int], None]


def announce(connection: Connection, run_id: str, seq: int) -> None:
    """Inside the transaction that writes events of `run_id` up to `seq`: the notice goes out when
    it commits. Nothing on a database without LISTEN/NOTIFY."""
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY, {"payload": f"{run_id}:{seq}"})


def parse(payload: str) -> tuple[str, int] | None:
    """`RUN_ID:SEQ` as `announce` sent it; None for anything else (someone else's NOTIFY)."""
    run_id, sep, seq = payload.rpartition(":")
    if not sep or not run_id or not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        return None
    return run_id, int(seq)


class PostgresWakeups:
    """One dedicated connection doing LISTEN, reconnected with backoff when it drops (the real
    adapter of the EventWakeups port)."""

    def __init__(
        self,
        conninfo: str,
        display: str,
        *,
        ping_seconds: float = 30.0,
        backoff_seconds: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self._conninfo = conninfo
        self._display = display
        self._ping = ping_seconds
        self._backoff = backoff_seconds
        self._live = False

    @classmethod
    def for_url(cls, database_url: str) -> PostgresWakeups | None:
        """For a PostgreSQL `database_url` (SQLAlchemy form); None for any other database."""
        try:
            url = make_url(database_url)
        except (ArgumentError, ValueError):
            return None  # the database itself reports the bad URL, once, with its hint
        if url.get_backend_name() != "postgresql":
            return None
        from psycopg.conninfo import make_conninfo  # here: the CLI on SQLite never pays for psycopg

        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(
            make_conninfo(plain, application_name="opsmith-events"),
            url.render_as_string(hide_password=True),
        )

    @property
    def live(self) -> bool:
        return self._live

    async def listen(self, wake: Wake) -> None:
        """Until cancelled: `wake(run_id, seq)` per notice; `wake(None, 0)` whenever `live` changes,
        since notices may have been missed while nobody listened."""
        import psycopg

        delay, failed = self._backoff[0], False
        while True:
            try:
                await self._session(wake)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self._live or not failed:  # said once per outage, not at every try
                    _log.warning(
                        "no event wake-ups from %s (%s); watchers poll until they are back",
                        self._display,
                        exc,
                    )
                failed = True
            if self._live:
                self._live = False
                delay = self._backoff[0]
                wake(None, 0)  # the watchers poll at the fast pace until the notices are back
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff[1])

    async def _session(self, wake: Wake) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=10
        ) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self._live = True
            _log.info("event wake-ups: LISTEN %s on %s", CHANNEL, self._display)
            wake(None, 0)  # whatever was committed while nobody listened
            while True:
                async for notice in connection.notifies(timeout=self._ping):
                    found = parse(notice.payload)
                    if found is not None:
                        wake(*found)
                # A connection that died without a word (a dropped route) shows up here, bounded.
                await asyncio.wait_for(connection.execute("SELECT 1"), timeout=10)

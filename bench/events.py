"""Event delivery across two API replicas on one PostgreSQL: LISTEN/NOTIFY wake-ups vs polling only.

For each mode, in this one run, against a real PostgreSQL (tests/dbservers.py: Debian's
postgresql from a temp data directory on a free loopback port, fsync off) with a fresh database:
two real `opsmith serve --port 0` processes on that database (no MCP servers, so they start in a
second or two), and this process as the driver of --runs runs (it holds their leases and commits
their events with RunRepository.commit, as any driver does, NOTIFY included).

  LISTEN/NOTIFY   the defaults: each replica LISTENs, reads a watched run when a notice names
                  it, and polls it only every api.event_fallback_seconds (5 s);
  poll only       api.event_listen: false: each replica polls each watched run every
                  api.event_poll_seconds (0.05 s, the default, the SQLite pace).

Latency: --clients WebSocket clients on EACH replica follow run 1. --rounds rounds, each after a
random pause (0.1-0.2 s, so the commit falls anywhere in the poll's period): the time is taken just
before the commit, and each client's latency is from there to its receipt of that event (every
client of both replicas, every round, in one sample set).

Database load: the transactions per second PostgreSQL committed (pg_stat_database.xact_commit of
the database) over --idle seconds with nothing happening, first with no client, then with one
WebSocket client per replica on each of the --runs runs. The difference is what watching costs
the database while the runs are quiet. PostgreSQL's idle backends report their counts up to 10 s
late, so the window starts 11 s after the clients connected and the figure is approximate at the
edges; both modes are measured the same way.

NOTIFY's cost: PostgreSQL takes a lock at the commit of a transaction that notified, one at a time
across the cluster. On a fresh database, 1 and then 4 connections at once each commit --commits
one-row updates (each writer its own row), plain and then with a pg_notify in each, as the run
journal's commit sends it: the ms per transaction and the transactions per second of all writers.

Run with the project's venv: `uv run --frozen python bench/events.py`. Bounded: every wait has a
timeout, every server is stopped however the bench ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

# Run as a script, bench/ is on sys.path; _serve puts the repository root on it: the servers live in tests/.
from _serve import OPSMITH, Served, child_env, serving
from tests.dbservers import PostgresServer
from tests.unit.test_engine_helpers import plan_of, step
from websockets.asyncio.client import ClientConnection, connect

from opsmith.bootstrap import bootstrap
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState, RunStatus, new_run, with_run_status
from opsmith.store.runs import RunRepository, new_owner

PAUSE = (0.1, 0.2)
STATS_LAG = 11.0  # seconds: PostgreSQL's idle backends flush their statistics every 10 s
MODES = {
    "LISTEN/NOTIFY (fallback poll 5 s)": "api: {}",
    "poll only, every 0.05 s": "api: {event_listen: false}",
}


@dataclass
class Driver:
    """This process as the driver of the runs: it holds their leases and commits their events."""

    runs: RunRepository
    states: list[RunState]
    owner: str = field(default_factory=new_owner)
    commits: list[float] = field(default_factory=list)  # ms of each timed commit

    def commit(self, index: int, message: str) -> RunEvent:
        state = self.states[index]
        event = RunEvent(run_id=state.run_id, at=datetime.now(UTC), type=EventType.LOG, message=message)
        return self.runs.commit(state, owner=self.owner, events=[event], lease_seconds=3600)[0]


def driver_of(project: Path, count: int) -> Driver:
    app = bootstrap(project / "opsmith.yaml", child_env())
    runs = app.journal()
    assert isinstance(runs, RunRepository)
    plan = plan_of(step("a"))
    driver = Driver(runs, [])
    for n in range(count):
        state = with_run_status(new_run(plan, run_id=f"run_bench_events_{n}"), RunStatus.RUNNING)
        runs.commit(state, owner=driver.owner, started_by="bench", lease_seconds=3600)
        driver.states.append(state)
        driver.commit(n, "bench: the run exists")
    return driver


class Clients:
    """WebSocket clients of one or more feeds; when each event (by run and seq) reached each."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def add(self, url: str, token: str, timeout: float) -> None:
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=timeout)
        self.sockets.append(ws)
        self.tasks.append(asyncio.create_task(self._listen(ws)))

    async def _listen(self, ws: ClientConnection) -> None:
        import json

        async for message in ws:
            at = time.perf_counter()
            event = json.loads(message)
            self.arrivals[(event["run_id"], event["seq"])].append(at)

    async def until(self, key: tuple[str, int], count: int, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        while len(self.arrivals[key]) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"event {key} reached {len(self.arrivals[key])} of {count} clients")
            await asyncio.sleep(0.0005)
        return self.arrivals[key]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.wait_for(
            asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True), 30
        )


async def latencies(
    replicas: list[Served], token: str, driver: Driver, clients: int, rounds: int
) -> list[float]:
    run_id = driver.states[0].run_id
    feed = Clients()
    try:
        last = driver.runs.last_seq(run_id)
        for replica in replicas:
            for _ in range(clients):
                await feed.add(replica.ws_url(f"/api/v1/runs/{run_id}/events?after={last}"), token, 30)
        total = clients * len(replicas)
        for _ in range(3):  # warm-up: every client attached to its replica's hub
            stored = driver.commit(0, "bench: warm-up")
            await feed.until((run_id, stored.seq), total, 30)
        rng = random.Random(7)
        samples: list[float] = []
        for n in range(rounds):
            await asyncio.sleep(rng.uniform(*PAUSE))
            began = time.perf_counter()
            stored = driver.commit(0, f"bench {n}")
            driver.commits.append((time.perf_counter() - began) * 1000)
            got = await feed.until((run_id, stored.seq), total, 30)
            samples += [(at - began) * 1000 for at in got]
        return samples
    finally:
        await feed.close()


def commits(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def idle_rate(dsn: str, seconds: float) -> float:
    await asyncio.sleep(STATS_LAG)
    before = await asyncio.to_thread(commits, dsn)
    await asyncio.sleep(seconds)
    after = await asyncio.to_thread(commits, dsn)
    return (after - before - 2) / seconds  # less the two reads of the counter themselves


async def load(
    replicas: list[Served], token: str, driver: Driver, dsn: str, seconds: float
) -> tuple[float, float]:
    quiet = await idle_rate(dsn, seconds)
    feed = Clients()
    try:
        for state in driver.states:
            for replica in replicas:
                after = driver.runs.last_seq(state.run_id)
                await feed.add(replica.ws_url(f"/api/v1/runs/{state.run_id}/events?after={after}"), token, 30)
        watched = await idle_rate(dsn, seconds)
    finally:
        await feed.close()
    return quiet, watched


def notify_cost(dsn: str, writers: int, count: int, notify: bool) -> tuple[list[float], float]:
    """`writers` connections at once, each committing `count` one-row updates (with a pg_notify in
    each when `notify`): every transaction's ms, and the transactions per second of all of them."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS bench_rows (id int PRIMARY KEY, n int)")
        setup.execute(
            "INSERT INTO bench_rows SELECT g, 0 FROM generate_series(0, 63) g ON CONFLICT DO NOTHING"
        )
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def write(row: int) -> None:
        mine = []
        with psycopg.connect(dsn) as connection:
            start.wait(timeout=30)
            for n in range(count):
                began = time.perf_counter()
                with connection.transaction():
                    connection.execute("UPDATE bench_rows SET n = n + 1 WHERE id = %s", (row,))
                    if notify:
                        connection.execute("SELECT pg_notify('opsmith_bench', %s)", (f"run_{row}:{n}",))
                mine.append((time.perf_counter() - began) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return times, len(times) / (time.perf_counter() - began)


@dataclass
class Result:
    mode: str
    samples: list[float]
    quiet: float
    watched: float
    commits: list[float]


def measure(server: PostgresServer, root: Path, mode: str, settings: str, args: argparse.Namespace) -> Result:
    url = server.new_database()
    project = root / f"mode{len(list(root.iterdir()))}"
    project.mkdir()
    (project / "opsmith.yaml").write_text(f"database_url: '{url}'\nmcpServers: {{}}\n{settings}\n")
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with ExitStack() as stack:
        first = stack.enter_context(serving(project, args.start_timeout, need_token=False))
        second = stack.enter_context(serving(project, args.start_timeout, need_token=False))
        if first.token is None:
            raise SystemExit("the first replica printed no admin token")
        driver = driver_of(project, args.runs)
        replicas = [first, second]
        samples = asyncio.run(latencies(replicas, first.token, driver, args.clients, args.rounds))
        quiet, watched = asyncio.run(load(replicas, first.token, driver, dsn, args.idle))
    return Result(mode, samples, quiet, watched, driver.commits)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def report_notify(dsn: str, count: int) -> None:
    print(
        f"\nWhat a NOTIFY adds to a commit (PostgreSQL serialises the commits that notify): {count}"
        " one-row update transactions per writer, ms per transaction"
    )
    wide = 36
    print(f"  {'':<{wide}}{'n':>6}{'p50':>9}{'p99':>9}{'tx/s':>10}")
    for writers in (1, 4):
        for notify in (False, True):
            times, rate = notify_cost(dsn, writers, count, notify)
            label = f"{writers} writer{'s' if writers > 1 else ''}, " + (
                "with pg_notify" if notify else "plain"
            )
            p50, q99 = statistics.median(times), p99(times)
            print(f"  {label:<{wide}}{len(times):>6}{p50:>9.3f}{q99:>9.3f}{rate:>10.0f}")


def report(results: list[Result], args: argparse.Namespace) -> None:
    wide = 36
    print(
        f"\nOne event to {args.clients} WebSocket clients on each of 2 replicas, {args.rounds} rounds;"
        " ms from just before the commit to each client's receipt"
    )
    print(f"  {'':<{wide}}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    for r in results:
        s = r.samples
        print(f"  {r.mode:<{wide}}{len(s):>6}{statistics.median(s):>9.2f}{p99(s):>9.2f}{max(s):>9.2f}")
    base, ours = results[1], results[0]
    ratio50 = statistics.median(base.samples) / statistics.median(ours.samples)
    ratio99 = p99(base.samples) / p99(ours.samples)
    print(f"  {'poll only / LISTEN':<{wide}}{'':>6}{ratio50:>8.1f}x{ratio99:>8.1f}x")
    for r in results:  # inside the latency: the driver's commit, the same in both modes
        print(f"  the commit itself, {r.mode}: p50 {statistics.median(r.commits):.2f} ms")
    print(
        f"\nDatabase transactions/s while idle, over {args.idle:g} s; {args.runs} runs watched by one"
        " client on each replica"
    )
    print(f"  {'':<{wide}}{'no client':>11}{'watched':>10}{'watching costs':>16}")
    for r in results:
        print(f"  {r.mode:<{wide}}{r.quiet:>11.1f}{r.watched:>10.1f}{r.watched - r.quiet:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10, help="WebSocket clients on each replica")
    parser.add_argument("--runs", type=int, default=10, help="runs watched while idle")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of each idle window")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    parser.add_argument("--commits", type=int, default=2000, help="transactions per writer, NOTIFY's cost")
    args = parser.parse_args()
    if min(args.rounds, args.clients, args.runs) < 2:
        parser.error("--rounds, --clients and --runs must be at least 2")
    if not OPSMITH.exists():
        raise SystemExit(f"no console script at {OPSMITH}: run this with the project's venv (uv run ...)")
    with tempfile.TemporaryDirectory(prefix="opsmith-events-bench-") as tmp:
        root = Path(tmp)
        (root / "projects").mkdir()
        with PostgresServer.started() as server:
            results = [measure(server, root / "projects", mode, s, args) for mode, s in MODES.items()]
            report(results, args)
            report_notify(server.dsn(server.new_database().rsplit("/", 1)[-1]), args.commits)
    cores = len(os.sched_getaffinity(0))
    print(f"\n{cores} cores, load {os.getloadavg()[0]:.1f}; PostgreSQL with fsync off (tests/dbservers.py)")


if __name__ == "__main__":
    main()

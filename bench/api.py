"""API latency benchmark: plan creation over HTTP, and one event fanned out to 100 WebSockets.

Everything is measured in this one run, against a real `opsmith serve --port 0` started as a
subprocess (its own process group, stopped with SIGTERM in a finally, the group killed if it
lingers) in a temp project whose opsmith.yaml is bench/plan_latency.py's: the four sandbox MCP
servers over a freshly seeded sandbox world, no latency, state (SQLite) under the temp dir. This
process talks to it over loopback only, with the admin token the first start prints.

Plan creation, for one request ("Deploy the code to Kubernetes production"): three untimed
warm-up rounds, then --plans N rounds, each timing the four below once in turn (so drift in the
machine's load hits all alike), in milliseconds:

  Planner.plan()        the planning time alone, measured as bench/plan_latency.py measures it
                        (its plan_once: one Planner, its fixed Tuesday as now, no history), the
                        Planner built once the way the service builds it (planning.planner_for)
                        over the catalog the server recorded (so the very same tools);
  planning.make_plan()  the service call the route makes, in this process over the same
                        database: everything but HTTP, authentication and the JSON answer;
  POST /api/v1/plans    over one keep-alive httpx connection, from just before the request is
                        sent to the whole 201 answer read;
  GET /api/v1/whoami    the same connection: what HTTP and the token check alone cost.

API overhead = the API's p50 (p99) minus the planning time's p50 (p99): the samples are not
paired, so this is a difference of quantiles. p99 is interpolated between the samples (the
inclusive method, never past the maximum): with N = 30 it lies between the two largest.
Target: API overhead p99 <= 20 ms over the planning time. The plan's save is one commit, which
with the default `sqlite_synchronous: full` waits for an fsync of the journal; run once more with
--sqlite-synchronous normal to see what the disk's flush costs apart from opsmith.

Fan-out: --clients (100) WebSocket clients in this process connect to
ws://.../api/v1/runs/{id}/events?after=N (the token in the Authorization header). The run is one
this process creates and drives itself: it holds the run's lease (so the server's take-over duty
leaves it alone) and writes each event into the journal with RunRepository.commit, as any driver
of a run does. Until every client has heard something, warm-up events are committed (a client is
attached to the hub only once its handler runs). Then --rounds rounds, each after a random pause
(0.1-0.2 s, so the commit falls anywhere in the poll's period): the time is taken just before the
commit, and the latency of each client is from there to the moment it received that event. The
server's event hub polls the journal every api.event_poll_seconds (0.05 s by default), so the
floor is about half that on average (25 ms), up to the whole period. Target: p99 <= 100 ms.

Baseline, in the same run and measured the same way, once `opsmith serve` has stopped: a bare
`websockets` server in a subprocess on loopback that broadcasts (websockets.broadcast) every
message one control connection sends it to the same number of clients; the time is taken just
before the control message is sent. The ratio opsmith / baseline is of the p50s and of the p99s.

Metrics: one /metrics scrape over a trail of --audit (5,000) `tool.called` entries, the window the
scrape sums (they are written into the served database in one transaction, signed and chained as
the engine writes them, once the rows above are done: the plans were timed over a short trail).
--plans scrapes over HTTP with the same connection, and in this process, in turn: metrics.snapshot()
as it is (the database sums the window), and `old_snapshot` below, a copy of what it was before
(the window's entries read and folded in Python, the histogram counted from their durations).
Both in-process rows include rendering the Prometheus text. Then their parts: the audit sums as a
scrape finds them (kept while no entry was appended), summed afresh by a new AuditLog, and the
plans waiting for approval, which both read whole to count them.

Bounded: a round that would start past --budget seconds is not started (the table says how many
ran), every wait has a timeout, and the servers are stopped however the bench ends. After its
clients have left, one more event is committed: the server's socket handler notices a client that
left only when a send fails, and until then holds up the server's SIGTERM.

    uv run python bench/api.py [--plans 30] [--rounds 20] [--clients 100] [--audit 5000] [--budget 300]

--serve-from DIR runs `opsmith serve` from another source tree (DIR holds its `opsmith` package,
for example a copy of src/ from before a change): the HTTP rows are then that code's, the
in-process rows this tree's.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

# Run as a script, bench/ is on sys.path: the planner is timed the way plan_latency.py times it.
from _serve import OPSMITH, Served, child_env, serving, stop_group
from plan_latency import TUESDAY, config_text, plan_once
from prometheus_client import CollectorRegistry, generate_latest
from websockets.asyncio.client import ClientConnection, connect

from opsmith.api.routes.health import _Collector
from opsmith.bootstrap import App, bootstrap
from opsmith.domain.audit import Link
from opsmith.domain.plan import PlanStatus
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState, RunStatus, new_run
from opsmith.planner.planner import Situation
from opsmith.sandbox.world import World
from opsmith.services import metrics, planning
from opsmith.services.discovery import recorded_catalog
from opsmith.services.identity import acting_as
from opsmith.store.audit import AuditLog
from opsmith.store.runs import RunRepository, new_owner

REQUEST = "Deploy the code to Kubernetes production"
WARM_UPS = 3
OVERHEAD_TARGET_MS = 20.0
FANOUT_TARGET_MS = 100.0
PAUSE = (0.1, 0.2)

# The baseline: a bare websockets server. /control's messages go to every client of any other path.
BROADCASTER = """
import asyncio, sys
from websockets.asyncio.server import broadcast, serve

feed = set()

async def handler(ws):
    if ws.request.path == "/control":
        async for message in ws:
            broadcast(feed, message)
        return
    feed.add(ws)
    try:
        await ws.wait_closed()
    finally:
        feed.discard(ws)

async def main():
    async with serve(handler, "127.0.0.1", 0, max_queue=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes

asyncio.run(main())
"""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, cap: float) -> float:
        """A timeout for one wait: `cap`, but never past the budget (at least a second)."""
        return max(1.0, min(cap, self.left()))


# -- plan creation -------------------------------------------------------------------------------


@dataclass
class PlanTimes:
    planner: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    api: list[float] = field(default_factory=list)
    whoami: list[float] = field(default_factory=list)


def time_plan_creation(app: App, served: Served, rounds: int, budget: Budget) -> PlanTimes:
    """Warm-ups, then `rounds` rounds each timing the three once, so drift in the machine's load
    hits all alike."""
    recorded = recorded_catalog(app)
    if recorded is None:
        raise SystemExit("the server recorded no fresh catalog: planning would discover, not plan")
    planner = planning.planner_for(app)
    situation = Situation(catalog=recorded[0], now=TUESDAY)
    # As `opsmith serve` does once started (api/app.py): what is made by now lives as long as the
    # process, and unfrozen, a full collection walks it all (this process holds the whole stack:
    # 200 ms), landing in whichever row it happens to fall.
    gc.collect()
    gc.freeze()
    who = acting_as(app, "bench")
    headers = {"Authorization": f"Bearer {served.token}"}
    times = PlanTimes()
    with (
        httpx.Client(base_url=served.url, headers=headers, timeout=budget.wait(60)) as client,
        asyncio.Runner() as runner,
    ):

        def api() -> None:
            answer = client.post("/api/v1/plans", json={"request": REQUEST})
            if answer.status_code != 201:
                raise SystemExit(f"POST /api/v1/plans answered {answer.status_code}: {answer.text[:500]}")

        def whoami() -> None:
            answer = client.get("/api/v1/whoami")
            if answer.status_code != 200:
                raise SystemExit(f"GET /api/v1/whoami answered {answer.status_code}: {answer.text[:500]}")

        async def service() -> None:
            # The plan is not the task's result: asyncio.Runner.run puts its SIGINT handler back
            # with the finished task bound to it, and signal.signal's reply formats that task,
            # its result with it (a plan's whole repr, milliseconds), inside the timed call.
            await planning.make_plan(app, who, REQUEST, {})

        steps: list[tuple[list[float], Callable[[], object]]] = [
            (times.planner, lambda: plan_once(planner, REQUEST, situation)),
            (times.service, lambda: runner.run(service())),
            (times.api, api),
            (times.whoami, whoami),
        ]
        for n in range(WARM_UPS + rounds):
            if n >= WARM_UPS and not budget.left():
                break
            for samples, step in steps:
                began = time.perf_counter()
                step()
                took = (time.perf_counter() - began) * 1000
                if n >= WARM_UPS:
                    samples.append(took)
    if recorded_catalog(app) is None:
        raise SystemExit("the recorded catalog went stale while timing: make_plan may have discovered")
    return times


# -- fan-out ---------------------------------------------------------------------------------------


class Fanout:
    """Clients of one feed; when each message (by its "seq") reached each client."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.heard: set[int] = set()
        self.changed = asyncio.Event()
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, url: str, headers: dict[str, str], timeout: float) -> None:
        async def one() -> ClientConnection:
            return await connect(url, additional_headers=headers, open_timeout=timeout, max_queue=None)

        self.sockets = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(self.count))), timeout)
        self.tasks = [asyncio.create_task(self._listen(n, ws)) for n, ws in enumerate(self.sockets)]

    async def _listen(self, n: int, ws: ClientConnection) -> None:
        async for message in ws:
            at = time.perf_counter()  # first: parsing is not part of the delivery
            self.arrivals[json.loads(message)["seq"]].append(at)
            self.heard.add(n)
            self.changed.set()

    def reached_all(self, seq: int) -> bool:
        return len(self.arrivals[seq]) >= self.count

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.wait_for(
            asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True), 30
        )


async def measure(
    fanout: Fanout, send: Callable[[int], Awaitable[None]], first: int, rounds: int, budget: Budget
) -> list[list[float]]:
    """Warm up until every client heard a message, then per round: each client's ms from just
    before `send(seq)` to its receipt of that seq."""
    seq = first
    warm_until = time.monotonic() + budget.wait(60)
    while len(fanout.heard) < fanout.count:
        if time.monotonic() > warm_until:
            raise SystemExit(f"only {len(fanout.heard)} of {fanout.count} clients heard the warm-up events")
        await send(seq)
        seq += 1
        await fanout.until(lambda: len(fanout.heard) == fanout.count, 0.5)
    rng = random.Random(7)
    results = []
    for _ in range(rounds):
        if not budget.left():
            break
        await asyncio.sleep(rng.uniform(*PAUSE))
        target = seq
        began = time.perf_counter()
        await send(target)
        seq += 1
        got = await fanout.until(functools.partial(fanout.reached_all, target), budget.wait(30))
        if not got:
            raise SystemExit(
                f"event {target} reached {len(fanout.arrivals[target])} of {fanout.count} clients"
            )
        results.append([(at - began) * 1000 for at in fanout.arrivals[target]])
    return results


@dataclass
class Journal:
    """This process as the driver of one run: it holds the lease and commits events."""

    runs: RunRepository
    state: RunState
    owner: str
    lease: float
    poll: float
    commits: list[float] = field(default_factory=list)

    async def send(self, seq: int) -> None:
        began = time.perf_counter()
        # In the loop, blocking: the clients' arrivals cannot come before the commit anyway.
        stored = self.commit(f"bench {seq}")
        self.commits.append((time.perf_counter() - began) * 1000)
        if stored.seq != seq:
            raise SystemExit(f"committed event {stored.seq}, expected {seq}: another writer?")

    def commit(self, message: str) -> RunEvent:
        event = RunEvent(run_id=self.state.run_id, at=datetime.now(UTC), type=EventType.LOG, message=message)
        return self.runs.commit(self.state, owner=self.owner, events=[event], lease_seconds=self.lease)[0]


def driven_run(app: App, plan_id: str, lease: float) -> Journal:
    runs = app.journal()
    assert isinstance(runs, RunRepository)
    state = new_run(app.plans.get(plan_id), run_id="run_bench_fanout")
    journal = Journal(runs, state, new_owner(), lease, app.config.api.event_poll_seconds)
    runs.commit(journal.state, owner=journal.owner, started_by="bench", lease_seconds=lease)
    return journal


async def fan_out_opsmith(
    served: Served, journal: Journal, clients: int, rounds: int, budget: Budget
) -> list[list[float]]:
    last = journal.runs.last_seq(journal.state.run_id)
    url = served.ws_url(f"/api/v1/runs/{journal.state.run_id}/events?after={last}")
    fanout = Fanout(clients)
    try:
        await fanout.connect(url, {"Authorization": f"Bearer {served.token}"}, budget.wait(60))
        return await measure(fanout, journal.send, last + 1, rounds, budget)
    finally:
        await fanout.close()
        # The server's socket handler only sends, so it learns that its client left only when the
        # next event fails to go out; until then it waits, and holds up the server's SIGTERM.
        journal.commit("bench: the clients left")
        await asyncio.sleep(journal.poll * 4)


async def fan_out_baseline(clients: int, rounds: int, budget: Budget) -> list[list[float]]:
    process = subprocess.Popen(
        [sys.executable, "-c", BROADCASTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    fanout = Fanout(clients)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), budget.wait(30))
        if not line.strip().isdigit():
            raise SystemExit(f"the baseline server did not start: {line!r}")
        base = f"ws://127.0.0.1:{int(line)}"
        await fanout.connect(f"{base}/feed", {}, budget.wait(60))
        async with connect(f"{base}/control", open_timeout=budget.wait(30)) as control:

            async def send(seq: int) -> None:
                await control.send(json.dumps({"seq": seq}))

            return await measure(fanout, send, 1, rounds, budget)
    finally:
        await fanout.close()
        if process.stdin is not None:
            process.stdin.close()  # the server's cue to stop
        for what in stop_group(process, grace=10):
            print(f"warning: baseline server: {what}; killed", file=sys.stderr)


# -- metrics ---------------------------------------------------------------------------------------


def seed_audit(app: App, count: int) -> None:
    """`count` tool calls in the audit trail, chained and signed as a run writes them, in one commit."""
    audit, database = app.audit, app.database
    assert isinstance(audit, AuditLog)
    assert database is not None
    rng = random.Random(11)
    tools = [f"{server}/{tool}" for server in ("kubernetes", "jenkins", "registry") for tool in "abc"]
    last: Link | None = None
    with database.transaction(immediate=True) as connection:
        for n in range(count):
            ok = rng.random() < 0.9
            ms = round(rng.lognormvariate(6, 1.5), 1)  # a median of 0.4 s, a long tail
            details = {"step": f"s{n % 11}", "tool": rng.choice(tools), "ok": ok, "result": "done", "ms": ms}
            subject = f"run_bench_{n // 20}"
            last = audit.append_on(connection, "bench", "tool.called", subject, details, previous=last)
    if last is not None:
        audit.witnessed(last)


@dataclass(frozen=True)
class OldToolCalls:
    calls: int = 0
    errors: int = 0
    seconds: list[float] = field(default_factory=list)


def old_snapshot(app: App, window: int = 5000) -> dict[str, OldToolCalls]:
    """metrics.snapshot as it was before the database summed the window: every entry read, folded
    here (the runs and the plans waiting read as the current one reads them)."""
    journal = app.journal()
    {status.value: len(journal.ids([status])) for status in RunStatus}
    len(app.plans.list(PlanStatus.PENDING_APPROVAL, limit=10_000))
    tools: dict[str, OldToolCalls] = {}
    for entry in app.audit.entries(limit=window):
        if entry.action != "tool.called":
            continue
        details = entry.details
        name = str(details.get("tool", "?"))
        seen = tools.get(name, OldToolCalls())
        ms = details.get("ms")
        ok = bool(details.get("ok"))
        tools[name] = OldToolCalls(
            calls=seen.calls + 1,
            errors=seen.errors + (0 if ok else 1),
            seconds=[*seen.seconds, float(ms) / 1000] if ok and isinstance(ms, int | float) else seen.seconds,
        )
    return tools


def old_render(tools: dict[str, OldToolCalls]) -> bytes:
    """What the route made of the old snapshot: its histogram counted from every duration."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    class Collector:
        def collect(self) -> Iterator[object]:
            calls = CounterMetricFamily("opsmith_tool_calls", "Tool calls", labels=["tool", "outcome"])
            seconds = HistogramMetricFamily("opsmith_step_duration_seconds", "Durations", labels=["tool"])
            for tool, found in sorted(tools.items()):
                calls.add_metric([tool, "ok"], found.calls - found.errors)
                calls.add_metric([tool, "error"], found.errors)
                buckets = [(str(b), sum(1 for s in found.seconds if s <= b)) for b in metrics.BUCKETS]
                buckets.append(("+Inf", len(found.seconds)))
                seconds.add_metric([tool], buckets, sum_value=sum(found.seconds))
            yield calls
            yield seconds

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    return generate_latest(registry)


def new_render(app: App) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics.snapshot(app), []))
    return generate_latest(registry)


@dataclass
class MetricTimes:
    entries: int
    api: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)
    old: list[float] = field(default_factory=list)
    sums: list[float] = field(default_factory=list)
    fresh: list[float] = field(default_factory=list)
    waiting: list[float] = field(default_factory=list)
    plans: int = 0


def time_metrics(app: App, served: Served, entries: int, rounds: int, budget: Budget) -> MetricTimes:
    seed_audit(app, entries)
    times = MetricTimes(entries, plans=len(app.plans.list(PlanStatus.PENDING_APPROVAL, limit=10_000)))
    window = 5000  # metrics.snapshot's
    database = app.database
    assert database is not None
    headers = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=budget.wait(60)) as client:

        def api() -> None:
            answer = client.get("/metrics")
            if answer.status_code != 200 or "opsmith_step_duration_seconds_bucket" not in answer.text:
                raise SystemExit(f"GET /metrics answered {answer.status_code}: {answer.text[:500]}")

        steps: list[tuple[list[float], Callable[[], object]]] = [
            (times.api, api),
            (times.new, lambda: new_render(app)),
            (times.old, lambda: old_render(old_snapshot(app))),
            (times.sums, lambda: app.audit.tool_calls(window, metrics.BUCKETS)),
            (times.fresh, lambda: AuditLog(database).tool_calls(window, metrics.BUCKETS)),
            (times.waiting, lambda: app.plans.list(PlanStatus.PENDING_APPROVAL, limit=10_000)),
        ]
        for n in range(WARM_UPS + rounds):
            if n >= WARM_UPS and not budget.left():
                break
            for samples, step in steps:
                began = time.perf_counter()
                step()
                took = (time.perf_counter() - began) * 1000
                if n >= WARM_UPS:
                    samples.append(took)
    return times


def print_metrics(times: MetricTimes) -> None:
    print(f"\nOne /metrics scrape, {times.entries:,} tool calls in the audit trail (ms)")
    print(f"  {'':<{WIDE}}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    print(row("GET /metrics, HTTP keep-alive", times.api))
    print(row("metrics.snapshot() + render, this process", times.new))
    print(row("before: entries read and folded, + render", times.old))
    print(row("  of now: the audit sums (AuditTrail.tool_calls)", times.sums))
    print(row("  the sums, not kept (a new AuditLog each time)", times.fresh))
    print(row(f"  of both: the {times.plans} plans waiting, read whole", times.waiting))


# -- the table -------------------------------------------------------------------------------------

WIDE = 48


def p99(values: list[float]) -> float:
    # Inclusive: with few samples the default (exclusive) method extrapolates past the maximum.
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:  # the budget ran out before this row had samples enough
        return float("nan"), float("nan"), float("nan")
    return statistics.median(values), p99(values), max(values)


def row(label: str, values: list[float]) -> str:
    p50, q99, top = quantiles(values)
    return f"  {label:<{WIDE}}{len(values):>6}{p50:>9.2f}{q99:>9.2f}{top:>9.2f}"


def difference(label: str, more: list[float], less: list[float]) -> str:
    (a50, a99, _), (b50, b99, _) = quantiles(more), quantiles(less)
    return f"  {label:<{WIDE}}{'':>6}{a50 - b50:>9.2f}{a99 - b99:>9.2f}"


def print_plans(times: PlanTimes, asked: int) -> None:
    print(f"\nPlan creation, {REQUEST!r}; {asked} asked per row (ms)")
    print(f"  {'':<{WIDE}}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    print(row("Planner.plan() alone (as plan_latency.py)", times.planner))
    print(row("planning.make_plan() in this process", times.service))
    print(row("POST /api/v1/plans, HTTP keep-alive", times.api))
    print(row("GET /api/v1/whoami (HTTP and token check)", times.whoami))
    overhead = quantiles(times.api)[1] - quantiles(times.planner)[1]
    met = "yes" if overhead <= OVERHEAD_TARGET_MS else "NO"
    print(
        difference("API overhead = API - planning", times.api, times.planner)
        + f"   target p99 <= {OVERHEAD_TARGET_MS:.0f} ms: {met}"
    )
    print(difference("  in the service: make_plan - planning", times.service, times.planner))
    print(difference("  in HTTP, auth, JSON: API - make_plan", times.api, times.service))


@dataclass
class FanoutResult:
    label: str
    rounds: list[list[float]]

    @property
    def all(self) -> list[float]:
        return [v for r in self.rounds for v in r]


def print_fanout(ours: FanoutResult, base: FanoutResult, clients: int, rounds: int, journal: Journal) -> None:
    print(
        f"\nOne event to {clients} WebSocket clients, {len(ours.rounds)} of {rounds} rounds"
        f" (baseline {len(base.rounds)}); ms from just before the commit (baseline: the send)"
        " to each client's receipt"
    )
    print(f"  {'':<{WIDE}}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'last p50':>10}")
    for result in (ours, base):
        last = statistics.median(max(r) for r in result.rounds) if result.rounds else float("nan")
        print(row(result.label, result.all) + f"{last:>10.2f}")
    (o50, o99, _), (b50, b99, _) = quantiles(ours.all), quantiles(base.all)
    print(f"  {'ratio opsmith / baseline':<{WIDE}}{'':>6}{o50 / b50:>8.1f}x{o99 / b99:>8.1f}x")
    met = "yes" if o99 <= FANOUT_TARGET_MS else "NO"
    print(f"  target: p99 <= {FANOUT_TARGET_MS:.0f} ms from the commit: {met}")
    poll = journal.poll * 1000
    print(f"  floor: the poll every {poll:.0f} ms, {poll / 2:.0f} ms on average")
    commit50, commit_max = statistics.median(journal.commits), max(journal.commits)
    print(f"  the commit itself: p50 {commit50:.2f} ms, max {commit_max:.2f} ms")
    print("  last p50: over the rounds, the median of the slowest client's latency")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=30, help="timed plan creations per row")
    parser.add_argument("--rounds", type=int, default=20, help="events fanned out, each to every client")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument(
        "--start-timeout", type=float, default=120.0, help="seconds `opsmith serve` may take to start"
    )
    parser.add_argument("--budget", type=float, default=300.0, help="seconds; start no round past it")
    parser.add_argument("--audit", type=int, default=5000, help="tool calls in the trail /metrics sums")
    parser.add_argument(
        "--serve-from", type=Path, default=None, help="run `opsmith serve` from this source tree's opsmith"
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=["full", "normal"],
        default="full",
        help="the served database's commit mode (full, the default, fsyncs every commit: a plan's save)",
    )
    args = parser.parse_args()
    if min(args.plans, args.rounds, args.clients) < 2:
        parser.error("--plans, --rounds and --clients must be at least 2")
    if not OPSMITH.exists():
        raise SystemExit(f"no console script at {OPSMITH}: run this with the project's venv (uv run ...)")
    budget = Budget(args.budget)
    with tempfile.TemporaryDirectory(prefix="opsmith-api-bench-") as tmp:
        project = Path(tmp)
        World(project / "world").ensure_seeded()
        (project / "opsmith.yaml").write_text(
            config_text(project) + f"\nsqlite_synchronous: {args.sqlite_synchronous}\n"
        )
        with serving(project, budget.wait(args.start_timeout), args.serve_from) as served:
            app = bootstrap(project / "opsmith.yaml", child_env())
            times = time_plan_creation(app, served, args.plans, budget)
            journal = driven_run(app, app.plans.list(limit=1)[0].id, lease=args.budget + 600)
            ours = asyncio.run(fan_out_opsmith(served, journal, args.clients, args.rounds, budget))
            scrapes = time_metrics(app, served, args.audit, args.plans, budget)
        base = asyncio.run(fan_out_baseline(args.clients, args.rounds, budget))
    print_plans(times, args.plans)
    poll = f"opsmith serve (journal polled every {journal.poll:g} s)"
    print_fanout(
        FanoutResult(poll, ours),
        FanoutResult("bare websockets broadcast (baseline)", base),
        args.clients,
        args.rounds,
        journal,
    )
    print_metrics(scrapes)
    served_by = f"; served from {args.serve_from}" if args.serve_from else ""
    used = args.budget - budget.left()
    cores = len(os.sched_getaffinity(0))
    print(
        f"\n{cores} cores, load {os.getloadavg()[0]:.1f}; {used:.0f} s of the {args.budget:.0f} s budget"
        f" used; sqlite_synchronous {args.sqlite_synchronous}{served_by}"
    )


if __name__ == "__main__":
    main()

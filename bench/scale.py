"""Scale-out: the same runs on the local executor and on 1, 2 and 4 `opsmith worker` processes.

Each leg is a fresh project (its own database, and for the worker legs its own Redis from
tests/dbservers.py on loopback): --plans hand-written plans of --steps independent steps, each a
call of tests/fixtures/servers/recording.py's `pause` (it waits --step-ms, as a tool call would,
and records the call with the step's name). One driver process (this one) runs --concurrent plans
at a time through `services.running.start_run` with up to `execution.max_parallel` steps of each
in flight; the workers are real `opsmith worker` subprocesses (--threads calls each at once).

Reported per leg: wall time of all runs, steps per second, the dispatch latency p50 and p99 (from
a call's row being written by the driver to its claim by a worker: the queue and the broker; the
local executor has none; with more calls in flight, --concurrent x --max-parallel, than worker
threads, --threads x workers, it is mostly the wait for a free thread), the call's p50 from its
claim to its outcome, and the checks: lost (a step whose tool never recorded a call) and run
twice (recorded more than once), from the recording, not from opsmith's own state. The local leg
is the baseline, measured in the same run. --kill also SIGKILLs one worker halfway through the
2-worker leg (its cut-off calls are idempotent here, so they are retried elsewhere: every step
still records one finished call, and "run twice" counts a call recorded by both).

    uv run python bench/scale.py [--plans 100] [--steps 100] [--step-ms 20] [--workers 1,2,4]
                                 [--concurrent 10] [--threads 50] [--postgres] [--kill]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.dbservers: the same Redis and PostgreSQL the tests start

from tests.dbservers import PostgresServer, RedisServer  # noqa: E402

OPSMITH = Path(sys.executable).with_name("opsmith")
RECORDING = ROOT / "tests" / "fixtures" / "servers" / "recording.py"


@dataclass
class Leg:
    name: str
    seconds: float
    steps: int
    p50_ms: float | None
    p99_ms: float | None
    call_ms: float | None  # claim to outcome, p50
    lost: int
    twice: int
    failed_runs: int


def config(root: Path, database_url: str, redis_url: str | None, max_parallel: int) -> str:
    celery = ""
    if redis_url is not None:
        celery = (
            f'executor: celery\ncelery: {{broker_url: "{redis_url}", heartbeat_seconds: 1,'
            " lost_after_seconds: 5, resend_after_seconds: 5}\n"
        )
    return (
        f'{celery}database_url: "{database_url}"\nsqlite_synchronous: normal\n'
        f"state_dir: '{root / '.opsmith'}'\n"
        f"execution: {{max_parallel: {max_parallel}, retry_initial_delay: 0.1}}\n"
        "mcpServers:\n"
        f"  rec: {{command: {sys.executable}, args: ['{RECORDING}'],"
        f" env: {{RECORD_FILE: '{root / 'calls.jsonl'}', GATE_DIR: '{root}'}}}}\n"
    )


def plan_text(index: int, steps: int, step_ms: float) -> str:
    lines = [f"title: Scale plan {index}", "environment: staging", "steps:"]
    for n in range(steps):
        name = f"p{index}s{n}"
        lines.append(
            f"  - {{id: s{n}, server: rec, tool: pause, args: {{ms: {step_ms}, name: {name}}},"
            " idempotent: true}"
        )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def workers(root: Path, count: int, threads: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [
        subprocess.Popen(
            [OPSMITH, "worker", "--name", f"w{n}", "--concurrency", str(threads)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=open(root / f"w{n}.log", "wb"),  # noqa: SIM115 - the process holds it
            start_new_session=True,
        )
        for n in range(count)
    ]
    try:
        yield started
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


async def drive(
    root: Path, args: argparse.Namespace, kill: subprocess.Popen[bytes] | None
) -> tuple[float, int, list[str]]:
    """Make the plans, then run them --concurrent at a time; (seconds, failed runs, run ids)."""
    from opsmith.bootstrap import bootstrap, serving
    from opsmith.services.identity import identify
    from opsmith.services.planning import make_manual_plan
    from opsmith.services.running import start_run

    app, host = serving(bootstrap(root / "opsmith.yaml", os.environ))
    try:
        identity = identify(app, "bench", None)
        plans = [
            (await make_manual_plan(app, identity, plan_text(i, args.steps, args.step_ms), source="bench")).id
            for i in range(args.plans)
        ]
        gate = asyncio.Semaphore(args.concurrent)
        failed, runs, done = 0, [], 0

        async def one(plan_id: str) -> None:
            nonlocal failed, done
            async with gate:
                _, state, _ = await start_run(app, identity, plan_id)
            runs.append(state.run_id)
            failed += state.status.value != "succeeded"
            done += 1
            if kill is not None and done == len(plans) // 2 and kill.poll() is None:
                os.killpg(kill.pid, signal.SIGKILL)

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in plans))
        return time.perf_counter() - started, failed, runs
    finally:
        await host.close()


def latencies(database_url: str) -> tuple[list[float], list[float]]:
    """Per call, ms from its row written to its claim (dispatch: the driver's send, the broker, a
    free worker thread, the worker's checks), and from its claim to its outcome (the call as a
    worker makes it, the 20 ms wait included)."""
    from sqlalchemy import select

    from opsmith.distributed.store import StepCallRow
    from opsmith.store.database import Database

    columns = (StepCallRow.created_at, StepCallRow.claimed_at, StepCallRow.finished_at)
    with Database(database_url).transaction() as connection:
        rows = connection.execute(select(*columns)).all()
    claimed = [(w, c, f) for w, c, f in rows if c is not None and f is not None]
    return (
        [(c - w).total_seconds() * 1000 for w, c, _ in claimed],
        [(f - c).total_seconds() * 1000 for _, c, f in claimed],
    )


def checks(root: Path, plans: int, steps: int) -> tuple[int, int]:
    record = root / "calls.jsonl"
    lines = record.read_text().splitlines() if record.exists() else []
    recorded = Counter(json.loads(line)["name"] for line in lines if line)
    expected = {f"p{i}s{n}" for i in range(plans) for n in range(steps)}
    return len(expected - set(recorded)), sum(1 for n in expected if recorded[n] > 1)


def leg(name: str, count: int, args: argparse.Namespace, pg: PostgresServer | None) -> Leg:
    with tempfile.TemporaryDirectory(prefix="opsmith-scale-") as directory:
        root = Path(directory)
        url = pg.new_database() if pg is not None else f"sqlite:///{root / 'opsmith.db'}"
        with contextlib.ExitStack() as stack:
            redis_url = None
            if count:
                redis_url = stack.enter_context(RedisServer.started(root)).url
            (root / "opsmith.yaml").write_text(config(root, url, redis_url, args.max_parallel))
            kill = None
            if count:
                started = stack.enter_context(workers(root, count, args.threads))
                kill = started[0] if args.kill and count == 2 else None
            seconds, failed, _ = asyncio.run(drive(root, args, kill))
        lost, twice = checks(root, args.plans, args.steps)
        if os.environ.get("BENCH_KEEP"):
            import shutil

            shutil.copytree(root, Path(os.environ["BENCH_KEEP"]) / name.replace(" ", "_"), dirs_exist_ok=True)
        waits, made = latencies(url) if count else ([], [])
        waits.sort()
        p50 = statistics.median(waits) if waits else None
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else None
        call = statistics.median(made) if made else None
        return Leg(name, seconds, args.plans * args.steps, p50, p99, call, lost, twice, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--concurrent", type=int, default=10, help="runs driven at once")
    parser.add_argument("--max-parallel", type=int, default=20, help="steps of one run in flight")
    parser.add_argument("--threads", type=int, default=50, help="calls one worker makes at once")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of a SQLite file")
    parser.add_argument("--kill", action="store_true", help="SIGKILL a worker halfway in the 2-worker leg")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n]
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(PostgresServer.started()) if args.postgres else None
        legs = [leg("local executor", 0, args, pg)]
        legs += [leg(f"{n} worker(s)", n, args, pg) for n in counts]
    base = legs[0].steps / legs[0].seconds
    database = "PostgreSQL" if args.postgres else "SQLite (synchronous normal)"
    print(
        f"\n{args.plans} plans x {args.steps} steps of {args.step_ms:g} ms, {args.concurrent} runs at once,"
        f" {args.max_parallel} steps each, {args.threads} threads per worker, on {database}\n"
    )
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end\n")
    print(
        "| executor | wall s | steps/s | vs local | dispatch p50 ms | dispatch p99 ms | call p50 ms | lost"
        " | run twice | failed runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for found in legs:
        rate = found.steps / found.seconds
        p50 = "-" if found.p50_ms is None else f"{found.p50_ms:.1f}"
        p99 = "-" if found.p99_ms is None else f"{found.p99_ms:.1f}"
        made = "-" if found.call_ms is None else f"{found.call_ms:.1f}"
        print(
            f"| {found.name} | {found.seconds:.1f} | {rate:.0f} | {rate / base:.2f}x | {p50} | {p99} |"
            f" {made} | {found.lost} | {found.twice} | {found.failed_runs} |"
        )


if __name__ == "__main__":
    main()

"""Per-step overhead of the durable local executor; prints a table of medians measured in this one run.

LocalExecutor runs hand-built plans of no-op steps (server "noop", tool "get_noop", risk LOW, no
compliance, no rollback) against an in-memory ToolProvider that answers at once, so what is timed
is the engine: scheduling, state transitions, RBAC, and every commit to a real SQLite file (WAL,
migrated beforehand, a fresh file per run) through RunRepository and AuditLog, signed and witnessed
as opsmith wires them (HMAC per audit entry, the witness file advanced after each commit). Shapes:

  chain     N steps, each depending on the one before;
  wide      N steps, no dependencies (max_parallel 5, and again with 50);
  layered   20 layers of N/20 steps, each depending on the step of the same index one layer up.

Baselines, measured in the same run, interleaved with the engine runs:
  asyncio   awaiting the same fake call for every step in plan (dependency) order, nothing stored;
  commit    one single-row INSERT + COMMIT with sqlite3 on a WAL file in the same temp dir, with
            opsmith's pragmas (journal_mode=WAL, busy_timeout, foreign_keys): one durable commit.

One run times every shape once, then the baselines; a bare-commit sample follows each engine run.
Runs stop early when the next one would pass --budget seconds (1,000-step runs are slow).
Commits per step counts RunRepository.commit calls (one transaction each: the state, its events
and the audit entries of tool calls) through a counting subclass, which also times them (store ms).
Every shape runs with SQLite synchronous=FULL (a commit survives a power cut, opsmith's default)
and NORMAL (survives a killed process; config sqlite_synchronous: normal), each against a bare
commit with the same setting. --profile adds a cProfile of one chain run.

    uv run python bench/engine_overhead.py [--runs 3] [--steps 1000] [--budget 240] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsmith.domain.catalog import Catalog
from opsmith.domain.identity import DEFAULT_ROLES, Identity
from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.results import ToolResult
from opsmith.domain.risk import Risk
from opsmith.domain.seal import Seal
from opsmith.domain.servers import ServerStatus
from opsmith.engine.events import RunEvent
from opsmith.engine.local import LocalExecutor
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import RunState, RunStatus, new_run
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database
from opsmith.store.runs import RunRepository
from opsmith.store.witness import FileWitness

LAYERS = 20
TARGET_MS = 1.0
CHAIN_GOAL = 2.0
ADMIN = Identity(user="bench", role="admin", source="config")


@dataclass(frozen=True)
class Shape:
    label: str
    kind: str  # chain | wide | layered
    max_parallel: int


SHAPES = [
    Shape("chain", "chain", 5),
    Shape("wide", "wide", 5),
    Shape("wide", "wide", 50),
    Shape("layered", "layered", 5),
]


def noop_step(step_id: str, deps: list[str]) -> Step:
    return Step(
        id=step_id,
        name=step_id,
        capability="noop",
        server="noop",
        tool="get_noop",
        depends_on=deps,
        risk=Risk.LOW,
    )


def build_plan(kind: str, steps: int) -> Plan:
    if kind == "chain":
        ids = [f"s{i:05d}" for i in range(steps)]
        built = [noop_step(ids[i], [ids[i - 1]] if i else []) for i in range(steps)]
    elif kind == "wide":
        built = [noop_step(f"s{i:05d}", []) for i in range(steps)]
    else:
        width = max(1, steps // LAYERS)
        built = [
            noop_step(f"l{layer:02d}_s{i:03d}", [f"l{layer - 1:02d}_s{i:03d}"] if layer else [])
            for layer in range(LAYERS)
            for i in range(width)
        ]
    return Plan(
        id=f"bench-{kind}",
        request="bench no-op steps in development",
        title=f"{len(built)} no-op steps ({kind})",
        intent=Intent(request="bench no-op steps in development", action="check", environment="development"),
        playbook="bench",
        priority="normal",
        risk=Risk.LOW,
        requires_approval=False,
        rollback_strategy="none",
        failure_handling="stop",
        estimated_duration=Estimate(minimum_seconds=0, maximum_seconds=0, text="< 1 min", critical_path=[]),
        steps=built,
        status=PlanStatus.APPROVED,
        created_at=datetime.now(UTC),
    )


class NoopTools:
    """A ToolProvider that answers every call at once; the engine is what is being measured."""

    def __init__(self) -> None:
        self._catalog = Catalog()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def statuses(self) -> list[ServerStatus]:
        return []

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Any = None,
    ) -> ToolResult:
        return ToolResult(server=server, tool=tool, structured={"ok": True})


class CountingRuns(RunRepository):
    """Counts transactions: every commit of the run (state, events and audit entries together)."""

    def __init__(self, database: Database, folder: Path) -> None:
        # Signed and witnessed as opsmith wires it: every audit entry carries its HMAC and every
        # commit that wrote one advances the witness file.
        seal = Seal(b"the bench's own key, 32 bytes or more")
        audit = AuditLog(database, seal=seal, witness=FileWitness(folder / "audit.head"))
        super().__init__(database, audit, seal)
        self.commits = 0
        self.seconds = 0.0

    def commit(self, state: RunState, **kwargs: Any) -> list[RunEvent]:
        self.commits += 1
        began = time.perf_counter()
        try:
            stored: list[RunEvent] = super().commit(state, **kwargs)
            return stored
        finally:
            self.seconds += time.perf_counter() - began


@dataclass
class EngineRun:
    seconds: float
    store_seconds: float
    commits: int
    state_bytes: int


async def run_engine(
    plan: Plan, folder: Path, max_parallel: int, profiler: cProfile.Profile | None, sync: str = "FULL"
) -> EngineRun:
    database = Database(f"sqlite:///{folder}/b.db", sqlite_synchronous=sync)
    database.migrate()
    runs = CountingRuns(database, folder)
    executor = LocalExecutor(
        plan,
        tools=NoopTools(),
        runs=runs,
        identity=ADMIN,
        permission=DEFAULT_ROLES["admin"],
        settings=ExecutionSettings(max_parallel=max_parallel),
        auto_validate=True,
    )
    state = new_run(plan, run_id=f"run-{folder.name}")
    if profiler is not None:
        profiler.enable()
    began = time.perf_counter()
    final = await executor.execute(state)
    seconds = time.perf_counter() - began
    if profiler is not None:
        profiler.disable()
    database.dispose()
    if final.status is not RunStatus.SUCCEEDED:
        raise SystemExit(f"{plan.id}: run ended {final.status.value}: {executor.failure}")
    size = len(json.dumps(final.model_dump(mode="json")))
    return EngineRun(seconds, runs.seconds, runs.commits, size)


async def run_asyncio(plan: Plan) -> float:
    """The same fake call for every step, awaited in plan order (which is dependency order)."""
    tools = NoopTools()
    began = time.perf_counter()
    for step in plan.steps:
        await tools.call(step.server, step.tool, dict(step.args))
    return time.perf_counter() - began


def bare_commits(path: Path, count: int, sync: str) -> float:
    """Seconds per single-row INSERT + COMMIT on a WAL file with opsmith's pragmas."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={sync}")
        connection.execute("PRAGMA busy_timeout=10000")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, payload TEXT)")
        connection.commit()
        began = time.perf_counter()
        for i in range(count):
            connection.execute("INSERT INTO t (at, payload) VALUES (?, ?)", (str(i), '{"ok": true}'))
            connection.commit()
        return (time.perf_counter() - began) / count
    finally:
        connection.close()


async def profile_chain(plan: Plan, folder: Path, top: int, sync: str) -> None:
    profiler = cProfile.Profile()
    result = await run_engine(plan, folder, 5, profiler, sync)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        body = out.getvalue()
        start = body.find("   ncalls")
        print(f"\ncProfile of one chain run ({len(plan.steps)} steps, {result.seconds:.2f} s), by {order}")
        print(body[start:].rstrip() if start >= 0 else body.rstrip())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="steps per plan (layered: 20 x steps/20)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one chain run")
    parser.add_argument(
        "--budget", type=float, default=300, help="seconds; stop adding runs past it (0: always --runs)"
    )
    parser.add_argument(
        "--synchronous", nargs="+", default=["FULL", "NORMAL"], type=str.upper, choices=["FULL", "NORMAL"]
    )
    parser.add_argument("--top", type=int, default=15, help="rows of the profile to print")
    args = parser.parse_args()
    plans = {kind: build_plan(kind, args.steps) for kind in ("chain", "wide", "layered")}
    modes = list(args.synchronous)
    engine: dict[tuple[str, Shape], list[EngineRun]] = {(m, shape): [] for m in modes for shape in SHAPES}
    baseline: dict[str, list[float]] = {kind: [] for kind in plans}
    commits: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await run_engine(build_plan("chain", 20), root / "warmup", 5, None)  # imports, first-use costs
        began = time.perf_counter()
        done = 0
        while done < args.runs:  # interleaved, so drift in the machine hits every row alike
            for mode in modes:
                for i, shape in enumerate(SHAPES):
                    folder = root / f"r{done}-{mode}-{i}"
                    run = await run_engine(plans[shape.kind], folder, shape.max_parallel, None, mode)
                    engine[(mode, shape)].append(run)
                    bare = root / f"bare-{done}-{mode}-{i}.db"
                    commits[mode].append(bare_commits(bare, min(args.steps, 300), mode))
            for kind, plan in plans.items():
                baseline[kind].append(await run_asyncio(plan))
            done += 1
            spent = time.perf_counter() - began
            if args.budget and done < args.runs and spent / done * (done + 1) > args.budget:
                print(
                    f"stopping after {done} of {args.runs} runs:"
                    f" the next would pass --budget {args.budget:.0f} s"
                )
                break
        if args.profile:
            await profile_chain(plans["chain"], root / "profile", args.top, modes[-1])

    print(f"\nLocalExecutor overhead, no-op steps, SQLite WAL file, median of {done} runs")
    header = (
        f"{'sync':<7}{'shape':<9}{'par':>4}{'steps':>7}{'engine s':>10}{'ms/step':>9}{'store ms':>10}"
        f"{'asyncio ms':>12}{'commit ms':>11}{'step/commit':>13}{'commits/step':>14}{'state KB':>10}"
    )
    print(header)
    for mode in modes:
        commit_ms = statistics.median(commits[mode]) * 1000
        for shape in SHAPES:
            samples = engine[(mode, shape)]
            steps = len(plans[shape.kind].steps)
            total = statistics.median(s.seconds for s in samples)
            per_step = total / steps * 1000
            store = statistics.median(s.store_seconds for s in samples) / steps * 1000
            base = statistics.median(baseline[shape.kind]) / steps * 1000
            per_commit = statistics.median(s.commits for s in samples) / steps
            kb = samples[0].state_bytes / 1024
            print(
                f"{mode:<7}{shape.label:<9}{shape.max_parallel:>4}{steps:>7}{total:>10.2f}{per_step:>9.3f}"
                f"{store:>10.3f}{base:>12.4f}{commit_ms:>11.3f}{per_step / commit_ms:>13.1f}"
                f"{per_commit:>14.2f}{kb:>10.0f}"
            )
    print(f"target: <= {TARGET_MS:.0f} ms per step")
    print(f"goal: a FULL chain step costs <= {CHAIN_GOAL:.0f}x one bare durable commit (step/commit column)")
    print("store ms: time inside RunRepository.commit per step (SQL, JSON, the commit itself)")
    print(
        "state KB: the whole run state as JSON at the end;"
        " a save writes only the run's head and the steps that changed"
    )


if __name__ == "__main__":
    asyncio.run(main())

"""Crash benchmark: kill -9 `opsmith run` / `opsmith resume` at random points, resume through the CLI
as a careful operator would, then check from the journal and the store that nothing was done twice
that must not be, and nothing that happened was lost. Prints a table measured in this one run.

Set-up, per run: a fresh project directory whose opsmith.yaml names one stdio server,
bench/journal_server.py (tools change_once, not idempotent, and change_again, idempotent; every
call appends its step id to a journal file with fsync before it answers: the journal is the ground
truth of work done). No rbac section, so the OS user is the local admin. An approved plan of 14
steps (8 change_once, 6 change_again; a diamond, a chain and an independent branch, so up to 5 run
at once) is stored directly with PlanRepository.

One run: `opsmith run PLAN --json` is started in its own session and SIGKILLed at a random point:
one time in four after a delay drawn uniformly from [0, T], T being the wall time of one uncrashed
`opsmith run` measured first (calibration; start-up windows included); else once the store holds a
random one of the events the command should write, plus 0-100 ms (about one call). Each kill is, at
random, of the driver alone (its MCP server sees EOF and exits by itself) or of the driver and its
server together (a machine dying). Before anything else runs, the bench waits until every server of
the killed process is gone, so the journal is settled. Then, until the run is final (succeeded,
rolled_back, cancelled; or failed):

  running / paused     `opsmith resume RUN --json` (one time in four `opsmith run --resume RUN`);
  needs_attention      for the first step still `running` in `opsmith status RUN --json`: if the
                       journal holds its line, `opsmith resume RUN --skip STEP`, else `--retry STEP`.

Each run may be killed 1..--max-kills times (drawn per run); the first command is always meant to
be killed, a later one with probability 1/2 while kills remain (a kill drawn after the command
ended is counted, not retried). A kill before the run exists starts `opsmith run` again while the
plan is still approved. Whether a run is final after a kill is read from the store; the operator's
view of a run that needs attention comes from `opsmith status --json` or the command's own JSON.
Runs go --jobs at a time, each in its own project with its own random stream (--seed and its index).

Checks, per run, once it is final:

  non-idempotent executed twice  change_once steps with more than one journal line (target 0).
  idempotent re-executed         change_again steps with more than one journal line (allowed).
  work missing                   steps of a succeeded run with no journal line (target 0).
  events lost (target 0), summed over these deficits, read from the store (RunRepository, AuditLog):
    seq      the run's event numbers are exactly 1..n (each gap counts one);
    started  `step.started` events of a step == its attempts (each missing start counts one);
    ends     every attempt has an end: attempts == step.succeeded + step.interrupted +
             step.retrying + step.failed events of the step (each attempt with no end counts one);
    success  a step whose status is succeeded has exactly one step.succeeded event;
    journal  journal lines of a step <= its step.succeeded + step.interrupted events: work a server
             did must be known to the store, as a result or as a call a crash cut short (each
             line beyond counts one);
    audit    `tool.called` audit entries of a step == its step.succeeded events (same transaction);
    decided  every decision whose command exited has its `step.decided` event;
    finished a succeeded run's last event is `run.finished`.
  phantoms (target 0): journal lines < step.succeeded events (a success nobody did), skipped steps
    that were never skipped by a decision.
  audit    `opsmith audit verify` exits 0 in every project.
  orphans  server processes still alive 10 s after their opsmith process was killed, or after it
           exited (found by the project's unique journal path in their command line; then killed).
  stranded a plan left `running` with no run to resume (a kill between claiming the plan and
           storing its run) (target 0).
  plan     the plan's status follows its run's final status (succeeded -> succeeded...) (target 0).

Times: wall time of the whole bench; per run, recovery time = from the start of the first resume to
the run being final (operator status checks and later kills included), median and max.

    uv run python bench/crash.py [--runs 50] [--seed 1] [--max-kills 3] [--jobs 2] [--budget 540]
        [--delay-ms 30 120] [--timeout 60] [--sqlite-synchronous full|normal] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.risk import Risk
from opsmith.engine.events import EventType
from opsmith.engine.state import RunState, RunStatus, StepStatus
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database
from opsmith.store.plans import PlanRepository
from opsmith.store.runs import RunRepository

HERE = Path(__file__).resolve().parent
SERVER = HERE / "journal_server.py"
OPSMITH = str(Path(sys.executable).parent / "opsmith")
PLAN_ID = "crash-bench"
FINAL = {"succeeded", "rolled_back", "cancelled", "failed"}
ONCE, AGAIN = "change_once", "change_again"
SETTLE_SECONDS = 10.0
MAX_COMMANDS = 40  # per run: a loop that never ends is a finding, not a hang

# (step, tool, depends_on): a diamond, a chain after it, and an independent branch.
STEPS: list[tuple[str, str, list[str]]] = [
    ("prepare", ONCE, []),
    ("fetch_a", AGAIN, ["prepare"]),
    ("fetch_b", AGAIN, ["prepare"]),
    ("migrate", ONCE, ["prepare"]),
    ("build_a", ONCE, ["fetch_a"]),
    ("build_b", ONCE, ["fetch_b"]),
    ("configure", AGAIN, ["migrate"]),
    ("deploy", ONCE, ["build_a", "build_b", "configure"]),
    ("warm_cache", AGAIN, ["deploy"]),
    ("notify", ONCE, ["deploy"]),
    ("tag_release", ONCE, ["warm_cache", "notify"]),
    ("record", AGAIN, []),
    ("ticket", ONCE, ["record"]),
    ("cleanup", AGAIN, ["tag_release", "ticket"]),
]
TOOL_OF = {step: tool for step, tool, _ in STEPS}
MIGRATING = threading.Lock()


# -- the project ------------------------------------------------------------------------------


def build_plan() -> Plan:
    steps = [
        Step(
            id=step,
            name=step,
            capability="change",
            server="journal",
            tool=tool,
            args={"step": step},
            depends_on=deps,
            risk=Risk.LOW,
            idempotent=tool == AGAIN,
            changes_target=True,
        )
        for step, tool, deps in STEPS
    ]
    request = "crash bench: journal changes in staging"
    plan = Plan(
        id=PLAN_ID,
        request=request,
        title=f"{len(steps)} journal changes",
        intent=Intent(request=request, action="deploy", environment="staging"),
        playbook="bench",
        priority="normal",
        risk=Risk.LOW,
        requires_approval=False,
        rollback_strategy="none",
        failure_handling="stop",
        estimated_duration=Estimate(minimum_seconds=0, maximum_seconds=5, text="< 1 min", critical_path=[]),
        steps=steps,
        status=PlanStatus.APPROVED,
        requested_by="bench",
        created_at=datetime.now(UTC),
    )
    return plan.model_copy(update={"hash": plan.content_hash()})


@dataclass
class Project:
    root: Path
    delay_ms: tuple[float, float]
    synchronous: str | None = None  # sqlite_synchronous in opsmith.yaml; None: opsmith's default

    @property
    def journal(self) -> Path:
        return self.root / "journal.log"

    @property
    def db_file(self) -> Path:
        return self.root / ".opsmith" / "opsmith.db"

    @functools.cached_property
    def database(self) -> Database:
        return Database(f"sqlite:///{self.db_file}")

    def create(self) -> None:
        self.root.mkdir(parents=True)
        args = [str(SERVER), "--journal", str(self.journal), "--delay-ms", *map(str, self.delay_ms)]
        config: dict[str, Any] = {"mcpServers": {"journal": {"command": sys.executable, "args": args}}}
        if self.synchronous:
            config["sqlite_synchronous"] = self.synchronous
        # JSON is YAML; no rbac section: the OS user is the local admin.
        (self.root / "opsmith.yaml").write_text(json.dumps(config, indent=2) + "\n")
        self.journal.touch()
        with MIGRATING:  # alembic keeps global state: one migration at a time across --jobs threads
            PlanRepository(self.database).save(build_plan())

    def journal_counts(self) -> Counter[str]:
        return Counter(line for line in self.journal.read_text().splitlines() if line)

    def servers(self) -> list[psutil.Process]:
        """Live server processes of this project: its journal path is unique to it."""
        mine = str(self.journal)
        found = []
        # Not psutil.process_iter: its shared cache is not safe across the --jobs threads.
        for pid in psutil.pids():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if mine in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def settle(self, timeout: float = SETTLE_SECONDS) -> int:
        """Wait until no server of this project lives; kill (by pid) and count the ones that outlive
        `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.servers():
                return 0
            time.sleep(0.05)
        left = self.servers()
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=5)
        return len(left)

    def run_id(self) -> str | None:
        ids = RunRepository(self.database).ids(list(RunStatus))
        return ids[-1] if ids else None

    def plan_status(self) -> PlanStatus:
        return PlanRepository(self.database).get(PLAN_ID).status


# -- commands ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None  # None when killed
    out: str
    err: str
    seconds: float
    killed: bool = False
    kill_kind: str = ""

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.out)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")}
    env["NO_COLOR"] = "1"
    return env


@dataclass(frozen=True)
class Trigger:
    """When to kill a command: `seconds` after it started, or once the project's event table holds
    `events` rows (all runs of the project), then `jitter` seconds more."""

    seconds: float | None = None
    events: int | None = None
    jitter: float = 0.0
    kind: str = "driver"  # driver: the opsmith process alone; all: it and its servers at once


class EventCounter:
    """Counts the rows of the project's event table through one read-only connection."""

    def __init__(self, project: Project) -> None:
        self._db = sqlite3.connect(f"file:{project.db_file}?mode=ro", uri=True, timeout=1)

    def __call__(self) -> int:
        try:
            return int(self._db.execute("SELECT count(*) FROM run_events").fetchone()[0])
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        self._db.close()


def event_count(project: Project) -> int:
    counter = EventCounter(project)
    try:
        return counter()
    finally:
        counter.close()


def opsmith(
    project: Project, args: list[str], *, timeout: float, trigger: Trigger | None = None
) -> tuple[Outcome, int]:
    """Run one opsmith command in the project; SIGKILL it when `trigger` fires while it still runs.
    Returns the outcome and the number of orphan servers the settle had to kill."""
    out_file = project.root / "cmd.out"
    err_file = project.root / "cmd.err"
    started = time.monotonic()
    with out_file.open("w") as out, err_file.open("w") as err:
        process = subprocess.Popen(
            [OPSMITH, *args],
            cwd=project.root,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=environment(),
            start_new_session=True,
        )
        killed = timed_out = False
        fire_at = None if trigger is None or trigger.seconds is None else started + trigger.seconds
        counter = EventCounter(project) if trigger is not None and trigger.events is not None else None
        while process.poll() is None:
            now = time.monotonic()
            reached = counter is not None and trigger is not None and counter() >= (trigger.events or 0)
            if fire_at is None and reached and trigger is not None:
                fire_at = now + trigger.jitter
            if now - started > timeout:
                timed_out = True
            elif fire_at is None or now < fire_at:
                time.sleep(0.005)
                continue
            killed = not timed_out
            kind = trigger.kind if trigger is not None and killed else "all"
            doomed = project.servers() if kind == "all" else []
            os.kill(process.pid, signal.SIGKILL)
            for proc in doomed:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            process.wait(timeout=30)
            break
        if counter is not None:
            counter.close()
    seconds = time.monotonic() - started
    orphans = project.settle()
    outcome = Outcome(
        code=None if killed else process.returncode,
        out=out_file.read_text(),
        err=err_file.read_text() + (f"\n[bench] timed out after {timeout:g}s" if timed_out else ""),
        seconds=seconds,
        killed=killed,
        kill_kind=trigger.kind if killed and trigger is not None else "",
    )
    return outcome, orphans


def status_of(project: Project, run_id: str, timeout: float) -> dict[str, Any]:
    outcome, _ = opsmith(project, ["status", run_id, "--json"], timeout=timeout)
    data = outcome.json()
    if outcome.code != 0 or data is None:
        raise RuntimeError(f"opsmith status {run_id} failed ({outcome.code}): {outcome.err.strip()}")
    return data


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Kill:
    command: str  # run | resume | run --resume | retry | skip
    kind: str  # driver | all
    trigger: str  # time | event
    point: str  # before run | mid-call | between calls | after end


def draw_trigger(project: Project, rng: random.Random, span: float) -> Trigger:
    """A random kill point. One time in four: a delay in [0, span] (start-up windows included);
    else: after one of the events the command should write, plus up to one call's worth of time."""
    kind = rng.choice(["driver", "all"])
    if rng.random() < 0.25:
        return Trigger(seconds=rng.uniform(0, span), kind=kind)
    left = len(STEPS)
    run_id = project.run_id()
    if run_id is not None:
        done = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
        left = sum(
            1 for s in RunRepository(project.database).get(run_id).steps.values() if s.status not in done
        )
    # run.started (or step.interrupted), then a start and an end per step left.
    expected = 2 * left + 1
    return Trigger(
        events=event_count(project) + rng.randint(1, expected), jitter=rng.uniform(0, 0.1), kind=kind
    )


@dataclass
class RunRecord:
    index: int
    final: str = ""
    kills: list[Kill] = field(default_factory=list)
    commands: int = 0
    missed: int = 0  # kills drawn that would have landed after the command ended
    attention: int = 0  # times a command reported needs_attention
    decisions: Counter[str] = field(default_factory=Counter)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (step, choice), command exited
    refused: list[str] = field(default_factory=list)
    orphans: int = 0
    stranded: bool = False
    recover_seconds: float | None = None
    seconds: float = 0.0
    twice_once: list[str] = field(default_factory=list)
    again_reruns: int = 0
    missing_work: list[str] = field(default_factory=list)
    lost: Counter[str] = field(default_factory=Counter)
    phantoms: list[str] = field(default_factory=list)
    plan_behind: list[str] = field(default_factory=list)  # plan status that does not follow its run
    audit_ok: bool = False
    notes: list[str] = field(default_factory=list)


def kill_point(project: Project) -> str:
    run_id = project.run_id()
    if run_id is None:
        return "before run"
    state = RunRepository(project.database).get(run_id)
    if state.status.value in FINAL:
        return "after end"
    if any(s.status is StepStatus.RUNNING for s in state.steps.values()):
        return "mid-call"
    return "between calls"


def one_run(index: int, root: Path, args: argparse.Namespace, span: float) -> RunRecord:
    """One crashed-and-recovered run; its randomness depends on --seed and its index only."""
    record = RunRecord(index)
    try:
        return crash_and_recover(record, root, random.Random(f"{args.seed}:{index}"), args, span)
    except Exception as error:  # one broken run is reported, the others still run
        record.final = f"error: {type(error).__name__}"
        record.notes.append(f"{type(error).__name__}: {error}")
        return record


def crash_and_recover(
    record: RunRecord, root: Path, rng: random.Random, args: argparse.Namespace, span: float
) -> RunRecord:
    index = record.index
    project = Project(root / f"run{index:03d}", tuple(args.delay_ms), args.sqlite_synchronous)
    project.create()
    started = time.monotonic()
    kills_left = rng.randint(1, args.max_kills)
    timeout = args.timeout

    def command(argv: list[str], label: str, *, must_kill: bool = False) -> Outcome:
        nonlocal kills_left
        trigger = None
        if kills_left > 0 and (must_kill or rng.random() < 0.5):
            trigger = draw_trigger(project, rng, span)
        outcome, orphans = opsmith(project, argv, timeout=timeout, trigger=trigger)
        record.commands += 1
        record.orphans += orphans
        if trigger is not None and not outcome.killed:
            record.missed += 1
        if outcome.killed and trigger is not None:
            kills_left -= 1
            how = "time" if trigger.seconds is not None else "event"
            record.kills.append(Kill(label, trigger.kind, how, kill_point(project)))
        elif outcome.code == 2:
            record.refused.append(f"{' '.join(argv)}: {outcome.err.strip().splitlines()[:1]}")
        return outcome

    # Start the run; a kill before it exists starts it again while the plan is still approved.
    run_id = None
    for _ in range(args.max_kills + 1):
        outcome = command(["run", PLAN_ID, "--json"], "run", must_kill=True)
        run_id = project.run_id()
        if run_id is not None:
            break
        if project.plan_status() is not PlanStatus.APPROVED:
            record.stranded = True
            record.final = f"stranded (plan {project.plan_status().value}, no run)"
            record.seconds = time.monotonic() - started
            return record
    if run_id is None:
        record.final = "never started"
        return record

    recover_from: float | None = None
    data = outcome.json() if not outcome.killed else None
    while record.commands < MAX_COMMANDS and time.monotonic() - started < args.run_budget:
        if data is None:
            # After a kill: whether it is over is read from the store; what a person decides on
            # is read as they would, with `opsmith status`.
            stored = RunRepository(project.database).get(run_id)
            data = {"status": stored.status.value}
            if stored.status is RunStatus.NEEDS_ATTENTION:
                data = status_of(project, run_id, timeout)
        status = data["status"]
        if status in FINAL:
            break
        if recover_from is None:
            recover_from = time.monotonic()
        if status == "needs_attention":
            record.attention += 1
            interrupted = [s["step_id"] for s in data["steps"] if s["status"] == "running"]
            if not interrupted:
                record.notes.append("needs_attention with no interrupted step")
                break
            step = interrupted[0]
            choice = "skip" if project.journal_counts()[step] else "retry"
            record.decisions[choice] += 1
            outcome = command(["resume", run_id, f"--{choice}", step, "--json"], choice)
            if not outcome.killed and outcome.code in (0, 1):
                record.acknowledged.append((step, choice))
        elif rng.random() < 0.25:
            outcome = command(["run", "--resume", run_id, "--json"], "run --resume")
        else:
            outcome = command(["resume", run_id, "--json"], "resume")
        data = outcome.json() if not outcome.killed and outcome.code in (0, 1) else None
        if outcome.code == 2:
            time.sleep(0.2)
    else:
        record.notes.append(f"gave up after {record.commands} commands")
        data = status_of(project, run_id, timeout)
    record.final = data["status"] if data else "?"
    if recover_from is not None:
        record.recover_seconds = time.monotonic() - recover_from
    record.seconds = time.monotonic() - started
    record.orphans += project.settle()
    check(project, run_id, record)
    plan_status = project.plan_status().value
    if plan_status != record.final:
        record.plan_behind.append(f"plan {plan_status}, run {record.final}")
    verify, _ = opsmith(project, ["audit", "verify"], timeout=timeout)
    record.audit_ok = verify.code == 0
    if not args.keep:
        shutil.rmtree(project.root, ignore_errors=True)
    return record


# -- the checks -------------------------------------------------------------------------------


def check(project: Project, run_id: str, record: RunRecord) -> None:
    runs = RunRepository(project.database)
    state: RunState = runs.get(run_id)
    events = runs.events(run_id)
    journal = project.journal_counts()
    per_step: dict[str, Counter[EventType]] = {step: Counter() for step, _, _ in STEPS}
    for event in events:
        if event.step_id is not None:
            per_step.setdefault(event.step_id, Counter())[event.type] += 1
    calls: Counter[str] = Counter()
    for entry in AuditLog(project.database).entries(subject=run_id):
        if entry.action == "tool.called":
            calls[str(entry.details.get("step"))] += 1
    skips = Counter(
        e.step_id for e in events if e.type is EventType.STEP_DECIDED and e.message.endswith("skip")
    )
    decided = Counter(
        (e.step_id, e.message.rsplit(" ", 1)[-1]) for e in events if e.type is EventType.STEP_DECIDED
    )

    seqs = [e.seq for e in events]
    record.lost["seq"] += (max(seqs) - len(seqs)) if seqs else 0
    if seqs != list(range(1, len(seqs) + 1)) and seqs and max(seqs) == len(seqs):
        record.lost["seq"] += 1  # same count, wrong order or duplicates
    for step, tool, _ in STEPS:
        s = state.step(step)
        kinds = per_step[step]
        lines = journal[step]
        if tool == ONCE and lines > 1:
            record.twice_once.append(f"{step}x{lines}")
        if tool == AGAIN and lines > 1:
            record.again_reruns += lines - 1
        if state.status is RunStatus.SUCCEEDED and lines == 0:
            record.missing_work.append(step)
        succeeded = kinds[EventType.STEP_SUCCEEDED]
        interrupted = kinds[EventType.STEP_INTERRUPTED]
        ended = succeeded + interrupted + kinds[EventType.STEP_RETRYING] + kinds[EventType.STEP_FAILED]
        record.lost["started"] += max(0, s.attempts - kinds[EventType.STEP_STARTED])
        record.lost["ends"] += max(0, s.attempts - ended)
        if s.status is StepStatus.SUCCEEDED and succeeded != 1:
            record.lost["success"] += 1
        record.lost["journal"] += max(0, lines - succeeded - interrupted)
        record.lost["audit"] += abs(calls[step] - succeeded)
        if lines < succeeded:
            record.phantoms.append(f"{step}: {succeeded} successes, {lines} journal lines")
        if s.status is StepStatus.SKIPPED and not skips[step]:
            record.phantoms.append(f"{step}: skipped without a decision")
        if kinds[EventType.STEP_STARTED] > s.attempts:
            record.phantoms.append(f"{step}: {kinds[EventType.STEP_STARTED]} starts, {s.attempts} attempts")
    for step, choice in record.acknowledged:
        if not decided[(step, choice)]:
            record.lost["decided"] += 1
    if state.status is RunStatus.SUCCEEDED and (not events or events[-1].type is not EventType.RUN_FINISHED):
        record.lost["finished"] += 1


# -- calibration, report ----------------------------------------------------------------------


def calibrate(root: Path, args: argparse.Namespace) -> float:
    """Wall time of one uncrashed `opsmith run` of the plan; also proves the set-up works."""
    times = []
    for attempt in range(2):
        project = Project(root / f"calibration{attempt}", tuple(args.delay_ms), args.sqlite_synchronous)
        project.create()
        outcome, _ = opsmith(project, ["run", PLAN_ID, "--json"], timeout=args.timeout)
        data = outcome.json()
        if outcome.code != 0 or data is None or data.get("status") != "succeeded":
            sys.exit(f"calibration run failed (exit {outcome.code}):\n{outcome.err}\n{outcome.out[:2000]}")
        counts = project.journal_counts()
        if any(counts[step] != 1 for step, _, _ in STEPS):
            sys.exit(f"calibration: journal should hold every step once, holds {dict(counts)}")
        times.append(outcome.seconds)
        shutil.rmtree(project.root, ignore_errors=True)
    return min(times)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def most(values: list[float]) -> float:
    return max(values, default=float("nan"))


def report(records: list[RunRecord], span: float, wall: float, args: argparse.Namespace) -> None:
    kills = [k for r in records for k in r.kills]
    finals = Counter(r.final for r in records)
    points = Counter(k.point for k in kills)
    commands = Counter(k.command for k in kills)
    kinds = Counter(k.kind for k in kills)
    triggers = Counter(k.trigger for k in kills)
    lost: Counter[str] = Counter()
    for r in records:
        lost.update(r.lost)
    twice = [f"run{r.index}:{s}" for r in records for s in r.twice_once]
    missing = [f"run{r.index}:{s}" for r in records for s in r.missing_work]
    phantoms = [f"run{r.index}: {p}" for r in records for p in r.phantoms]
    behind = [f"run{r.index}: {p}" for r in records for p in r.plan_behind]
    recover = [r.recover_seconds for r in records if r.recover_seconds is not None]
    per_run = [float(len(r.kills)) for r in records]
    decisions: Counter[str] = Counter()
    for r in records:
        decisions.update(r.decisions)

    def fmt(counter: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

    def listed(items: list[str]) -> str:
        return f"{len(items)}" + (f": {'; '.join(items[:6])}" if items else "")

    total_lost = sum(lost.values())
    attention_runs = sum(1 for r in records if r.attention)
    commands_per_run = median([float(r.commands) for r in records])
    rows = [
        ("runs", f"{len(records)} of {args.runs} (seed {args.seed}; 14 steps: 8 once, 6 idempotent)"),
        ("kill point", f"1/4 at uniform [0, {span:.2f}] s; 3/4 after a random event of the command +0-0.1s"),
        ("kills (SIGKILL)", f"{len(kills)}; per run median {median(per_run):g}, max {most(per_run):g}"),
        ("  of which command", fmt(commands)),
        ("  of which kind", fmt(kinds)),
        ("  triggered by", fmt(triggers)),
        ("  landed", fmt(points)),
        ("  drawn after the command ended", str(sum(r.missed for r in records))),
        ("runs ended", fmt(finals)),
        ("needs_attention seen", f"{sum(r.attention for r in records)} times in {attention_runs} runs"),
        ("operator decisions", fmt(decisions)),
        ("NON-IDEMPOTENT STEPS EXECUTED >1 (target 0)", listed(twice)),
        ("idempotent steps re-executed (allowed)", str(sum(r.again_reruns for r in records))),
        ("steps of succeeded runs never done (target 0)", listed(missing)),
        ("EVENTS LOST (target 0)", f"{total_lost}" + (f" ({fmt(lost)})" if total_lost else "")),
        ("phantom records (target 0)", listed(phantoms)),
        ("audit chain intact", f"{sum(r.audit_ok for r in records)} of {len(records)} runs"),
        ("orphan servers (target 0)", str(sum(r.orphans for r in records))),
        ("stranded plans (target 0)", str(sum(r.stranded for r in records))),
        ("plan status != final run status (target 0)", listed(behind)),
        ("commands refused (exit 2)", str(sum(len(r.refused) for r in records))),
        ("opsmith commands per run", f"median {commands_per_run:g}"),
        ("recovery, 1st resume -> final", f"median {median(recover):.2f} s, max {most(recover):.2f} s"),
        ("run wall time, start -> final", f"median {median([r.seconds for r in records]):.2f} s"),
        ("bench wall time", f"{wall:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"{'crash bench':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    notes = [f"run{r.index}: {n}" for r in records for n in r.notes + r.refused]
    if notes:
        print("\nnotes:")
        for note in notes[:20]:
            print(f"  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-kills", type=int, default=3, help="kills per run are drawn in 1..N")
    parser.add_argument(
        "--delay-ms", nargs=2, type=float, default=(30.0, 120.0), metavar=("MIN", "MAX"),
        help="how long each tool call works (journal server)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for any one opsmith command")
    parser.add_argument("--run-budget", type=float, default=120.0, help="seconds for one run")
    parser.add_argument("--budget", type=float, default=540.0, help="no new run starts after this many s")
    parser.add_argument(
        "--sqlite-synchronous", choices=["full", "normal"], help="set in opsmith.yaml (default: opsmith's)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each in its own project)")
    parser.add_argument("--keep", action="store_true", help="keep the project directories")
    args = parser.parse_args()
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="opsmith-crash-"))
    try:
        span = calibrate(root, args)
        print(f"calibration: one uncrashed run takes {span:.2f} s", flush=True)

        def within_budget(index: int) -> RunRecord | None:
            if time.monotonic() - began > args.budget:
                return None
            return one_run(index, root, args, span)

        records: list[RunRecord] = []
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(within_budget, index) for index in range(1, args.runs + 1)]
            for future in as_completed(futures):
                record = future.result()
                if record is None:
                    continue
                records.append(record)
                kills = ", ".join(f"{k.command}/{k.kind}/{k.trigger}/{k.point}" for k in record.kills)
                print(
                    f"run {record.index:3d}: {record.final:<12} kills {len(record.kills)} ({kills}) "
                    f"decisions {dict(record.decisions) or '-'} {record.seconds:.1f}s",
                    flush=True,
                )
        if len(records) < args.runs:
            print(f"budget of {args.budget:g} s spent: {len(records)} runs of {args.runs}")
        records.sort(key=lambda r: r.index)
        report(records, span, time.monotonic() - began, args)
    finally:
        if args.keep:
            print(f"projects kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

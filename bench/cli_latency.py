"""CLI start-up latency and memory; prints a table of medians measured in this one run.

Each command runs as a real subprocess of this script: the venv's own console script
(`opsmith` next to sys.executable, not `uv run`), cwd a temp project whose opsmith.yaml points at
the four bundled sandbox MCP servers over a fresh sandbox state dir, with the default `.opsmith/`
state (SQLite) under that temp dir and OPSMITH_SANDBOX_LATENCY_MS=0. The servers may take
--server-timeout seconds to start (opsmith's 15 s is too short for four at once on a loaded
machine); that limit changes no speed. The commands:

  python -c pass                  the floor: interpreter start-up and the venv's site
  python: import ...              peers: only the libraries the commands stand on (Typer alone;
                                  Typer, pydantic and SQLAlchemy's ORM, which every read needs)
  opsmith --help
  opsmith plans                   every stored plan (the list grows by two each round)
  opsmith status RUN              a staging scale run planned and run in setup
  opsmith whoami
  opsmith audit verify            the whole chain (it grows with every plan)
  opsmith plan (recorded catalog) "Scale my-application in staging to 3 replicas", planned from
                                  the catalog the last discovery recorded (catalog_max_age 600 s):
                                  no MCP server starts
  opsmith plan (discovery)        the same request under a second config identical but for
                                  catalog_max_age 0, which always starts the four servers

Setup (not timed): seed the sandbox world, plan the request, run it (`opsmith run PLAN --json`,
a staging scale needs no approval) for the run id, and record a catalog. Then one warm-up of
every command, then --runs rounds, each timing every command once in the order above, so drift
in the machine's load hits all alike. A round that would pass --budget seconds is not started.
Every exit code is checked: a failing command aborts the bench instead of being timed as fast.

Wall time: from just before the fork to the child being reaped, nothing else running in this
process meanwhile (no memory polling in the timed runs: one psutil scan of the process tree costs
milliseconds of CPU, which would slow down the command timed on a machine with few cores).

CPU time (cpu s): user + system seconds from os.wait4, of the command and of the descendants it
waited for (the MCP servers it started), median of the timed runs. It shows the cost of a
command apart from waiting for a core, so it moves less than wall time when the machine is busy.

Memory comes from --rss-runs extra rounds after the timed ones, untimed, in which a thread polls
/proc every --sample-ms for the command and its live descendants (new ones are looked for every
fourth poll). In MB of 2**20 bytes:

  peak MB  the command's own process: its VmHWM (the kernel's high-water mark of its resident
           set since exec) at the last poll before it ended; growth after that poll is missed,
           and a process that ends before the first poll shows "-".
  tree MB  the largest sum of VmRSS over the command and its live descendants at any one poll:
           for the plan with discovery, opsmith and its four servers. Pages shared between the
           processes (the interpreter, libraries) count once per process.
  procs    the most processes of that tree alive at one poll.

The kernel's ru_maxrss (os.wait4, getrusage(RUSAGE_CHILDREN)) is no use here: on exec Linux keeps
the high-water mark of the image the child replaced, that is, the fork of its parent. Every
command run from this bench (opsmith, psutil and the sandbox loaded: about 70 MB) would read at
least that, and each MCP server at least opsmith's size when it forked it. RUSAGE_CHILDREN is
besides a maximum over all children so far, not one command's.

This process makes itself a child subreaper (Linux prctl), so a server a command leaves behind
is re-parented here; the bench names it, ends it and stops. Every subprocess has --timeout.

    uv run python bench/cli_latency.py [--runs 10] [--rss-runs 3] [--sample-ms 5] [--timeout 120]
        [--server-timeout 60] [--budget 900]

--budget counts the timed rounds; the --rss-runs rounds follow them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from opsmith.sandbox.world import World

SANDBOX = ["jenkins", "sonarqube", "registry", "kubernetes"]
REQUEST = "Scale my-application in staging to 3 replicas"
CATALOG_MAX_AGE = 600.0  # the default of planning.catalog_max_age
BIN = Path(sys.executable).parent
OPSMITH = BIN / "opsmith"
MB = 2**20
PR_SET_CHILD_SUBREAPER = 36

HELP_TARGET = 0.25
READ_TARGET = 0.35
PLAN_TARGET = 0.6


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]
    target: float | None = None
    plans_from_record: bool = False  # needs a catalog recorded within CATALOG_MAX_AGE
    discovers: bool = False  # records a fresh catalog


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # user + system, of the command and the descendants it waited for


@dataclass(frozen=True)
class Memory:
    peak_bytes: int  # the command's own process: its VmHWM at the last poll
    tree_bytes: int  # the largest sum of VmRSS over the live tree at one poll
    procs: int  # the most processes of the tree alive at one poll


@dataclass
class Samples:
    timings: list[Timing] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)


def config_text(state: Path, *, max_age: float | None, server_timeout: float) -> str:
    # Both configs must give the servers the same specs: a recorded catalog is only planned from
    # under the configuration (hashed per server) that recorded it.
    servers = "\n".join(
        f"  {name}: {{command: {sys.executable}, args: [-m, opsmith.sandbox.{name},"
        f" --state-dir, '{state / 'world'}', --latency-ms, '0'], timeout: {server_timeout:g}}}"
        for name in SANDBOX
    )
    age = "" if max_age is None else f"\n  catalog_max_age: {max_age:g}"
    return (
        "applications:\n  my-application: {}\n  payments-api: {}\n"
        "planning:\n  default_application: my-application\n"
        f'  image_repository: "myorg/{{app}}"{age}\n'
        f"mcpServers:\n{servers}\n"
    )


def child_env() -> dict[str, str]:
    # Nothing from the caller's OPSMITH_* settings (OPSMITH_CONFIG above all) may reach the children.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")}
    env["OPSMITH_SANDBOX_LATENCY_MS"] = "0"
    return env


class Runner:
    """Starts one command at a time in the temp project and measures it."""

    def __init__(self, project: Path, timeout: float, sample_ms: float) -> None:
        self.project = project
        self.timeout = timeout
        self.interval = sample_ms / 1000
        self.env = child_env()
        self.stdout = project / "last-stdout.txt"
        self.stderr = project / "last-stderr.txt"

    def run(self, command: Command, *, sample: bool = False) -> tuple[Timing, Memory | None, str]:
        """Runs `command` to its end: its times, its memory if sampled, its stdout. Aborts the
        bench if it fails, times out or leaves a process behind."""
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            began = time.perf_counter()
            child = subprocess.Popen(
                command.argv,
                cwd=self.project,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            watchdog = Watchdog(child.pid, self.timeout)
            poller = TreePoller(child.pid, self.interval) if sample else None
            try:
                # A blocking wait: Popen.wait(timeout=...) polls with sleeps up to 50 ms, which
                # would show in the figures; the watchdog thread enforces --timeout instead.
                _, status, usage = os.wait4(child.pid, 0)
                seconds = time.perf_counter() - began
                child.returncode = code = os.waitstatus_to_exitcode(status)
            finally:
                watchdog.reaped()
                if poller is not None:
                    poller.stop()
        left = leftovers()
        if watchdog.fired:
            raise SystemExit(
                f"{command.label!r} did not finish within --timeout {self.timeout:g} s{self.said()}"
            )
        if code != 0:
            raise SystemExit(f"{command.label!r} exited with {code}{self.said()}")
        if left:
            raise SystemExit(f"{command.label!r} left processes behind (ended now): {left}")
        memory = poller.memory() if poller is not None else None
        timing = Timing(seconds, usage.ru_utime + usage.ru_stime)
        return timing, memory, self.stdout.read_text(errors="replace")

    def said(self) -> str:
        """The end of what the last command wrote, for an error message."""
        parts = []
        for name, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            lines = path.read_text(errors="replace").rstrip().splitlines()[-15:]
            if lines:
                parts.append(f"--- {name} (end):\n" + "\n".join(lines))
        return ":\n" + "\n".join(parts) if parts else " (no output)"


class Watchdog:
    """Kills a child's process group if it is not reaped within `timeout` seconds."""

    def __init__(self, pid: int, timeout: float) -> None:
        self.fired = False
        self._pid = pid
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.start()

    def _kill(self) -> None:
        with self._lock:
            if not self._done:  # once reaped, the pid may belong to someone else
                self.fired = True
                os.killpg(self._pid, signal.SIGKILL)

    def reaped(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class TreePoller:
    """Polls, in a thread, VmRSS and VmHWM of a process and its live descendants (Linux /proc).

    Reading a few status files is cheap; finding new descendants scans all of /proc (psutil), so
    that happens only every `rescan` polls."""

    def __init__(self, pid: int, interval: float, rescan: int = 4) -> None:
        self._root = pid
        self._interval = interval
        self._rescan = rescan
        self._peak = 0
        self._tree = 0
        self._procs = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        known = {self._root}
        polls = 0
        while not self._done.is_set():
            if polls % self._rescan == 0:
                # Once the root has ended its descendants may still be alive, and are still read.
                with contextlib.suppress(psutil.Error):
                    known |= {p.pid for p in psutil.Process(self._root).children(recursive=True)}
            total = live = 0
            for pid in known:
                read = vm_kb(pid)
                if read is None:  # ended, or a zombie with no memory left
                    continue
                rss, hwm = read
                total += rss
                live += 1
                if pid == self._root:
                    self._peak = max(self._peak, hwm * 1024)
            self._tree = max(self._tree, total * 1024)
            self._procs = max(self._procs, live)
            polls += 1
            self._done.wait(self._interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def memory(self) -> Memory:
        return Memory(self._peak, self._tree, self._procs)


def vm_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a process in KiB, or None when it has no memory (ended, zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if line.startswith(("VmRSS", "VmHWM")))
    if len(fields) < 2:
        return None
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux: leftovers then go to init, unseen
        return False


def leftovers() -> list[str]:
    """Command lines of live processes re-parented to this one; each is ended. Zombies (processes
    that ended without their parent waiting for them) are only reaped."""
    found = []
    for process in psutil.Process().children():
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(" ".join(process.cmdline()) or str(process.pid))
                process.kill()
            process.wait(timeout=10)
        except psutil.Error:  # it ended and was reaped meanwhile
            continue
    return found


def commands(run_id: str) -> list[Command]:
    cli = str(OPSMITH)
    return [
        Command("python -c pass", [sys.executable, "-c", "pass"]),
        # Peers: importing only the libraries a command cannot do without, and nothing of opsmith.
        Command("python: import typer", [sys.executable, "-c", "import typer.main"]),
        Command(
            "python: import typer, pydantic, sqlalchemy.orm",
            [sys.executable, "-c", "import typer.main, pydantic, sqlalchemy.orm"],
        ),
        Command("opsmith --help", [cli, "--help"], HELP_TARGET),
        Command("opsmith plans", [cli, "plans"], READ_TARGET),
        Command("opsmith status RUN", [cli, "status", run_id], READ_TARGET),
        Command("opsmith whoami", [cli, "whoami"], READ_TARGET),
        Command("opsmith audit verify", [cli, "audit", "verify"], READ_TARGET),
        Command(
            "opsmith plan (recorded catalog)", [cli, "plan", REQUEST], PLAN_TARGET, plans_from_record=True
        ),
        Command("opsmith plan (discovery)", [cli, "-c", "discover.yaml", "plan", REQUEST], discovers=True),
    ]


def set_up(runner: Runner, server_timeout: float) -> str:
    """Seeds the world, writes both configs, plans and runs the request; returns the run id."""
    project = runner.project
    World(project / "world").ensure_seeded()
    (project / "opsmith.yaml").write_text(config_text(project, max_age=None, server_timeout=server_timeout))
    (project / "discover.yaml").write_text(config_text(project, max_age=0, server_timeout=server_timeout))
    *_, text = runner.run(Command("setup: opsmith plan --json", [str(OPSMITH), "plan", REQUEST, "--json"]))
    plan_id = json.loads(text)["id"]
    *_, text = runner.run(Command("setup: opsmith run --json", [str(OPSMITH), "run", plan_id, "--json"]))
    run = json.loads(text)
    if run["status"] != "succeeded":
        raise SystemExit(f"setup run {run['run_id']} ended {run['status']}, not succeeded")
    return str(run["run_id"])


class Bench:
    def __init__(self, runner: Runner, cmds: list[Command]) -> None:
        self.runner = runner
        self.cmds = cmds
        self.samples = {c.label: Samples() for c in cmds}
        self.discovered_at = time.monotonic()  # setup's plan and run both discovered

    def once(self, command: Command, *, sample: bool) -> tuple[Timing, Memory | None]:
        if command.plans_from_record and time.monotonic() - self.discovered_at > CATALOG_MAX_AGE / 2:
            self.refresh()
        timing, memory, _ = self.runner.run(command, sample=sample)
        if command.plans_from_record and memory is not None and memory.procs > 1:
            raise SystemExit(f"{command.label!r} started {memory.procs - 1} processes: it discovered")
        if command.discovers:
            self.discovered_at = time.monotonic()
        return timing, memory

    def refresh(self) -> None:
        """Records a fresh catalog (untimed), so the recorded-catalog plan never falls back to discovery."""
        self.runner.run(next(c for c in self.cmds if c.discovers))
        self.discovered_at = time.monotonic()

    def round(self, *, sample: bool) -> None:
        for command in self.cmds:
            timing, memory = self.once(command, sample=sample)
            samples = self.samples[command.label]
            if memory is None:
                samples.timings.append(timing)
            else:
                samples.memory.append(memory)


def median_mb(values: list[int]) -> str:
    seen = [v for v in values if v > 0]  # 0: no poll caught the process alive
    return f"{statistics.median(seen) / MB:>9.1f}" if seen else f"{'-':>9}"


def print_table(bench: Bench, done: int, rss_runs: int) -> None:
    floor = statistics.median(t.wall for t in bench.samples["python -c pass"].timings)
    cores = len(os.sched_getaffinity(0))
    print(
        f"\nCLI wall time, median of {done} timed runs; peak RSS, median of {rss_runs} sampled runs;"
        f" {cores} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'command':<34}{'median s':>9}{'min s':>8}{'x pass':>8}{'cpu s':>7}{'peak MB':>9}{'tree MB':>9}"
        f"{'procs':>7}{'target s':>10}{'met':>5}"
    )
    for command in bench.cmds:
        samples = bench.samples[command.label]
        walls = [t.wall for t in samples.timings]
        median = statistics.median(walls)
        cpu = statistics.median(t.cpu for t in samples.timings)
        peak = median_mb([m.peak_bytes for m in samples.memory])
        tree = median_mb([m.tree_bytes for m in samples.memory])
        procs = max((m.procs for m in samples.memory), default=0) or "-"
        if command.target is None:
            target, met = "-", "-"
        else:
            target, met = f"<= {command.target:.2f}", "yes" if median <= command.target else "no"
        print(
            f"{command.label:<34}{median:>9.3f}{min(walls):>8.3f}{median / floor:>8.1f}{cpu:>7.2f}"
            f"{peak}{tree}{procs:>7}{target:>10}{met:>5}"
        )
    print(f"targets: --help <= {HELP_TARGET} s; read-only commands <= {READ_TARGET} s;")
    print(f"         plan with a recorded catalog <= {PLAN_TARGET} s (met: the median)")
    print("cpu s: user + system CPU, median, servers included; it rises less than wall time under load")
    print("peak MB: the command's own process (VmHWM); tree MB: the largest sum of RSS over its live tree")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="timed runs of every command")
    parser.add_argument("--rss-runs", type=int, default=3, help="extra untimed runs sampling memory")
    parser.add_argument("--sample-ms", type=float, default=5.0, help="memory polling interval of those runs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any one subprocess may take")
    parser.add_argument(
        "--server-timeout",
        type=float,
        default=60.0,
        help="seconds a sandbox server may take to start (opsmith's default, 15, fails on a loaded machine)",
    )
    parser.add_argument(
        "--budget", type=float, default=900, help="seconds; start no round past it (0: always --runs)"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not OPSMITH.exists():
        raise SystemExit(f"no console script at {OPSMITH}: run this with the project's venv (uv run ...)")
    if not become_subreaper():
        print("note: not a child subreaper (Linux only): a server left behind would go unnoticed")
    with tempfile.TemporaryDirectory(prefix="opsmith-cli-bench-") as tmp:
        runner = Runner(Path(tmp), args.timeout, args.sample_ms)
        run_id = set_up(runner, args.server_timeout)
        bench = Bench(runner, commands(run_id))
        for command in bench.cmds:  # warm-up: page cache, .pyc files, first-use costs
            bench.once(command, sample=False)
        began = time.perf_counter()
        done = 0
        while done < args.runs:
            bench.round(sample=False)
            done += 1
            spent = time.perf_counter() - began
            if args.budget and done < args.runs and spent / done * (done + 1) > args.budget:
                print(
                    f"stopping after {done} of {args.runs} runs:"
                    f" the next would pass --budget {args.budget:.0f} s"
                )
                break
        for _ in range(args.rss_runs):
            bench.round(sample=True)
    print_table(bench, done, args.rss_runs)


if __name__ == "__main__":
    main()

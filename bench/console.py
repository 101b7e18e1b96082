"""Run monitor benchmark: the console's /runs/{id} page over a run of 20,000 events, against 100.

Everything is measured in this one run. A real `opsmith serve --port 0` (bench/api.py's
`serving`: its own process group, SIGTERM in a finally, the group killed if it lingers) runs in a
temp project whose opsmith.yaml is bench/plan_latency.py's (the four sandbox MCP servers over a
freshly seeded sandbox world, no latency, SQLite under the temp dir). This process plans one
request over the API ("Scale my-application in staging to 2 replicas", with the admin token the
first start prints) and then writes two runs of that plan straight into the run journal with
RunRepository.commit, as tests/browser/test_console.py's 20,000-event test does: each run is
`running`, its lease held by this process (alive, so the server's take-over duty leaves it alone),
and holds a run.started event then log lines ("line N of M") up to --events (20,000) events, in
commits of 1,000; the baseline run holds --baseline (100). Both runs are cancelled (a committed
`cancelled` status and its run.finished event) in a finally while the server still runs, so it
never takes them over.

Chromium (/usr/bin/chromium, headless, --no-sandbox as root; driven by Playwright) loads each
run's monitor --rounds times (5), each load in a fresh browser context (no cache, no cookies but
the session cookie, which holds the admin token as the console's login would set it), the two
runs alternating which goes first in a round; one untimed load of each comes first (warm-up).
Times are from the navigation's start (performance.timeOrigin) as the page's clock reads them:

  HTML response   the navigation's responseStart: the server's share (the page read, rendered);
  FCP             Chromium's first-contentful-paint: when the first frame with content (the
                  header, the step count...) was presented, for reference;
  step shown      the first animation frame in which #step-text reads "Step N of M" and is
                  rendered (checkVisibility): the monitor's first render;
  first line      the first frame in which a line of the live log (#log li) lies inside the log's
                  visible box;
  caught up       the first frame in which the run's last event (seq 20,000, or 100) is a line
                  inside the log's visible box: the log shows the end of the run.

A frame is a requestAnimationFrame callback, polled from an init script from the document's
creation: an element found laid out there is painted by that frame (the resolution is one frame,
~16.7 ms), though the compositor may present the frame later (FCP is that presentation's time,
and on a busy machine can come after the marks). Whether the page's deferred script (which
scrolls the log to its end) runs before or after the first frame decides whether "caught up" is
that frame or a later one. Once caught up, and once the page's first refresh of /runs/{id}/progress has been
answered (the monitor of a live run asks for it at once), the page's memory is read: garbage is
collected (CDP HeapProfiler.collectGarbage), then JS heap = CDP Performance.getMetrics'
JSHeapUsedSize (MB), and DOM nodes = every node of the document (a TreeWalker over SHOW_ALL,
text nodes included). The table gives the median of the rounds for each run and the ratio
20,000 / 100 of the medians. A page that logs any console error fails the bench.

Bounded: a round that would start past --budget seconds is not started (the table says how many
ran), every wait (the server's start, each navigation, each mark, each response) has a timeout,
and the server is stopped however the bench ends.

    uv run python bench/console.py [--rounds 5] [--events 20000] [--baseline 100] [--budget 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

# Run as a script, bench/ is on sys.path: the server is started and stopped as bench/api.py does.
from _serve import OPSMITH, Served, child_env, serving
from api import Budget
from plan_latency import config_text
from playwright.sync_api import Browser, ViewportSize, sync_playwright

from opsmith.api.auth import SESSION_COOKIE
from opsmith.bootstrap import bootstrap
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState, RunStatus, new_run, with_run_status
from opsmith.sandbox.world import World
from opsmith.store.runs import RunRepository, new_owner

CHROMIUM = Path("/usr/bin/chromium")
REQUEST = "Scale my-application in staging to 2 replicas"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
BATCH = 1_000
WAIT_S = 60.0  # the longest any one browser wait may take

# Installed before the page's own script: records, per mark, the frame it was first seen in.
MARKS = """
(() => {
  const last = "__LAST__";
  const marks = (window.__bench = {});
  function inside(line, box) {
    const a = line.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    return line.checkVisibility() && a.height > 0 && a.bottom > b.top && a.top < b.bottom;
  }
  function frame() {
    const now = performance.now();
    const step = document.getElementById("step-text");
    if (marks.step === undefined && step && step.checkVisibility() &&
        /^Step \\d+ of \\d+$/.test(step.textContent.trim())) {
      marks.step = now;
    }
    const log = document.getElementById("log");
    if (log && marks.line === undefined) {
      const ends = [log.firstElementChild, log.lastElementChild].filter(Boolean);
      if (ends.some((line) => inside(line, log))) { marks.line = now; }
    }
    if (log && marks.caught === undefined) {
      const end = log.querySelector('li[data-seq="' + last + '"]');
      if (end && inside(end, log)) { marks.caught = now; }
    }
    if (marks.step === undefined || marks.line === undefined || marks.caught === undefined) {
      requestAnimationFrame(frame);
    }
  }
  requestAnimationFrame(frame);
})();
"""
DONE = """() => ['step', 'line', 'caught'].every((name) => window.__bench && name in window.__bench) &&
  performance.getEntriesByName('first-contentful-paint').length > 0"""
NODES = """() => {
  const walker = document.createTreeWalker(document, NodeFilter.SHOW_ALL);
  let count = 1;
  while (walker.nextNode()) { count += 1; }
  return count;
}"""
TIMING = """() => ({
  response: performance.getEntriesByType('navigation')[0].responseStart,
  paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,
})"""


@dataclass
class Fabricated:
    """A run this process wrote and holds: `events` events, the last of them seq `events`."""

    runs: RunRepository
    state: RunState
    owner: str
    lease: float
    events: int

    @property
    def run_id(self) -> str:
        return self.state.run_id

    def cancel(self) -> None:
        ended = with_run_status(self.state, RunStatus.CANCELLED)
        finished = [_event(self.run_id, EventType.RUN_FINISHED, "cancelled: the bench is over")]
        self.runs.commit(ended, owner=self.owner, events=finished, lease_seconds=self.lease)
        self.state = ended


def _event(run_id: str, kind: EventType, message: str) -> RunEvent:
    return RunEvent(run_id=run_id, at=datetime.now(UTC), type=kind, message=message)


def fabricate(runs: RunRepository, state: RunState, events: int, lease: float) -> Fabricated:
    """`state`, running, with a run.started event and log lines up to `events` events."""
    made = Fabricated(runs, with_run_status(state, RunStatus.RUNNING), new_owner(), lease, events)
    opened = [_event(made.run_id, EventType.RUN_STARTED, f"{events} events follow")]
    runs.commit(made.state, owner=made.owner, events=opened, started_by="bench", lease_seconds=lease)
    written = 1
    while written < events:
        upto = min(events, written + BATCH)
        lines = [
            _event(made.run_id, EventType.LOG, f"line {n} of {events}") for n in range(written + 1, upto + 1)
        ]
        runs.commit(made.state, owner=made.owner, events=lines, lease_seconds=lease)
        written = upto
    last = runs.last_seq(made.run_id)
    if last != events:
        raise SystemExit(f"run {made.run_id} ends at seq {last}, not {events}: another writer?")
    return made


@contextmanager
def two_runs(
    project: Path, served: Served, sizes: tuple[int, int], lease: float
) -> Iterator[list[Fabricated]]:
    """A plan made over the API, and a run of it per size; every run cancelled however this ends."""
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}) as api:
        answer = api.post("/api/v1/plans", json={"request": REQUEST}, timeout=WAIT_S)
    if answer.status_code != 201:
        raise SystemExit(f"POST /api/v1/plans answered {answer.status_code}: {answer.text[:500]}")
    app = bootstrap(project / "opsmith.yaml", child_env())
    runs = app.journal()
    assert isinstance(runs, RunRepository)
    plan = app.plans.get(answer.json()["id"])
    made: list[Fabricated] = []
    try:
        for size in sizes:
            state = new_run(plan, run_id=f"run_bench_console_{size}_{os.getpid()}")
            made.append(fabricate(runs, state, size, lease))
        yield made
    finally:
        for run in made:
            if run.state.status is RunStatus.RUNNING:
                run.cancel()


@dataclass
class Sample:
    response: float
    paint: float
    step: float
    line: float
    caught: float
    heap_mb: float
    nodes: int


@dataclass
class Samples:
    run: Fabricated
    taken: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = [float(getattr(s, name)) for s in self.taken]
        return statistics.median(values) if values else float("nan")


def load(browser: Browser, served: Served, run: Fabricated, timeout: float) -> Sample:
    """One load of the run's monitor in a fresh context, measured as the docstring says."""
    context = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    try:
        context.set_default_timeout(timeout * 1000)
        context.add_cookies([{"name": SESSION_COOKIE, "value": served.token, "url": served.url}])
        context.add_init_script(MARKS.replace("__LAST__", str(run.events)))
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        progress = f"/runs/{run.run_id}/progress"
        with page.expect_response(lambda r: r.url.endswith(progress), timeout=timeout * 1000) as answered:
            shown = page.goto(f"{served.url}/runs/{run.run_id}", timeout=timeout * 1000)
        if shown is None or shown.status != 200 or answered.value.status != 200:
            raise SystemExit(f"the monitor of {run.run_id} did not load: {shown and shown.status}")
        page.wait_for_function(DONE, timeout=timeout * 1000)
        marks = page.evaluate("() => window.__bench")
        timing = page.evaluate(TIMING)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        nodes = int(page.evaluate(NODES))
        cdp.detach()
    finally:
        context.close()
    if errors:
        raise SystemExit(f"the monitor of {run.run_id} logged errors: {errors}")
    return Sample(
        response=float(timing["response"]),
        paint=float(timing["paint"]),
        step=float(marks["step"]),
        line=float(marks["line"]),
        caught=float(marks["caught"]),
        heap_mb=float(metrics["JSHeapUsedSize"]) / 1e6,
        nodes=nodes,
    )


def measure(
    browser: Browser, served: Served, made: list[Fabricated], rounds: int, budget: Budget
) -> list[Samples]:
    results = [Samples(run) for run in made]
    for run in made:
        load(browser, served, run, budget.wait(WAIT_S))  # warm-up: the server's first reads, untimed
    for number in range(rounds):
        if not budget.left():
            break
        order = results if number % 2 == 0 else results[::-1]
        for result in order:
            result.taken.append(load(browser, served, result.run, budget.wait(WAIT_S)))
    return results


COLUMNS = [
    ("response", "HTML ms", "{:>10.1f}"),
    ("paint", "FCP ms", "{:>10.1f}"),
    ("step", "step ms", "{:>10.1f}"),
    ("line", "line ms", "{:>10.1f}"),
    ("caught", "caught ms", "{:>10.1f}"),
    ("heap_mb", "heap MB", "{:>10.2f}"),
    ("nodes", "nodes", "{:>10.0f}"),
]


def print_table(results: list[Samples], rounds: int, version: str) -> None:
    small, big = results
    print(
        f"\nRun monitor /runs/{{id}}, medians of {len(big.taken)} of {rounds} loads each"
        f" (fresh context, Chromium {version} headless); ms from navigation start"
    )
    print(f"  {'run':<22}" + "".join(f"{title:>10}" for _, title, _ in COLUMNS))
    for result in (small, big):
        label = f"{result.run.events:,} events"
        print(f"  {label:<22}" + "".join(fmt.format(result.median(name)) for name, _, fmt in COLUMNS))
    ratios = "".join(f"{big.median(name) / small.median(name):>9.2f}x" for name, _, _ in COLUMNS)
    print(f"  {'ratio':<22}" + ratios)
    print("  HTML: response start; FCP: first-contentful-paint; step: 'Step N of M' rendered;")
    print("  line: a log line in view; caught: the last event's line in view;")
    print("  heap: JSHeapUsedSize after a GC, nodes: every node of the document, both once caught up")
    print("  and the page's first /progress refresh is answered")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="timed loads of each run's monitor")
    parser.add_argument("--events", type=int, default=20_000, help="events of the long run")
    parser.add_argument("--baseline", type=int, default=100, help="events of the baseline run")
    parser.add_argument(
        "--start-timeout", type=float, default=120.0, help="seconds `opsmith serve` may take to start"
    )
    parser.add_argument("--budget", type=float, default=300.0, help="seconds; start no round past it")
    args = parser.parse_args()
    if args.rounds < 1 or min(args.events, args.baseline) < 2 or args.events == args.baseline:
        parser.error("--rounds must be at least 1, --events and --baseline at least 2 and different")
    if not OPSMITH.exists():
        raise SystemExit(f"no console script at {OPSMITH}: run this with the project's venv (uv run ...)")
    if not CHROMIUM.exists():
        raise SystemExit(f"no {CHROMIUM}: apt-get install chromium")
    budget = Budget(args.budget)
    with tempfile.TemporaryDirectory(prefix="opsmith-console-bench-") as tmp:
        project = Path(tmp)
        World(project / "world").ensure_seeded()
        (project / "opsmith.yaml").write_text(config_text(project))
        with (
            serving(project, budget.wait(args.start_timeout)) as served,
            two_runs(project, served, (args.baseline, args.events), args.budget + 600) as made,
            sync_playwright() as driver,
        ):
            browser = driver.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox"] if os.geteuid() == 0 else [],
                timeout=budget.wait(WAIT_S) * 1000,
            )
            try:
                version = browser.version
                results = measure(browser, served, made, args.rounds, budget)
            finally:
                browser.close()
    print_table(results, args.rounds, version)
    used = args.budget - budget.left()
    cores = len(os.sched_getaffinity(0))
    print(
        f"\n{cores} cores, load {os.getloadavg()[0]:.1f}; {used:.0f} s of the {args.budget:.0f} s budget used"
    )


if __name__ == "__main__":
    main()

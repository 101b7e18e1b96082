"""Task creation through the API: POST /api/v1/tasks (a bug report) against a real `opsmith serve`.

The server is started as a subprocess (`opsmith serve --port 0`, its own process group, stopped
with SIGTERM in a finally and the group killed if it lingers) in a temp project: no MCP server,
this OS user the admin, state (SQLite) under the temp dir, the orchestrator running every
tasks.orchestrate_seconds as it does in production (default 10 s: a pass may fall inside the
timing, as it would). This process talks to it over loopback with the admin token the first start
prints, over one keep-alive httpx connection.

--warmup untimed rounds, then --rounds rounds, each timing in turn (so drift in the machine's load
hits both alike), from just before the request is sent to the whole answer read, in milliseconds:

  POST /api/v1/tasks    a bug report: validated, one task and its log entry written in one
                        transaction, one audit entry appended (signed, chained), the task's JSON
  GET /api/v1/whoami    the baseline: what HTTP and the token check alone cost

Overhead = the POST's p50 (p99) minus the baseline's: quantiles, not paired samples. The task,
its log entry and its audit entry are one commit that, with the default `sqlite_synchronous: full`,
waits for an fsync; run again with --sqlite-synchronous normal to see what the disk's flush costs
apart from opsmith. Target: POST p99 <= 10 ms (seed 003 claimed < 100 ms).

--repeats N starts a fresh server N times and prints the median over them of each quantile.
--before DIR also measures `opsmith serve` run from another source tree (DIR holds its `opsmith`
package, e.g. a copy of src/ from before a change, put first on PYTHONPATH) in the same run,
alternating which goes first in each repeat, so both legs see the same machine.

    uv run python bench/tasks_api.py [--rounds 300] [--warmup 20] [--repeats 3] [--before DIR]
                                     [--sqlite-synchronous full|normal]
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx

# Run as a script, bench/ is on sys.path: the server is started and stopped as the other benches do.
from _serve import serving

BUG = {
    "title": "Checkout fails with a 500",
    "description": "POST /pay answers 500 since the last deploy\nError: connection refused to payments:8443",
    "severity": "major",
}


def quantile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def timed(client: httpx.Client, method: str, path: str, expected: int, **options: object) -> float:
    begin = time.perf_counter_ns()
    answer = client.request(method, path, **options)  # type: ignore[arg-type]
    answer.read()
    took = (time.perf_counter_ns() - begin) / 1e6
    if answer.status_code != expected:
        raise SystemExit(f"{method} {path} answered {answer.status_code}: {answer.text[:300]}")
    return took


class Leg(NamedTuple):
    """One server's figures: POST and baseline p50 and p99, in ms."""

    post_p50: float
    post_p99: float
    base_p50: float
    base_p99: float


def measure(args: argparse.Namespace, source: Path | None) -> Leg:
    """One fresh project and server; warm-up, then the timed rounds."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    with tempfile.TemporaryDirectory(prefix="opsmith-tasks-bench-") as tmp:
        project = Path(tmp)
        (project / "opsmith.yaml").write_text(
            f"mcpServers: {{}}\nstate_dir: {project / 'state'}\n"
            f"sqlite_synchronous: {args.sqlite_synchronous}\n"
            f"rbac:\n  users: {{{user}: admin}}\n"
        )
        posts: list[float] = []
        whoami: list[float] = []
        with serving(project, args.start_timeout, source) as served:
            headers = {"Authorization": f"Bearer {served.token}"}
            with httpx.Client(base_url=served.url, headers=headers, timeout=30.0) as client:
                for _ in range(args.warmup):
                    timed(client, "POST", "/api/v1/tasks", 201, json=BUG)
                    timed(client, "GET", "/api/v1/whoami", 200)
                for _ in range(args.rounds):
                    posts.append(timed(client, "POST", "/api/v1/tasks", 201, json=BUG))
                    whoami.append(timed(client, "GET", "/api/v1/whoami", 200))
    return Leg(statistics.median(posts), quantile(posts, 99), statistics.median(whoami), quantile(whoami, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, help="also serve from this source tree")
    parser.add_argument("--sqlite-synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.before is not None and not (args.before / "opsmith" / "__init__.py").is_file():
        raise SystemExit(f"--before {args.before}: no opsmith package there (give a copy of src/)")
    legs: dict[str, list[Leg]] = {"now": []}
    if args.before is not None:
        legs = {"before": [], "now": []}
    sources = {"before": args.before, "now": None}
    for repeat in range(args.repeats):
        order = list(legs) if repeat % 2 == 0 else list(reversed(legs))
        for name in order:
            legs[name].append(measure(args, sources[name]))
    print(
        f"task creation over HTTP: {args.repeats} servers x {args.rounds} rounds each,"
        f" sqlite_synchronous {args.sqlite_synchronous}; medians over the servers (range)"
    )
    print(
        f"{'code':<8} {'POST p50':>16} {'POST p99':>18} {'whoami p50':>16} {'whoami p99':>16} {'p99 over':>9}"
    )

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.1f}-{max(values):.1f})"

    for name, found in legs.items():
        columns = [[getattr(leg, f) for leg in found] for f in Leg._fields]
        over = statistics.median(leg.post_p99 - leg.base_p99 for leg in found)
        print(f"{name:<8} {cell(columns[0]):>16} {cell(columns[1]):>18} {cell(columns[2]):>16} "
              f"{cell(columns[3]):>16} {over:>9.2f}")  # fmt: skip
    p99 = statistics.median(leg.post_p99 for leg in legs["now"])
    verdict = "met" if p99 <= 10.0 else "NOT met"
    print(f"target POST p99 <= 10 ms: {verdict} ({p99:.3f} ms now; seed 003 claimed < 100 ms)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

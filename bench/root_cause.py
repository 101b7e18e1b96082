"""Root-cause analysis latency: the analysis of a failed run, excluding the evidence fetch.

What is timed is `services.explain.analysis_of` plus the reading of the run's recorded evidence
(`engine.run_evidence.recorded_artifacts`, redaction included): everything `opsmith explain` does
after the store read and before any tool call. The rules are the bundled library, loaded once
(as a server does; each file is parsed again only when it changes). The evidence is seed 001's
crash-loop story at three sizes, the fetched logs of the crashing pod (tail 100) added to the
run's record:

  seed          the failed check's error and output, and the crashing pod's 25 log lines
  tail 1000     the same pod with 1,000 log lines (the crash at the end)
  unexplained   1,000 lines no rule matches (every rule tried on every line)

Each case: --warmup untimed rounds, then --runs timed rounds, in turn, so drift in the machine's
load hits all alike; p50 and p99 in milliseconds (p99 interpolated, never past the maximum).
Target: p99 <= 20 ms (HolmesGPT answers in 35 s and more).

    uv run --frozen python bench/root_cause.py [--runs 500]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.redaction import Redactor
from opsmith.domain.risk import Risk
from opsmith.engine.run_evidence import output_artifacts, recorded_artifacts
from opsmith.engine.state import RunState, RunStatus, StepState, StepStatus
from opsmith.rule_library import bundled_rules
from opsmith.services.explain import analysis_of

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
CRASH = [
    "> my-application@1.0.0 start",
    "> node server.js",
    "",
    "Failed to load configuration file",
    "node:internal/modules/cjs/loader:1080",
    "  throw err;",
    "  ^",
    "",
    "Error: Cannot find module './config/production.json'",
    "Require stack:",
    "- /app/server.js",
    "    at Function.Module._resolveFilename (node:internal/modules/cjs/loader:1077:15)",
    "    at Function.Module._load (node:internal/modules/cjs/loader:922:27)",
    "    at Module.require (node:internal/modules/cjs/loader:1143:19)",
    "    at require (node:internal/modules/cjs/helpers:121:18)",
    "    at Object.<anonymous> (/app/server.js:7:12)",
    "{",
    "  code: 'MODULE_NOT_FOUND',",
    "  requireStack: [ '/app/server.js' ]",
    "}",
]
NAMES = ["build", "test", "quality_scan", "security_scan", "push_image", "verify_image", "backup", "deploy"]


def plan() -> Plan:
    steps = [
        Step(id=n, name=n.replace("_", " "), capability=n, server="s", tool=n, risk=Risk.LOW) for n in NAMES
    ]
    steps.append(
        Step(id="verify_pods", name="Verify pods", capability="verify_pods", server="kubernetes",
             tool="get_pods", risk=Risk.LOW, depends_on=["deploy"])
    )  # fmt: skip
    steps.append(
        Step(id="check_logs", name="Check logs", capability="check_logs", server="kubernetes",
             tool="get_pod_logs", risk=Risk.LOW, depends_on=["deploy"])
    )  # fmt: skip
    return Plan(
        id="plan-bench", request="deploy", title="Deploy", intent=Intent(request="deploy", action="deploy"),
        playbook="production_deployment", priority="HIGH", risk=Risk.HIGH, requires_approval=False,
        rollback_strategy="", failure_handling="", steps=steps, status=PlanStatus.ROLLED_BACK, created_at=T0,
        estimated_duration=Estimate(minimum_seconds=1, maximum_seconds=2, text="", critical_path=[]),
    )  # fmt: skip


def run(logs: list[str], crash: bool) -> RunState:
    steps = {
        n: StepState(step_id=n, status=StepStatus.SUCCEEDED, completed_seq=i) for i, n in enumerate(NAMES)
    }
    status = "CrashLoopBackOff" if crash else "Running"
    pods = [{"name": f"my-application-{i}", "status": status if i == 0 else "Running", "ready": i > 0}
            for i in range(3)]  # fmt: skip
    error = f"pods.*.status == 'Running' is not met: pods.0.status is {status!r}" if crash else "check failed"
    steps["verify_pods"] = StepState(
        step_id="verify_pods", status=StepStatus.FAILED, finished_at=T0 + timedelta(seconds=9),
        error=error, output={"pods": pods, "total": 3, "crash_looping": 1 if crash else 0},
    )  # fmt: skip
    steps["check_logs"] = StepState(
        step_id="check_logs", status=StepStatus.FAILED, finished_at=T0 + timedelta(seconds=10),
        error="errors == 0 is not met", output={"pods": [{"pod": "my-application-0", "lines": logs}]},
    )  # fmt: skip
    return RunState(
        run_id="run-bench", plan_id="plan-bench", plan_hash="h", status=RunStatus.ROLLED_BACK,
        steps=steps, next_seq=len(NAMES),
    )  # fmt: skip


def case(logs: list[str], crash: bool) -> Callable[[], object]:
    rules, the_plan, the_run = bundled_rules(), plan(), run(logs, crash)
    fetched_step = the_plan.steps[-1]
    fetched = {"pods": [{"pod": "my-application-0", "lines": logs[-100:]}]}

    def once() -> object:
        redactor = Redactor(["a-configured-secret-value"])
        artifacts = recorded_artifacts(the_plan, the_run, redactor)
        artifacts += output_artifacts(fetched_step, fetched, redactor, fetched=True)
        return analysis_of(rules, the_plan, the_run, artifacts, redactor=redactor)

    return once


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    options = parser.parse_args()
    noise = [f"2026-11-24T10:00:{i % 60:02d}Z info request served in {i % 97} ms path=/api/items/{i}"
             for i in range(1000)]  # fmt: skip
    cases = {
        "seed (25 log lines)": case(CRASH, True),
        "tail 1000 (crash at the end)": case(noise[: -len(CRASH)] + CRASH, True),
        "unexplained (1000 lines)": case(noise, False),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_number in range(options.warmup + options.runs):
        for name, once in cases.items():
            start = time.perf_counter()
            found = once()
            took = (time.perf_counter() - start) * 1000
            if round_number >= options.warmup:
                samples[name].append(took)
            assert found is not None
    explained = {name: once().explained for name, once in cases.items()}  # type: ignore[attr-defined]
    print(f"root-cause analysis without the evidence fetch, {options.runs} runs each (ms)")
    print(f"{'case':<32} {'explained':>9} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, taken in samples.items():
        print(
            f"{name:<32} {explained[name]!s:>9} {quantile(taken, 0.5):8.2f} {quantile(taken, 0.99):8.2f}"
            f" {max(taken):8.2f}"
        )
    print("target: p99 <= 20 ms")


if __name__ == "__main__":
    main()

"""After a run: estimates against what really happened, what failed or retried, what to do next.

Rule-based and computed only from the plan and the recorded run.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from opsmith.domain.graph import format_duration_range
from opsmith.domain.plan import Plan
from opsmith.engine.state import RunState, StepState, StepStatus

_MISSING_MODULE = re.compile(r"Cannot find module '\./([^']+)'")


class Reflection(BaseModel):
    model_config = ConfigDict(frozen=True)

    estimates: list[str]
    failures: list[str]
    retries: list[str]
    suggestions: list[str]


def reflect(plan: Plan, run: RunState) -> Reflection:
    estimates, failures, retries, suggestions = [], [], [], []
    for step in plan.steps:
        state = run.step(step.id)
        seconds = step_seconds(state)
        if seconds is not None and state.status is StepStatus.SUCCEEDED:
            low, high = step.estimated_duration
            verdict = (
                "within" if low <= seconds <= high else ("faster than" if seconds < low else "slower than")
            )
            estimates.append(f"{step.id}: took {seconds:.2f}s, {verdict} the estimate {_range(low, high)}")
        if state.status is StepStatus.FAILED:
            failures.append(f"{step.id} ({step.server}/{step.tool}): {state.error}")
            suggestions += _suggest(step.id, state.error or "")
        if state.attempts > 1:
            retries.append(f"{step.id}: {state.attempts} attempts")
    if estimates and all("faster than" in e for e in estimates):
        suggestions.append("every step beat its estimate: recorded durations now refine future estimates")
    return Reflection(
        estimates=estimates, failures=failures, retries=retries, suggestions=list(dict.fromkeys(suggestions))
    )


def _range(low: float, high: float) -> str:
    # Estimates learned from fast runs are seconds; "< 1 min" would hide the comparison.
    return f"{low:.2f}-{high:.2f}s" if high < 60 else format_duration_range(low, high)


def _suggest(step_id: str, error: str) -> list[str]:
    tips = []
    missing = _MISSING_MODULE.search(error)
    if missing:
        path = missing.group(1)
        folder = path.split("/")[0]
        tips.append(
            f"the image lacks {path}, which the start command requires: add it to the repository and "
            f"'COPY {folder}/ ./{folder}/' to the Dockerfile, then plan again"
        )
    if "CrashLoopBackOff" in error and not missing:
        tips.append(f"{step_id}: pods crash-loop; read their logs (get_pod_logs) before re-deploying")
    if "quality gate" in error.lower() or ("gate" in error.lower() and "FAILED" in error):
        tips.append(f"{step_id}: fix the failing quality-gate conditions, then plan again")
    if "vulnerab" in error.lower() or "CVE-" in error:
        tips.append(f"{step_id}: upgrade the vulnerable dependencies named above")
    if "not allowed" in error or "may not" in error:
        tips.append(f"{step_id}: the acting role lacks permission; ask an admin or a deployer to run it")
    if "compliance not met" in error:
        tips.append(f"{step_id}: the evidence a requirement needs did not hold; see the reason above")
    return tips


def step_seconds(state: StepState) -> float | None:
    """How long a step took, when it started and finished (datetimes, or seconds in tests)."""
    start, end = state.started_at, state.finished_at
    if start is None or end is None:
        return None
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, int | float) and isinstance(end, int | float):
        return float(end - start)
    return None

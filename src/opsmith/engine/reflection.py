"""After a run: estimates against what really happened, what failed or retried, what to do next.

Rule-based and computed only from the plan and the recorded run; what to do about a failure comes
from the root-cause rule library (opsmith.domain.root_cause), as `opsmith explain` says it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from opsmith.domain.graph import format_duration_range
from opsmith.domain.plan import Plan
from opsmith.domain.redaction import Redactor
from opsmith.domain.root_cause import Finding, findings, match_lines
from opsmith.domain.root_cause_rules import Rule
from opsmith.engine.run_evidence import recorded_artifacts
from opsmith.engine.state import RunState, StepState, StepStatus
from opsmith.rule_library import bundled_rules


class Reflection(BaseModel):
    model_config = ConfigDict(frozen=True)

    estimates: list[str]
    failures: list[str]
    retries: list[str]
    suggestions: list[str]


def reflect(plan: Plan, run: RunState, rules: Sequence[Rule] | None = None) -> Reflection:
    """The reflection; `rules` default to the bundled root-cause rules."""
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
        if state.attempts > 1:
            retries.append(f"{step.id}: {state.attempts} attempts")
    if failures:
        suggestions += _suggest(plan, run, bundled_rules() if rules is None else rules)
    if estimates and all("faster than" in e for e in estimates):
        suggestions.append("every step beat its estimate: recorded durations now refine future estimates")
    return Reflection(
        estimates=estimates, failures=failures, retries=retries, suggestions=list(dict.fromkeys(suggestions))
    )


def _range(low: float, high: float) -> str:
    # Estimates learned from fast runs are seconds; "< 1 min" would hide the comparison.
    return f"{low:.2f}-{high:.2f}s" if high < 60 else format_duration_range(low, high)


def _suggest(plan: Plan, run: RunState, rules: Sequence[Rule]) -> list[str]:
    """What to do next, from the root-cause rules over what the run recorded of its failure: each
    cause found (else each symptom), said with the step and the line it rests on."""
    artifacts = recorded_artifacts(plan, run, Redactor())
    if not artifacts:
        return []
    hits, _, _ = match_lines(rules, artifacts)
    found = findings(hits, artifacts)
    causes = [f for f in found if f.kind == "cause"] or found
    causes.sort(key=lambda f: -f.priority)
    return [_tip(f) for f in causes]


def _tip(finding: Finding) -> str:
    text = f"{finding.root_cause}: {finding.fix.summary}"
    if finding.fix.dockerfile:
        text += f" ('{finding.fix.dockerfile}' in the Dockerfile)"
    return f"{text} [{finding.cited.citation}]"


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

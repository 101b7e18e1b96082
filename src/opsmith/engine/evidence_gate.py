"""Compliance evidence at run time: before a guarded step starts, the outputs of the steps that
prove its requirements must satisfy every condition the plan recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmith.domain.compliance import Requirement
from opsmith.domain.evidence import Condition, holds, lookup
from opsmith.domain.plan import Plan
from opsmith.engine.errors import EvidenceUnmet
from opsmith.engine.scheduler import plan_step

__all__ = ["require_evidence", "unmet_before"]

# See references.py: the sentinel evidence.lookup answers for an absent path.
_ABSENT = lookup({}, "absent")


def unmet_before(
    plan: Plan, step_id: str, outputs: Mapping[str, Mapping[str, Any] | None]
) -> list[tuple[Requirement, str]]:
    """Evidence requirements guarding `step_id` that are not proven, each with a one-line reason.

    `outputs` holds the outputs of the steps that succeeded; an evidence step missing from it
    has not succeeded, and that alone leaves its requirement unmet.
    """
    plan_step(plan, step_id)
    unmet: list[tuple[Requirement, str]] = []
    for requirement in plan.compliance:
        if requirement.kind != "evidence" or step_id not in requirement.guards:
            continue
        reason = _why_unmet(requirement, outputs)
        if reason:
            unmet.append((requirement, f"{requirement.name}: {reason}"))
    return unmet


def require_evidence(plan: Plan, step_id: str, outputs: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Raise `EvidenceUnmet` listing every unmet requirement when `step_id` may not start yet."""
    unmet = unmet_before(plan, step_id, outputs)
    if unmet:
        raise EvidenceUnmet(
            f"step {step_id} may not start: " + "; ".join(reason for _, reason in unmet),
            hint="fix what the evidence step found and run it again, or re-plan; compliance is not skipped",
        )


def _why_unmet(requirement: Requirement, outputs: Mapping[str, Mapping[str, Any] | None]) -> str:
    evidence = requirement.evidence
    if evidence is None:
        # The planner found no step able to prove it; the guarded step can never start.
        detail = f" ({requirement.reason})" if requirement.reason else ""
        return f"no step of the plan proves it{detail}"
    if evidence.step not in outputs:
        return f"step {evidence.step} has not succeeded (needed: {evidence.describe()})"
    output = dict(outputs[evidence.step] or {})
    failing = [_failure(c, output) for c in evidence.conditions if not holds(c, output)]
    if failing:
        return f"step {evidence.step}: " + " and ".join(failing)
    return ""


def _failure(condition: Condition, output: dict[str, Any]) -> str:
    actual = lookup(output, condition.path)
    shown = "missing" if actual is _ABSENT else repr(actual)
    return f"{condition.describe()} but was {shown}"

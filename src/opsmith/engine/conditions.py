"""A step's conditions at run time: `when` (on earlier outputs) decides whether it runs at all,
`expect` (on its own output) whether what it saw is a success. Data, checked by the evidence
language (opsmith.domain.evidence): no expression is ever evaluated as code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmith.domain.evidence import Condition, holds, lookup
from opsmith.domain.plan import Step

__all__ = ["unmet_expectations", "unmet_when"]


def unmet_when(step: Step, outputs: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Each `when` condition of `step` that does not hold, with what was found instead."""
    unmet = []
    for condition in step.when:
        if condition.step not in outputs:
            unmet.append(f"{condition.describe()}: {condition.step} did not succeed")
        elif not holds(condition, outputs[condition.step]):
            unmet.append(_found(condition, outputs[condition.step]))
    return unmet


def unmet_expectations(step: Step, output: Mapping[str, Any] | None) -> list[str]:
    """Each `expect` condition of `step` its output does not meet, with the value it had."""
    return [_found(c, output) for c in step.expect if not holds(c, output)]


def _found(condition: Condition, output: Mapping[str, Any] | None) -> str:
    value = lookup(output or {}, condition.path)
    seen = "absent" if value is lookup({}, "x") else repr(value)
    return f"{condition.describe()} (found {seen})"

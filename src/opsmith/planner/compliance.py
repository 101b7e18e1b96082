"""Attach the environment's compliance requirements to a plan, each with the evidence that proves it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmith.domain.capabilities import CAPABILITIES
from opsmith.domain.compliance import DEFAULT_BY_ENVIRONMENT, REQUIREMENTS, EvidenceRef, Requirement
from opsmith.domain.errors import ConfigError
from opsmith.domain.evidence import Condition, schema_has_path
from opsmith.domain.plan import Step


def attach_requirements(
    steps: list[Step],
    environment: str | None,
    override: dict[str, list[str]] | None,
    output_schemas: Mapping[str, dict[str, Any] | None],
) -> tuple[list[Step], list[Requirement]]:
    """Requirements of the environment; every step lists the requirements that guard it."""
    names = (override or DEFAULT_BY_ENVIRONMENT).get(environment or "", [])
    for name in names:
        if name not in REQUIREMENTS:
            raise ConfigError(
                f"policy.compliance names unknown requirement {name!r}",
                hint=f"known: {', '.join(sorted(REQUIREMENTS))}",
            )
    ships_code = any(s.capability in CODE_CAPABILITIES for s in steps)
    changes = any(s.changes_target for s in steps)
    applicable = [
        n
        for n in names
        if (REQUIREMENTS[n].applies_to == "code" and ships_code)
        or (REQUIREMENTS[n].applies_to == "change" and changes)
    ]
    requirements = [_requirement(name, steps, output_schemas) for name in applicable]
    updated = [
        s.model_copy(update={"compliance": [r.name for r in requirements if s.id in r.guards]}) for s in steps
    ]
    return updated, requirements


# Steps that put newly built code on the way to the target: then code checks apply.
CODE_CAPABILITIES = frozenset({"build", "push_image"})


def _requirement(name: str, steps: list[Step], schemas: Mapping[str, dict[str, Any] | None]) -> Requirement:
    spec = REQUIREMENTS[name]
    guards = [s.id for s in steps if s.changes_target]
    if spec.kind == "approval":
        return Requirement(
            name=name,
            description=spec.description,
            kind="approval",
            guards=guards,
            reason="recorded approvals pinned to this plan's hash",
        )
    if spec.kind == "plan":
        lacking = [s.id for s in steps if s.changes_target and s.rollback is None]
        return Requirement(
            name=name,
            description=spec.description,
            kind="plan",
            guards=guards,
            met=not lacking,
            reason=f"no rollback action for: {', '.join(lacking)}"
            if lacking
            else "every changing step has a rollback action",
        )
    # The capabilities are listed best evidence first (logs before pods for monitoring).
    provider = next((s for c in spec.capabilities for s in steps if s.capability == c), None)
    if provider is None:
        wanted = " or ".join(spec.capabilities)
        return Requirement(
            name=name,
            description=spec.description,
            kind="evidence",
            guards=guards,
            met=False,
            reason=f"no step of this plan provides {wanted}; the plan cannot run until one does",
        )
    conditions = _conditions(name, provider, schemas.get(provider.id))
    # Evidence from a step that runs after the change (monitoring) cannot guard it beforehand.
    return Requirement(
        name=name,
        description=spec.description,
        kind="evidence",
        evidence=EvidenceRef(step=provider.id, conditions=conditions),
        guards=[g for g in guards if g != provider.id and provider.id not in _after(steps, g)],
        reason="checked on the step's output when it runs",
    )


def _conditions(requirement: str, step: Step, schema: dict[str, Any] | None) -> list[Condition]:
    """The first evidence candidate whose every path the tool's output schema declares."""
    for candidate in CAPABILITIES[step.capability].evidence.get(requirement, []):
        if all(schema_has_path(schema, c.path) for c in candidate):
            return list(candidate)
    return []  # no usable output schema: the step's success is the evidence


def _after(steps: list[Step], step_id: str) -> set[str]:
    """Ids of the steps that run (transitively) after `step_id`."""
    children: dict[str, list[str]] = {}
    for s in steps:
        for d in s.depends_on:
            children.setdefault(d, []).append(s.id)
    seen: set[str] = set()
    stack = [step_id]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen

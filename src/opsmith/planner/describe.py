"""The plan's prose, derived from its own steps: nothing here is a fixed sentence about results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsmith.domain.compliance import Requirement
from opsmith.domain.graph import Node, estimate, format_duration_range, parallel_groups
from opsmith.domain.plan import Estimate, Step


def outline(
    steps: list[Step], requirements: list[Requirement], environment: str | None, nodes: Sequence[Node]
) -> dict[str, Any]:
    """The Plan fields that follow from its steps alone, the same for every planner: its compliance,
    prose, estimated duration (over the step graph `nodes`), steps and parallel groups."""
    found = estimate(nodes)
    return {
        "compliance": requirements,
        "rollback_strategy": rollback_strategy(steps, environment),
        "success_criteria": success_criteria(steps, requirements),
        "failure_handling": failure_handling(steps),
        "estimated_duration": Estimate(
            minimum_seconds=found.minimum,
            maximum_seconds=found.maximum,
            text=format_duration_range(found.minimum, found.maximum),
            critical_path=list(found.critical_path),
        ),
        "steps": steps,
        "parallel_groups": parallel_groups(nodes),
    }


def rollback_strategy(steps: list[Step], environment: str | None) -> str:
    undoable = [s for s in steps if s.rollback is not None]
    changing = [s for s in steps if s.changes_target]
    if not changing:
        return "Nothing in this plan changes the environment; there is nothing to roll back."
    if not undoable:
        return (
            f"{len(changing)} step(s) change {environment or 'the target'} and none has a rollback action: "
            "a failure is left for a person to repair."
        )
    parts = [f"{s.id} -> {s.rollback.server}/{s.rollback.tool}" for s in undoable if s.rollback]
    backup = next((s for s in steps if s.capability == "backup"), None)
    text = (
        f"Automatic rollback for {len(undoable)} of {len(changing)} step(s) that change "
        f"{environment or 'the target'}, newest first: " + "; ".join(parts) + "."
    )
    if backup is not None:
        text += (
            f" Step {backup.id} ({backup.server}/{backup.tool}) records the running state before the change."
        )
    return text


def success_criteria(steps: list[Step], requirements: list[Requirement]) -> list[str]:
    criteria = [f"All {len(steps)} steps complete without errors"]
    for requirement in requirements:
        if requirement.evidence is not None and requirement.evidence.conditions:
            criteria.append(f"{requirement.name}: {requirement.evidence.describe()}")
    replicas = next((s.args.get("replicas") for s in steps if isinstance(s.args.get("replicas"), int)), None)
    for step in steps:
        if step.capability == "verify_pods":
            wanted = f" ({replicas} replicas)" if replicas is not None else ""
            criteria.append(f"{step.id}: all pods running and ready{wanted}")
        elif step.capability == "check_service":
            criteria.append(f"{step.id}: the service has ready endpoints")
        elif step.capability == "check_logs":
            criteria.append(f"{step.id}: no error lines in the application logs")
    return list(dict.fromkeys(criteria))


def failure_handling(steps: list[Step]) -> str:
    undoable = [s.id for s in steps if s.rollback is not None]
    notify = [s for s in steps if s.capability == "notify"]
    text = (
        f"On failure: stop starting new steps, then undo the completed ones of {', '.join(undoable)} "
        "in reverse order of completion."
        if undoable
        else "On failure: stop starting new steps; nothing here has an automatic rollback."
    )
    if notify:
        text += f" The team is notified through {notify[0].server}/{notify[0].tool}."
    else:
        text += " No notification tool is configured, so nobody is notified automatically."
    return text


def priority(environment: str | None, urgency: str) -> str:
    if urgency == "urgent":
        return "CRITICAL"
    return {"production": "HIGH", "staging": "MEDIUM"}.get(environment or "", "LOW")

"""How a plan reads for people (seeds 000/001): header, banner, compliance, strategy, steps, graph."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.text import Text

from opsmith.domain.graph import Node, format_duration_range
from opsmith.domain.graph_view import Box, draw
from opsmith.domain.intent import Intent
from opsmith.domain.plan import Plan, PlanStatus, Step
from opsmith.domain.risk import Risk

RISK_STYLE = {Risk.LOW: "green", Risk.MEDIUM: "yellow", Risk.HIGH: "dark_orange", Risk.CRITICAL: "red"}


def risk_text(risk: Risk) -> Text:
    return Text(f"{risk.value} {risk.symbol}", style=RISK_STYLE[risk])


def plan_view(plan: Plan, *, width: int = 100) -> RenderableType:
    parts: list[RenderableType] = [
        Rule(f"📋 TASK PLAN: {plan.id}"),
        Text(f"Task: {plan.title}"),
        Text(f"Priority: {plan.priority}"),
        Text.assemble("Overall risk: ", risk_text(plan.risk)),
        Text(
            f"Estimated duration: {plan.estimated_duration.text} (critical path: "
            f"{' -> '.join(plan.estimated_duration.critical_path)})"
        ),
        Text(f"Total steps: {len(plan.steps)}   Playbook: {plan.playbook}   Status: {plan.status.value}"),
        Text(f"Hash: {plan.hash}", style="dim"),
        Text(""),
    ]
    parts += _banner(plan)
    parts += _section(
        "Compliance requirements",
        [_requirement_line(r) for r in plan.compliance] or ["none for this environment"],
    )
    parts += _section("Rollback strategy", [plan.rollback_strategy])
    parts += _section("Success criteria", [f"• {c}" for c in plan.success_criteria])
    parts += _section("Failure handling", [plan.failure_handling])
    if plan.context_rules:
        parts += _section(
            "Context rules", [f"• {r.rule}: {r.reason} -> {r.effect}" for r in plan.context_rules]
        )
    if plan.skipped:
        parts += _section("Skipped", [f"• {s}" for s in plan.skipped])
    if plan.warnings:
        parts += _section("Warnings", [f"⚠ {w}" for w in plan.warnings])
    parts.append(Rule("EXECUTION STEPS"))
    for number, step in enumerate(plan.steps, start=1):
        parts.append(_step_view(number, step, plan))
    parts.append(Rule("TASK GRAPH"))
    parts.append(Text(graph_text(plan, width=width)))
    parts.append(Rule())
    parts.append(Text(_next(plan)))
    return Group(*parts)


def graph_text(plan: Plan, *, width: int = 100) -> str:
    numbers = {s.id: n for n, s in enumerate(plan.steps, start=1)}
    nodes = [Node(id=s.id, depends_on=tuple(s.depends_on), duration=s.estimated_duration) for s in plan.steps]
    boxes = {
        s.id: Box(
            node_id=s.id,
            lines=(
                f"Step {numbers[s.id]}: {s.id.upper()}",
                s.server,
                s.tool,
                f"Risk: {s.risk.value} {s.risk.symbol}",
                f"Duration: {format_duration_range(*s.estimated_duration)}",
                *(["⚠ VALIDATION GATE"] if s.requires_validation else []),
            ),
        )
        for s in plan.steps
    }
    return draw(nodes, boxes, width=width)


def intent_view(intent: Intent) -> RenderableType:
    rows = [
        ("action", intent.action),
        ("actions", ", ".join(intent.actions)),
        ("subjects", ", ".join(intent.subjects) or "-"),
        (
            "environment",
            f"{intent.environment or '-'}"
            + (f" ({intent.environment_source})" if intent.environment_source else ""),
        ),
        ("platform", intent.platform or "-"),
        ("urgency", intent.urgency),
        (
            "targets",
            json.dumps(intent.targets.model_dump(exclude_defaults=True))
            if intent.targets.group or intent.targets.hosts or intent.targets.count
            else "-",
        ),
        ("params", json.dumps(intent.params) if intent.params else "-"),
    ]
    lines: list[RenderableType] = [Text(f"Request: {intent.request}")]
    lines += [Text(f"  {k:<12} {v}") for k, v in rows]
    for unknown in intent.unknown:
        near = f" (did you mean {', '.join(unknown.nearest)}?)" if unknown.nearest else ""
        lines.append(Text(f"  ⚠ unknown {unknown.kind}: {unknown.name}{near}", style="yellow"))
    return Group(*lines)


def _banner(plan: Plan) -> list[RenderableType]:
    if plan.status is PlanStatus.INCOMPLETE:
        lines = [f"  {sid}: {', '.join(missing)}" for sid, missing in plan.missing.items()]
        lines += [f"  {r.name}: {r.reason}" for r in plan.unmet]
        return [
            Text("⛔ INCOMPLETE - cannot be approved until these are filled or met:", style="bold red"),
            *[Text(line) for line in lines],
            Text(f"   fill with: opsmith plan amend {plan.id} --set STEP.ARG=VALUE"),
            Text(""),
        ]
    if plan.requires_approval:
        who = f"{plan.approvals_needed} approver(s)" if plan.approvals_needed else "approval"
        return [
            Text(
                f"⚠ APPROVAL REQUIRED ({who}) - {'; '.join(plan.approval_reasons)}", style="bold dark_orange"
            ),
            Text(""),
        ]
    return [Text(f"No approval required: {'; '.join(plan.approval_reasons)}", style="green"), Text("")]


def _section(title: str, lines: list[str]) -> list[RenderableType]:
    return [Text(title + ":", style="bold"), *[Text(f"  {line}") for line in lines], Text("")]


def _requirement_line(requirement: Any) -> str:
    if requirement.met is True:
        mark = "✓"
    elif requirement.met is False:
        mark = "✗ UNMET"
    else:
        mark = "•"
    proof = requirement.evidence.describe() if requirement.evidence else requirement.reason
    if requirement.met is False:
        proof = requirement.reason
    return f"{mark} {requirement.name} - {proof}"


def _step_view(number: int, step: Step, plan: Plan) -> RenderableType:
    numbers = {s.id: n for n, s in enumerate(plan.steps, start=1)}
    deps = ", ".join(f"{numbers[d]} ({d})" for d in step.depends_on) or "none"
    lines: list[RenderableType] = [
        Text(f"Step {number}: {step.name}  [{step.id}]", style="bold"),
        Text(f"   Server: {step.server}   Tool: {step.tool}   Capability: {step.capability}"),
        Text.assemble("   Risk: ", risk_text(step.risk), f"  ({'; '.join(step.risk_reasons)})"),
        Text(f"   Duration: {format_duration_range(*step.estimated_duration)}   Depends on: {deps}"),
    ]
    if step.requires_validation:
        lines.append(Text("   ⚠ Manual validation required after this step", style="dark_orange"))
    if step.compliance:
        lines.append(Text(f"   Compliance: {', '.join(step.compliance)}"))
    if step.rollback:
        lines.append(
            Text(f"   Rollback: {step.rollback.server}/{step.rollback.tool} {_args(step.rollback.args)}")
        )
    if step.args:
        lines.append(Text("   Arguments:"))
        lines += [Text(f"     • {k}: {_value(v)}") for k, v in step.args.items()]
    if step.missing_args:
        lines.append(Text(f"   Missing: {', '.join(step.missing_args)}", style="red"))
    if step.mapping and step.mapping.runners_up:
        others = ", ".join(f"{c.tool} ({c.score:g})" for c in step.mapping.runners_up)
        lines.append(Text(f"   Chosen over: {others} (score {step.mapping.chosen.score:g})", style="dim"))
    if step.description:
        lines.append(Text(f"   What this does: {step.description}", style="dim"))
    lines.append(Text(""))
    return Group(*lines)


def _next(plan: Plan) -> str:
    if plan.status is PlanStatus.INCOMPLETE:
        return f"Fill what is missing: opsmith plan amend {plan.id} --set STEP.ARG=VALUE"
    if plan.status is PlanStatus.PENDING_APPROVAL:
        return f"Approve: opsmith approve {plan.id}   then run: opsmith run {plan.id}"
    return f"Run: opsmith run {plan.id}   Review again: opsmith show {plan.id}"


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in args.items())


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)

"""A plan made again after a push, with what the failed run taught, and its difference from the old one.

`relearned` takes the plan the planner made for the same request and changes it, as data:
  - the build builds the pushed commit, incrementally from the one the push starts from;
  - a scan whose recorded result still holds for the pushed code (domain.push.scan_reuse) is left
    out, and the compliance requirement it proved is met by that recorded result, cited;
  - the image verification also requires the file the root cause named;
  - the risk is assessed again, and why is written in the plan (a context rule).
Then the graph, estimate, approvals and hash are made again, so what is approved is what runs.
Pure: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.approval_rule import ApprovalRule, approval_need
from opsmith.domain.compliance import Requirement
from opsmith.domain.evidence import holds
from opsmith.domain.graph import Node, estimate, format_duration_range, parallel_groups, validate
from opsmith.domain.plan import Estimate, FiredRule, Plan, PlanStatus, Step
from opsmith.domain.push import CauseMatch, Push, RootCause, ScanReuse, Verdict
from opsmith.domain.risk import Risk, highest

__all__ = ["Lessons", "PlanDiff", "StepChange", "plan_difference", "relearned"]

REPLAN_RULE = "replan-after-push"
SCAN_CAPABILITIES = frozenset({"quality_scan", "security_scan"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Lessons(_Frozen):
    """What the failed run and the push teach the next plan."""

    failed_plan_id: str
    failed_run_id: str
    push: Push
    cause: RootCause
    match: CauseMatch
    scans: tuple[ScanReuse, ...] = ()
    # The recorded outputs of the failed run's scans, by step id: a reused result must still meet
    # the conditions the new plan's requirement sets on it.
    outputs: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)


def relearned(
    plan: Plan, lessons: Lessons, *, accepts: Mapping[str, frozenset[str]], rule: ApprovalRule
) -> Plan:
    """`plan` changed by `lessons`. `accepts`: each step's tool's argument names (an argument is only
    added where the tool takes it); `rule`: the approval policy the plan is decided by again."""
    notes: list[str] = []
    skipped: list[str] = []
    steps = [_built(s, lessons.push, accepts.get(s.id, frozenset()), notes) for s in plan.steps]
    compliance = list(plan.compliance)
    for reuse in lessons.scans:
        if not reuse.reusable:
            notes.append(f"{reuse.scan.step} runs again: {reuse.reason}")
            continue
        present = next((s for s in steps if s.id == reuse.scan.step), None)
        if present is None or present.capability != reuse.scan.capability:
            continue
        output = lessons.outputs.get(reuse.scan.step, {})
        proved = [r for r in compliance if r.evidence is not None and r.evidence.step == present.id]
        failing = [r.name for r in proved if not all(holds(c, output) for c in r.evidence.conditions)]  # type: ignore[union-attr]
        if failing:
            notes.append(f"{present.id} runs again: its recorded result does not meet {', '.join(failing)}")
            continue
        steps = _without(steps, present.id)
        cited = f"{reuse.scan.summary} ({reuse.scan.citation})"
        compliance = [_met_by_record(r, cited, reuse.reason) if r in proved else r for r in compliance]
        skipped.append(f"{present.id}: skipped, {reuse.reason}; reusing {cited}")
    steps = [
        s.model_copy(update={"compliance": [r.name for r in compliance if s.id in r.guards]}) for s in steps
    ]
    steps = _checked_image(steps, lessons.cause, accepts, notes)
    return _reassembled(plan, steps, compliance, skipped, notes, lessons, rule)


def _built(step: Step, push: Push, takes: frozenset[str], notes: list[str]) -> Step:
    if step.capability != "build":
        return step
    args = dict(step.args)
    said: list[str] = []
    if "commit" in takes:
        args["commit"] = push.after
        said.append(f"builds the pushed commit {push.after[:7]}")
    else:
        notes.append(f"{step.id}: {step.server}/{step.tool} takes no commit; it builds the branch head")
    if "parameters" in takes:
        given = args.get("parameters")
        args["parameters"] = {
            **(given if isinstance(given, dict) else {}),
            "incremental": True,
            "since": push.before,
        }
        said.append(f"incrementally, from {push.before[:7]}")
    description = f"{step.description} (re-plan: {', '.join(said)})" if said else step.description
    name = f"Incremental build ({step.name})" if "parameters" in takes else step.name
    return step.model_copy(update={"args": args, "description": description, "name": name})


def _without(steps: list[Step], gone: str) -> list[Step]:
    """The steps without `gone`; what waited for it waits for what it waited for."""
    removed = next(s for s in steps if s.id == gone)
    kept = []
    for step in steps:
        if step.id == gone:
            continue
        if gone in step.depends_on:
            deps = [d for d in step.depends_on if d != gone] + list(removed.depends_on)
            step = step.model_copy(update={"depends_on": list(dict.fromkeys(deps))})
        kept.append(step)
    return kept


def _met_by_record(requirement: Requirement, cited: str, why: str) -> Requirement:
    # A "plan" requirement is decided when the plan is made: here by the recorded result it cites.
    # It is in the plan's hash, so whoever approves the plan approves this reuse too.
    return requirement.model_copy(
        update={
            "kind": "plan",
            "evidence": None,
            "met": True,
            "reason": f"met by the recorded {cited}: {why}",
        }
    )


def _checked_image(
    steps: list[Step], cause: RootCause, accepts: Mapping[str, frozenset[str]], notes: list[str]
) -> list[Step]:
    if cause.file is None:
        return steps
    checks = [s for s in steps if s.capability == "verify_image"]
    if not checks:
        notes.append(f"no image verification step: nothing checks that the image contains {cause.file}")
        return steps
    result = []
    for step in steps:
        takes = accepts.get(step.id, frozenset())
        if step in checks and "require_files" in takes:
            args = dict(step.args)
            given = args.get("require_files")
            args["require_files"] = sorted({*(given if isinstance(given, list) else []), cause.file})
            if "fail_on_missing" in takes:
                args["fail_on_missing"] = True
            step = step.model_copy(
                update={
                    "args": args,
                    "name": f"{step.name}: it must contain {cause.file}",
                    "description": f"{step.description}; the failed run {cause.run_id} lacked {cause.file}",
                }
            )
        elif step in checks:
            notes.append(
                f"{step.id}: {step.server}/{step.tool} cannot require files; {cause.file} is not checked"
            )
        result.append(step)
    return result


def _reassessed(steps: list[Step], lessons: Lessons) -> tuple[Risk, str]:
    risk = highest([s.risk for s in steps])
    match, cause = lessons.match, lessons.cause
    basis = f"run {lessons.failed_run_id} failed: {cause.root_cause or cause.error_type or 'unexplained'}"
    if match.verdict is Verdict.ADDRESSED:
        return risk, (
            f"risk re-assessed: {basis}; the push addresses it ({'; '.join(match.reasons)}); the risk stays"
            f" {risk.value}, that of the steps, with the missing piece now checked before the deploy"
        )
    raised = risk if risk.rank >= Risk.HIGH.rank else Risk.HIGH
    return raised, (
        f"risk re-assessed: {basis}; the push does not address it ({'; '.join(match.reasons)});"
        f" raised to {raised.value}: the same failure is likely"
    )


def _reassembled(
    plan: Plan,
    steps: list[Step],
    compliance: list[Requirement],
    skipped: list[str],
    notes: list[str],
    lessons: Lessons,
    rule: ApprovalRule,
) -> Plan:
    nodes = [Node(id=s.id, depends_on=tuple(s.depends_on), duration=s.estimated_duration) for s in steps]
    validate(nodes)
    found = estimate(nodes)
    risk, why = _reassessed(steps, lessons)
    need = approval_need(
        risk, plan.intent.environment, changes_target=any(s.changes_target for s in steps), rule=rule
    )
    needed = max(need.approvals, plan.approvals_needed)  # never fewer than the plan itself asked
    reasons = (
        list(dict.fromkeys([*plan.approval_reasons, *need.reasons])) if needed else plan.approval_reasons
    )
    if needed and "policy does not require approval for this plan" in reasons:
        reasons.remove("policy does not require approval for this plan")
    incomplete = any(s.missing_args for s in steps) or any(r.unmet for r in compliance)
    push = lessons.push
    fired = FiredRule(
        rule=REPLAN_RULE,
        reason=f"push {push.before[:7]}..{push.after[:7]} to {push.ref} after run {lessons.failed_run_id}"
        f" (plan {lessons.failed_plan_id}) failed; {why}",
        effect="; ".join([*skipped, *notes]) or "the same steps, the pushed commit",
    )
    status = (
        PlanStatus.INCOMPLETE
        if incomplete
        else (PlanStatus.PENDING_APPROVAL if needed else PlanStatus.APPROVED)
    )
    revised = plan.model_copy(
        update={
            "title": f"Re-deploy after push {push.after[:7]}: {plan.title}",
            "steps": steps,
            "compliance": compliance,
            "risk": risk,
            "requires_approval": bool(needed),
            "approvals_needed": needed,
            "approval_reasons": reasons,
            "estimated_duration": Estimate(
                minimum_seconds=found.minimum,
                maximum_seconds=found.maximum,
                text=format_duration_range(found.minimum, found.maximum),
                critical_path=list(found.critical_path),
            ),
            "parallel_groups": parallel_groups(nodes),
            "context_rules": [*plan.context_rules, fired],
            "skipped": [*plan.skipped, *skipped],
            "warnings": [*plan.warnings, *notes],
            "status": status,
        }
    )
    return revised.model_copy(update={"hash": revised.content_hash()})


# -- the difference between two plans --------------------------------------------------------------


class StepChange(_Frozen):
    step: str
    changed: list[str] = Field(description="the fields that differ: tool, args, depends_on, risk, ...")
    details: list[str] = Field(default_factory=list)


class PlanDiff(_Frozen):
    """What a plan does differently from another: steps added, removed and changed, risk, approvals."""

    old_plan: str
    new_plan: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[StepChange] = Field(default_factory=list)
    risk: tuple[str, str]
    approvals: tuple[int, int]
    compliance: list[str] = Field(default_factory=list, description="requirements decided differently")

    @property
    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.removed:
            parts.append(f"removed {', '.join(self.removed)}")
        if self.changed:
            parts.append("changed " + ", ".join(f"{c.step} ({', '.join(c.changed)})" for c in self.changed))
        if self.risk[0] != self.risk[1]:
            parts.append(f"risk {self.risk[0]} -> {self.risk[1]}")
        if self.approvals[0] != self.approvals[1]:
            parts.append(f"approvals {self.approvals[0]} -> {self.approvals[1]}")
        return "; ".join(parts) or "the same steps"


_COMPARED = ("server", "tool", "args", "depends_on", "risk", "rollback", "expect", "requires_validation")


def plan_difference(old: Plan, new: Plan) -> PlanDiff:
    """The steps of `new` against those of `old`, by step id."""
    before = {s.id: s for s in old.steps}
    after = {s.id: s for s in new.steps}
    changed = []
    for step_id, step in after.items():
        was = before.get(step_id)
        if was is None:
            continue
        fields = [f for f in _COMPARED if getattr(was, f) != getattr(step, f)]
        if fields:
            changed.append(StepChange(step=step_id, changed=fields, details=_details(was, step, fields)))
    old_reqs = {r.name: r for r in old.compliance}
    decided = [
        f"{r.name}: {r.reason}"
        for r in new.compliance
        if r.name in old_reqs and (old_reqs[r.name].kind, old_reqs[r.name].met) != (r.kind, r.met)
    ]
    return PlanDiff(
        old_plan=old.id,
        new_plan=new.id,
        added=[s for s in after if s not in before],
        removed=[s for s in before if s not in after],
        changed=changed,
        risk=(old.risk.value, new.risk.value),
        approvals=(old.approvals_needed, new.approvals_needed),
        compliance=decided,
    )


def _details(was: Step, step: Step, fields: Sequence[str]) -> list[str]:
    details = []
    if "args" in fields:
        for key in sorted(set(was.args) | set(step.args)):
            if was.args.get(key) != step.args.get(key):
                details.append(f"{key}: {_short(was.args.get(key))} -> {_short(step.args.get(key))}")
    if "depends_on" in fields:
        details.append(
            f"depends on: {', '.join(was.depends_on) or '-'} -> {', '.join(step.depends_on) or '-'}"
        )
    if "risk" in fields:
        details.append(f"risk: {was.risk.value} -> {step.risk.value}")
    if "tool" in fields or "server" in fields:
        details.append(f"tool: {was.server}/{was.tool} -> {step.server}/{step.tool}")
    return details


def _short(value: Any) -> str:
    text = "-" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

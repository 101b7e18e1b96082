"""Whether a plan needs approval, and from how many people: the approval policy over plain values.

The rule is `policy.approval` of opsmith.yaml (opsmith.config.ApprovalPolicy) as a value, so that
every way of making a plan (the planner, a plan written by hand) decides it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsmith.domain.risk import Risk

__all__ = ["ApprovalNeed", "ApprovalRule", "approval_need"]


@dataclass(frozen=True)
class ApprovalRule:
    """Changes to these environments, and plans at or above `min_risk`, need approval;
    at or above `four_eyes_risk` they need `four_eyes_approvers` people."""

    environments: tuple[str, ...] = ("production",)
    min_risk: Risk = Risk.HIGH
    four_eyes_risk: Risk = Risk.CRITICAL
    four_eyes_approvers: int = 2


@dataclass(frozen=True)
class ApprovalNeed:
    approvals: int
    reasons: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.approvals > 0


def approval_need(
    risk: Risk, environment: str | None, *, changes_target: bool, rule: ApprovalRule
) -> ApprovalNeed:
    """How many approvals a plan of this overall risk, acting on `environment`, needs, and why."""
    reasons: list[str] = []
    if changes_target and environment in rule.environments:
        reasons.append(f"{environment} requires approval")
    if risk.rank >= rule.min_risk.rank:
        reasons.append(f"risk {risk.value} >= {rule.min_risk.value}")
    if not reasons:
        return ApprovalNeed(approvals=0, reasons=())
    needed = rule.four_eyes_approvers if risk.rank >= rule.four_eyes_risk.rank else 1
    if needed > 1:
        reasons.append(f"risk {risk.value}: {needed} approvers, none of them the requester")
    return ApprovalNeed(approvals=needed, reasons=tuple(reasons))

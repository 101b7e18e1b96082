"""Approvals pinned to a plan's content hash: who may approve, how many, and for how long."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from opsmith.domain.errors import UsageError
from opsmith.domain.identity import Action, Decision, Identity, Permission, decide
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.seal import Seal


class ApprovalError(UsageError):
    """An approval that may not be given or used."""


class PlanChanged(ApprovalError):
    """The plan is no longer the one the approver was shown: its hash moved on, or its content or
    signature no longer matches it."""


class PlanNotOpen(ApprovalError):
    """The plan's status does not allow this now (it is incomplete, running, closed...)."""


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    plan_id: str
    plan_hash: str
    approver: str
    role: str
    comment: str = ""
    at: datetime
    expires_at: datetime
    seal: str = ""

    def signed(self) -> dict[str, Any]:
        # Python values: the seal's canonical JSON writes every instant in UTC, as the store reads it.
        return self.model_dump(exclude={"seal"})

    def sealed_with(self, seal: Seal) -> Approval:
        return self.model_copy(update={"seal": seal.sign("approval", self.signed())})


def seal_plan(plan: Plan, seal: Seal) -> Plan:
    return plan.model_copy(update={"seal": seal.sign("plan", plan.signed())})


def plan_is_sealed(plan: Plan, seal: Seal) -> bool:
    """Whether the plan, as stored, is one opsmith wrote: content, requester and status."""
    return plan.hash == plan.content_hash() and seal.valid("plan", plan.signed(), plan.seal)


class ApprovalState(BaseModel):
    """What the recorded approvals of a plan amount to right now."""

    model_config = ConfigDict(frozen=True)

    valid: list[Approval]
    void: list[tuple[Approval, str]]
    needed: int

    @property
    def approved(self) -> bool:
        return len(self.valid) >= self.needed

    @property
    def approvers(self) -> list[str]:
        return [a.approver for a in self.valid]


def tally(
    plan: Plan, approvals: list[Approval], now: datetime, seal: Seal, *, expired_count: bool = False
) -> ApprovalState:
    """Valid approvals are signed by opsmith, for this exact hash, unexpired, one per person, not
    the requester's when four-eyes applies. `expired_count`: approvals that expired still count (a run
    going on from where it stopped was started while they held)."""
    valid: list[Approval] = []
    void: list[tuple[Approval, str]] = []
    seen: set[str] = set()
    for approval in approvals:
        reason = _void_reason(plan, approval, now, seen, seal, expired_count)
        if reason:
            void.append((approval, reason))
        else:
            valid.append(approval)
            seen.add(approval.approver)
    return ApprovalState(valid=valid, void=void, needed=plan.approvals_needed)


def check_approve(
    plan: Plan,
    identity: Identity,
    permission: Permission,
    approvals: list[Approval],
    now: datetime,
    seal: Seal,
) -> Decision:
    """Raise ApprovalError saying why `identity` may not approve `plan` now; else the RBAC decision."""
    if plan.hash != plan.content_hash():
        raise PlanChanged(
            f"plan {plan.id} was changed after it was made (hash mismatch)",
            hint="plan the request again and approve the new plan",
        )
    if not plan_is_sealed(plan, seal):
        raise PlanChanged(
            f"plan {plan.id} was changed outside opsmith: its signature does not verify",
            hint="plan the request again and approve the new plan",
        )
    if plan.status is PlanStatus.INCOMPLETE:
        missing = "; ".join(f"{k}: {', '.join(v)}" for k, v in plan.missing.items()) or ", ".join(
            r.name for r in plan.unmet
        )
        raise PlanNotOpen(
            f"plan {plan.id} is incomplete and cannot be approved ({missing})",
            hint=f"fill it first: opsmith plan amend {plan.id} --set STEP.ARG=VALUE",
        )
    if plan.status is not PlanStatus.PENDING_APPROVAL:
        raise PlanNotOpen(f"plan {plan.id} is {plan.status.value}, not waiting for approval")
    decision = decide(
        identity, permission, Action.APPROVE, environment=plan.intent.environment, risk=plan.risk
    )
    if not decision.allowed:
        raise ApprovalError(decision.reason, hint="ask someone whose role may approve this plan")
    if plan.approvals_needed > 1 and identity.user in plan.requesters:
        asked = "requested" if identity.user == plan.requested_by else "amended"
        raise ApprovalError(
            f"{identity.user} {asked} plan {plan.id}; its {plan.risk.value} risk needs "
            f"{plan.approvals_needed} approvers other than the requester (four-eyes)",
            hint="ask another approver",
        )
    if identity.user in tally(plan, approvals, now, seal).approvers:
        raise ApprovalError(
            f"{identity.user} has already approved plan {plan.id}", hint="ask another approver"
        )
    return decision


def _void_reason(
    plan: Plan, approval: Approval, now: datetime, seen: set[str], seal: Seal, expired_count: bool
) -> str | None:
    if not seal.valid("approval", approval.signed(), approval.seal):
        return (
            f"the approval by {approval.approver} was written outside opsmith: its signature does not verify"
        )
    if approval.plan_hash != plan.hash or approval.plan_id != plan.id:
        return "given for a different version of the plan"
    if approval.expires_at <= now and not expired_count:
        return f"expired at {approval.expires_at.isoformat()}"
    if approval.approver in seen:
        return "the same person approved twice"
    if plan.approvals_needed > 1 and approval.approver in plan.requesters:
        return "the requester cannot approve their own plan (four-eyes)"
    return None

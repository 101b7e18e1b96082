"""Approve, reject and cancel plans: RBAC, four-eyes and hash pinning, each decision recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsmith.bootstrap import App
from opsmith.domain.approval import (
    Approval,
    ApprovalError,
    ApprovalState,
    PlanChanged,
    PlanNotOpen,
    check_approve,
    tally,
)
from opsmith.domain.identity import Action, Identity, decide
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.services.identity import permission_of

CLOSED = {
    PlanStatus.REJECTED,
    PlanStatus.CANCELLED,
    PlanStatus.SUCCEEDED,
    PlanStatus.FAILED,
    PlanStatus.ROLLED_BACK,
}


def approve(
    app: App,
    identity: Identity,
    plan_id: str,
    comment: str,
    now: datetime | None = None,
    *,
    seen_hash: str | None = None,
) -> tuple[Plan, ApprovalState]:
    """Record one approval; the plan becomes `approved` once enough valid approvals exist.
    `seen_hash`: the hash of the plan as the approver was shown it (a page, an API client); an
    approval of anything else is refused."""
    now = now or datetime.now(UTC)
    plans, approvals = app.plans, app.approvals
    plan = plans.get(plan_id)
    existing = approvals.for_plan(plan.id)
    try:
        if seen_hash is not None and seen_hash != plan.hash:
            raise PlanChanged(
                f"plan {plan.id} is not the plan you reviewed: you saw {seen_hash[:19]}, it is now"
                f" {plan.hash[:19]}",
                hint="review the plan as it is now, then approve that",
            )
        if plan.hash != plan.content_hash():
            raise PlanChanged(
                f"plan {plan.id} was changed after it was made: its content no longer matches its hash",
                hint="plan the request again",
            )
        decision = check_approve(plan, identity, permission_of(app.config, identity), existing, now, app.seal)
    except ApprovalError as refused:
        # A refused approval is evidence too: who tried to approve what, and why it did not count.
        details: dict[str, object] = {"hash": plan.hash, "why": refused.message}
        record_audit(app, identity, "plan.approval_refused", plan.id, details)
        raise
    approval = Approval(
        plan_id=plan.id,
        plan_hash=plan.hash,
        approver=identity.user,
        role=identity.role,
        comment=comment,
        at=now,
        expires_at=now + timedelta(hours=app.config.policy.approval.expires_hours),
    )
    approval = approvals.add(approval)
    state = tally(plan, [*existing, approval], now, app.seal)
    if state.approved:
        plan = plan.model_copy(update={"status": PlanStatus.APPROVED})
        plans.save(plan)
    record_audit(
        app,
        identity,
        "plan.approved",
        plan.id,
        {"hash": plan.hash, "comment": comment, "why": decision.reason},
    )
    return plan, state


def reject(app: App, identity: Identity, plan_id: str, comment: str) -> Plan:
    plans = app.plans
    plan = plans.get(plan_id)
    decision = decide(
        identity, permission_of(app.config, identity), Action.APPROVE, environment=plan.intent.environment
    )
    if not decision.allowed:
        raise ApprovalError(decision.reason, hint="only someone who may approve it may reject it")
    if plan.status in CLOSED or plan.status is PlanStatus.RUNNING:
        raise PlanNotOpen(f"plan {plan.id} is {plan.status.value}; it cannot be rejected now")
    plan = plan.model_copy(update={"status": PlanStatus.REJECTED})
    plans.save(plan)
    record_audit(app, identity, "plan.rejected", plan.id, {"hash": plan.hash, "comment": comment})
    return plan


def cancel(app: App, identity: Identity, plan_id: str) -> Plan:
    plans = app.plans
    plan = plans.get(plan_id)
    decision = decide(
        identity, permission_of(app.config, identity), Action.CANCEL, environment=plan.intent.environment
    )
    if not decision.allowed and identity.user != plan.requested_by:
        raise ApprovalError(decision.reason, hint="the requester or someone who may cancel can cancel it")
    if plan.status in CLOSED or plan.status is PlanStatus.RUNNING:
        raise PlanNotOpen(f"plan {plan.id} is {plan.status.value}; it cannot be cancelled now")
    plan = plan.model_copy(update={"status": PlanStatus.CANCELLED})
    plans.save(plan)
    record_audit(app, identity, "plan.cancelled", plan.id, {"hash": plan.hash})
    return plan


def state_of(
    app: App, plan: Plan, now: datetime | None = None, *, expired_count: bool = False
) -> ApprovalState:
    return tally(
        plan, app.approvals.for_plan(plan.id), now or datetime.now(UTC), app.seal, expired_count=expired_count
    )


def record_audit(app: App, identity: Identity, action: str, subject: str, details: dict[str, object]) -> None:
    app.audit.append(identity.user, action, subject, dict(details))

"""What the MCP face returns: typed reports (so clients get structured content and output schemas).

Runs are reported in the one shape every face shares (`opsmith.services.views`)."""

from __future__ import annotations

import io

from pydantic import BaseModel, Field
from rich.console import Console

from opsmith.domain.approval import ApprovalState
from opsmith.domain.identity import Identity, Permission
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.servers import ServerStatus
from opsmith.services.views import RunReport, StepRun, run_report


class PlanStep(BaseModel):
    id: str
    name: str
    server: str
    tool: str
    risk: str
    depends_on: list[str]
    requires_validation: bool = Field(description="the run pauses after this step until a person validates")
    missing_args: list[str] = Field(default_factory=list)


class PlanReport(BaseModel):
    id: str
    request: str
    title: str
    status: str
    risk: str
    requires_approval: bool
    approvals_needed: int
    approvals_valid: int
    approvers: list[str]
    approval_reasons: list[str]
    requested_by: str
    hash: str
    estimated_duration: str
    estimated_min_seconds: float
    estimated_max_seconds: float
    critical_path: list[str]
    steps: list[PlanStep]
    missing: dict[str, list[str]] = Field(description="arguments steps still need, per step id")
    warnings: list[str]
    next: str = Field(description="what has to happen next, and who does it")
    text: str = Field(description="the plan as a person reads it")


class ServerReport(BaseModel):
    name: str
    transport: str
    health: str
    reason: str | None = None
    tool_count: int
    last_error: str | None = None


class ServersReport(BaseModel):
    servers: list[ServerReport]
    up: int
    total: int
    note: str


class RoleReport(BaseModel):
    user: str
    role: str
    source: str = Field(description="config | os-user | as-option | embedded-admin")
    actions: list[str]
    environments: list[str]
    max_risk: str
    tools: list[str]
    note: str


class RoleChange(BaseModel):
    user: str
    role: str
    set_by: str


def plan_text(plan: Plan, width: int = 100) -> str:
    """The human view of a plan as plain text. Rendered into memory: never onto stdout (the wire)."""
    from opsmith.cli.plan_view import plan_view

    console = Console(file=io.StringIO(), record=True, width=width, color_system=None, highlight=False)
    console.print(plan_view(plan, width=width))
    return console.export_text()


def plan_report(plan: Plan, approvals: ApprovalState) -> PlanReport:
    estimate = plan.estimated_duration
    return PlanReport(
        id=plan.id,
        request=plan.request,
        title=plan.title,
        status=plan.status.value,
        risk=plan.risk.value,
        requires_approval=plan.requires_approval,
        approvals_needed=plan.approvals_needed,
        approvals_valid=len(approvals.valid),
        approvers=approvals.approvers,
        approval_reasons=list(plan.approval_reasons),
        requested_by=plan.requested_by,
        hash=plan.hash,
        estimated_duration=estimate.text,
        estimated_min_seconds=estimate.minimum_seconds,
        estimated_max_seconds=estimate.maximum_seconds,
        critical_path=list(estimate.critical_path),
        steps=[
            PlanStep(
                id=s.id,
                name=s.name,
                server=s.server,
                tool=s.tool,
                risk=s.risk.value,
                depends_on=list(s.depends_on),
                requires_validation=s.requires_validation,
                missing_args=list(s.missing_args),
            )
            for s in plan.steps
        ],
        missing=plan.missing,
        warnings=list(plan.warnings),
        next=plan_next(plan, approvals),
        text=plan_text(plan),
    )


def plan_next(plan: Plan, approvals: ApprovalState) -> str:
    status = plan.status
    if status is PlanStatus.INCOMPLETE:
        what = [f"{step}: {', '.join(args)}" for step, args in plan.missing.items()]
        what += [f"unmet compliance requirement {r.name}" for r in plan.unmet]
        return (
            f"incomplete ({'; '.join(what) or 'see text'}): a person fills it with "
            f"`opsmith plan amend {plan.id} --set STEP.KEY=VALUE`; it then needs approval"
        )
    if status is PlanStatus.PENDING_APPROVAL or (status is PlanStatus.APPROVED and not approvals.approved):
        return (
            f"waiting for approval ({len(approvals.valid)} of {approvals.needed} valid): a person allowed "
            f"to approve must run `opsmith approve {plan.id}`; this MCP server cannot approve"
        )
    if status is PlanStatus.APPROVED:
        return f"approved: it may run now with execute_approved_plan(plan_id={plan.id!r})"
    if status is PlanStatus.RUNNING:
        return "running; follow it with get_run_status"
    return f"{status.value}: it will not run again; plan the request again if needed"


def servers_report(statuses: list[ServerStatus], note: str) -> ServersReport:
    servers = [
        ServerReport(
            name=s.name,
            transport=s.transport,
            health=s.health.value,
            reason=s.reason,
            tool_count=s.tool_count,
            last_error=s.last_error,
        )
        for s in statuses
    ]
    return ServersReport(
        servers=servers, up=sum(1 for s in servers if s.health == "up"), total=len(servers), note=note
    )


def role_report(identity: Identity, permission: Permission) -> RoleReport:
    return RoleReport(
        user=identity.user,
        role=identity.role,
        source=identity.source,
        actions=[a.value for a in permission.actions],
        environments=list(permission.environments),
        max_risk=permission.max_risk.value,
        tools=list(permission.tools),
        note="fixed when this MCP server started; a caller cannot change who it acts as",
    )


__all__ = [
    "PlanReport",
    "PlanStep",
    "RoleChange",
    "RoleReport",
    "RunReport",
    "ServerReport",
    "ServersReport",
    "StepRun",
    "plan_report",
    "role_report",
    "run_report",
    "servers_report",
]

"""Who is acting and what they may do; role changes, an admin action recorded in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from opsmith.bootstrap import App
from opsmith.domain.approval import ApprovalError, check_approve
from opsmith.domain.errors import UnknownUserError, UsageError
from opsmith.domain.identity import DEFAULT_ROLES, Action, Identity, Permission, decide
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.risk import Risk
from opsmith.engine.state import FINAL_RUN_STATUSES, RunState, RunStatus
from opsmith.services.approvals import CLOSED
from opsmith.services.identity import permission_of


class AccessRefused(UsageError):
    """The acting identity may not take this action (its role does not allow it)."""


@dataclass(frozen=True)
class RoleChange:
    user: str
    role: str
    set_by: str


def whoami(app: App, identity: Identity) -> tuple[Identity, Permission]:
    return identity, permission_of(app.config, identity)


def require(
    app: App,
    identity: Identity,
    action: Action,
    *,
    hint: str,
    environment: str | None = None,
    risk: Risk | None = None,
) -> None:
    """Raise AccessRefused unless `identity` may take `action` (in an environment, up to a risk)."""
    permission = permission_of(app.config, identity)
    decision = decide(identity, permission, action, environment=environment, risk=risk)
    if not decision.allowed:
        raise AccessRefused(decision.reason, hint=hint)


def plan_actions(app: App, identity: Identity, plan: Plan) -> dict[str, bool]:
    """Which of approve, reject, run and cancel `identity` may take on `plan` now: what a face
    offers. Each service checks again when the action is taken; this only decides what is shown.
    A requester is never offered their own plan to approve or reject, even where one approval of
    their own would count."""
    permission = permission_of(app.config, identity)
    environment = plan.intent.environment

    def may(action: Action, risk: Risk | None = plan.risk) -> bool:
        return decide(identity, permission, action, environment=environment, risk=risk).allowed

    judges = (
        plan.status is PlanStatus.PENDING_APPROVAL
        and identity.user not in plan.requesters
        and may(Action.APPROVE)
    )
    open_ = plan.status not in CLOSED and plan.status is not PlanStatus.RUNNING
    return {
        "approve": judges and _may_approve(app, identity, permission, plan),
        "reject": judges,
        "run": plan.status is PlanStatus.APPROVED and may(Action.EXECUTE),
        "cancel": open_ and (may(Action.CANCEL, None) or identity.user == plan.requested_by),
    }


_STARTED = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
_STOPPED = frozenset({RunStatus.PAUSED, RunStatus.NEEDS_ATTENTION})


def run_actions(app: App, identity: Identity, plan: Plan, state: RunState) -> dict[str, bool]:
    """Which of continue, pause, resume, cancel and rollback `identity` may take on the run
    `state` of `plan` now: what a face offers. Each is the check services.running makes when the
    action is taken (the plan's environment, up to its risk: EXECUTE to drive the run, CANCEL to
    stop it), for the run states a person acts on: continue at a gate, pause what is under way,
    resume what is paused or needs attention, cancel or roll back anything not finished. Each
    service checks again when the action is taken; this only decides what is shown."""
    permission = permission_of(app.config, identity)

    def may(action: Action) -> bool:
        decision = decide(identity, permission, action, environment=plan.intent.environment, risk=plan.risk)
        return decision.allowed

    status = state.status
    executes, cancels = may(Action.EXECUTE), may(Action.CANCEL)
    under_way = status not in FINAL_RUN_STATUSES
    return {
        "continue": status is RunStatus.AWAITING_VALIDATION and executes,
        "pause": status in _STARTED and executes,
        "resume": status in _STOPPED and executes,
        # request_stop takes any run not yet finished, with or without its undo.
        "cancel": under_way and cancels,
        "rollback": under_way and cancels,
    }


def run_decisions(app: App, identity: Identity, plan: Plan, state: RunState) -> list[str]:
    """The steps of a run that needs attention that wait for a person's choice (run again, count as
    done) and that `identity` may decide: a resume with that choice is what they may take."""
    from opsmith.engine.recovery import undecided

    if not run_actions(app, identity, plan, state)["resume"]:
        return []
    return undecided(state)


def _may_approve(app: App, identity: Identity, permission: Permission, plan: Plan) -> bool:
    # The domain's own check, so the button is offered exactly when an approval would be taken
    # (not twice by one person, not for a plan whose seal fails).
    try:
        check_approve(plan, identity, permission, app.approvals.for_plan(plan.id), app.clock.now(), app.seal)
    except ApprovalError:
        return False
    return True


def users(app: App, identity: Identity) -> dict[str, str]:
    """Every configured user and the role they have now (a stored change wins over the file)."""
    require(app, identity, Action.ADMIN, hint="the list of users is for admins")
    configured = dict(app.config.rbac.users) if app.config.rbac else {}
    stored = app.roles.all()
    return {user: stored.get(user, role) for user, role in sorted(configured.items())}


def set_role(app: App, identity: Identity, user: str, role: str, *, via: str) -> RoleChange:
    """Give a configured user a role. Only an admin may, and nobody changes their own role."""
    require(app, identity, Action.ADMIN, hint="role changes are an admin action")
    known = set(DEFAULT_ROLES) | set(app.config.rbac.roles if app.config.rbac else {})
    if role not in known:
        raise UsageError(f"unknown role {role!r}", hint=f"known: {', '.join(sorted(known))}")
    if user == identity.user:
        raise UsageError("nobody can change their own role", hint="ask another admin")
    if app.config.rbac is None or user not in app.config.rbac.users:
        raise UnknownUserError(f"{user!r} is not a configured user", hint="add them under rbac.users first")
    app.roles.set(user, role, identity.user)
    app.audit.append(identity.user, "role.changed", user, {"role": role, "via": via})
    return RoleChange(user=user, role=role, set_by=identity.user)

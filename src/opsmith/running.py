"""Start and continue runs of approved plans; only a plan approved as it is now may run."""

from __future__ import annotations

import secrets
import time

from opsmith.approvals import state_of
from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.identity import Action, Identity, decide
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.local import Listener, LocalExecutor
from opsmith.engine.state import RunState, RunStatus, new_run
from opsmith.identity import permission_of
from opsmith.store.audit import AuditLog
from opsmith.store.plans import PlanRepository
from opsmith.store.runs import RunRepository

FINAL = {
    RunStatus.SUCCEEDED: PlanStatus.SUCCEEDED,
    RunStatus.ROLLED_BACK: PlanStatus.ROLLED_BACK,
    RunStatus.FAILED: PlanStatus.FAILED,
    RunStatus.NEEDS_ATTENTION: PlanStatus.FAILED,
}


class RunRefused(UsageError):
    """A plan that may not run (not approved, changed since approval, no permission...)."""


def may_run(app: App, identity: Identity, plan: Plan) -> None:
    """Raise RunRefused saying why this plan may not run now, as this identity."""
    if plan.hash != plan.content_hash():
        raise RunRefused(f"plan {plan.id} was changed after it was made", hint="plan the request again")
    if plan.status is not PlanStatus.APPROVED:
        raise RunRefused(
            f"plan {plan.id} is {plan.status.value}, not approved",
            hint=f"an approver runs: opsmith approve {plan.id}",
        )
    if plan.requires_approval:
        tally = state_of(app, plan)
        if not tally.approved:
            why = "; ".join(reason for _, reason in tally.void) or "no valid approval"
            raise RunRefused(
                f"plan {plan.id} has {len(tally.valid)} valid approval(s) of {tally.needed} ({why})",
                hint=f"approve it again: opsmith approve {plan.id}",
            )
    require_execute(app, identity, plan)


def require_execute(app: App, identity: Identity, plan: Plan) -> None:
    """RBAC for running this plan: its environment and its overall risk."""
    decision = decide(
        identity,
        permission_of(app.config, identity),
        Action.EXECUTE,
        environment=plan.intent.environment,
        risk=plan.risk,
    )
    if not decision.allowed:
        raise RunRefused(decision.reason, hint="ask someone whose role may execute this plan")


async def start_run(
    app: App,
    identity: Identity,
    plan_id: str,
    *,
    auto_validate: bool = False,
    listener: Listener | None = None,
) -> tuple[Plan, RunState, str | None]:
    from opsmith.discovery import running_servers

    plans = PlanRepository(app.database)
    plan = plans.get(plan_id)
    may_run(app, identity, plan)
    run_id = f"run_{int(time.time())}_{secrets.token_hex(3)}"
    audit = AuditLog(app.database)
    async with running_servers(app) as pool:
        vanished = [f"{s.server}/{s.tool}" for s in plan.steps if pool.catalog.get(s.server, s.tool) is None]
        if vanished:
            audit.append(identity.user, "run.refused", plan.id, {"vanished": vanished})
            raise RunRefused(
                f"tools of plan {plan.id} are no longer offered: {', '.join(vanished)}",
                hint="check `opsmith servers status`, then plan the request again",
            )
        if not plans.claim(plan):
            raise RunRefused(
                f"plan {plan.id} is already being run (or changed) by someone else",
                hint="watch it with: opsmith plans --status running; a plan runs once",
            )
        audit.append(identity.user, "run.started", run_id, {"plan": plan.id, "hash": plan.hash})
        executor = _executor(app, identity, plan, pool, auto_validate, listener)
        state = await executor.run(new_run(plan, run_id=run_id))
        if state.status is RunStatus.FAILED:
            state = await executor.rollback(state)
    return _settle(app, plan, state), state, executor.failure


async def continue_run(
    app: App,
    identity: Identity,
    run_id: str,
    *,
    auto_validate: bool = False,
    listener: Listener | None = None,
) -> tuple[Plan, RunState, str | None]:
    """A person validated the gate the run waits at: carry on."""
    from opsmith.discovery import running_servers

    runs = RunRepository(app.database)
    state = runs.get(run_id)
    plan = PlanRepository(app.database).get(state.plan_id)
    if state.status is not RunStatus.AWAITING_VALIDATION:
        raise RunRefused(f"run {run_id} is {state.status.value}, not waiting at a gate")
    require_execute(app, identity, plan)
    AuditLog(app.database).append(identity.user, "gate.validated", run_id, {"plan": plan.id})
    async with running_servers(app) as pool:
        executor = _executor(app, identity, plan, pool, auto_validate, listener)
        state = await executor.run(state)
        if state.status is RunStatus.FAILED:
            state = await executor.rollback(state)
    return _settle(app, plan, state), state, executor.failure


def _executor(
    app: App, identity: Identity, plan: Plan, pool: object, auto_validate: bool, listener: Listener | None
) -> LocalExecutor:
    from opsmith.tools.mcp import ServerPool

    assert isinstance(pool, ServerPool)
    return LocalExecutor(
        plan,
        tools=pool,
        runs=RunRepository(app.database),
        audit=AuditLog(app.database),
        identity=identity,
        permission=permission_of(app.config, identity),
        auto_validate=auto_validate,
        listener=listener,
    )


def _settle(app: App, plan: Plan, state: RunState) -> Plan:
    status = FINAL.get(state.status)
    if status is None:
        return plan
    settled = plan.model_copy(update={"status": status})
    PlanRepository(app.database).save(settled)
    return settled

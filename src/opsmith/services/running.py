"""Start, continue, resume, pause and cancel runs of approved plans.

Only a plan approved as it is now may run. A run is driven by one process at a time, the holder of
its lease; a pause or cancel asked from elsewhere reaches the holder through the store, and a run
nobody holds (waiting at a gate, paused, or left by a process that died) is taken over by the
command that acts on it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from opsmith.bootstrap import App
from opsmith.domain.approval import plan_is_sealed
from opsmith.domain.errors import UsageError
from opsmith.domain.identity import Action, Identity, decide
from opsmith.domain.journal import AuditNote
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.local import CANCEL, CANCEL_AND_ROLLBACK, PAUSE
from opsmith.engine.recovery import Choice, recover, resolve, stopped_fan_outs, undecided
from opsmith.engine.state import FINAL_RUN_STATUSES, RunState, RunStatus, new_run, with_run_status
from opsmith.ports import Executor, Listener, RunJournal, ToolProvider
from opsmith.services.access import AccessRefused
from opsmith.services.approvals import state_of
from opsmith.services.identity import permission_of
from opsmith.store.runs import PLAN_FOLLOWS, PlanTaken, new_owner, owner_is_gone

FINAL = PLAN_FOLLOWS

Outcome = tuple[Plan, RunState, str | None]
Started = Callable[[RunState], None]


@dataclass(frozen=True)
class Decision:
    """A person's choice for the steps a crash interrupted: one step, or all of them (step None)."""

    choice: Choice
    step: str | None = None


class RunRefused(UsageError):
    """A plan or run that may not run now (not approved, changed since approval, no permission...)."""


def may_run(
    app: App, identity: Identity, plan: Plan, *, approval_claimed: bool = False, via: str = "cli"
) -> None:
    """Raise RunRefused saying why this plan may not run now, as this identity. A refusal about the
    plan's approval is an audit entry; so is a caller's claim to approve (`approval_claimed`), which
    approves nothing: only people approve, with `opsmith approve`."""
    problem: tuple[str, str] | None = None
    if plan.hash != plan.content_hash():
        problem = (f"plan {plan.id} was changed after it was made", "plan the request again")
    elif not plan_is_sealed(plan, app.seal):
        problem = (
            f"plan {plan.id} was changed outside opsmith: its signature does not verify",
            "plan the request again",
        )
    elif plan.status is not PlanStatus.APPROVED:
        problem = (
            f"plan {plan.id} is {plan.status.value}, not approved",
            _next_for(plan),
        )
    elif plan.requires_approval:
        tally = state_of(app, plan)
        if not tally.approved:
            why = "; ".join(reason for _, reason in tally.void) or "no valid approval"
            problem = (
                f"plan {plan.id} has {len(tally.valid)} valid approval(s) of {tally.needed} ({why})",
                f"a person allowed to approve runs: opsmith approve {plan.id}",
            )
    if problem is not None:
        message, hint = problem
        details = {"hash": plan.hash, "status": plan.status.value, "why": message, "via": via}
        if approval_claimed:
            app.audit.append(identity.user, f"{via}.approval_ignored", plan.id, details)
            message += (
                ". approval=true approves nothing: only a person allowed to approve can, and the attempt"
                f" was recorded in the audit trail ({via}.approval_ignored)"
            )
        else:
            app.audit.append(identity.user, "run.refused", plan.id, details)
        raise RunRefused(message, hint=hint)
    require_execute(app, identity, plan)


def _next_for(plan: Plan) -> str:
    if plan.status in (PlanStatus.PENDING_APPROVAL, PlanStatus.APPROVED):
        return f"a person allowed to approve runs `opsmith approve {plan.id}`, then run it again"
    if plan.status is PlanStatus.INCOMPLETE:
        return (
            f"fill what is missing (`opsmith plan amend {plan.id} --set ...`), then a person allowed "
            f"to approve runs `opsmith approve {plan.id}`"
        )
    return "it cannot run; plan the request again"


def require_execute(app: App, identity: Identity, plan: Plan, action: Action = Action.EXECUTE) -> None:
    """RBAC for driving this plan: its environment and its overall risk."""
    decision = decide(
        identity,
        permission_of(app.config, identity),
        action,
        environment=plan.intent.environment,
        risk=plan.risk,
    )
    if not decision.allowed:
        # A permission, not the run's state: the API answers 403, not 409.
        raise AccessRefused(decision.reason, hint="ask someone whose role may do this")


async def start_run(
    app: App,
    identity: Identity,
    plan_id: str,
    *,
    auto_validate: bool = False,
    listener: Listener | None = None,
    approval_claimed: bool = False,
    via: str = "cli",
    on_started: Started | None = None,
) -> Outcome:
    """Start a run of an approved plan and drive it until it ends, pauses or waits at a gate.
    `on_started` hears of the run once it exists (a server answers its client then, and drives on)."""
    from opsmith.services.discovery import running_servers

    plan = app.plans.get(plan_id)
    may_run(app, identity, plan, approval_claimed=approval_claimed, via=via)
    run_id = f"run_{int(time.time())}_{secrets.token_hex(3)}"
    audit = app.audit
    async with running_servers(app) as pool:
        vanished = [f"{s.server}/{s.tool}" for s in plan.steps if pool.catalog.get(s.server, s.tool) is None]
        if vanished:
            audit.append(identity.user, "run.refused", plan.id, {"vanished": vanished})
            raise RunRefused(
                f"tools of plan {plan.id} are no longer offered: {', '.join(vanished)}",
                hint="check `opsmith servers status`, then plan the request again",
            )
        # The plan is claimed and its run created (pending, leased to us) in one transaction: a
        # process that dies right after leaves a run that `opsmith resume` goes on with, never a
        # plan marked running with no run behind it, nor a run whose plan another run took.
        owner = new_owner()
        pending = new_run(plan, run_id=run_id)
        note = AuditNote(identity.user, "run.started", run_id, {"plan": plan.id, "hash": plan.hash})
        try:
            app.journal().commit(pending, owner=owner, audits=[note], started_by=identity.user, claim=plan)
        except PlanTaken as taken:
            raise RunRefused(taken.message, hint=taken.hint) from taken
        if on_started is not None:
            on_started(pending)
        executor = _executor(app, identity, plan, pool, auto_validate, listener, owner=owner)
        state = await executor.execute(pending)
        # Settled before the servers shut down (that takes a while): the plan follows its run.
        settled = _settle(app, plan, state)
        _tell_if_held(app, plan, state, executor.failure)
    return settled, state, executor.failure


async def continue_run(
    app: App,
    identity: Identity,
    run_id: str,
    *,
    auto_validate: bool = False,
    listener: Listener | None = None,
    on_started: Started | None = None,
) -> Outcome:
    """A person validated the gate the run waits at: carry on (or roll back if the gate timed out)."""

    def check(state: RunState, plan: Plan) -> None:
        if state.status is not RunStatus.AWAITING_VALIDATION:
            raise RunRefused(f"run {run_id} is {state.status.value}, not waiting at a gate")

    return await _take_over(
        app,
        identity,
        run_id,
        check,
        "gate.validated",
        auto_validate=auto_validate,
        listener=listener,
        on_started=on_started,
    )


async def resume_run(
    app: App,
    identity: Identity,
    run_id: str,
    *,
    decision: Decision | None = None,
    auto_validate: bool = False,
    listener: Listener | None = None,
    on_started: Started | None = None,
) -> Outcome:
    """Go on with a run that is paused, needs attention, or whose driving process died.

    Finished steps are not run again. A step that was in flight runs again only if it is idempotent;
    otherwise the run needs attention until a person decides (`decision`)."""

    def check(state: RunState, plan: Plan) -> None:
        if state.status in FINAL_RUN_STATUSES:
            raise RunRefused(f"run {run_id} is {state.status.value}; there is nothing to resume")
        if state.status is RunStatus.AWAITING_VALIDATION:
            raise RunRefused(
                f"run {run_id} waits at a validation gate", hint=f"validate it: opsmith continue {run_id}"
            )

    return await _take_over(
        app,
        identity,
        run_id,
        check,
        "run.resumed",
        decision=decision,
        auto_validate=auto_validate,
        listener=listener,
        on_started=on_started,
    )


async def _take_over(
    app: App,
    identity: Identity,
    run_id: str,
    check: Callable[[RunState, Plan], None],
    audit_action: str,
    *,
    decision: Decision | None = None,
    auto_validate: bool = False,
    listener: Listener | None = None,
    on_started: Started | None = None,
) -> Outcome:
    from opsmith.services.discovery import running_servers

    runs = app.journal()
    state = runs.get(run_id)
    plan = app.plans.get(state.plan_id)
    if state.status in FINAL_RUN_STATUSES:
        _settle(app, plan, state)  # heals a plan left behind by a process killed after the run ended
    check(state, plan)
    require_execute(app, identity, plan)
    _still_as_approved(app, identity, plan, state)
    owner = new_owner()
    claimed = runs.claim(run_id, owner, seconds=app.config.execution.lease_seconds)
    if claimed is None:
        raise _held(runs, run_id)
    try:
        state = claimed  # what the previous holder wrote last, read with the claim
        check(state, plan)
        was_held = state.status is RunStatus.NEEDS_ATTENTION
        expired = state.status is RunStatus.AWAITING_VALIDATION and _gate_expired(state)
        touched: list[str] = []
        if not expired:
            # Decided before any server starts: a run that only needs a person's answer starts nothing.
            state, touched = _prepare(plan, runs, owner, identity, state, decision, audit_action)
            if undecided(state):
                if not was_held:  # a crash found now holds the run: a new hold
                    _tell_if_held(app, plan, state, _attention(state))
                return plan, state, _attention(state)
            failing = decision is not None and decision.choice is Choice.FAIL
            if not failing and state.status is RunStatus.NEEDS_ATTENTION and _failed_steps(state):
                raise RunRefused(
                    f"run {run_id} failed and its rollback did not finish",
                    hint=f"check the failed undo, then: opsmith resume {run_id} --rollback",
                )
        if on_started is not None:
            on_started(state)
        async with running_servers(app) as pool:
            executor = _executor(app, identity, plan, pool, auto_validate, listener, owner=owner)
            executor.state = state
            for step_id in touched:
                executor.mark_touched(step_id)
            if expired:
                assert state.gate_deadline is not None
                why = f"the validation gate timed out at {state.gate_deadline:%Y-%m-%d %H:%M} UTC"
                state = await executor.fail_and_rollback(why)
            elif decision is not None and decision.choice is Choice.FAIL:
                state = await executor.fail_and_rollback(f"{identity.user} chose to roll back")
            else:
                state = await executor.execute(state)
            settled = _settle(app, plan, state)
            _tell_if_held(app, plan, state, executor.failure)
        return settled, state, executor.failure
    finally:
        runs.release(run_id, owner)


def _still_as_approved(app: App, identity: Identity, plan: Plan, state: RunState) -> None:
    """What goes on running (or is undone) is what was approved: the stored plan still hashes to the
    hash the run started with, carries opsmith's signature, and signed approvals of that very hash
    still cover it (expired ones count: they held when the run started). Anything else refuses the
    take-over, audited."""
    why: str | None = None
    if not plan.hash == state.plan_hash == plan.content_hash():
        why = f"plan {plan.id} changed since run {state.run_id} started from it"
    elif not plan_is_sealed(plan, app.seal):
        why = f"plan {plan.id} was changed outside opsmith: its signature does not verify"
    elif plan.status not in (PlanStatus.RUNNING, PlanStatus.FAILED):
        # A run under way holds its plan at `running` (signed), or at `failed` while it needs
        # attention or rolls back; a run row for a plan that succeeded, was rolled back, cancelled
        # or never claimed was not made by opsmith: a plan runs once.
        why = f"plan {plan.id} is {plan.status.value}, so run {state.run_id} cannot be driven from it"
    elif plan.requires_approval:
        tally = state_of(app, plan, expired_count=True)
        if not tally.approved:
            reasons = "; ".join(reason for _, reason in tally.void) or "no valid approval"
            why = f"plan {plan.id} is not covered by valid approvals ({reasons})"
    if why is None:
        return
    details = {"run_hash": state.plan_hash, "plan_hash": plan.hash, "why": why}
    app.audit.append(identity.user, "run.refused", state.run_id, details)
    raise RunRefused(why, hint=f"roll the run back (opsmith cancel {state.run_id} --rollback) and plan again")


def _prepare(
    plan: Plan,
    runs: RunJournal,
    owner: str,
    identity: Identity,
    state: RunState,
    decision: Decision | None,
    audit_action: str,
) -> tuple[RunState, list[str]]:
    """Recover a run whose driver died and apply a person's decision; commit what changed. Returns
    the state and the steps a person chose to fail (their undo must run even if they failed)."""
    events: list[RunEvent] = []
    touched: list[str] = []
    notes = [AuditNote(identity.user, audit_action, state.run_id, {"from": state.status.value})]
    recovered = recover(plan, state)
    for step_id in recovered.rerun:
        events.append(_event(state, EventType.STEP_INTERRUPTED, step_id, "interrupted; runs again"))
    for step_id in recovered.held:
        message = "interrupted during its call and not idempotent: it may or may not have done its work"
        events.append(_event(state, EventType.STEP_INTERRUPTED, step_id, message))
    state = recovered.state
    if recovered.held:
        events.append(_event(state, EventType.RUN_ATTENTION, None, _attention(state)))
    if decision is not None:
        chosen = [decision.step] if decision.step else undecided(state)
        if not chosen and decision.choice is not Choice.FAIL:
            raise RunRefused(f"run {state.run_id} has no step waiting for a decision")
        for step_id in chosen:
            state = resolve(state, step_id, decision.choice, at=datetime.now(UTC))
            if decision.choice is Choice.FAIL:
                touched.append(step_id)
            notes.append(
                AuditNote(
                    identity.user, "step.decided", state.run_id, {"step": step_id, "choice": decision.choice}
                )
            )
            message = f"{identity.user} chose {decision.choice.value}"
            events.append(_event(state, EventType.STEP_DECIDED, step_id, message))
    runs.commit(state, owner=owner, events=events, audits=notes, clear_request=True)
    return state, touched


def _failed_steps(state: RunState) -> list[str]:
    from opsmith.engine.state import StepStatus

    bad = (StepStatus.FAILED, StepStatus.ROLLBACK_FAILED)
    return [k for k, s in state.steps.items() if s.status in bad]


def _attention(state: RunState) -> str:
    steps = ", ".join(undecided(state))
    # A fleet step says how far it got; its retry contacts only the hosts with no recorded outcome.
    how_far = "".join(f" ({said})" for said in stopped_fan_outs(state))
    return (
        f"run {state.run_id} needs attention: {steps} may or may not have done its work{how_far}; "
        f"check it, then: opsmith resume {state.run_id} --retry STEP | --skip STEP | --rollback STEP"
    )


def _gate_expired(state: RunState) -> bool:
    return state.gate_deadline is not None and state.gate_deadline <= datetime.now(UTC)


def _held(runs: RunJournal, run_id: str) -> RunRefused:
    lease = runs.lease(run_id)
    until = f" until {lease.expires:%H:%M:%S} UTC" if lease.expires else ""
    return RunRefused(
        f"run {run_id} is being driven by {lease.owner}{until}",
        hint=f"pause or cancel it instead: opsmith pause {run_id} / opsmith cancel {run_id}",
    )


async def request_stop(
    app: App, identity: Identity, run_id: str, what: str, *, listener: Listener | None = None
) -> tuple[RunState, str]:
    """Pause or cancel a run. A run some process drives is asked through the store; one nobody
    drives is paused or cancelled (and rolled back when asked) here. Returns the state and what
    happened, in words."""
    runs = app.journal()
    state = runs.get(run_id)
    plan = app.plans.get(state.plan_id)
    action = Action.EXECUTE if what == PAUSE else Action.CANCEL
    require_execute(app, identity, plan, action)
    if state.status in FINAL_RUN_STATUSES:
        raise RunRefused(f"run {run_id} is {state.status.value} already")
    owner = new_owner()
    audit = app.audit
    claimed = runs.claim(run_id, owner, seconds=app.config.execution.lease_seconds)
    if claimed is None:
        lease = runs.lease(run_id)
        if lease.owner is not None and not owner_is_gone(lease.owner):
            runs.request(run_id, what)
            audit.append(identity.user, f"run.{what}.requested", run_id, {"holder": lease.owner})
            return state, f"asked {lease.owner} to {what}; in-flight steps finish first"
        raise _held(runs, run_id)
    try:
        state = claimed
        note = AuditNote(identity.user, f"run.{what.replace('+', '_')}", run_id, {"from": state.status.value})
        if what == PAUSE:
            if state.status is RunStatus.PAUSED:
                return state, "already paused"
            if state.status is RunStatus.RUNNING:
                # Nobody drives it (its process died): pausing keeps it from being resumed unasked.
                recovered = recover(plan, state).state
                state = recovered if recovered.status is not RunStatus.RUNNING else state
            if state.status is not RunStatus.PAUSED:
                state = with_run_status(state, RunStatus.PAUSED)
            runs.commit(
                state,
                owner=owner,
                events=[_event(state, EventType.RUN_PAUSED, None, f"paused by {identity.user}")],
                audits=[note],
                clear_request=True,
            )
            return state, "paused"
        if what == CANCEL:
            from opsmith.engine.state import StepStatus, with_step_status

            now = datetime.now(UTC)
            for step_id, s in state.steps.items():
                if s.status in (StepStatus.PENDING, StepStatus.READY, StepStatus.RETRY_WAIT):
                    state = with_step_status(state, step_id, StepStatus.CANCELLED, at=now)
            state = with_run_status(state, RunStatus.CANCELLED)
            runs.commit(
                state,
                owner=owner,
                events=[_event(state, EventType.RUN_FINISHED, None, f"cancelled by {identity.user}")],
                audits=[note],
                clear_request=True,
            )
            _settle(app, plan, state)
            return state, "cancelled"
        assert what == CANCEL_AND_ROLLBACK
        from opsmith.services.discovery import running_servers

        # The undo steps come from the plan: only undo what was approved.
        _still_as_approved(app, identity, plan, state)
        async with running_servers(app) as pool:
            executor = _executor(app, identity, plan, pool, False, listener, owner=owner)
            for step_id in undecided(state):
                state = resolve(state, step_id, Choice.FAIL, at=datetime.now(UTC))
                executor.mark_touched(step_id)
            runs.commit(state, owner=owner, audits=[note], clear_request=True)
            executor.state = state
            state = await executor.fail_and_rollback(f"cancelled by {identity.user}")
            _tell_if_held(app, plan, state, executor.failure)
        _settle(app, plan, state)
        return state, state.status.value
    finally:
        runs.release(run_id, owner)


async def sweep(app: App, identity: Identity, *, listener: Listener | None = None) -> list[tuple[str, str]]:
    """Roll back runs whose validation gate timed out; list runs whose driver died. What a timer
    (cron, systemd) or the server runs periodically."""
    runs = app.journal()
    done: list[tuple[str, str]] = []
    for run_id in runs.ids([RunStatus.AWAITING_VALIDATION]):
        if _gate_expired(runs.get(run_id)):
            try:
                _, state, _ = await continue_run(app, identity, run_id, listener=listener)
            except (RunRefused, AccessRefused) as refused:
                # One run that may not go on (its plan changed, its approvals do not verify) is
                # reported, audited by the refusal itself, and the sweep goes on with the others.
                done.append((run_id, f"refused: {refused.message}"))
                continue
            done.append((run_id, f"gate timed out: {state.status.value}"))
    plans = app.plans
    for plan in plans.list(PlanStatus.RUNNING, limit=500):
        last = runs.latest_for_plan(plan.id)
        if last is not None and last.status in FINAL_RUN_STATUSES:
            _settle(app, plan, last)
            done.append((last.run_id, f"plan {plan.id} marked {FINAL[last.status].value}, as its run ended"))
    for run_id in driverless(runs):
        done.append((run_id, f"its driver is gone: opsmith resume {run_id}"))
    return done


def driverless(runs: RunJournal) -> list[str]:
    """Runs under way that nobody drives: no lease, an expired one, or a holder that is gone."""
    found = []
    for run_id in runs.ids([RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ROLLING_BACK]):
        lease = runs.lease(run_id)
        expired = lease.expires is not None and lease.expires < datetime.now(UTC)
        if lease.owner is None or expired or owner_is_gone(lease.owner):
            found.append(run_id)
    return found


def _event(state: RunState, kind: EventType, step_id: str | None, message: str) -> RunEvent:
    return RunEvent(run_id=state.run_id, at=datetime.now(UTC), type=kind, step_id=step_id, message=message)


def _executor(
    app: App,
    identity: Identity,
    plan: Plan,
    pool: ToolProvider,
    auto_validate: bool,
    listener: Listener | None,
    *,
    owner: str | None = None,
) -> Executor:
    from opsmith.services.tool_calls import PlannedFor

    return app.executors(
        plan,
        tools=PlannedFor(pool, app, plan.intent.environment),
        runs=app.journal(),
        identity=identity,
        permission=permission_of(app.config, identity),
        settings=app.config.execution.settings(),
        auto_validate=auto_validate,
        listener=listener,
        owner=owner,
    )


def _tell_if_held(app: App, plan: Plan, state: RunState, why: str | None) -> None:
    """Call right after a run was held for a person (needs_attention), while still holding its
    lease: the people the rules name are told, once per hold."""
    if state.status is RunStatus.NEEDS_ATTENTION:
        from opsmith.services.notifications import notify_attention

        notify_attention(app, plan, state, why=why)


def _settle(app: App, plan: Plan, state: RunState) -> Plan:
    status = FINAL.get(state.status)
    if status is None:
        return plan
    settled = plan.model_copy(update={"status": status})
    app.plans.save(settled)
    from opsmith.services.incidents import after_settle

    after_settle(app, settled, state)
    return settled

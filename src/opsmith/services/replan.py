"""A push after a failed deployment: the delivery checked, the push compared with the failed run's
root cause, and the deployment planned again with what the failure taught.

`accept_github` is what POST /api/v1/webhooks/github calls. It refuses, writing nothing, a delivery
whose signature is missing or wrong, a body that is not the event, a repository that is not
watched; it refuses a delivery id accepted before; it records every delivery it accepts. A push is
recorded `received`, held by this process, and the endpoint answers 202 at once (GitHub gives a
delivery 10 s, and a cold re-plan may take longer): `handle_delivery` then re-plans in the
background of `opsmith serve` and settles the record with the outcome (a failure to act is
recorded too, and that delivery may be sent again). A push recorded but never settled (the server
stopped mid-way) is handled by `recover_deliveries` at the next start. `receive_github` does both
at once, for `opsmith webhook replay` and the demo.

`replan_after_push` is the use case itself (`opsmith demo --fix` calls it): it finds the failed run
of the application, takes its root cause (services.explain), and decides:
  - a push that addresses the cause (domain.push.match_cause) gets a new plan for the same request
    (domain.replan.relearned): the pushed commit built incrementally, scans whose code is unchanged
    left out with their recorded results cited, the image checked for the missing file, the risk
    re-assessed with the reason; it is a normal plan: pending approval, notified as any other;
  - a push that does not address it (or whose cause names nothing to compare with) gets no plan,
    unless the repository says `replan: always`: then the plan says so and its risk is raised.
A plan the approval policy lets through without approval (an environment it does not guard, a low
risk) is audited as auto-approved, with the policy's reason.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from opsmith.bootstrap import App
from opsmith.config import GithubWebhookConfig, WatchedRepository, resolve
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import ConfigError, NotFoundError, OpsmithError
from opsmith.domain.identity import Identity
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.push import (
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryReplayed,
    MalformedPayload,
    Push,
    PushCommit,
    ReplanRecord,
    RootCause,
    ScanReuse,
    UnwatchedRepository,
    Verdict,
    check_delivery_id,
    match_cause,
    parse_push,
    read_json,
    repository_of,
    scan_record,
    scan_reuse,
    verify_signature,
)
from opsmith.domain.replan import SCAN_CAPABILITIES, Lessons, PlanDiff, plan_difference, relearned
from opsmith.domain.root_cause import Analysis
from opsmith.engine.state import RunState, StepStatus
from opsmith.store.runs import new_owner, owner_is_gone

__all__ = [
    "Replanned",
    "WebhookOutcome",
    "accept_github",
    "delivery_status",
    "handle_delivery",
    "receive_github",
    "recover_deliveries",
    "replan_after_push",
    "replay_file",
    "root_cause_of",
]

_log = logging.getLogger(__name__)

WEBHOOK_ACTOR = "webhook:github"
# The detail of a push recorded but not settled yet: who handles it. This process's id is made
# once; a later process on the same host and pid (a restarted container) differs in its token.
HANDLING = "being handled by "
_HANDLER = new_owner()
ABANDONED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Replanned:
    """What a push led to: a plan (with why and its difference from the failed one), or why not."""

    outcome: DeliveryOutcome
    detail: str
    plan: Plan | None = None
    record: ReplanRecord | None = None
    difference: PlanDiff | None = None
    auto_approved: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "detail": self.detail,
            "plan_id": self.plan.id if self.plan else None,
            "plan_status": self.plan.status.value if self.plan else None,
            "auto_approved": self.auto_approved,
            "replan": self.record.model_dump(mode="json") if self.record else None,
            "difference": None
            if self.difference is None
            else {**self.difference.model_dump(mode="json"), "summary": self.difference.summary},
        }


@dataclass(frozen=True)
class WebhookOutcome:
    """The answer to one accepted delivery."""

    delivery_id: str | None
    event: str
    outcome: DeliveryOutcome | str
    detail: str
    replanned: Replanned | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        outcome = self.outcome.value if isinstance(self.outcome, DeliveryOutcome) else self.outcome
        body: dict[str, Any] = {
            "delivery": self.delivery_id,
            "event": self.event,
            "outcome": outcome,
            "detail": self.detail,
            **self.extra,
        }
        if self.replanned is not None:
            body |= {k: v for k, v in self.replanned.as_json().items() if k not in ("outcome", "detail")}
        return body


# -- the delivery ----------------------------------------------------------------------------------


async def receive_github(
    app: App, *, event: str | None, delivery: str | None, signature: str | None, body: bytes
) -> WebhookOutcome:
    """Verify, record and act on one GitHub delivery at once (`opsmith webhook replay`, the demo):
    `accept_github`, then `handle_delivery` of an accepted push, in this call."""
    accepted = accept_github(app, event=event, delivery=delivery, signature=signature, body=body)
    if accepted.outcome is not DeliveryOutcome.RECEIVED or accepted.delivery_id is None:
        return accepted
    return await handle_delivery(app, accepted.delivery_id)


def accept_github(
    app: App, *, event: str | None, delivery: str | None, signature: str | None, body: bytes
) -> WebhookOutcome:
    """Verify and record one GitHub delivery (see the module's docstring for what is refused),
    acting on nothing yet: a push is recorded `received`, held by this process for
    `handle_delivery`; a ping is answered, any other event recorded as ignored."""
    settings = _settings(app)
    if len(body) > settings.max_body_bytes:
        raise MalformedPayload(
            f"the body has {len(body)} bytes, more than webhooks.github.max_body_bytes"
            f" ({settings.max_body_bytes})",
            hint="raise webhooks.github.max_body_bytes, or send smaller events",
        )
    verify_signature(_secret(app, settings), body, signature)
    kind = (event or "").strip().lower()
    if kind == "ping":
        data = read_json(body)
        return WebhookOutcome(
            delivery_id=delivery,
            event="ping",
            outcome="pong",
            detail="the webhook reaches opsmith and its signature verifies",
            extra={"zen": str(data.get("zen", ""))[:200], "repository": repository_of(data)},
        )
    delivery_id = check_delivery_id(delivery)
    if kind != "push":
        read_json(body)  # malformed JSON is refused whatever the event
        return _ignored_event(app, delivery_id, kind or "(none)", body)
    push = parse_push(body)
    if push.repository not in settings.repositories:
        raise _unwatched(push.repository)
    store = _store(app)
    # The commits too: the re-plan, perhaps in a later process, works from this record alone.
    kept = {**_push_summary(push), "commits": [c.model_dump(mode="json") for c in push.commits]}
    record = DeliveryRecord(
        delivery_id=delivery_id,
        event="push",
        repository=push.repository,
        received_at=app.clock.now(),
        detail=HANDLING + _HANDLER,
        push=kept,
    )
    if not store.claim(record):
        raise DeliveryReplayed(
            f"delivery {delivery_id} was accepted before; a replayed delivery is not acted on again",
            hint="a new push sends a new delivery id; `opsmith webhook replay --delivery NEW-ID` for tests",
        )
    return WebhookOutcome(
        delivery_id=delivery_id,
        event="push",
        outcome=DeliveryOutcome.RECEIVED,
        detail=f"recorded; the re-plan follows: GET /api/v1/webhooks/deliveries/{delivery_id}",
        extra={"repository": push.repository, "status": f"/api/v1/webhooks/deliveries/{delivery_id}"},
    )


async def handle_delivery(app: App, delivery_id: str) -> WebhookOutcome:
    """Act on a push this process holds (`accept_github`, or taken by `recover_deliveries`): re-plan,
    settle the record with the outcome, audit it. A failure to act is settled `failed` (GitHub may
    deliver it again) and raised."""
    store = _store(app)
    record = store.delivery(delivery_id)
    if record is None:
        raise NotFoundError(f"no webhook delivery {delivery_id!r}", hint="GitHub shows the ids it sent")
    summary = {k: v for k, v in (record.push or {}).items() if k != "commits"}
    repository = record.repository or ""
    try:
        push = _push_of(record)
        watched = _settings(app).repositories.get(push.repository)
        if watched is None:  # watched when it came: the configuration changed since
            raise _unwatched(push.repository)
        replanned = await _act(app, push, watched, delivery_id)
    except OpsmithError as error:
        store.settle(delivery_id, DeliveryOutcome.FAILED, error.message)
        app.audit.append(
            WEBHOOK_ACTOR, "webhook.failed", delivery_id, {"repository": repository, "error": error.message}
        )
        raise
    plan_id = replanned.plan.id if replanned.plan else None
    store.settle(delivery_id, replanned.outcome, replanned.detail, plan_id)
    app.audit.append(
        WEBHOOK_ACTOR,
        "webhook.push",
        delivery_id,
        {**summary, "repository": repository, "outcome": replanned.outcome.value, "plan": plan_id},
    )
    return WebhookOutcome(
        delivery_id=delivery_id,
        event="push",
        outcome=replanned.outcome,
        detail=replanned.detail,
        replanned=replanned,
    )


async def handle_quietly(app: App, delivery_id: str) -> WebhookOutcome | None:
    """`handle_delivery` in the background: what went wrong is logged (and, for opsmith's own
    errors, recorded on the delivery), never raised; None then."""
    try:
        return await handle_delivery(app, delivery_id)
    except OpsmithError as error:
        _log.warning("webhook delivery %s failed: %s", delivery_id, error.message)
    except Exception as error:  # a bug must not stop the worker; the record stays received, retaken later
        _log.error(
            "webhook delivery %s failed unexpectedly: %s",
            delivery_id,
            "".join(traceback.format_exception(error)),
        )
    return None


async def recover_deliveries(app: App) -> list[WebhookOutcome]:
    """Handle the pushes recorded but never settled whose handler is gone (a server that stopped
    mid-way; at `opsmith serve`'s start, then every few minutes). One that a live process on this
    host holds is left to it; one a process on another host holds, until ABANDONED_AFTER has
    passed since it came (a re-plan takes seconds). Each is taken first (compare-and-set), so two
    servers handle it once."""
    if app.webhooks is None or app.config.webhooks.github is None:
        return []
    done = []
    for record in app.webhooks.unhandled():
        if not _abandoned(record.detail, app.clock.now() - record.received_at):
            continue
        if not app.webhooks.take(record.delivery_id, HANDLING + _HANDLER, seen=record.detail):
            continue  # another process took it first
        _log.info("handling webhook delivery %s, left unhandled by %s", record.delivery_id, record.detail)
        outcome = await handle_quietly(app, record.delivery_id)
        if outcome is not None:
            done.append(outcome)
    return done


def _abandoned(detail: str, age: timedelta) -> bool:
    if not detail.startswith(HANDLING):
        return True  # recorded by an opsmith that did not say who handles it
    holder = detail.removeprefix(HANDLING)
    if holder == _HANDLER:
        return False
    if holder.partition(":")[0] != _HANDLER.partition(":")[0]:
        # Whether a process on another host lives cannot be asked: only time tells it is gone.
        return age > ABANDONED_AFTER
    same_process = holder.rsplit(":", 1)[0] == _HANDLER.rsplit(":", 1)[0]  # an earlier incarnation
    return same_process or owner_is_gone(holder)


def delivery_status(app: App, delivery_id: str) -> dict[str, Any]:
    """A delivery as recorded: its outcome and detail, the plan it led to and why (the re-plan
    record), without the commits it carried."""
    record = _store(app).delivery(delivery_id)
    if record is None:
        raise NotFoundError(f"no webhook delivery {delivery_id!r}", hint="GitHub shows the ids it sent")
    found: dict[str, Any] = record.model_dump(mode="json")
    if found.get("push"):
        found["push"] = {k: v for k, v in found["push"].items() if k != "commits"}
    replan = None if record.plan_id is None else _store(app).replan(record.plan_id)
    found["replan"] = None if replan is None else replan.model_dump(mode="json")
    return found


def _push_of(record: DeliveryRecord) -> Push:
    kept = record.push or {}
    try:
        commits = kept.get("commits")
        if commits is None:  # recorded before the commits were kept: their net effect as one commit
            commits = [
                {
                    "id": kept["after"],
                    "message": kept.get("message", ""),
                    **{k: kept.get(k, []) for k in ("added", "modified", "removed")},
                }
            ]
        return Push(
            repository=record.repository or "",
            ref=kept["ref"],
            before=kept["before"],
            after=kept["after"],
            pusher=kept.get("pusher", ""),
            commits=tuple(PushCommit.model_validate(c) for c in commits),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedPayload(
            f"the recorded push of delivery {record.delivery_id} cannot be read: {exc}",
            hint="deliver the push again from GitHub (its Recent Deliveries)",
        ) from exc


def _unwatched(repository: str) -> UnwatchedRepository:
    return UnwatchedRepository(
        f"pushes to {repository} are not watched",
        hint="list it under webhooks.github.repositories (owner/name: {application: APP, branches: [main]})",
    )


async def _act(app: App, push: Push, watched: WatchedRepository, delivery_id: str) -> Replanned:
    if push.branch is None or push.branch not in watched.branches:
        where = f"branch {push.branch}" if push.branch else f"{push.ref} (not a branch)"
        return Replanned(
            DeliveryOutcome.IGNORED, f"{where} is not watched; watched: {', '.join(watched.branches)}"
        )
    if push.deletes_branch:
        return Replanned(DeliveryOutcome.IGNORED, f"the push deletes {push.branch}: nothing to deploy")
    return await replan_after_push(
        app,
        push,
        application=watched.application,
        environment=watched.environment,
        always=watched.replan == "always",
        delivery_id=delivery_id,
    )


def _ignored_event(app: App, delivery_id: str, kind: str, body: bytes) -> WebhookOutcome:
    store = _store(app)
    detail = f"event {kind!r} is not acted on (opsmith acts on push, and answers ping)"
    record = DeliveryRecord(
        delivery_id=delivery_id,
        event=kind[:64],
        repository=repository_of(read_json(body)),
        received_at=app.clock.now(),
        outcome=DeliveryOutcome.IGNORED,
        detail=detail,
    )
    if not store.claim(record):
        raise DeliveryReplayed(f"delivery {delivery_id} was accepted before", hint="send a new delivery id")
    return WebhookOutcome(delivery_id=delivery_id, event=kind, outcome=DeliveryOutcome.IGNORED, detail=detail)


def _settings(app: App) -> GithubWebhookConfig:
    settings = app.config.webhooks.github
    if settings is None:
        raise ConfigError(
            "GitHub webhooks are not configured",
            hint="add to opsmith.yaml: webhooks: {github: {secret: ${GITHUB_WEBHOOK_SECRET},"
            " repositories: {...}}}",
        )
    return settings


def _secret(app: App, settings: GithubWebhookConfig) -> str:
    secret = resolve(settings.secret, app.environ, where="webhooks.github.secret")
    if not secret:
        raise ConfigError(
            f"webhooks.github.secret ({settings.secret}) is empty", hint="set it to the webhook's secret"
        )
    return secret


def _store(app: App) -> Any:
    if app.webhooks is None:
        raise ConfigError(
            "this opsmith keeps no webhook deliveries", hint="run it with a database (opsmith serve)"
        )
    return app.webhooks


def _push_summary(push: Push) -> dict[str, Any]:
    changes = push.changes
    return {
        "ref": push.ref,
        "before": push.before,
        "after": push.after,
        "pusher": push.pusher,
        "message": push.head_message,
        "added": list(changes.added),
        "modified": list(changes.modified),
        "removed": list(changes.removed),
    }


# -- the re-plan -----------------------------------------------------------------------------------


async def replan_after_push(
    app: App,
    push: Push,
    *,
    application: str,
    environment: str,
    always: bool = False,
    delivery_id: str | None = None,
    identity: Identity | None = None,
) -> Replanned:
    """Plan `application`'s deployment to `environment` again after `push`, when the newest attempt
    that ran failed (or was rolled back) and the push addresses its root cause (or `always`). The
    plan is made as `identity` (default: the user webhooks.github.as_user names, with its role)."""
    from opsmith.services.explain import explain_run
    from opsmith.services.history import last_failed
    from opsmith.services.identity import acting_as

    who = identity or acting_as(app, _as_user(app))
    failed = last_failed(app, application, environment)
    if failed is None:
        return Replanned(
            DeliveryOutcome.NO_FAILED_RUN,
            f"the newest deployment of {application} to {environment} did not fail: nothing to re-plan",
        )
    old_plan, old_run = failed
    analysis = await explain_run(app, who, old_run.run_id)
    cause = root_cause_of(analysis)
    match = match_cause(cause, push.changes)
    if match.verdict is not Verdict.ADDRESSED and not always:
        return Replanned(
            DeliveryOutcome.NOT_ADDRESSED,
            f"no plan: the push {push.after[:7]} does not address why run {old_run.run_id} failed"
            f" ({'; '.join(match.reasons)})",
        )
    scans = _scans(old_plan, old_run, push)
    lessons = Lessons(
        failed_plan_id=old_plan.id,
        failed_run_id=old_run.run_id,
        push=push,
        cause=cause,
        match=match,
        scans=tuple(scans),
        outputs={s.scan.step: dict(old_run.steps[s.scan.step].output or {}) for s in scans},
    )
    plan = await _plan_again(app, who, old_plan, lessons)
    difference = plan_difference(old_plan, plan)
    record = ReplanRecord(
        plan_id=plan.id,
        application=application,
        environment=environment,
        failed_plan_id=old_plan.id,
        failed_run_id=old_run.run_id,
        delivery_id=delivery_id,
        repository=push.repository,
        ref=push.ref,
        before=push.before,
        after=push.after,
        pusher=push.pusher,
        head_message=push.head_message,
        changes=push.changes,
        cause=cause,
        match=match,
        reused=[s for s in plan.skipped if s not in old_plan.skipped],
        rescanned=[f"{s.scan.step}: {s.reason}" for s in scans if not s.reusable],
        difference=difference.summary,
        created_at=app.clock.now(),
    )
    if app.webhooks is not None:
        app.webhooks.add_replan(record)
    auto = plan.status is PlanStatus.APPROVED
    app.audit.append(
        who.user,
        "plan.replanned",
        plan.id,
        {
            "hash": plan.hash,
            "from_plan": old_plan.id,
            "failed_run": old_run.run_id,
            "before": push.before,
            "after": push.after,
            "verdict": match.verdict.value,
            "cause": cause.root_cause,
            "delivery": delivery_id,
            "status": plan.status.value,
        },
    )
    if auto:
        # Only the approval policy lets a plan through unapproved; said here, so the trail shows it.
        app.audit.append(
            who.user, "plan.auto_approved", plan.id, {"hash": plan.hash, "policy": plan.approval_reasons}
        )
    said = "addresses" if match.verdict is Verdict.ADDRESSED else "does NOT address"
    return Replanned(
        DeliveryOutcome.REPLANNED,
        f"plan {plan.id} ({plan.status.value}): the push {push.after[:7]} {said} why run {old_run.run_id}"
        f" failed; {difference.summary}",
        plan=plan,
        record=record,
        difference=difference,
        auto_approved=auto,
    )


def root_cause_of(analysis: Analysis) -> RootCause:
    """What of an analysis a push is compared with: its cause, the file and Dockerfile line of its fix."""
    top = analysis.findings[0] if analysis.explained and analysis.findings else None
    return RootCause(
        run_id=analysis.run_id,
        plan_id=analysis.plan_id,
        explained=analysis.explained,
        error_type=analysis.error_type,
        rule=top.rule if top else None,
        root_cause=analysis.root_cause,
        file=analysis.fix.file if analysis.fix else None,
        dockerfile=analysis.fix.dockerfile if analysis.fix else None,
        citation=top.cited.citation if top else None,
    )


def _scans(plan: Plan, run: RunState, push: Push) -> list[ScanReuse]:
    found = []
    for step in plan.steps:
        state = run.steps.get(step.id)
        if step.capability not in SCAN_CAPABILITIES or state is None:
            continue
        if state.status is not StepStatus.SUCCEEDED or not state.output:
            continue
        record = scan_record(step.id, step.capability, run.run_id, f"{step.server}/{step.tool}", state.output)
        found.append(scan_reuse(record, push))
    return found


async def _plan_again(app: App, who: Identity, old: Plan, lessons: Lessons) -> Plan:
    from opsmith.planner.policy import approval_rule
    from opsmith.services.planning import make_plan

    rule = approval_rule(app.config)

    def revise(plan: Plan, catalog: Catalog) -> Plan:
        return relearned(plan, lessons, accepts=_accepted(plan, catalog), rule=rule)

    return await make_plan(app, who, old.request, dict(old.overrides), revise=revise)


def _accepted(plan: Plan, catalog: Catalog) -> Mapping[str, frozenset[str]]:
    accepted: dict[str, frozenset[str]] = {}
    for step in plan.steps:
        tool = catalog.get(step.server, step.tool)
        properties = tool.input_schema.get("properties") if tool else None
        accepted[step.id] = frozenset(properties) if isinstance(properties, dict) else frozenset()
    return accepted


def _as_user(app: App) -> str:
    settings = app.config.webhooks.github
    return settings.as_user if settings else "github-webhook"


async def replay_file(
    app: App, body: bytes, *, event: str = "push", delivery: str | None = None
) -> WebhookOutcome:
    """`opsmith webhook replay`: `body` signed with the configured secret and handled exactly as a
    delivery to the endpoint is (the same checks, the same record); a new delivery id unless given."""
    import uuid

    from opsmith.domain.push import signature_of

    signature = signature_of(_secret(app, _settings(app)), body)
    return await receive_github(
        app, event=event, delivery=delivery or f"replay-{uuid.uuid4()}", signature=signature, body=body
    )

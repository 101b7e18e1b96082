"""Make, store and amend plans: the planner fed with the live catalog, the clock and the history."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from opsmith.bootstrap import App
from opsmith.domain.approval import plan_is_sealed
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import UnknownNameError, UsageError
from opsmith.domain.identity import Action, Identity
from opsmith.domain.inventory import Inventory
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.servers import Health
from opsmith.planner.bindings import load_bindings
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from opsmith.services.access import require

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)?$")


_UNREAD: Any = object()  # planner_for's inventory not given: read it


def planner_for(app: App, inventory: Inventory | None = _UNREAD) -> Planner:
    """A planner over the playbooks, the binding sets, the known applications and the fleet's
    inventory (`inventory`: `fleet_inventory(app)` when the caller read it already). The one made
    for an earlier plan while none of these nor the configuration changed (`app.warm`): the files
    are stat'ed and the applications and inventory read on every call, only the building is saved."""
    from opsmith.services.applications import known_applications
    from opsmith.services.inventory import fleet_inventory

    config = app.config
    # Loaded through the parse cache: an unchanged file is the very object it was last time.
    playbooks = load_playbooks(config.planning.playbook_dirs)
    bindings = load_bindings(config.planning.bindings, config.planning.binding_dirs)
    applications = known_applications(app)
    fleet = fleet_inventory(app) if inventory is _UNREAD else inventory
    return app.warm.planner.get(
        (config, tuple(playbooks), tuple(bindings), tuple(applications), fleet),
        lambda: Planner(config, playbooks, bindings, applications=applications, inventory=fleet),
    )


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` or `step.key=value`; values are YAML scalars (5 -> int, true -> bool)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not _KEY.match(key.strip()):
            raise UsageError(
                f"--set {item!r} is not key=value",
                hint="e.g. --set replicas=3 or --set deploy.image=myorg/app:v2",
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML: the text as written
        if isinstance(value, dict | list) or value is None:
            value = raw
        result[key.strip()] = value
    return result


def checked_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values given as a mapping (the API's `set`): the same names `--set` accepts, scalars only."""
    for key, value in values.items():
        if not _KEY.match(key):
            raise UsageError(
                f"{key!r} is not a value name", hint="e.g. replicas, image, or STEP.ARG like deploy.image"
            )
        if isinstance(value, dict | list) or value is None:
            raise UsageError(f"{key}: give a single value, not {type(value).__name__}")
    return dict(values)


async def make_plan(
    app: App,
    identity: Identity,
    request: str,
    overrides: dict[str, Any],
    *,
    plan_id: str | None = None,
    revise: Callable[[Plan, Catalog], Plan] | None = None,
) -> Plan:
    """Plan a request as `identity` and store it. Plans from the recorded catalog while it is fresh
    (the run checks every tool again before calling it); otherwise starts the servers to discover.
    `revise`: changes the planned plan before it is stored (a re-plan after a push)."""
    require(app, identity, Action.PLAN, hint="ask an admin for a role that may plan")
    return await _plan(
        app, identity, request, overrides, plan_id=plan_id, requested_by=identity.user, revise=revise
    )


async def _plan(
    app: App,
    identity: Identity,
    request: str,
    overrides: dict[str, Any],
    *,
    plan_id: str | None = None,
    requested_by: str,
    amended_by: list[str] | None = None,
    amended_from: str | None = None,
    revise: Callable[[Plan, Catalog], Plan] | None = None,
) -> Plan:
    from opsmith.services.applications import discover_applications
    from opsmith.services.discovery import recorded_catalog, running_servers, statuses
    from opsmith.services.inventory import fleet_inventory

    inventory = fleet_inventory(app)  # read once: the planner and the catalog both need it
    recorded = recorded_catalog(app, fleet=inventory is not None)
    planner = planner_for(app, inventory)
    try:
        planner.check(request)  # refuse bad requests before starting anything
    except UnknownNameError:
        if recorded is not None or not app.config.planning.list_applications:
            raise  # the names recorded with a fresh catalog are as fresh: nothing more to learn
    down: frozenset[str] = frozenset()  # a recorded catalog is used only when every server answered
    listing: list[str] = []
    reusable = recorded is not None  # a discovery may list applications the planner must know
    if recorded is None:
        async with running_servers(app) as pool:
            seen = statuses(app, pool)
            degraded = frozenset(s.name for s in seen if s.health is Health.DEGRADED)
            down = frozenset(s.name for s in seen if s.health is Health.DOWN)
            listing = await discover_applications(app, identity, pool, planner.bindings)
            # A copy: stopping the servers empties the pool's own catalog.
            recorded = Catalog(pool.catalog.tools()), degraded
    catalog, degraded = recorded
    plan = plan_with(
        app,
        catalog,
        degraded,
        request,
        overrides,
        down=down,
        plan_id=plan_id,
        requested_by=requested_by,
        amended_by=amended_by,
        amended_from=amended_from,
        notes=listing,
        planner=planner if reusable else None,
        revise=revise,
    )
    return plan


def plan_with(
    app: App,
    catalog: Catalog,
    degraded: frozenset[str],
    request: str,
    overrides: dict[str, Any],
    *,
    down: frozenset[str] = frozenset(),
    plan_id: str | None = None,
    requested_by: str = "",
    amended_by: list[str] | None = None,
    amended_from: str | None = None,
    notes: Sequence[str] = (),
    planner: Planner | None = None,
    revise: Callable[[Plan, Catalog], Plan] | None = None,
) -> Plan:
    """Plan over a catalog, and store the plan. `down`: configured servers that did not answer;
    `notes`: what discovery could not do (an application listing that failed), for the warnings;
    `planner`: one already made, when nothing it knows (the applications) changed since."""
    planner = planner or planner_for(app)
    intent = planner.check(request)
    now = app.clock.now().astimezone()
    window = app.config.planning.recent_failure_days
    environment = intent.environment or ""
    taken, failed = app.plans.history(f"plan_{intent.action}_", intent.subjects, environment, window, now)
    situation = Situation(
        durations=past_durations(app),
        catalog=catalog,
        now=now,
        degraded=degraded,
        down=down,
        recent_failures={(subject, environment): count for subject, count in failed.items()},
        taken_ids=taken,
    )
    plan = planner.plan(request, situation, overrides)
    if revise is not None:
        plan = revise(plan, catalog)
    plan = plan.model_copy(
        update={
            "requested_by": requested_by,
            "amended_by": amended_by or [],
            "amended_from": amended_from,
            "warnings": [*plan.warnings, *notes],
        }
    )
    if plan_id is not None:
        plan = plan.model_copy(update={"id": plan_id})
    app.plans.save(plan)
    from opsmith.services.notifications import notify_plan

    notify_plan(app, plan)  # an approval request, when it waits for one
    return plan


async def make_manual_plan(app: App, identity: Identity, text: str, *, source: str) -> Plan:
    """A plan written by hand (YAML or JSON steps over the catalog's tools), validated like a
    planned one (graph, tools, arguments, references), with risk, approval policy and hash."""
    from opsmith.planner.manual import plan_from_document
    from opsmith.services.discovery import recorded_catalog, running_servers, statuses

    require(app, identity, Action.PLAN, hint="ask an admin for a role that may plan")
    recorded = recorded_catalog(app)
    if recorded is None:
        async with running_servers(app) as pool:
            degraded = frozenset(s.name for s in statuses(app, pool) if s.health is Health.DEGRADED)
            recorded = Catalog(pool.catalog.tools()), degraded
    catalog, degraded = recorded
    plan = plan_from_document(
        text,
        source=source,
        catalog=catalog,
        config=app.config,
        now=app.clock.now().astimezone(),
        durations=past_durations(app),
        degraded=degraded,
        taken_ids=app.plans.ids_with_prefix("plan_manual_"),
    ).model_copy(update={"requested_by": identity.user})
    app.plans.save(plan)
    app.audit.append(identity.user, "plan.created", plan.id, {"hash": plan.hash, "source": source})
    from opsmith.services.notifications import notify_plan

    notify_plan(app, plan)
    return plan


AMENDABLE = (PlanStatus.INCOMPLETE, PlanStatus.PENDING_APPROVAL, PlanStatus.APPROVED)


async def amend_plan(app: App, identity: Identity, plan_id: str, overrides: dict[str, Any]) -> Plan:
    """The same request planned again with more --set values; the hash changes, so approvals of the
    old version no longer count. Only a plan that has not started may change; it keeps its requester
    (an amender never becomes the requester, who may not approve their own plan)."""
    require(app, identity, Action.PLAN, hint="ask an admin for a role that may plan")
    old = app.plans.get(plan_id)
    if old.playbook == "manual":
        raise UsageError(
            f"plan {old.id} was written by hand; it has no request to plan again",
            hint="edit the file and run: opsmith plan --file PLAN.yaml",
        )
    if not plan_is_sealed(old, app.seal):
        raise UsageError(
            f"plan {old.id} was changed outside opsmith: its signature does not verify",
            hint=f"plan the request again: opsmith plan {old.request!r}",
        )
    # The newest value wins: `replicas=7` now replaces an earlier `scale.replicas=40` too.
    kept = {k: v for k, v in old.overrides.items() if k.rsplit(".", 1)[-1] not in overrides}
    merged = {**kept, **overrides}
    amenders = [*old.amended_by, *([identity.user] if identity.user not in old.requesters else [])]
    if old.status in AMENDABLE:
        plan = await _plan(
            app,
            identity,
            old.request,
            merged,
            plan_id=old.id,
            requested_by=old.requested_by,
            amended_by=amenders,
        )
    else:
        # A closed or running plan stays as it was: the amended version is a new plan that says
        # where it came from, and needs approvals of its own.
        plan = await _plan(
            app,
            identity,
            old.request,
            merged,
            requested_by=old.requested_by,
            amended_by=amenders,
            amended_from=old.id,
        )
    app.audit.append(
        identity.user,
        "plan.amended",
        plan.id,
        {
            "from": old.id,
            "from_hash": old.hash,
            "hash": plan.hash,
            "set": overrides,
            "status": plan.status.value,
        },
    )
    return plan


def past_durations(app: App, window: int = 2000) -> dict[str, float]:
    """Average seconds of each tool's successful calls among the newest audit entries."""
    return app.audit.call_durations(window)

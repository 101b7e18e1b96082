"""Make, store and amend plans: the planner fed with the live catalog, the clock and the history."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.plan import Plan
from opsmith.domain.servers import Health
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks

if TYPE_CHECKING:
    from opsmith.ports import ToolProvider

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)?$")


def planner_for(app: App) -> Planner:
    return Planner(app.config, load_playbooks(app.config.planning.playbook_dirs))


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
            value = raw
        if isinstance(value, dict | list) or value is None:
            value = raw
        result[key.strip()] = value
    return result


async def make_plan(
    app: App, request: str, overrides: dict[str, Any], *, plan_id: str | None = None, requested_by: str = ""
) -> Plan:
    """Plan against the running servers and store the result (a replaced plan keeps its id)."""
    from opsmith.services.discovery import running_servers

    planner_for(app).check(request)  # refuse bad requests before starting anything
    async with running_servers(app) as pool:
        return plan_with(app, pool, request, overrides, plan_id=plan_id, requested_by=requested_by)


def plan_with(
    app: App,
    pool: ToolProvider,
    request: str,
    overrides: dict[str, Any],
    *,
    plan_id: str | None = None,
    requested_by: str = "",
) -> Plan:
    """Plan over an already running pool's catalog, and store the plan."""
    from opsmith.services.discovery import statuses

    planner = planner_for(app)
    intent = planner.check(request)
    repository = app.plans
    now = datetime.now().astimezone()
    window = app.config.planning.recent_failure_days
    environment = intent.environment or ""
    failures: dict[tuple[str, str], int] = {
        (subject, environment): repository.recent_failures(subject, environment, window, now)
        for subject in intent.subjects
    }
    situation = Situation(
        durations=past_durations(app),
        catalog=pool.catalog,
        now=now,
        degraded=frozenset(s.name for s in statuses(app, pool) if s.health is Health.DEGRADED),
        recent_failures=failures,
        taken_ids=repository.ids_with_prefix(f"plan_{intent.action}_"),
    )
    plan = planner.plan(request, situation, overrides).model_copy(update={"requested_by": requested_by})
    if plan_id is not None:
        plan = plan.model_copy(update={"id": plan_id})
    repository.save(plan)
    return plan


async def amend_plan(app: App, plan_id: str, overrides: dict[str, Any], requested_by: str = "") -> Plan:
    """The same request planned again with more --set values; the hash (and any approval) changes."""
    old = app.plans.get(plan_id)
    merged = {**old.overrides, **overrides}
    return await make_plan(app, old.request, merged, plan_id=old.id, requested_by=requested_by)


def past_durations(app: App, window: int = 2000) -> dict[str, float]:
    """Average seconds of each tool's successful calls among the newest audit entries."""

    totals: dict[str, list[float]] = {}
    for entry in app.audit.entries(limit=window):
        details = entry.details
        if entry.action == "tool.called" and details.get("ok") and isinstance(details.get("ms"), int | float):
            totals.setdefault(str(details.get("tool")), []).append(float(details["ms"]) / 1000)
    return {tool: sum(values) / len(values) for tool, values in totals.items()}

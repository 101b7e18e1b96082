"""What `/metrics` reports, read from the store at each scrape: nothing counted in memory is lost
when the server restarts, and runs driven by other processes count too."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmith.bootstrap import App
from opsmith.domain.plan import PlanStatus
from opsmith.domain.servers import ServerStatus
from opsmith.engine.state import RunStatus


@dataclass(frozen=True)
class ToolCalls:
    calls: int = 0
    errors: int = 0
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Snapshot:
    runs: dict[str, int]
    approvals_waiting: int
    tools: dict[str, ToolCalls]  # "server/tool" -> its calls in the window
    window: int  # how many of the newest audit entries the tool figures come from


def snapshot(app: App, window: int = 5000) -> Snapshot:
    journal = app.journal()
    runs = {status.value: len(journal.ids([status])) for status in RunStatus}
    waiting = len(app.plans.list(PlanStatus.PENDING_APPROVAL, limit=10_000))
    tools: dict[str, ToolCalls] = {}
    for entry in app.audit.entries(limit=window):
        if entry.action != "tool.called":
            continue
        details = entry.details
        name = str(details.get("tool", "?"))  # "server/tool"
        seen = tools.get(name, ToolCalls())
        ms = details.get("ms")
        ok = bool(details.get("ok"))
        tools[name] = ToolCalls(
            calls=seen.calls + 1,
            errors=seen.errors + (0 if ok else 1),
            seconds=[*seen.seconds, float(ms) / 1000] if ok and isinstance(ms, int | float) else seen.seconds,
        )
    return Snapshot(runs=runs, approvals_waiting=waiting, tools=tools, window=window)


def health(statuses: list[ServerStatus]) -> dict[str, str]:
    return {s.name: s.health.value for s in statuses}

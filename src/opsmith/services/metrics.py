"""What `/metrics` reports, read from the store at each scrape: nothing counted in memory is lost
when the server restarts, and runs driven by other processes count too. The tool figures are summed
by the database (`AuditTrail.tool_calls`): a scrape reads no audit entry, however long the trail."""

from __future__ import annotations

from dataclasses import dataclass

from opsmith.bootstrap import App
from opsmith.domain.call_stats import CallStats
from opsmith.domain.plan import PlanStatus
from opsmith.domain.servers import ServerStatus
from opsmith.engine.state import RunStatus

# Upper bounds (seconds) of the step-duration histogram's buckets; +Inf is added by the face.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Snapshot:
    runs: dict[str, int]
    approvals_waiting: int
    tools: dict[str, CallStats]  # "server/tool" -> its calls in the window, `within` per BUCKETS
    window: int  # how many of the newest audit entries the tool figures come from


def snapshot(app: App, window: int = 5000) -> Snapshot:
    journal = app.journal()
    runs = {status.value: len(journal.ids([status])) for status in RunStatus}
    waiting = app.plans.count(PlanStatus.PENDING_APPROVAL)
    tools = app.audit.tool_calls(window, BUCKETS)
    return Snapshot(runs=runs, approvals_waiting=waiting, tools=tools, window=window)


def health(statuses: list[ServerStatus]) -> dict[str, str]:
    return {s.name: s.health.value for s in statuses}

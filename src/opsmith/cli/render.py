"""Rich views of servers and tools. Every figure shown comes from the objects passed in."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.servers import Health, ServerStatus

_HEALTH_STYLE = {
    Health.UP: "green",
    Health.DEGRADED: "yellow",
    Health.DOWN: "red",
    Health.STOPPED: "dim",
    Health.STARTING: "cyan",
}


def status_table(statuses: list[ServerStatus]) -> Table:
    table = Table(title="MCP servers", title_justify="left")
    for column in ("server", "transport", "status", "tools", "uptime", "restarts", "reason / last error"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        uptime = f"{s.uptime_seconds:.1f}s" if s.uptime_seconds is not None else "-"
        why = s.reason or s.last_error or ""
        table.add_row(
            s.name,
            s.transport,
            Text(s.health.value, style=_HEALTH_STYLE[s.health]),
            str(s.tool_count),
            uptime,
            str(s.restarts),
            why,
        )
    return table


def tools_table(tools: list[ToolSpec]) -> Table:
    table = Table(title=f"{len(tools)} tools", title_justify="left")
    for column in ("server", "tool", "risk hints", "description"):
        table.add_column(column, overflow="fold")
    for tool in tools:
        table.add_row(tool.server, tool.name, ", ".join(tool.hints.labels()), tool.summary)
    return table


def catalog_panels(catalog: Catalog, titles: dict[str, str], shown: int = 5) -> Group:
    """One box per server, as seed 001's 'Available Tools Discovery' shows them."""
    panels = []
    for server in catalog.servers():
        tools = catalog.tools(server)
        if not tools:
            continue
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=2 + max(len(t.name) for t in tools[:shown]))
        grid.add_column(no_wrap=True, overflow="ellipsis", max_width=60)
        for tool in tools[:shown]:
            grid.add_row(f"• {tool.name}", f": {tool.summary}")
        body: list[Table | Text] = [grid]
        if len(tools) > shown:
            body.append(Text(f"... ({len(tools) - shown} more tools: opsmith tools --server {server})"))
        title = f"{titles.get(server, server)} - {len(tools)} Tools Available"
        panels.append(Panel(Group(*body), title=title, title_align="left", expand=False))
    return Group(*panels)

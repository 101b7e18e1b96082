"""Start the servers an operator has not stopped, keep the store's view of them current."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from opsmith.bootstrap import App
from opsmith.domain.servers import Health, ServerStatus
from opsmith.ports import ToolProvider

DISABLED_REASON = "stopped by an operator; `opsmith servers start {name}` brings it back"
CONFIG_DISABLED_REASON = "disabled in the configuration (disabled: true)"


@asynccontextmanager
async def running_servers(app: App, names: Iterable[str] | None = None) -> AsyncIterator[ToolProvider]:
    """A provider with the wanted servers started; all of them stopped again on exit."""
    wanted = list(names) if names is not None else list(app.config.mcp_servers)
    for name in wanted:
        app.config.server(name)  # unknown names fail before anything starts
    off = off_names(app)
    async with app.tools.open([n for n in wanted if n not in off]) as pool:
        record(app, pool)
        yield pool


def off_names(app: App) -> set[str]:
    configured = {n for n, spec in app.config.mcp_servers.items() if spec.disabled}
    return configured | (app.servers.disabled() & set(app.config.mcp_servers))


def statuses(app: App, pool: ToolProvider, names: Iterable[str] | None = None) -> list[ServerStatus]:
    """Every configured server's status, with the reason a server is deliberately off."""
    operator_off = app.servers.disabled()
    result = []
    for status in pool.statuses():
        if names is not None and status.name not in names:
            continue
        if app.config.mcp_servers[status.name].disabled:
            status = status.model_copy(update={"health": Health.STOPPED, "reason": CONFIG_DISABLED_REASON})
        elif status.name in operator_off:
            reason = DISABLED_REASON.format(name=status.name)
            status = status.model_copy(update={"health": Health.STOPPED, "reason": reason})
        result.append(status)
    return result


def record(app: App, pool: ToolProvider) -> None:
    app.servers.record(statuses(app, pool))
    for name in pool.catalog.servers():
        app.servers.replace_tools(name, pool.catalog.tools(name))

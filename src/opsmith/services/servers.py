"""Servers: their status (started for the check), and an operator's stop and start, audited."""

from __future__ import annotations

from opsmith.bootstrap import App
from opsmith.domain.catalog import ToolSpec
from opsmith.domain.identity import Action, Identity
from opsmith.domain.servers import ServerStatus
from opsmith.services.access import require
from opsmith.services.discovery import running_servers, statuses


async def server_statuses(app: App, names: list[str] | None = None) -> list[ServerStatus]:
    """Start the enabled servers among `names` (all when None), report each one, stop them again."""
    async with running_servers(app, names) as pool:
        return statuses(app, pool, names)


async def tool_catalog(app: App, server: str | None = None) -> tuple[list[ToolSpec], list[ServerStatus]]:
    """The tools of the running servers (one server's when named), and those servers' health."""
    names = [server] if server else None
    async with running_servers(app, names) as pool:
        return pool.catalog.tools(server), statuses(app, pool, names)


async def set_servers_enabled(
    app: App, identity: Identity, names: list[str] | None, enabled: bool
) -> list[ServerStatus]:
    """Mark servers wanted (started to check they come up) or stopped (opsmith will not use them)."""
    require(app, identity, Action.EXECUTE, hint="starting and stopping servers is an operator's action")
    chosen = names if names is not None else list(app.config.mcp_servers)
    for name in chosen:
        app.config.server(name)  # every name is checked before any is changed
    for name in chosen:
        app.servers.set_enabled(name, enabled)
        app.audit.append(identity.user, "server.started" if enabled else "server.stopped", name, {})
    return await server_statuses(app, chosen)

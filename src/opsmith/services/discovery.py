"""Start the servers an operator has not stopped, keep the store's view of them current."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from opsmith.bootstrap import App
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.servers import Health, ServerStatus
from opsmith.ports import ToolProvider

DISABLED_REASON = "stopped by an operator; `opsmith servers start {name}` brings it back"
CONFIG_DISABLED_REASON = "disabled in the configuration (disabled: true)"


@asynccontextmanager
async def running_servers(app: App, names: Iterable[str] | None = None) -> AsyncIterator[ToolProvider]:
    """A provider with the wanted servers started; all of them stopped again on exit."""
    wanted = list(names) if names is not None else list(app.config.mcp_servers)
    for name in wanted:
        known_server(app, name)  # unknown names fail before anything starts
    off = off_names(app)
    async with app.tools.open([n for n in wanted if n not in off]) as pool:
        record(app, pool)
        yield pool


def known_server(app: App, name: str) -> None:
    """UnknownServerError unless `name` is a configured MCP server, or the fleet's `hosts` while
    the inventory has hosts."""
    if name == "hosts":
        from opsmith.services.inventory import fleet_in_use

        if fleet_in_use(app):
            return
    app.config.server(name)


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
        spec = app.config.mcp_servers.get(status.name)  # None: the fleet's `hosts`, not an MCP server
        if spec is not None and spec.disabled:
            status = status.model_copy(update={"health": Health.STOPPED, "reason": CONFIG_DISABLED_REASON})
        elif status.name in operator_off:
            reason = DISABLED_REASON.format(name=status.name)
            status = status.model_copy(update={"health": Health.STOPPED, "reason": reason})
        result.append(status)
    return result


def record(app: App, pool: ToolProvider) -> None:
    """Keep the store's view current: health, the configuration, the tools of servers that answered."""
    # MCP servers only: the fleet's tools are the script library's, known without discovery.
    seen = [s for s in statuses(app, pool) if s.name in app.config.mcp_servers]
    answered = {s.name for s in seen if s.health in (Health.UP, Health.DEGRADED)}
    hashes = {name: config_hash(app, name) for name in answered}
    app.servers.record(seen, hashes)
    recorded: dict[str, list[ToolSpec]] = {}
    for tool in app.servers.known_tools():
        recorded.setdefault(tool.server, []).append(tool)
    for name in pool.catalog.servers():
        if name not in answered:
            continue
        tools = pool.catalog.tools(name)
        # Unchanged tools are not written again: a served process records every few seconds, and
        # each rewrite is a commit on the event loop and a new catalog for the next plan to read.
        before = recorded.get(name, [])
        if len(tools) != len(before) or _by_name(tools) != _by_name(before):
            app.servers.replace_tools(name, tools)


def _by_name(tools: list[ToolSpec]) -> dict[str, ToolSpec]:
    return {tool.name: tool for tool in tools}


def config_hash(app: App, name: str) -> str:
    """A server's configuration as written (templates, not resolved secrets), hashed."""
    spec = app.config.server(name)
    return "sha256:" + hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def recorded_catalog(app: App, *, fleet: bool | None = None) -> tuple[Catalog, frozenset[str]] | None:
    """The catalog the last discovery recorded, with the servers that were degraded, if it may be
    planned from: every wanted server answered under today's configuration within
    `planning.catalog_max_age` seconds. None means: discover. `fleet`: whether the fleet is in use,
    when the caller knows (else it is read). The catalog may be the one an earlier call returned
    (`app.warm`): read it, never change it."""
    max_age = app.config.planning.catalog_max_age
    if max_age <= 0:
        return None
    off = off_names(app)
    wanted = [n for n in app.config.mcp_servers if n not in off]
    seen = {r.name: r for r in app.servers.recorded()}
    now = app.clock.now()
    for name in wanted:
        found = seen.get(name)
        if (
            found is None
            or found.health not in (Health.UP, Health.DEGRADED)
            or found.checked_at is None
            or (now - found.checked_at).total_seconds() > max_age
            or found.config_hash != config_hash(app, name)
        ):
            return None
    tools = app.servers.known_tools()  # one query for every server's tools
    if fleet is None:
        from opsmith.services.inventory import fleet_in_use

        fleet = fleet_in_use(app)
    in_use = bool(fleet)
    # The catalog of the last call while the same tools are recorded for the same servers: its word
    # index is built once, not for every plan. The recorded tools are the store's own (unchanged,
    # the same objects), so the stamp compares by identity.
    catalog = app.warm.catalog.get(
        (tuple(app.config.mcp_servers), tuple(wanted), tuple(tools), in_use),
        lambda: _catalog(list(app.config.mcp_servers), set(wanted), tools, fleet=in_use),
    )
    degraded = frozenset(n for n in wanted if seen[n].health is Health.DEGRADED)
    return catalog, degraded


def _catalog(configured: list[str], wanted: set[str], tools: list[ToolSpec], *, fleet: bool) -> Catalog:
    known: dict[str, list[ToolSpec]] = {name: [] for name in configured}
    for tool in tools:
        if tool.server in wanted:
            known[tool.server].append(tool)
    catalog = Catalog()
    for name, found in known.items():
        catalog.replace_server(name, found)
    if fleet:  # the fleet's tools are the script library's: never discovered, always known
        from opsmith.domain.host_tools import HOSTS_SERVER, host_tools

        catalog.replace_server(HOSTS_SERVER, host_tools())
    return catalog

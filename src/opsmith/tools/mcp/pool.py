"""All configured MCP servers: started concurrently, one catalog, calls checked before sending."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opsmith.config import Config
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import Health, ServerStatus
from opsmith.errors import ServerUnavailableError, ToolArgumentsError, UnknownToolError
from opsmith.tools.arguments import check_arguments
from opsmith.tools.mcp.connection import ServerConnection

if TYPE_CHECKING:
    from opsmith.ports import Progress


class ServerPool:
    """The MCP adapter of the ToolProvider port."""

    def __init__(self, config: Config, environ: Mapping[str, str]) -> None:
        self._config = config
        self.catalog = Catalog()
        for name in config.mcp_servers:
            self.catalog.replace_server(name, [])  # fixes the display order to the config's
        self._connections = {
            name: ServerConnection(
                name,
                spec,
                environ=environ,
                log_dir=config.log_dir,
                supervision=config.supervision,
                on_tools=self.catalog.replace_server,
            )
            for name, spec in config.mcp_servers.items()
        }

    @property
    def names(self) -> list[str]:
        return list(self._connections)

    async def start(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        """Start the given servers (default: all not disabled) concurrently; never raises for one."""
        chosen = (
            [self.connection(n) for n in names]
            if names is not None
            else [c for c in self._connections.values() if not c.spec.disabled]
        )
        await asyncio.gather(*(c.start() for c in chosen))
        return self.statuses()

    async def stop(self, names: Iterable[str] | None = None) -> None:
        chosen = (
            [self.connection(n) for n in names] if names is not None else list(self._connections.values())
        )
        await asyncio.gather(*(c.stop() for c in chosen))
        for connection in chosen:
            self.catalog.remove_server(connection.name)

    async def __aenter__(self) -> ServerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def statuses(self) -> list[ServerStatus]:
        return [c.status() for c in self._connections.values()]

    def connection(self, name: str) -> ServerConnection:
        self._config.server(name)  # raises UnknownServerError listing the configured names
        return self._connections[name]

    def tool(self, server: str, name: str) -> ToolSpec:
        connection = self.connection(server)
        spec = self.catalog.get(server, name)
        if spec is None:
            known = self.catalog.names(server)
            connection_status = connection.status()
            if not known and connection_status.health is not Health.UP:
                # The server is not there to ask: an operation that failed (exit 1), not bad input.
                raise ServerUnavailableError(
                    f"cannot look up {server}/{name}: server {server!r} is {connection_status.health.value}"
                    f" ({connection_status.reason})",
                    hint=f"see `opsmith servers status {server}`",
                )
            near = difflib.get_close_matches(name, known, n=3)
            raise UnknownToolError(
                f"server {server!r} has no tool {name!r}",
                hint=(f"did you mean {', '.join(near)}? " if near else "")
                + f"list them: opsmith tools --server {server}",
            )
        return spec

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
        finished: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ToolResult:
        # `progress` and `finished` are for calls that fan out over hosts; an MCP tool call is one call.
        if finished:
            raise ToolArgumentsError(
                f"{server}/{tool} was not sent: it was asked to leave out hosts an earlier attempt"
                " finished, and an MCP tool does not fan out over hosts",
                hint="only the server `hosts` takes finished hosts; call the tool without them",
            )
        spec = self.tool(server, tool)
        check_arguments(spec, arguments)
        return await self._connections[server].call(tool, arguments, timeout=timeout)

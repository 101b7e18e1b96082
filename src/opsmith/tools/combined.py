"""One ToolProvider over several: the MCP servers' pool and the fleet's `hosts`, so planning,
`opsmith tools`, `opsmith call` and the engine see one catalog and call through one door."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsmith.domain.catalog import Catalog
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import ServerStatus
from opsmith.ports import Progress, ToolProvider


class Combined:
    """The first provider is the MCP pool; each other one owns the servers its catalog names."""

    def __init__(self, first: ToolProvider, others: Sequence[ToolProvider]) -> None:
        self._first = first
        self._others = list(others)

    @property
    def catalog(self) -> Catalog:
        # Built on every read: the pool's own catalog changes as servers start, stop and restart.
        catalog = Catalog(self._first.catalog.tools())
        for other in self._others:
            for server in other.catalog.servers():
                catalog.replace_server(server, other.catalog.tools(server))
        return catalog

    def statuses(self) -> list[ServerStatus]:
        return [*self._first.statuses(), *(s for other in self._others for s in other.statuses())]

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
        for other in self._others:
            if server in other.catalog.servers():
                return await other.call(
                    server, tool, arguments, timeout=timeout, progress=progress, finished=finished
                )
        return await self._first.call(
            server, tool, arguments, timeout=timeout, progress=progress, finished=finished
        )

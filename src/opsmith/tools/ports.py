"""The ToolProvider port: what the planner and engine need from wherever tools come from."""

from __future__ import annotations

from typing import Any, Protocol

from opsmith.domain.catalog import Catalog
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import ServerStatus


class ToolProvider(Protocol):
    """Discovers tools and calls them. The real adapter is `opsmith.tools.mcp.ServerPool`."""

    @property
    def catalog(self) -> Catalog: ...

    def statuses(self) -> list[ServerStatus]: ...

    async def call(
        self, server: str, tool: str, arguments: dict[str, Any], *, timeout: float | None = None
    ) -> ToolResult:
        """Call one tool; raises ToolCallError / ServerUnavailableError / ToolArgumentsError."""
        ...

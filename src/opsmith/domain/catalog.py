"""What the configured MCP servers offer: tools with their schemas and behaviour hints."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ToolHints(BaseModel):
    """MCP tool annotations as the server declared them; None means the server said nothing."""

    model_config = ConfigDict(frozen=True)

    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    @property
    def effective_read_only(self) -> bool:
        return bool(self.read_only)

    @property
    def effective_destructive(self) -> bool:
        # The MCP spec's default for a tool that is not read-only is "may be destructive".
        if self.effective_read_only:
            return False
        return self.destructive is not False

    def labels(self) -> list[str]:
        """Short words for a table: what the hints say about the risk of calling the tool."""
        if self.read_only is None and self.destructive is None and self.idempotent is None:
            return ["unannotated"]
        words = []
        if self.effective_read_only:
            words.append("read-only")
        elif self.effective_destructive:
            words.append("destructive")
        else:
            words.append("writes")
        if self.idempotent:
            words.append("idempotent")
        if self.open_world:
            words.append("open-world")
        return words


class ToolSpec(BaseModel):
    """One tool of one server, as discovered."""

    model_config = ConfigDict(frozen=True)

    server: str
    name: str
    title: str | None = None
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    hints: ToolHints = Field(default_factory=ToolHints)

    @property
    def qualified_name(self) -> str:
        return f"{self.server}/{self.name}"

    @property
    def summary(self) -> str:
        """The first line of the description, for one-line listings."""
        text = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return text or (self.title or "")


class Catalog:
    """Tools per server; a server's part is replaced whole when it is rediscovered."""

    def __init__(self, tools: Iterable[ToolSpec] = ()) -> None:
        self._by_server: dict[str, dict[str, ToolSpec]] = {}
        for tool in tools:
            self._by_server.setdefault(tool.server, {})[tool.name] = tool

    def replace_server(self, server: str, tools: Iterable[ToolSpec]) -> None:
        self._by_server[server] = {tool.name: tool for tool in tools}

    def remove_server(self, server: str) -> None:
        self._by_server.pop(server, None)

    def servers(self) -> list[str]:
        """Servers in the order they were first added (the configuration's order)."""
        return list(self._by_server)

    def tools(self, server: str | None = None) -> list[ToolSpec]:
        """Tools in each server's own listing order: servers list their main tools first."""
        servers = [server] if server is not None else self.servers()
        return [t for s in servers for t in self._by_server.get(s, {}).values()]

    def get(self, server: str, name: str) -> ToolSpec | None:
        return self._by_server.get(server, {}).get(name)

    def names(self, server: str) -> list[str]:
        return sorted(self._by_server.get(server, {}))

    def __len__(self) -> int:
        return sum(len(tools) for tools in self._by_server.values())

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self.tools())

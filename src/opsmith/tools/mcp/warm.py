"""MCP servers that outlive each use: the ToolSource of `opsmith serve`.

The CLI starts the servers a command needs and stops them when it ends. A long-lived server keeps
one pool running instead, so planning and runs find the catalog warm. Each use still sees only the
servers it asked for: a server an operator stopped is not offered to a run that opened the pool
without it, even in the seconds before `reconcile` stops its process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from opsmith.config import Config
from opsmith.domain.catalog import Catalog
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import Health, ServerStatus
from opsmith.errors import ServerUnavailableError
from opsmith.tools.mcp.pool import ServerPool

if TYPE_CHECKING:
    from opsmith.ports import Progress

_RUNNING = (Health.UP, Health.DEGRADED, Health.STARTING)


class WarmServers:
    """One ServerPool started on demand and kept running until `close`."""

    def __init__(self, config: Config, environ: Mapping[str, str]) -> None:
        self._pool = ServerPool(config, environ)
        self._lock = asyncio.Lock()

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[_View]:
        return self._open(names)

    @asynccontextmanager
    async def _open(self, names: Sequence[str]) -> AsyncIterator[_View]:
        await self.ensure(names)
        yield _View(self._pool, frozenset(names))

    async def ensure(self, names: Iterable[str]) -> None:
        """Start those of `names` that are not running (one that gave up after its restarts is
        started afresh); concurrent callers wait for the same start."""
        async with self._lock:
            idle = [n for n in names if self._pool.connection(n).status().health not in _RUNNING]
            if idle:
                await self._pool.start(idle)

    async def reconcile(self, wanted: Iterable[str]) -> list[ServerStatus]:
        """Run exactly the `wanted` servers: start the missing ones, stop the others."""
        wanted = set(wanted)
        await self.ensure([n for n in self._pool.names if n in wanted])
        async with self._lock:
            extra = [
                n
                for n in self._pool.names
                if n not in wanted and self._pool.connection(n).status().health in _RUNNING
            ]
            if extra:
                await self._pool.stop(extra)
        return self._pool.statuses()

    def statuses(self) -> list[ServerStatus]:
        return self._pool.statuses()

    @property
    def catalog(self) -> Catalog:
        return self._pool.catalog

    async def close(self) -> None:
        async with self._lock:
            await self._pool.stop()


class _View:
    """The pool as one use sees it: the servers it opened, and no others."""

    def __init__(self, pool: ServerPool, names: frozenset[str]) -> None:
        self._pool = pool
        self._names = names
        self._catalog = Catalog()
        for name in pool.names:
            self._catalog.replace_server(name, pool.catalog.tools(name) if name in names else [])

    @property
    def catalog(self) -> Catalog:
        # Rebuilt when a server's tools changed meanwhile (a tools/list_changed notification).
        for name in self._names:
            if self._pool.catalog.tools(name) != self._catalog.tools(name):
                self._catalog.replace_server(name, self._pool.catalog.tools(name))
        return self._catalog

    def statuses(self) -> list[ServerStatus]:
        return self._pool.statuses()

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
        self._pool.connection(server)  # an unknown name is refused as such, listing the known ones
        if server not in self._names:
            raise ServerUnavailableError(
                f"server {server!r} is not in use here: an operator stopped it, or it is disabled",
                hint=f"see `opsmith servers status {server}`",
            )
        return await self._pool.call(
            server, tool, arguments, timeout=timeout, progress=progress, finished=finished
        )

"""What every sandbox server shares: honest annotations and the hold-latency-then-thread call wrapper."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.types import ToolAnnotations

from opsmith.sandbox.cli import ServerOptions
from opsmith.sandbox.errors import SandboxError

T = TypeVar("T")


def hints(
    title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False
) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False if read_only else destructive,
        idempotent_hint=True if read_only else idempotent,
        # A closed sandbox: no tool reaches anything outside the world directory.
        open_world_hint=False,
    )


def reads(title: str) -> ToolAnnotations:
    return hints(title, read_only=True)


class Caller:
    """Waits for a held tool's file, sleeps the configured latency (so demos are watchable), then
    runs world code off the event loop."""

    POLL_SECONDS = 0.05

    def __init__(self, options: ServerOptions) -> None:
        self.options = options

    async def __call__(self, tool: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await self._held(tool)
        delay = self.options.latency_seconds(tool)
        if delay > 0:
            await anyio.sleep(delay)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def until(
        self,
        tool: str,
        fn: Callable[[], T],
        settled: Callable[[T], bool],
        *,
        within: float,
        every: float = 0.25,
    ) -> T:
        """Call `fn` until `settled` says its answer is final or `within` seconds have passed, as a
        real server polls its backend; the last answer either way."""
        deadline = time.monotonic() + within
        answer = await self(tool, fn)
        while not settled(answer) and time.monotonic() < deadline:
            await anyio.sleep(min(every, max(0.0, deadline - time.monotonic())))
            answer = await anyio.to_thread.run_sync(fn)
        return answer

    async def _held(self, tool: str) -> None:
        gate = self.options.holds.get(tool)
        if gate is None:
            return
        deadline = time.monotonic() + self.options.hold_max_seconds
        while not gate.exists():
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"{tool} was held until {gate} existed, and it did not appear within "
                    f"{self.options.hold_max_seconds}s; create the file, or start the server without --hold"
                )
            await anyio.sleep(self.POLL_SECONDS)

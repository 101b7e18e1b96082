"""What every sandbox server shares: honest annotations and the latency-then-thread call wrapper."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.types import ToolAnnotations

from opsmith.sandbox.cli import ServerOptions

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
    """Sleeps the configured latency (so demos are watchable), then runs world code off the event loop."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options

    async def __call__(self, tool: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        delay = self.options.latency_seconds(tool)
        if delay > 0:
            await anyio.sleep(delay)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

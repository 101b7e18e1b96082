"""An MCP server whose tools record, durably, that they did their work: the ground truth of bench/crash.py.

Two tools, both taking {"step": str} and returning {"step": ..., "done": true}:

  change_once   not read-only, not idempotent: doing it twice would be a real double change;
  change_again  not read-only, idempotent: doing it again is harmless.

Each call sleeps a random time in --delay-ms MIN MAX (the work), then appends the line "<step>\\n"
to the --journal file in one O_APPEND write followed by fsync, then answers. A line in the journal
means the work was done, whether or not the caller lived to hear the answer.

    python bench/journal_server.py --journal PATH [--delay-ms 30 120]
"""

from __future__ import annotations

import argparse
import os
import random
from typing import TypedDict

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations


class Done(TypedDict):
    step: str
    done: bool


def record(journal: str, step: str) -> None:
    """Append one line and make it durable before the call answers."""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def build_server(journal: str, delay_ms: tuple[float, float]) -> MCPServer:
    server = MCPServer("journal", instructions="Each call appends its step to a journal file.")

    async def work(step: str) -> Done:
        await anyio.sleep(random.uniform(*delay_ms) / 1000)
        await anyio.to_thread.run_sync(record, journal, step)
        return Done(step=step, done=True)

    @server.tool(
        description="Make a change that must happen once (not idempotent); records it in the journal",
        annotations=ToolAnnotations(
            title="Change once", read_only_hint=False, destructive_hint=False, idempotent_hint=False
        ),
    )
    async def change_once(step: str) -> Done:
        return await work(step)

    @server.tool(
        description="Make a change that may safely be made again (idempotent); records it in the journal",
        annotations=ToolAnnotations(
            title="Change again", read_only_hint=False, destructive_hint=False, idempotent_hint=True
        ),
    )
    async def change_again(step: str) -> Done:
        return await work(step)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", required=True, help="file each call appends its step to")
    parser.add_argument(
        "--delay-ms", nargs=2, type=float, default=(30.0, 120.0), metavar=("MIN", "MAX"),
        help="how long one call works before it records (uniform, milliseconds)",
    )  # fmt: skip
    args = parser.parse_args()
    low, high = args.delay_ms
    build_server(args.journal, (low, max(low, high))).run("stdio")


if __name__ == "__main__":
    main()

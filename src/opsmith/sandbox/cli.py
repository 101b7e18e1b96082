"""Command line shared by the four sandbox servers; configuration comes only from argv."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcp.server.mcpserver import MCPServer

from opsmith.sandbox.world import World

DEFAULT_STATE_DIR = Path(".opsmith/sandbox")
DEFAULT_LATENCY_MS = 150
DEFAULT_HOLD_MAX_SECONDS = 300


@dataclass(frozen=True)
class ServerOptions:
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    latency_ms: int = DEFAULT_LATENCY_MS
    latency: dict[str, int] = field(default_factory=dict)
    # Kubernetes: 0 starts new pods during apply_deployment, which fails when they do not become
    # ready; N > 0 returns at once, as `kubectl apply` does, and the pods take N ms to start before
    # they run or crash-loop, so only a later look at them shows how the rollout went.
    pod_start_ms: int = 0
    # Tests hold a tool's calls open: a call of TOOL waits until its file exists (at most
    # hold_max_seconds, then it fails), so a test decides when a step ends, not a timer.
    holds: dict[str, Path] = field(default_factory=dict)
    hold_max_seconds: int = DEFAULT_HOLD_MAX_SECONDS

    def latency_seconds(self, tool: str) -> float:
        return self.latency.get(tool, self.latency_ms) / 1000.0

    @property
    def pod_start_seconds(self) -> float:
        return self.pod_start_ms / 1000.0


def _latency_override(text: str) -> tuple[str, int]:
    tool, sep, value = text.partition("=")
    if not sep or not tool or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected TOOL=MS, got {text!r}")
    return tool, int(value)


def _hold(text: str) -> tuple[str, Path]:
    tool, sep, path = text.partition("=")
    if not sep or not tool or not path:
        raise argparse.ArgumentTypeError(f"expected TOOL=FILE, got {text!r}")
    return tool, Path(path)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def parse_args(server: str, argv: Sequence[str] | None = None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog=f"python -m opsmith.sandbox.{server}",
        description=f"Sandbox {server} MCP server over a shared simulated world.",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="required with --transport http")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--latency-ms", type=_non_negative, default=DEFAULT_LATENCY_MS)
    parser.add_argument(
        "--latency",
        type=_latency_override,
        action="append",
        default=[],
        metavar="TOOL=MS",
        help="per-tool latency override; repeatable",
    )
    parser.add_argument(
        "--pod-start-ms",
        type=_non_negative,
        default=0,
        help="kubernetes: apply_deployment returns at once and new pods take this long to start "
        "(then run or crash-loop); 0 starts them during the call, which fails if they crash",
    )
    parser.add_argument(
        "--hold",
        type=_hold,
        action="append",
        default=[],
        metavar="TOOL=FILE",
        help="calls of TOOL wait until FILE exists (for tests); repeatable",
    )
    parser.add_argument(
        "--hold-max-s",
        type=_non_negative,
        default=DEFAULT_HOLD_MAX_SECONDS,
        help="a held call fails after waiting this long for its file",
    )
    args = parser.parse_args(argv)
    if args.transport == "http" and (args.port is None or not 0 < args.port < 65536):
        parser.error("--transport http needs --port N (1-65535)")
    return ServerOptions(
        transport=args.transport,
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        latency_ms=args.latency_ms,
        latency=dict(args.latency),
        pod_start_ms=args.pod_start_ms,
        holds=dict(args.hold),
        hold_max_seconds=args.hold_max_s,
    )


def serve(
    server: str,
    build: Callable[[World, ServerOptions], MCPServer],
    argv: Sequence[str] | None = None,
) -> None:
    options = parse_args(server, argv)
    # stdout belongs to the MCP protocol in stdio mode; every log line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"{server}: %(levelname)s %(message)s")
    world = World(options.state_dir)
    world.ensure_seeded()
    mcp = build(world, options)
    logging.getLogger(__name__).info(
        "serving %s over %s from %s", server, options.transport, options.state_dir
    )
    if options.transport == "stdio":
        mcp.run("stdio")
    else:
        assert options.port is not None
        mcp.run("streamable-http", host=options.host, port=options.port)

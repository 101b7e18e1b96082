"""`opsmith [--as USER] mcp [--transport stdio|http] [--host H] [--port N]`: opsmith as an MCP server."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from opsmith.cli.context import err, state

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


def mcp_command(
    ctx: typer.Context,
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio (default) or http (streamable HTTP at /mcp)")
    ] = Transport.STDIO,
    host: Annotated[str, typer.Option("--host", help="address to bind with --transport http")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port for --transport http")] = 8000,
) -> None:
    """Serve opsmith's tools over MCP, acting as one identity (`opsmith --as USER mcp`).

    Callers can plan, look, cancel and run plans people approved; they cannot approve, pass
    validation gates or change who they act as. With stdio, stdout carries only the protocol.
    """
    from opsmith.mcp_server import build_server

    # The composition root: configuration, store and identity are resolved once, here.
    current = state(ctx)
    app, identity = current.app, current.identity
    server = build_server(app, identity)
    # Everything said to people goes to stderr: with stdio, stdout is the wire.
    who = f"{identity.user} ({identity.role}, from {identity.source})"
    if transport is Transport.STDIO:
        err.print(f"opsmith MCP server on stdio as {who}", highlight=False)
        server.run("stdio")
        return
    if host not in LOOPBACK:
        err.print(
            f"[yellow]warning:[/] binding {host}: this server has no authentication; anyone who reaches "
            f"it acts as {identity.user}",
            highlight=False,
        )
    err.print(f"opsmith MCP server on http://{host}:{port}/mcp as {who}", highlight=False)
    server.run("streamable-http", host=host, port=port)

"""`opsmith tools` and `opsmith call`: the catalog, and an operator's direct tool call."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from opsmith.cli.context import emit_json, err, escape, out, run, state
from opsmith.errors import ToolArgumentsError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def tools_command(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option("--server", "-s", help="only this server's tools")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List every tool of the running servers: server, tool, risk hints, description."""
    from opsmith.services.servers import tool_catalog  # starts the MCP SDK: load on use

    tools, health = run(tool_catalog(state(ctx).app, server))
    if as_json:
        from opsmith.domain.catalog import mcp_tool_json

        emit_json([mcp_tool_json(t) for t in tools])
    else:
        from opsmith.cli.render import status_table, tools_table

        out.print(tools_table(tools))
        troubled = [s for s in health if s.health != "up"]
        if troubled:
            err.print(status_table(troubled))
    raise typer.Exit(1 if any(s.health == "down" for s in health) else 0)


def call_command(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="server name, as in `opsmith servers status`")],
    tool: Annotated[str, typer.Argument(help="tool name, as in `opsmith tools`")],
    args: Annotated[str, typer.Option("--args", "-a", help="arguments as a JSON object")] = "{}",
    timeout: Annotated[float | None, typer.Option(help="seconds to wait for the result")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="confirm a tool that may destroy something")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Call one tool directly, checked like a step of a run (your role, the tool's risk) and audited.

    A tool that may destroy something asks for confirmation in a terminal, or needs --yes."""
    from opsmith.services.tool_calls import CallRequest, ConfirmationNeeded, call_tool

    request = CallRequest(server, tool, parse_arguments(args), timeout=timeout, confirmed=yes)
    app, who = state(ctx).app, state(ctx).identity
    try:
        result = run(call_tool(app, who, request))
    except ConfirmationNeeded as needed:
        if as_json or not sys.stdin.isatty():
            raise
        err.print(f"[yellow]{escape(needed.message)}[/]")
        if not typer.confirm(f"call {server}/{tool} as {who.user}?", default=False, err=True):
            raise typer.Exit(1) from needed
        result = run(call_tool(app, who, replace(request, confirmed=True)))
    if as_json:
        emit_json(result.model_dump(mode="json"))
    elif result.structured is not None:
        out.print_json(json.dumps(result.structured, default=str))
    else:
        out.print(result.text)
    err.print(f"[dim]{server}/{tool} answered in {result.duration_ms:.1f} ms[/]")


def parse_arguments(text: str) -> dict[str, Any]:
    """The --args value as a JSON object, or one clear error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(
            f"--args is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint='quote it for the shell, e.g. --args \'{"namespace": "production"}\'',
        ) from exc
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"--args must be a JSON object, got {type(value).__name__}",
            hint='e.g. --args \'{"namespace": "production"}\'',
        )
    return value

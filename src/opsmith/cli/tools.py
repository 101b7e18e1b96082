"""`opsmith tools` and `opsmith call`: the catalog, and an operator's direct tool call."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from opsmith.cli.context import emit_json, err, out, run, state
from opsmith.cli.render import status_table, tools_table
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import Health
from opsmith.errors import ToolArgumentsError, UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def tools_command(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option("--server", "-s", help="only this server's tools")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List every tool of the running servers: server, tool, risk hints, description."""
    from opsmith.discovery import running_servers, statuses  # starts the MCP SDK: load on use

    app = state(ctx).app

    async def discover() -> tuple[list[Any], list[Any]]:
        async with running_servers(app, [server] if server else None) as pool:
            return pool.catalog.tools(server), statuses(app, pool, [server] if server else None)

    tools, health = run(discover())
    if as_json:
        emit_json([t.model_dump(mode="json") for t in tools])
    else:
        out.print(tools_table(tools))
        troubled = [s for s in health if s.health is not Health.UP]
        if troubled:
            err.print(status_table(troubled))
    raise typer.Exit(1 if any(s.health is Health.DOWN for s in health) else 0)


def call_command(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="server name, as in `opsmith servers status`")],
    tool: Annotated[str, typer.Argument(help="tool name, as in `opsmith tools`")],
    args: Annotated[str, typer.Option("--args", "-a", help="arguments as a JSON object")] = "{}",
    timeout: Annotated[float | None, typer.Option(help="seconds to wait for the result")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Call one tool directly; arguments are checked against its input schema first."""
    from opsmith.discovery import off_names, running_servers  # starts the MCP SDK: load on use

    arguments = parse_arguments(args)
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout:g}")
    app = state(ctx).app

    if server in off_names(app):
        raise UsageError(
            f"server {server!r} is stopped by an operator",
            hint=f"start it first: opsmith servers start {server}",
        )

    async def call() -> ToolResult:
        async with running_servers(app, [server]) as pool:
            return await pool.call(server, tool, arguments, timeout=timeout)

    result = run(call())
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
        ) from None
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"--args must be a JSON object, got {type(value).__name__}",
            hint='e.g. --args \'{"namespace": "production"}\'',
        )
    return value

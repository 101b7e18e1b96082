"""`opsmith servers status|start|stop [NAME]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, out, run, state

if TYPE_CHECKING:
    from opsmith.domain.servers import ServerStatus

UP, DEGRADED, DOWN = "up", "degraded", "down"

servers_app = typer.Typer(help="Start, stop and check the configured MCP servers.", no_args_is_help=True)

NameArg = Annotated[str | None, typer.Argument(help="one server; all when omitted")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@servers_app.command("status")
def status_command(ctx: typer.Context, name: NameArg = None, as_json: JsonOpt = False) -> None:
    """Start the enabled servers, report each one's health, tool count and last error."""
    from opsmith.services.servers import server_statuses

    result = run(server_statuses(state(ctx).app, [name] if name else None))
    _show(result, as_json)
    raise typer.Exit(0 if all(s.health != DOWN for s in result) else 1)


@servers_app.command("start")
def start_command(ctx: typer.Context, name: NameArg = None, as_json: JsonOpt = False) -> None:
    """Mark servers as wanted again and start them to check they come up."""
    from opsmith.services.servers import set_servers_enabled

    names = [name] if name else None
    result = run(set_servers_enabled(state(ctx).app, state(ctx).identity, names, True))
    _show(result, as_json)
    raise typer.Exit(0 if all(s.health in (UP, DEGRADED) for s in result) else 1)


@servers_app.command("stop")
def stop_command(ctx: typer.Context, name: NameArg = None, as_json: JsonOpt = False) -> None:
    """Mark servers as stopped: opsmith will not start them or plan with their tools."""
    from opsmith.services.servers import set_servers_enabled

    names = [name] if name else None
    _show(run(set_servers_enabled(state(ctx).app, state(ctx).identity, names, False)), as_json)


def _show(result: list[ServerStatus], as_json: bool) -> None:
    if as_json:
        emit_json([s.model_dump(mode="json") for s in result])
    else:
        from opsmith.cli.render import status_table

        out.print(status_table(result))

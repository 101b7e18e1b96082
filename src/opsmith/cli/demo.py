"""`opsmith demo`: the sandbox servers started, their tools discovered and shown (seed 001, step 2)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, err, out, run, state
from opsmith.cli.render import catalog_panels, status_table
from opsmith.domain.catalog import Catalog
from opsmith.domain.servers import Health, ServerStatus

if TYPE_CHECKING:
    from opsmith.bootstrap import App


def demo_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Start the bundled sandbox servers (Jenkins, SonarQube, registry, Kubernetes) and show their tools."""
    app = state(ctx).app
    if not as_json:
        out.print(f"[bold]opsmith demo[/] - configuration: {app.config.source}")
        out.print("Scanning MCP servers...")
    catalog, health, seconds = run(_discover(app))
    if as_json:
        emit_json(
            {
                "servers": [s.model_dump(mode="json") for s in health],
                "tools": [t.model_dump(mode="json") for t in catalog.tools()],
                "discovery_seconds": round(seconds, 3),
            }
        )
    else:
        titles = {s.name: s.title or s.name for s in health}
        out.print(catalog_panels(catalog, titles))
        out.print(
            f"[bold]Total: {len(catalog)} tools across {len(catalog.servers())} MCP servers[/]"
            f" (discovered in {seconds:.2f}s)"
        )
        down = [s for s in health if s.health is not Health.UP]
        if down:
            err.print(status_table(down))
    raise typer.Exit(0 if all(s.health is Health.UP for s in health) else 1)


async def _discover(app: App) -> tuple[Catalog, list[ServerStatus], float]:
    from opsmith.discovery import running_servers, statuses  # starts the MCP SDK: load on use

    started = time.perf_counter()
    async with running_servers(app) as pool:
        seconds = time.perf_counter() - started
        return Catalog(pool.catalog.tools()), statuses(app, pool), seconds

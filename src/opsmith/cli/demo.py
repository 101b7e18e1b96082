"""`opsmith demo`: the sandbox servers started, their tools discovered and shown (seed 001, step 2)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, err, out, run, state
from opsmith.cli.errors import report
from opsmith.cli.plan_view import intent_view, plan_view
from opsmith.cli.render import catalog_panels, status_table
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import OpsmithError
from opsmith.domain.plan import Plan
from opsmith.domain.servers import Health, ServerStatus

if TYPE_CHECKING:
    from opsmith.bootstrap import App


def demo_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Start the sandbox servers, list their 45 tools, and plan seed 001's request."""
    app = state(ctx).app
    if not as_json:
        out.print(f"[bold]opsmith demo[/] - configuration: {app.config.source}")
        out.print("Scanning MCP servers...")
    catalog, health, seconds, plan = run(_discover(app))
    if as_json:
        emit_json(
            {
                "servers": [s.model_dump(mode="json") for s in health],
                "tools": [t.model_dump(mode="json") for t in catalog.tools()],
                "discovery_seconds": round(seconds, 3),
                "plan": plan.model_dump(mode="json") if isinstance(plan, Plan) else {"error": str(plan)},
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
        out.print()
        if isinstance(plan, Plan):
            out.print(intent_view(plan.intent))
            out.print(plan_view(plan, width=max(60, out.width)))
        else:
            report(plan)
    if isinstance(plan, OpsmithError):
        raise typer.Exit(1)
    raise typer.Exit(0 if all(s.health is Health.UP for s in health) else 1)


DEMO_REQUEST = "Deploy the code to Kubernetes production"


async def _discover(app: App) -> tuple[Catalog, list[ServerStatus], float, Plan | OpsmithError]:
    from opsmith.discovery import running_servers, statuses  # starts the MCP SDK: load on use
    from opsmith.planning import plan_with

    started = time.perf_counter()
    async with running_servers(app) as pool:
        seconds = time.perf_counter() - started
        try:
            plan: Plan | OpsmithError = plan_with(app, pool, DEMO_REQUEST, {})
        except OpsmithError as error:  # shown after the catalog: the catalog is still worth seeing
            plan = error
        return Catalog(pool.catalog.tools()), statuses(app, pool), seconds, plan

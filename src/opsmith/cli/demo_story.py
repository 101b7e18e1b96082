"""The story `opsmith demo` tells: the sandbox servers started, their tools discovered and shown,
seed 001 planned, approved and run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from opsmith.cli.context import emit_json, err, out, run, state
from opsmith.cli.errors import report
from opsmith.cli.plan_view import intent_view, plan_view
from opsmith.cli.render import catalog_panels, status_table
from opsmith.domain.catalog import Catalog, mcp_tool_json
from opsmith.domain.errors import OpsmithError
from opsmith.domain.plan import Plan
from opsmith.domain.servers import Health, ServerStatus

if TYPE_CHECKING:
    from opsmith.bootstrap import App


def demo(ctx: typer.Context, failure: bool, as_json: bool) -> None:
    """Seed 001 end to end on the sandbox: discover the tools, plan, approve, run, summarise."""
    app = state(ctx).app
    bundled = app.config.source == "bundled demo config"
    story = _prepare_world(app, failure) if bundled else None
    if not as_json:
        out.print(f"[bold]opsmith demo[/] - configuration: {app.config.source}")
        if story:
            out.print(f"[dim]{story}[/]")
        out.print("Scanning MCP servers...")
    catalog, health, seconds, plan = run(_discover(app))
    if not as_json:
        _show_catalog(catalog, health, seconds)
        if isinstance(plan, Plan) and not bundled:
            out.print(intent_view(plan.intent))
            out.print(plan_view(plan, width=max(60, out.width)))
    result = None
    if bundled and isinstance(plan, Plan):
        result = _approve_and_run(ctx, plan, quiet=as_json)
    if as_json:
        emit_json(
            {
                "servers": [s.model_dump(mode="json") for s in health],
                "tools": [mcp_tool_json(t) for t in catalog.tools()],
                "discovery_seconds": round(seconds, 3),
                "plan": plan.model_dump(mode="json") if isinstance(plan, Plan) else {"error": str(plan)},
                "run": result,
            }
        )
    if isinstance(plan, OpsmithError):
        if not as_json:
            report(plan)
        raise typer.Exit(1)
    expected = "rolled_back" if failure else "succeeded"
    ok = all(s.health is Health.UP for s in health) and (result is None or result["status"] == expected)
    raise typer.Exit(0 if ok else 1)


def _show_catalog(catalog: Catalog, health: list[ServerStatus], seconds: float) -> None:
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


def _prepare_world(app: App, failure: bool) -> str:
    """A fresh sandbox world; for the success story, with my-application's fix committed."""
    import shutil

    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World

    spec = app.config.mcp_servers["jenkins"]
    args = list(getattr(spec, "args", []))
    world_dir = (
        Path(args[args.index("--state-dir") + 1]) if "--state-dir" in args else Path(".opsmith/sandbox")
    )
    shutil.rmtree(world_dir, ignore_errors=True)
    world = World(world_dir)
    world.ensure_seeded()
    if failure:
        return (
            "Story: my-application's head needs config/production.json, which its image lacks; "
            "production runs v0.9.5 (fresh sandbox world)."
        )
    world.commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add config/production.json and copy config/ into the image",
    )
    return (
        "Story: a fresh sandbox world where my-application's head carries config/production.json "
        "(run `opsmith demo --failure` for the crash-loop story)."
    )


def _approve_and_run(ctx: typer.Context, plan: Plan, *, quiet: bool) -> dict[str, object]:
    from opsmith.cli.runs import _print_event, _print_reflection, _steps_table
    from opsmith.domain.identity import Identity
    from opsmith.services.approvals import approve
    from opsmith.services.running import start_run

    app = state(ctx).app
    if not quiet:
        out.print(intent_view(plan.intent))
        out.print(plan_view(plan, width=max(60, out.width)))
    # Stand-ins for people, named so nobody mistakes them for one: real approvals come from
    # `opsmith approve PLAN` by configured approvers. A plan may need more than one (four-eyes,
    # or an extra approval after recent failures), each from a different person.
    number = 0
    while plan.status.value == "pending_approval" and number < plan.approvals_needed:
        number += 1
        stand_in = Identity(user=f"demo-approver-{number}", role="approver", source="demo")
        plan, _ = approve(app, stand_in, plan.id, "approved by a demo stand-in approver")
        if not quiet:
            out.print(
                f"✔ approved by [bold]{stand_in.user}[/] (a demo stand-in; plan is {plan.status.value})"
            )
    listener = None if quiet else _print_event
    final_plan, final, failure = run(
        start_run(app, state(ctx).identity, plan.id, auto_validate=True, listener=listener)
    )
    if not quiet:
        out.print()
        out.print(f"📊 EXECUTION SUMMARY: {final.run_id} of {final_plan.id}")
        out.print(_steps_table(final_plan, final))
        _print_reflection(final_plan, final)
        if failure:
            out.print(f"[red]{failure}[/]")
        out.print(f"Status: [bold]{final.status.value}[/]")
    return {"run_id": final.run_id, "status": final.status.value, "failure": failure}


DEMO_REQUEST = "Deploy the code to Kubernetes production"


async def _discover(app: App) -> tuple[Catalog, list[ServerStatus], float, Plan | OpsmithError]:
    from opsmith.services.discovery import running_servers, statuses  # starts the MCP SDK: load on use
    from opsmith.services.planning import plan_with

    started = time.perf_counter()
    async with running_servers(app) as pool:
        seconds = time.perf_counter() - started
        try:
            found = statuses(app, pool)
            degraded = frozenset(s.name for s in found if s.health is Health.DEGRADED)
            plan: Plan | OpsmithError = plan_with(app, pool.catalog, degraded, DEMO_REQUEST, {})
        except OpsmithError as error:  # shown after the catalog: the catalog is still worth seeing
            plan = error
        return Catalog(pool.catalog.tools()), statuses(app, pool), seconds, plan

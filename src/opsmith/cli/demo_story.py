"""The story `opsmith demo` tells: the sandbox servers started, their tools discovered and shown,
seed 001 planned, approved and run; after a failure, and for the fix, cli.demo_fix goes on."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from opsmith.cli.demo_receiver import Receiver


def demo(ctx: typer.Context, failure: bool, fix: bool, as_json: bool) -> None:
    """Seed 001 end to end on the sandbox: discover the tools, plan, approve, run, summarise; with
    `failure`, the crash loop and what follows it; with `fix`, the fix pushed and re-planned."""
    from opsmith.config import load_config
    from opsmith.errors import UsageError

    cli = state(ctx)
    config = load_config(cli.config_path, os.environ)  # before the app: its environment is read once
    bundled = config.source == "bundled demo config"
    if fix and failure:
        raise UsageError(
            "give --failure or --fix, not both", hint="--fix runs the failure story first if needed"
        )
    if fix and not bundled:
        raise UsageError(
            f"demo --fix commits to the sandbox's repository, which only the bundled demo config runs"
            f" (this is {config.source})",
            hint="run it in a directory without opsmith.yaml, and without OPSMITH_CONFIG",
        )
    with contextlib.ExitStack() as stack:
        receiver = _keep_local(stack, config.state_dir) if bundled else None
        ok, body = _fix(ctx, receiver, as_json) if fix else _story(ctx, failure, bundled, receiver, as_json)
    if as_json:
        emit_json(body)
    raise typer.Exit(0 if ok else 1)


def _keep_local(stack: contextlib.ExitStack, state_dir: Path) -> Receiver | None:
    """The demo config's secrets, and its notification channel pointed at a receiver on 127.0.0.1
    for this run, unless OPSMITH_DEMO_NOTIFY_URL names one of the user's."""
    from opsmith.cli.demo_receiver import NOTIFY_SECRET, NOTIFY_URL, Receiver, demo_secrets

    demo_secrets(state_dir, os.environ)
    if os.environ.get(NOTIFY_URL):
        return None
    receiver = stack.enter_context(Receiver(os.environ[NOTIFY_SECRET]))
    os.environ[NOTIFY_URL] = receiver.url
    return receiver


def _story(
    ctx: typer.Context, failure: bool, bundled: bool, receiver: Receiver | None, as_json: bool
) -> tuple[bool, dict[str, Any]]:
    from opsmith.cli.demo_fix import after_failure, notifications_since

    app = state(ctx).app
    since = app.clock.now().astimezone(UTC)
    story = _prepare_world(app, failure) if bundled else None
    if not as_json:
        out.print(f"[bold]opsmith demo[/] - configuration: {app.config.source}")
        if story:
            out.print(f"[dim]{story}[/]")
        out.print("Scanning MCP servers...")
    catalog, health, seconds, plan = run(_discover(app, state(ctx).identity.user))
    if not as_json:
        _show_catalog(catalog, health, seconds)
        if isinstance(plan, Plan) and not bundled:
            out.print(intent_view(plan.intent))
            out.print(plan_view(plan, width=max(60, out.width)))
    result = None
    if bundled and isinstance(plan, Plan):
        result = approve_and_run(ctx, plan, quiet=as_json)
    follow_ups: dict[str, Any] = {}
    if failure and result is not None and result["status"] in ("failed", "rolled_back"):
        follow_ups = after_failure(ctx, str(result["run_id"]), quiet=as_json)
    body: dict[str, Any] = {
        "servers": [s.model_dump(mode="json") for s in health],
        "tools": [mcp_tool_json(t) for t in catalog.tools()],
        "discovery_seconds": round(seconds, 3),
        "plan": plan.model_dump(mode="json") if isinstance(plan, Plan) else {"error": str(plan)},
        "run": result,
        **follow_ups,
    }
    if bundled:
        body["notifications"] = notifications_since(app, since, receiver, quiet=as_json)
    if isinstance(plan, OpsmithError):
        if not as_json:
            report(plan)
        return False, body
    expected = "rolled_back" if failure else "succeeded"
    ok = all(s.health is Health.UP for s in health) and (result is None or result["status"] == expected)
    if failure and result is not None:
        ok = ok and follow_ups.get("task") is not None and follow_ups.get("issue") is not None
    return ok, body


def _fix(ctx: typer.Context, receiver: Receiver | None, as_json: bool) -> tuple[bool, dict[str, Any]]:
    from opsmith.cli.demo_fix import failure_left, fix_story, notifications_since

    app = state(ctx).app
    world_dir = _world_dir(app)
    failed = failure_left(app, world_dir)
    first: dict[str, Any] | None = None
    if failed is None:
        if not as_json:
            out.print(
                "[bold]No failure story left in this directory[/] (no rolled-back deploy of the sandbox's"
                " current head): running `opsmith demo --failure` first."
            )
        ok, first = _story(ctx, True, True, receiver, as_json)
        if not ok:
            return False, {"failure_story": first}
    elif not as_json:
        out.print(
            f"[bold]opsmith demo --fix[/]: the failure story's run {failed} was rolled back; pushing the fix."
        )
    since = app.clock.now().astimezone(UTC)
    body: dict[str, Any] = {
        "failure_story": first,
        "failed_run": failed,
        **fix_story(ctx, world_dir, quiet=as_json),
    }
    if body["failed_run"] is None and first is not None:
        body["failed_run"] = (first.get("run") or {}).get("run_id")
    body["notifications"] = notifications_since(app, since, receiver, quiet=as_json)
    final = body["run"]
    if not as_json and final is None:
        err.print("[red]the push made no plan to run[/]: see the webhook's outcome above")
    return final is not None and final["status"] == "succeeded", body


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

    world_dir = _world_dir(app)
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


def _world_dir(app: App) -> Path:
    """The sandbox world the bundled config's servers share (their --state-dir)."""
    spec = app.config.mcp_servers["jenkins"]
    args = list(getattr(spec, "args", []))
    return Path(args[args.index("--state-dir") + 1]) if "--state-dir" in args else Path(".opsmith/sandbox")


def approve_and_run(ctx: typer.Context, plan: Plan, *, quiet: bool) -> dict[str, object]:
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


async def _discover(
    app: App, requester: str
) -> tuple[Catalog, list[ServerStatus], float, Plan | OpsmithError]:
    from opsmith.services.discovery import running_servers, statuses  # starts the MCP SDK: load on use
    from opsmith.services.planning import plan_with

    started = time.perf_counter()
    async with running_servers(app) as pool:
        seconds = time.perf_counter() - started
        try:
            found = statuses(app, pool)
            degraded = frozenset(s.name for s in found if s.health is Health.DEGRADED)
            plan: Plan | OpsmithError = plan_with(
                app, pool.catalog, degraded, DEMO_REQUEST, {}, requested_by=requester
            )
        except OpsmithError as error:  # shown after the catalog: the catalog is still worth seeing
            plan = error
        return Catalog(pool.catalog.tools()), statuses(app, pool), seconds, plan

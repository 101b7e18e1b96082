"""`opsmith demo`: seed 001 end to end on the sandbox (the story lives in `demo_story`, loaded on use)."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_command(
    ctx: typer.Context,
    failure: Annotated[
        bool,
        typer.Option(
            "--failure",
            help="the crash-loop story: rolled back, then its root cause, task, issue and notifications",
        ),
    ] = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="push the fix after the crash loop (run first if needed), re-plan from the signed push, run",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Seed 001 end to end on the sandbox: discover 45 tools, plan, approve, run, summarise; then,
    with --failure, what follows a crash loop, and with --fix, the fix pushed and re-planned."""
    from opsmith.cli.demo_story import demo

    demo(ctx, failure, fix, as_json)

"""`opsmith demo`: seed 001 end to end on the sandbox (the story lives in `demo_story`, loaded on use)."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_command(
    ctx: typer.Context,
    failure: Annotated[
        bool, typer.Option("--failure", help="the crash-loop story: the rollout fails and is rolled back")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Seed 001 end to end on the sandbox: discover 45 tools, plan, approve, run, summarise."""
    from opsmith.cli.demo_story import demo

    demo(ctx, failure, as_json)

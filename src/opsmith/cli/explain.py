"""`opsmith explain RUN`: the root cause of a failed run, each claim with the line it rests on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, run, state

if TYPE_CHECKING:
    from opsmith.domain.root_cause import Analysis

_MARK = {"passed": "✓", "failed": "✗"}


def explain_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="a failed or rolled-back run")],
    no_fetch: Annotated[
        bool, typer.Option("--no-fetch", help="only what the run recorded; ask no read-only tool")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Why a run failed: the failed step, error type, cited evidence, root cause, what passed and
    what failed, the fix and a confidence. An unknown failure says so and shows what was read."""
    from opsmith.services.explain import explain_run

    cli = state(ctx)
    found = run(explain_run(cli.app, cli.identity, run_id, fetch=False if no_fetch else None))
    if as_json:
        emit_json(found.model_dump(mode="json"))
        return
    _print(found)


def _print(found: Analysis) -> None:
    out.print(f"[bold]ROOT CAUSE ANALYSIS[/] of {found.run_id} ({found.plan_id}, {found.status})")
    step = found.failed_step
    if step is not None:
        out.print(f"├─ Failed step: {escape(step.id)} ({escape(step.title)}) on {step.server}/{step.tool}")
        if step.exit_codes:
            out.print(f"├─ Exit code(s): {', '.join(map(str, step.exit_codes))}")
    out.print(f"├─ Error type: {escape(found.error_type or 'unknown')}")
    out.print("├─ Evidence:" if found.explained else "├─ Evidence read (no rule matched it):")
    for line in found.evidence:
        out.print(f"│   {escape(repr(line.text[:200]))}")
        out.print(f"│     [dim]{escape(line.citation)}[/]")
    out.print(f"└─ Root cause: {escape(found.root_cause)}")
    out.print()
    out.print("Affected components:")
    for component in found.components:
        mark = _MARK.get(component.outcome.split(",")[0], "·")
        out.print(f"  {mark} {escape(component.title)}: {component.outcome}")
    if found.fix is not None:
        out.print()
        out.print(f"Fix: {escape(found.fix.summary)}")
        if found.fix.file:
            out.print(f"  file: {escape(found.fix.file)}")
        if found.fix.dockerfile:
            out.print(f"  Dockerfile: {escape(found.fix.dockerfile)}")
        for number, text in enumerate(found.fix.steps, start=1):
            out.print(f"  {number}. {escape(text)}")
    out.print()
    confidence = found.confidence or "none: no rule matched"
    out.print(
        f"Confidence: [bold]{confidence}[/]"
        f" ({found.lines_read} lines of {found.artifacts_read} artifacts read)"
    )
    for note in found.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")

"""`opsmith history APP`: each deployment attempt of an application and what changed between them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, state

if TYPE_CHECKING:
    from opsmith.services.history import AttemptChange, History

_MARK = {"succeeded": "✓", "failed": "✗", "rolled back": "↺"}


def history_command(
    ctx: typer.Context,
    application: Annotated[str, typer.Argument(help="an application, e.g. my-application")],
    environment: Annotated[
        str | None, typer.Option("--environment", "-e", help="only attempts in this environment")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Each attempt (plan, run, outcome, when, by whom, the commit built) and, between two attempts,
    what changed: the push and its files, the root cause it answered, the plan's difference."""
    from opsmith.services.history import application_history

    found = application_history(state(ctx).app, application, environment=environment)
    if as_json:
        emit_json(found.model_dump(mode="json"))
        return
    _print(found)


def _print(found: History) -> None:
    where = f" in {found.environment}" if found.environment else ""
    out.print(f"[bold]Deployment history of {escape(found.application)}{where}[/]")
    if not found.attempts:
        out.print("No attempts yet.")
        return
    changes = {c.to_plan: c for c in found.changes}
    for attempt in found.attempts:
        change = changes.get(attempt.plan_id)
        if change is not None:
            _print_change(change)
        mark = _MARK.get(attempt.outcome, "·")
        out.print(
            f"{mark} Attempt {attempt.number}: {escape(attempt.outcome)} — {escape(attempt.title)}"
            f" [dim]({attempt.at:%Y-%m-%d %H:%M})[/]"
        )
        who = f"requested by {attempt.requested_by or '?'}"
        if attempt.approved_by:
            who += f", approved by {', '.join(attempt.approved_by)}"
        if attempt.started_by:
            who += f", run by {attempt.started_by}"
        out.print(f"   plan {attempt.plan_id} (risk {attempt.risk}); {escape(who)}")
        if attempt.run_id:
            out.print(
                f"   run {attempt.run_id}" + (f", commit {attempt.commit[:12]}" if attempt.commit else "")
            )


def _print_change(change: AttemptChange) -> None:
    if change.commits:
        out.print(f"   │ commits {change.commits}")
    if change.files:
        out.print(f"   │ files: {escape(', '.join(change.files))}")
    if change.cause:
        out.print(f"   │ answers: {escape(change.cause)} ({change.verdict})")
    out.print(f"   │ plan: {escape(change.plan_difference)}")

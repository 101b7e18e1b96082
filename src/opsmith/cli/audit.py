"""`opsmith audit [--subject S] [--limit N]` and `opsmith audit verify`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmith.cli.context import emit_json, err, escape, out, state

if TYPE_CHECKING:
    from opsmith.domain.audit import AuditEntry

audit_app = typer.Typer(help="The tamper-evident audit trail: list entries, verify the chain.")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
_SUMMARY_WIDTH = 60


@audit_app.callback(invoke_without_command=True)
def audit_command(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Option("--subject", help="only entries about this plan or run")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="show the newest N entries")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List audit entries (the newest, oldest first); `opsmith audit verify` checks the chain."""
    if ctx.invoked_subcommand is not None:
        return
    from opsmith.services.audit import audit_entries

    entries = audit_entries(state(ctx).app, subject, limit)
    if as_json:
        emit_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        out.print("no audit entries" + (f" about {escape(subject)}" if subject else ""))
        return
    from rich.table import Table

    table = Table(title=f"{len(entries)} audit entries", title_justify="left")
    # Seq, time and action stay on one line each: they are what people scan down the table.
    for column in ("seq", "at", "actor", "action", "subject", "details"):
        table.add_column(column, overflow="fold", no_wrap=column in ("seq", "at", "action"))
    for e in entries:
        table.add_row(
            str(e.seq),
            e.at.strftime("%Y-%m-%d %H:%M:%SZ"),
            escape(e.actor),
            escape(e.action),
            escape(e.subject),
            escape(summary(e)),
        )
    out.print(table)


@audit_app.command("verify")
def verify_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Recompute every hash and link; exit 1 naming the first entry that was edited, removed or moved."""
    from opsmith.services.audit import verify_audit

    result = verify_audit(state(ctx).app)
    if as_json:
        emit_json(result.model_dump(mode="json"))
    elif result.ok:
        out.print(f"audit trail intact: {result.checked} entries")
    else:
        out.print(f"audit trail [bold red]TAMPERED[/]: {escape(result.problem or '')}")
        out.print(f"{result.checked} entries before it are intact")
    if not result.ok:
        # The problem goes to stderr as well, so scripts that keep only stderr still see it.
        err.print(f"audit trail tampered: {escape(result.problem or '')}")
        raise typer.Exit(1)


def summary(entry: AuditEntry) -> str:
    """A one-line digest of the details: `key=value, ...`, cut to fit a table cell."""
    parts = [f"{key}={_short(value)}" for key, value in sorted(entry.details.items())]
    text = ", ".join(parts)
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)

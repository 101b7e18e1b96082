"""`opsmith webhook replay FILE`: a saved GitHub delivery, signed with the configured secret and
handled as the endpoint handles one (not over HTTP): for trying a push without GitHub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, run, state

if TYPE_CHECKING:
    from opsmith.services.replan import WebhookOutcome

webhook_app = typer.Typer(help="GitHub webhooks: replay a saved delivery.", no_args_is_help=True)


@webhook_app.command("replay")
def replay_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the delivery's JSON body, e.g. a saved push event")],
    event: Annotated[str, typer.Option("--event", help="X-GitHub-Event: push or ping")] = "push",
    delivery: Annotated[
        str | None,
        typer.Option("--delivery", help="X-GitHub-Delivery (default: a new id); a replay is refused"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Sign FILE with webhooks.github.secret and hand it to the same service as
    POST /api/v1/webhooks/github; print what it led to (a plan, or why not)."""
    from opsmith.errors import UsageError
    from opsmith.services.replan import replay_file

    try:
        body = file.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {file}: {exc.strerror}", hint="give the path of a saved event body"
        ) from exc
    cli = state(ctx)
    outcome = run(replay_file(cli.app, body, event=event, delivery=delivery))
    if as_json:
        emit_json(outcome.as_json())
        return
    _print(outcome)


def _print(outcome: WebhookOutcome) -> None:
    shown = outcome.as_json()
    delivery = escape(str(shown["delivery"]))
    out.print(f"[bold]{escape(str(shown['event']))}[/] delivery {delivery}: {shown['outcome']}")
    out.print(escape(outcome.detail))
    replanned = outcome.replanned
    if replanned is None or replanned.record is None or replanned.plan is None:
        return
    record, plan = replanned.record, replanned.plan
    out.print(f"├─ Previous attempt: plan {record.failed_plan_id}, run {record.failed_run_id}")
    out.print(f"├─ Root cause: {escape(record.cause.root_cause or '?')}")
    out.print(f"├─ Push: {record.before[:7]}..{record.after[:7]} {escape(record.changes.describe())}")
    out.print(f"├─ Verdict: {record.match.verdict.value}")
    for reason in record.match.reasons:
        out.print(f"│    {escape(reason)}")
    for line in record.reused:
        out.print(f"├─ Reused: {escape(line)}")
    for line in record.rescanned:
        out.print(f"├─ Scanned again: {escape(line)}")
    out.print(f"├─ Difference: {escape(record.difference)}")
    approval = "auto-approved by policy" if replanned.auto_approved else plan.status.value
    out.print(f"└─ New plan: {plan.id} (risk {plan.risk.value}, {approval})")
    out.print(f"   review it: opsmith show {plan.id}")

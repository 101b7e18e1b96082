"""`opsmith notifications [--json]`, `opsmith notifications retry ID` (admin) and
`opsmith notify deliver`: the outbox of notifications, as it stands and flushed once."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, run, state

if TYPE_CHECKING:
    from opsmith.domain.notifications import Delivery

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

notifications_app = typer.Typer(
    help="Notifications sent or waiting (Slack, webhooks, e-mail), and the retry of a failed one.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
notify_app = typer.Typer(
    help="Send the notifications that are due.", no_args_is_help=True, rich_markup_mode=None
)


@notifications_app.callback()
def notifications_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="how many, newest first")] = 50,
    status: Annotated[
        str | None, typer.Option("--status", help="only pending, delivered or failed ones")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The recent deliveries: status, attempts, next attempt and the last failure's reason."""
    if ctx.invoked_subcommand is not None:
        return
    from opsmith.domain.errors import UsageError
    from opsmith.domain.notifications import DeliveryStatus
    from opsmith.services.notifications import recent_deliveries

    try:
        wanted = None if status is None else DeliveryStatus(status)
    except ValueError as exc:
        raise UsageError(
            f"--status {status!r} is not a delivery status", hint="give pending, delivered or failed"
        ) from exc
    found = recent_deliveries(state(ctx).app, limit=limit, status=wanted)
    if as_json:
        emit_json([_json(d) for d in found])
        return
    if not found:
        out.print("no notifications (configure channels and rules under notifications: in opsmith.yaml)")
        return
    _print(found)


@notifications_app.command("retry")
def retry_command(
    ctx: typer.Context,
    delivery_id: Annotated[str, typer.Argument(metavar="ID", help="a failed notification's id")],
    as_json: JsonOpt = False,
) -> None:
    """Send a given-up notification again (admin only); the next `notify deliver` or server round sends it."""
    from opsmith.services.notifications import retry_delivery

    delivery = retry_delivery(state(ctx).app, state(ctx).identity, delivery_id)
    if as_json:
        emit_json(_json(delivery))
        return
    out.print(f"notification {delivery.id} to {escape(delivery.channel)} is pending again")


@notify_app.command("deliver")
def deliver_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Send the notifications that are due now, once (`opsmith serve` does this every few seconds).
    Exit 1 when one of them failed."""
    from opsmith.domain.notifications import DeliveryStatus
    from opsmith.services.notifications import deliver_due

    sent = run(deliver_due(state(ctx).app))
    if as_json:
        emit_json([_json(d) for d in sent])
    elif not sent:
        out.print("nothing is due")
    else:
        _print(sent)
    if any(d.status is not DeliveryStatus.DELIVERED for d in sent):
        raise typer.Exit(1)


def _json(delivery: Delivery) -> dict[str, object]:
    return {
        "id": delivery.id,
        "event": delivery.notice.event.value,
        "subject": delivery.subject,
        "channel": delivery.channel,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "reason": delivery.last_error,
        "created_at": _iso(delivery.created_at),
        "delivered_at": _iso(delivery.delivered_at),
    }


def _print(found: list[Delivery]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(found)} notifications", title_justify="left")
    for column in ("id", "event", "subject", "channel", "status", "attempts", "next attempt", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "status"))
    for d in found:
        pending = d.status.value == "pending"
        table.add_row(
            d.id,
            d.notice.event.value,
            escape(d.subject),
            escape(d.channel),
            d.status.value,
            f"{d.attempts}/{d.max_attempts}",
            _when(d.next_attempt_at) if pending else "-",
            escape(d.last_error or ""),
        )
    out.print(table)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"

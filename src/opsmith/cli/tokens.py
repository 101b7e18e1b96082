"""`opsmith token create|list|revoke`: bearer tokens for `opsmith serve` (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, state

if TYPE_CHECKING:
    from rich.table import Table

    from opsmith.domain.tokens import TokenInfo

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

token_app = typer.Typer(
    help="Bearer tokens for `opsmith serve` (admin only).", no_args_is_help=True, rich_markup_mode=None
)


@token_app.command("create")
def create_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="who the token identifies (a configured user)")],
    role: Annotated[
        str, typer.Option("--role", help="their role (with users configured, their current one)")
    ],
    name: Annotated[str, typer.Option("--name", help="what the token is for, to tell it apart")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it, once: it is never shown again."""
    from opsmith.services.tokens import create_token

    info, text = create_token(state(ctx).app, state(ctx).identity, user, role, name=name, via="cli")
    if as_json:
        emit_json({**info.model_dump(mode="json"), "token": text})
        return
    out.print(f"created token {info.id} for {escape(info.user)} as {escape(info.role)}")
    # Unwrapped and unstyled: it is to be copied whole.
    out.print(text, markup=False, highlight=False, soft_wrap=True)
    out.print("this token will not be shown again: keep it safe now")


@token_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every token, revoked ones too; never a token's secret."""
    from opsmith.services.tokens import list_tokens

    tokens = list_tokens(state(ctx).app, state(ctx).identity)
    if as_json:
        emit_json([t.model_dump(mode="json") for t in tokens])
        return
    if not tokens:
        out.print("no tokens (`opsmith token create --user U --role R` makes one)")
        return
    out.print(_table(tokens))


@token_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    token_id: Annotated[
        str, typer.Argument(metavar="ID", help="a token id, as `opsmith token list` shows it")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: the server refuses it from now on."""
    from opsmith.services.tokens import revoke_token

    info = revoke_token(state(ctx).app, state(ctx).identity, token_id, via="cli")
    if as_json:
        emit_json(info.model_dump(mode="json"))
    else:
        who = f"{escape(info.user)} as {escape(info.role)}"
        out.print(f"token {info.id} ({who}) revoked at {_when(info.revoked_at, '%Y-%m-%d %H:%M:%SZ')}")


def _table(tokens: list[TokenInfo]) -> Table:
    from rich.table import Table

    table = Table(title=f"{len(tokens)} tokens", title_justify="left")
    # Ids, roles and times stay whole: they are what people copy and compare.
    for column in ("id", "user", "role", "name", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("user", "name"))
    for t in tokens:
        table.add_row(
            t.id,
            escape(t.user),
            escape(t.role),
            escape(t.name),
            _when(t.created_at, "%Y-%m-%d"),
            _when(t.last_used_at),
            _when(t.revoked_at, "%Y-%m-%d"),
        )
    return table


def _when(moment: datetime | None, form: str = "%Y-%m-%d %H:%MZ") -> str:
    return moment.strftime(form) if moment else "-"

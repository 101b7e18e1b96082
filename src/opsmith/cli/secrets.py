"""`opsmith secrets set|list|delete|rotate`: the credential vault hosts are logged in with.

A secret's value is never taken from the command line, where the shell's history and every `ps`
would show it: it comes from `--from-file`, else from stdin when that is not a terminal, else from
a hidden prompt. Nothing printed here holds a value: only names, kinds, usernames and key ids.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, state
from opsmith.domain.errors import UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from opsmith.domain.vault import SecretInfo

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the secret's name, as hosts refer to it")]

secrets_app = typer.Typer(
    help="The credential vault: passwords, SSH keys, tokens and certificates, encrypted at rest.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
# Values a person types or pastes as one line: the line's end is not part of them. Keys and
# certificates are kept exactly as given.
_ONE_LINE_KINDS = ("password", "token")


@secrets_app.command("set")
def set_command(
    ctx: typer.Context,
    name: NameArg,
    kind: Annotated[str, typer.Option("--kind", help="password, ssh_key, token or certificate")],
    username: Annotated[str | None, typer.Option("--username", help="the account it logs in as")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="the value, from this file (else stdin, else a prompt)")
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="an encrypted ssh_key's passphrase, from a file")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a secret (or replace it), encrypted; its value never on the command line."""
    from opsmith.services.secrets import check_set, needs_passphrase, set_secret

    app, identity = state(ctx).app, state(ctx).identity
    name, checked_kind = check_set(app, identity, name, kind)  # before anyone types a secret
    value = _value(name, checked_kind, from_file)
    passphrase = None
    if passphrase_file is not None:
        passphrase = _one_line(_read(passphrase_file, "--passphrase-file"))
    elif needs_passphrase(checked_kind, value) and sys.stdin.isatty():
        passphrase = typer.prompt(f"passphrase of {name}", hide_input=True, err=True)
    info = set_secret(app, identity, name, checked_kind, value, username, passphrase, via="cli")
    if as_json:
        emit_json(info.model_dump(mode="json"))
        return
    who = f", user {escape(info.username)}" if info.username else ""
    out.print(f"stored secret {escape(info.name)} ({info.kind}{who}) under key {info.key_id}")


@secrets_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every stored secret's name, kind, username and key id; never a value."""
    from opsmith.services.secrets import list_secrets

    found = list_secrets(state(ctx).app, state(ctx).identity)
    if as_json:
        emit_json([info.model_dump(mode="json") for info in found])
        return
    if not found:
        out.print("the vault is empty (`opsmith secrets set NAME --kind KIND` stores a secret)")
        return
    out.print(_table(found))


@secrets_app.command("delete")
def delete_command(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Remove a secret (works without the key, to clear one whose key is lost)."""
    from opsmith.services.secrets import delete_secret

    info = delete_secret(state(ctx).app, state(ctx).identity, name, via="cli")
    if as_json:
        emit_json(info.model_dump(mode="json"))
    else:
        out.print(f"removed secret {escape(info.name)} ({info.kind})")


@secrets_app.command("rotate")
def rotate_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-encrypt every secret under a new key, in one transaction."""
    from opsmith.services.secrets import rotate_key, rotation_report

    rotation = rotate_key(state(ctx).app, state(ctx).identity, via="cli")
    report = rotation_report(rotation)
    if as_json:
        emit_json(report)
        return
    was = ", ".join(rotation.from_key_ids) or "none"
    out.print(f"re-encrypted {rotation.count} secrets under key {rotation.to_key_id} (was {was})")
    if report["next"]:
        out.print(report["next"])


def _value(name: str, kind: str, from_file: Path | None) -> str:
    if from_file is not None:
        text = _read(from_file, "--from-file")
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    elif kind in _ONE_LINE_KINDS:
        text = typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        raise UsageError(
            f"a {kind} has several lines, more than a prompt takes",
            hint=f"give it with --from-file PATH, or on stdin (`opsmith secrets set {name} ... < PATH`)",
        )
    return _one_line(text) if kind in _ONE_LINE_KINDS else text


def _read(path: Path, option: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read {option} {path}: {exc.strerror or exc}", hint="give a readable file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {path} is not UTF-8 text", hint="give the secret as text") from exc


def _one_line(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _table(found: list[SecretInfo]) -> Table:
    from rich.table import Table

    table = Table(title=f"{len(found)} secrets", title_justify="left")
    for column in ("name", "kind", "username", "updated", "by", "key id"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "key id"))
    for info in found:
        table.add_row(
            escape(info.name),
            info.kind,
            escape(info.username or "-"),
            _when(info.updated_at),
            escape(info.updated_by),
            info.key_id,
        )
    return table


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%MZ")

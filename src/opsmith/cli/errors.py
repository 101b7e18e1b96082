"""How a known failure reaches a person or a program, with the right exit code either way.

For a person: one line on stderr and a hint. With `--json`, also one object on stdout,
`{"error": ..., "hint": ..., "exit_code": N}`, and nothing else there, so a script can read why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from opsmith.cli.context import emit_json, err, escape
from opsmith.errors import OpsmithError

JSON_FLAG = "--json"


def report(error: OpsmithError, *, as_json: bool = False) -> int:
    return _report(error.message, error.hint, error.exit_code, as_json=as_json)


def report_parse_error(error: typer.TyperException | typer.Abort, *, as_json: bool) -> int:
    """An error the command-line parser found (unknown option, missing argument, bad value).

    Only reached with `--json`: without it Typer prints these itself, with the usage line.
    """
    if isinstance(error, typer.Abort):
        return _report("aborted", None, 1, as_json=as_json)
    command_path = getattr(getattr(error, "ctx", None), "command_path", None)
    hint = f"see '{command_path} --help'" if command_path else None
    return _report(error.format_message(), hint, error.exit_code, as_json=as_json)


# Typer vendors click privately since 0.29, so its Command and Context classes have no public
# name to annotate with; they are used here only through the methods every click command has.
def asks_for_json(command: Any, args: Sequence[str]) -> bool:
    """Whether this command line asks for JSON: its sub-command has a `--json` flag and it is set.

    `--json` belongs to each sub-command (`opsmith plans --json`), so it is read the way the
    parser will read it, before anything runs: resiliently (no errors, no prompts, no callbacks
    of ours) and skipping unknown options, so a line about to be rejected still gets its error
    as JSON. Where no sub-command takes the flag (an unknown command, a command without
    `--json`), a literal `--json` left over still counts: whoever typed it wants to parse the answer.
    """
    if JSON_FLAG not in args:
        # The flag has no short form and click takes no abbreviations: without the literal word
        # nothing can ask for JSON, and the parse below (a good part of a `--help`) is skipped.
        return False
    try:
        return _parsed_json_flag(command, list(args))
    except typer.TyperException:
        return JSON_FLAG in args


def _parsed_json_flag(command: Any, args: list[str]) -> bool:
    parent, name = None, command.name
    while True:
        settings = {**command.context_settings, "resilient_parsing": True, "ignore_unknown_options": True}
        ctx = command.context_class(command, info_name=name, parent=parent, **settings)
        with ctx.scope(cleanup=False):
            if isinstance(command, TyperGroup):
                # The base parser reads the group's own options and returns the rest whole; the
                # group's override would keep the sub-command's name where only it can see it.
                rest = super(TyperGroup, command).parse_args(ctx, args)
            else:
                rest = command.parse_args(ctx, args)
        if not isinstance(command, TyperGroup) or not rest:
            flags = [p for p in command.params if JSON_FLAG in p.opts and p.name]
            if flags:
                return any(ctx.params.get(p.name) is True for p in flags)
            return JSON_FLAG in rest
        name, sub, args = command.resolve_command(ctx, rest)
        if sub is None:
            return JSON_FLAG in rest
        command, parent = sub, ctx


def _report(message: str, hint: str | None, exit_code: int, *, as_json: bool) -> int:
    if as_json:
        emit_json({"error": message, "hint": hint, "exit_code": exit_code})
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    return exit_code

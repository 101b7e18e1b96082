"""How a known failure reaches a person: one line on stderr, a hint, the right exit code."""

from __future__ import annotations

from opsmith.cli.context import err
from opsmith.errors import OpsmithError


def report(error: OpsmithError) -> int:
    err.print(f"[bold red]error:[/] {_escape(error.message)}")
    if error.hint:
        err.print(f"[dim]hint:[/] {_escape(error.hint)}")
    return error.exit_code


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

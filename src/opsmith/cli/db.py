"""`opsmith db upgrade`."""

from __future__ import annotations

from typing import Annotated

import typer

from opsmith.cli.context import emit_json, out, state

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Bring the database schema to the newest revision (also done automatically on first use)."""
    database = state(ctx).app.database
    assert database is not None, "the real wiring always has a database"
    before = database.current_revision()
    after = database.migrate()
    if as_json:
        emit_json({"database": database.display_url, "from": before, "to": after})
    elif before == after:
        out.print(f"{database.display_url} is already at revision {after}")
    else:
        out.print(f"{database.display_url}: upgraded from {before or 'empty'} to {after}")

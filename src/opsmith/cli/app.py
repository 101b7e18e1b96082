"""The `opsmith` command: global options, sub-commands, and the mapping of errors to exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from opsmith.cli.access import approve_command, cancel_command, reject_command, role_app, whoami_command
from opsmith.cli.audit import audit_app
from opsmith.cli.context import State
from opsmith.cli.db import db_app
from opsmith.cli.demo import demo_command
from opsmith.cli.errors import report
from opsmith.cli.mcp import mcp_command
from opsmith.cli.plans import intent_command, plan_command, plans_command, show_command
from opsmith.cli.runs import (
    continue_command,
    logs_command,
    pause_command,
    resume_command,
    run_command,
    status_command,
    sweep_command,
)
from opsmith.cli.servers import servers_app
from opsmith.cli.tools import call_command, tools_command
from opsmith.errors import OpsmithError

app = typer.Typer(
    name="opsmith",
    help="Plain-language operations requests, planned over MCP tools, approved, run and audited.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="opsmith.yaml to use (default: $OPSMITH_CONFIG, ./opsmith.yaml, demo)"
        ),
    ] = None,
    as_user: Annotated[
        str | None, typer.Option("--as", help="act as this configured user (if rbac.allow_as permits)")
    ] = None,
) -> None:
    ctx.obj = State(config, as_user)


app.add_typer(servers_app, name="servers")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.command("tools")(tools_command)
app.command("call")(call_command)
app.command("demo")(demo_command)
app.command("intent")(intent_command)
app.command("plan")(plan_command)
app.command("show")(show_command)
app.command("plans")(plans_command)
app.command("approve")(approve_command)
app.command("reject")(reject_command)
app.command("cancel")(cancel_command)
app.command("whoami")(whoami_command)
app.add_typer(role_app, name="role")
app.command("run")(run_command)
app.command("continue")(continue_command)
app.command("resume")(resume_command)
app.command("pause")(pause_command)
app.command("sweep")(sweep_command)
app.command("status")(status_command)
app.command("logs")(logs_command)
app.command("mcp")(mcp_command)


def main() -> None:
    """Console-script entry: known failures become one message and an exit code, never a traceback."""
    try:
        # Standalone mode lets Typer report usage errors itself (exit 2) and exit 0 on success.
        app()
    except OpsmithError as error:
        sys.exit(report(error))
    except KeyboardInterrupt:
        sys.exit(130)

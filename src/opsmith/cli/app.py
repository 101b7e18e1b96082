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
from opsmith.cli.errors import asks_for_json, report, report_parse_error
from opsmith.cli.explain import explain_command
from opsmith.cli.history import history_command
from opsmith.cli.inventory import inventory_app
from opsmith.cli.mcp import mcp_command
from opsmith.cli.notifications import notifications_app, notify_app
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
from opsmith.cli.secrets import secrets_app
from opsmith.cli.serve import serve_command
from opsmith.cli.servers import servers_app
from opsmith.cli.tasks import agents_command, orchestrate_command, tasks_app
from opsmith.cli.tokens import token_app
from opsmith.cli.tools import call_command, tools_command
from opsmith.cli.tracker import tracker_app
from opsmith.cli.webhook import webhook_app
from opsmith.cli.worker import worker_command, workers_command
from opsmith.errors import OpsmithError

app = typer.Typer(
    name="opsmith",
    help="Plain-language operations requests, planned over MCP tools, approved, run and audited.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help and usage errors: Rich's help formatter (and the Markdown parser it loads) cost
    # more than the rest of `opsmith --help` together.
    rich_markup_mode=None,
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
app.add_typer(inventory_app, name="inventory")
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
app.add_typer(token_app, name="token")
app.add_typer(secrets_app, name="secrets")
app.add_typer(notifications_app, name="notifications")
app.add_typer(notify_app, name="notify")
app.add_typer(tracker_app, name="tracker")
app.add_typer(webhook_app, name="webhook")
app.command("run")(run_command)
app.command("continue")(continue_command)
app.command("resume")(resume_command)
app.command("pause")(pause_command)
app.command("sweep")(sweep_command)
app.command("status")(status_command)
app.command("logs")(logs_command)
app.command("explain")(explain_command)
app.command("history")(history_command)
app.command("mcp")(mcp_command)
app.command("serve")(serve_command)
app.command("orchestrate")(orchestrate_command)
app.add_typer(tasks_app, name="tasks")
app.command("agents")(agents_command)
app.command("worker")(worker_command)
app.command("workers")(workers_command)


def main() -> None:
    """Console-script entry: known failures become one message and an exit code, never a traceback.

    Whether to answer in JSON is read from the command line before the command runs
    (`asks_for_json`), so that the parser's own errors (unknown option, missing argument), raised
    before any opsmith code runs, are written as JSON too. Without `--json`, Typer's standalone
    mode reports those itself (exit 2) and exits 0 on success; with it, Typer hands them to us.
    """
    args = sys.argv[1:]
    command = typer.main.get_command(app)
    as_json = asks_for_json(command, args)
    try:
        if as_json:
            # Not standalone, Typer returns an exit code (typer.Exit, Ctrl-C) or a command's None.
            code = command.main(args, standalone_mode=False)
            sys.exit(code if isinstance(code, int) else 0)
        command.main(args)  # standalone: ends in sys.exit itself
    except OpsmithError as error:
        sys.exit(report(error, as_json=as_json))
    except (typer.TyperException, typer.Abort) as error:
        sys.exit(report_parse_error(error, as_json=as_json))
    except KeyboardInterrupt:
        sys.exit(130)

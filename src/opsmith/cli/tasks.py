"""`opsmith orchestrate [--interval S] [--dry-run]`, `opsmith tasks [--status S] [--json]` (with
`report`, `assign` and `retry`), and `opsmith agents [--json]`: the follow-up tasks and their agents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, escape, out, run, state

if TYPE_CHECKING:
    from opsmith.bootstrap import App
    from opsmith.domain.tasks import Task
    from opsmith.services.tasks import PassReport

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

tasks_app = typer.Typer(
    help="Follow-up tasks (failed runs, bug reports): list, report a bug, assign, retry.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


def orchestrate_command(
    ctx: typer.Context,
    interval: Annotated[
        float | None, typer.Option("--interval", min=0.1, help="seconds between passes; until Ctrl-C")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the decisions; write and run nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Assign queued tasks to agents, run the due ones, retry failed ones at their stored time,
    escalate overdue ones, and move the tasks of silent agents to the backup (`opsmith serve` does
    this every tasks.orchestrate_seconds)."""
    app = state(ctx).app
    if interval is None:
        _show(run(_bounded(app, dry_run)), as_json)
        return
    run(_loop(app, interval, dry_run, as_json))


async def _bounded(app: App, dry_run: bool) -> PassReport:
    import asyncio

    from opsmith.domain.errors import OperationError
    from opsmith.services.tasks import orchestrate_once

    # Each attempt has its own timeout; the pass as a whole is bounded too, so a loop never hangs.
    limit = app.config.tasks.handler_timeout * 2 + 30
    try:
        return await asyncio.wait_for(orchestrate_once(app, dry_run=dry_run), timeout=limit)
    except TimeoutError as exc:
        raise OperationError(
            f"one orchestration pass took longer than {limit:g} s", hint="see the task log: `opsmith tasks`"
        ) from exc


async def _loop(app: App, interval: float, dry_run: bool, as_json: bool) -> None:
    import asyncio

    while True:
        _show(await _bounded(app, dry_run), as_json)
        await asyncio.sleep(interval)


def _show(report: PassReport, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "at": report.at.isoformat(),
                "dry_run": report.dry_run,
                "decisions": [
                    {"kind": d.kind, "task": d.task_id, "agent": d.agent_id, "detail": d.detail}
                    for d in report.decisions
                ],
            }
        )
        return
    label = " (dry run: nothing written)" if report.dry_run else ""
    if not report.decisions:
        out.print(f"{report.at:%H:%M:%S} nothing to do{label}")
        return
    out.print(f"{report.at:%H:%M:%S} {len(report.decisions)} decision(s){label}")
    for d in report.decisions:
        agent = f" -> {d.agent_id}" if d.agent_id else ""
        out.print(f"  {d.kind:<9} {d.task_id}{escape(agent)}: {escape(d.detail)}")


@tasks_app.callback()
def tasks_command(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="only tasks with this status (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="how many, newest first")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The tasks: priority, status, agent, attempts, deadline, and why each agent was chosen."""
    if ctx.invoked_subcommand is not None:
        return
    from opsmith.services.tasks import list_tasks

    found = list_tasks(state(ctx).app, status or [], limit=limit)
    if as_json:
        from opsmith.api.routes.tasks import task_json

        emit_json([task_json(t) for t in found])
        return
    if not found:
        out.print("no tasks (a failed production run or a bug report makes one)")
        return
    from rich.table import Table

    table = Table(title=f"{len(found)} tasks", title_justify="left")
    for column in (
        "id",
        "priority",
        "status",
        "type",
        "title",
        "agent",
        "attempts",
        "deadline",
        "why / last error",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "status"))
    for t in found:
        why = t.last_error if t.last_error else (t.assignment.reason if t.assignment else "")
        table.add_row(
            t.id,
            t.priority.value,
            t.status.value + (f" (L{t.escalation_level})" if t.escalation_level else ""),
            t.type,
            escape(t.title),
            t.agent_id or "-",
            f"{t.attempts}/{t.max_attempts}",
            f"{t.deadline:%Y-%m-%d %H:%MZ}" if t.deadline else "-",
            escape(why or ""),
        )
    out.print(table)


@tasks_app.command("report")
def report_command(
    ctx: typer.Context,
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help="low, normal, high, critical, emergency")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="the run it is about")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Report a bug: a task whose priority follows its severity. Exit 2 naming missing fields."""
    from opsmith.services.tasks import report_bug

    body = {"title": title, "description": description, "severity": severity}
    if run_id is not None:
        body["run_id"] = run_id
    _one(report_bug(state(ctx).app, state(ctx).identity, body), as_json, "reported")


@tasks_app.command("assign")
def assign_command(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="TASK")],
    agent_id: Annotated[str, typer.Argument(metavar="AGENT")],
    as_json: JsonOpt = False,
) -> None:
    """Give a task to a named agent (operators and admins)."""
    from opsmith.services.tasks import assign_task

    _one(assign_task(state(ctx).app, state(ctx).identity, task_id, agent_id), as_json, "assigned")


@tasks_app.command("retry")
def retry_command(
    ctx: typer.Context, task_id: Annotated[str, typer.Argument(metavar="TASK")], as_json: JsonOpt = False
) -> None:
    """Queue a failed or escalated task again, due now (operators and admins)."""
    from opsmith.services.tasks import retry_task

    _one(retry_task(state(ctx).app, state(ctx).identity, task_id), as_json, "queued again")


def _one(task: Task, as_json: bool, what: str) -> None:
    if as_json:
        from opsmith.api.routes.tasks import task_json

        emit_json(task_json(task))
        return
    agent = f" to {task.agent_id}" if task.agent_id and what == "assigned" else ""
    out.print(
        f"task {task.id} {what}{agent}: {escape(task.title)} ({task.priority.value}, {task.status.value})"
    )


def agents_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The agents: type, what they handle, load, heartbeat, success rate, average duration."""
    from opsmith.api.routes.tasks import agent_json
    from opsmith.services.tasks import list_agents

    views = list_agents(state(ctx).app)
    if as_json:
        emit_json([agent_json(v) for v in views])
        return
    from rich.table import Table

    table = Table(title=f"{len(views)} agents", title_justify="left")
    for column in ("id", "type", "handles", "load", "alive", "success", "avg s", "last heartbeat"):
        table.add_column(column, overflow="fold")
    for v in views:
        a = v.agent
        table.add_row(
            a.id + ("" if a.enabled else " (disabled)"),
            a.type,
            ", ".join(sorted(a.capabilities)),
            f"{v.load}/{a.max_concurrent}",
            "yes" if v.alive else "no",
            f"{a.success_rate:.2f} ({a.successes}/{a.successes + a.failures})",
            "-" if a.average_seconds is None else f"{a.average_seconds:.2f}",
            f"{a.last_heartbeat:%Y-%m-%d %H:%M:%SZ}" if a.last_heartbeat else "never",
        )
    out.print(table)

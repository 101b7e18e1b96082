"""`opsmith tracker list|show|sync|close`: the built-in tracker of failure issues, and its mirror on
GitHub. (Named `tracker`, not `issues`, so it cannot be mistaken for the project's own issues.)"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmith.cli.context import emit_json, escape, out, run, state

if TYPE_CHECKING:
    from opsmith.domain.issues import Issue

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
IssueId = Annotated[
    int, typer.Argument(metavar="ID", min=1, max=2**62, help="an issue's number in the built-in tracker")
]

tracker_app = typer.Typer(
    help="Issues opened for failed runs (one per failure), and their sync to GitHub.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@tracker_app.command("list")
def list_command(
    ctx: typer.Context,
    state_: Annotated[str | None, typer.Option("--state", help="only open or closed ones")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="how many")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="skip this many")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The issues, the most recently changed first: state, occurrences and sync with GitHub."""
    from opsmith.domain.errors import UsageError
    from opsmith.domain.issues import IssueState
    from opsmith.services.issues import list_issues

    try:
        wanted = None if state_ is None else IssueState(state_)
    except ValueError as exc:
        raise UsageError(f"--state {state_!r} is not an issue state", hint="give open or closed") from exc
    found = list_issues(state(ctx).app, state=wanted, limit=limit, offset=offset)
    if as_json:
        emit_json([_json(i) for i in found])
        return
    if not found:
        out.print("no issues (failures become issues in the environments under issues: in opsmith.yaml)")
        return
    _table(found)


@tracker_app.command("show")
def show_command(ctx: typer.Context, issue_id: IssueId, as_json: JsonOpt = False) -> None:
    """One issue: its body, its runs and every update, mirrored or waiting."""
    from opsmith.services.issues import get_issue

    issue = get_issue(state(ctx).app, issue_id)
    if as_json:
        emit_json(_json(issue, full=True))
        return
    out.print(f"[bold]#{issue.id}[/bold] {escape(issue.title)}")
    out.print(
        f"state: {issue.state.value} · occurrences: {issue.occurrences} · labels: {', '.join(issue.labels)}"
    )
    out.print(f"runs: {', '.join(issue.run_ids)}")
    out.print(f"fingerprint: {issue.fingerprint} ({escape(issue.cause)})")
    out.print(f"sync: {_sync(issue)}")
    out.print()
    out.print(issue.body, markup=False, highlight=False)
    for update in issue.updates:
        mirrored = "mirrored" if update.synced_at else "waiting"
        out.print(f"\n[bold]{update.kind.value}[/bold] run {escape(update.run_id or '-')} ({mirrored})")


@tracker_app.command("sync")
def sync_command(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="retry refused ones too (after a fix)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Mirror the issues due on GitHub now, once (`opsmith serve` does this every issues.sync_seconds).
    Exit 1 when one of them is still not mirrored."""
    from opsmith.domain.issues import SyncState
    from opsmith.services.issues import sync_issues

    app = state(ctx).app
    done = run(sync_issues(app, include_failed=failed))
    if as_json:
        emit_json([_json(i) for i in done])
    elif app.config.issues.github is None:
        out.print("no GitHub repository is configured (issues.github): issues stay in the built-in tracker")
    elif not done:
        out.print("nothing is due")
    else:
        _table(done)
    if any(i.sync is not SyncState.SYNCED for i in done):
        raise typer.Exit(1)


@tracker_app.command("close")
def close_command(ctx: typer.Context, issue_id: IssueId, as_json: JsonOpt = False) -> None:
    """Close an issue that is not on GitHub (one there is closed on GitHub); a repeat then reopens
    it or opens a new one, as issues.on_recurrence says."""
    from opsmith.services.issues import close_issue

    issue = close_issue(state(ctx).app, state(ctx).identity, issue_id)
    if as_json:
        emit_json(_json(issue))
        return
    out.print(f"issue #{issue.id} is {issue.state.value}")


def _json(issue: Issue, *, full: bool = False) -> dict[str, Any]:
    return issue.model_dump(mode="json", exclude=set() if full else {"body", "updates"})


def _table(found: list[Issue]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(found)} issues", title_justify="left")
    for column in ("id", "state", "title", "runs", "github", "sync"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "state"))
    for issue in found:
        github = f"#{issue.external.number}" if issue.external else "-"
        table.add_row(
            str(issue.id),
            issue.state.value,
            escape(issue.title),
            str(issue.occurrences),
            github,
            _sync(issue),
        )
    out.print(table)


def _sync(issue: Issue) -> str:
    if issue.sync.value in ("local", "synced"):
        return issue.sync.value
    when = f", next at {_when(issue.next_attempt_at)}" if issue.next_attempt_at else ""
    return escape(f"{issue.sync.value}{when}: {issue.last_error or ''}")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"

"""Seed 001's second half in `opsmith demo`: what follows the rolled-back deploy (`--failure`), and
the fix pushed and re-planned (`--fix`). Every line shown is what the services computed and
stored, read back: the root cause (services.explain), the emergency task the settled run made and
the orchestrator's pass that assigned it (services.tasks), the tracker issue (services.issues), the
notifications delivered (services.notifications), the signed push handled by the webhook
endpoint's service (services.replan) and the deployment history (services.history)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsmith.cli.context import escape, out, run, state

if TYPE_CHECKING:
    from opsmith.bootstrap import App
    from opsmith.cli.demo_receiver import Receiver
    from opsmith.domain.tasks import Task

APPLICATION = "my-application"
ENVIRONMENT = "production"
FIX_MESSAGE = "fix: add config/production.json and copy config/ into the image"
# Passes of the orchestrator the demo makes: the failed run's task, then the follow-ups it opens.
PASSES = 3


def after_failure(ctx: typer.Context, run_id: str, *, quiet: bool) -> dict[str, Any]:
    """The follow-ups of the failed run `run_id`, read back from the store and shown."""
    from opsmith.api.routes.tasks import task_json
    from opsmith.cli.explain import _print as print_analysis
    from opsmith.services.explain import explain_run
    from opsmith.services.issues import issue_for_run
    from opsmith.services.tasks import get_task, orchestrate_once

    cli = state(ctx)
    app = cli.app
    analysis = run(explain_run(app, cli.identity, run_id))
    if not quiet:
        out.print()
        print_analysis(analysis)
    # services.incidents.after_settle made it when the run settled; the orchestrator assigns it.
    task = _task_of(app, run_id)
    decisions: list[dict[str, Any]] = []
    for _ in range(PASSES if task is not None else 0):
        report = run(orchestrate_once(app))
        if not report.decisions:
            break
        decisions += [
            {"kind": d.kind, "task": d.task_id, "agent": d.agent_id, "detail": d.detail}
            for d in report.decisions
        ]
    if task is not None:
        task = get_task(app, task.id)
    follow_ups = [t for t in _tasks_of(app, run_id) if task is None or t.id != task.id]
    issue = issue_for_run(app, run_id)
    if not quiet:
        _print_task(task, follow_ups)
        out.print()
        if issue is None:
            out.print("[yellow]No tracker issue was recorded for this run[/] (issues.environments?)")
        else:
            out.print(
                f"🐞 ISSUE #{issue.id} on the built-in tracker ({issue.state.value},"
                f" {issue.occurrences} occurrence(s), sync {issue.sync.value}): {escape(issue.title)}"
            )
            out.print(f"   fingerprint {issue.fingerprint}: {escape(issue.cause)}")
    return {
        "root_cause": analysis.model_dump(mode="json"),
        "task": None if task is None else task_json(task),
        "follow_up_tasks": [task_json(t) for t in follow_ups],
        "orchestration": decisions,
        "issue": None if issue is None else issue.model_dump(mode="json", exclude={"body", "updates"}),
    }


def notifications_since(
    app: App, since: datetime, receiver: Receiver | None, *, quiet: bool
) -> list[dict[str, Any]]:
    """Send the due notifications (to the demo's receiver, or to OPSMITH_DEMO_NOTIFY_URL), then show
    those queued since `since` as the outbox records them, with what the receiver saw of each."""
    from opsmith.services.notifications import deliver_due, recent_deliveries

    run(deliver_due(app))
    found = [d for d in reversed(recent_deliveries(app, limit=200)) if d.created_at >= since]
    shown: list[dict[str, Any]] = []
    for delivery in found:
        receipt = None if receiver is None else receiver.receipt_of(delivery.id)
        shown.append(
            {
                "id": delivery.id,
                "event": delivery.notice.event.value,
                "subject": delivery.subject,
                "channel": delivery.channel,
                "status": delivery.status.value,
                "attempts": delivery.attempts,
                "reason": delivery.last_error,
                "received": None if receipt is None else receipt.as_json(),
            }
        )
    if not quiet:
        out.print()
        where = "the demo's receiver on 127.0.0.1" if receiver else "OPSMITH_DEMO_NOTIFY_URL"
        out.print(f"📣 NOTIFICATIONS ({len(shown)}, channel → {where})")
        for item in shown:
            got = item["received"]
            seen = "" if got is None else f"; received, signature {'valid' if got['verified'] else 'INVALID'}"
            why = f" ({item['reason']})" if item["reason"] else ""
            out.print(
                f"   {item['id']} {item['event']} of {escape(item['subject'])} → {escape(item['channel'])}:"
                f" {item['status']}{escape(why)}{seen}"
            )
    return shown


def fix_story(ctx: typer.Context, world_dir: Path, *, quiet: bool) -> dict[str, Any]:
    """Commit the fix to the sandbox repository, deliver its signed push to the webhook service,
    approve the re-plan with stand-ins, run it, and show the application's history."""
    from opsmith.cli.demo_story import approve_and_run
    from opsmith.cli.history import _print as print_history
    from opsmith.cli.webhook import _print as print_outcome
    from opsmith.config import resolve
    from opsmith.domain.plan import Plan
    from opsmith.domain.push import signature_of
    from opsmith.errors import ConfigError
    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World
    from opsmith.services.history import application_history
    from opsmith.services.replan import receive_github

    app = state(ctx).app
    settings = app.config.webhooks.github
    repository = next(
        (
            name
            for name, w in (settings.repositories if settings else {}).items()
            if w.application == APPLICATION
        ),
        None,
    )
    if settings is None or repository is None:
        raise ConfigError(
            f"demo --fix needs webhooks.github watching a repository of {APPLICATION}",
            hint="the bundled demo config has it; run the demo without an opsmith.yaml",
        )
    world = World(world_dir)
    before = world.repos.resolve(APPLICATION, "main")
    files = {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE}
    after = world.commit_files(APPLICATION, files, FIX_MESSAGE)
    old_tree, new_tree = world.repos.tree(APPLICATION, before), world.repos.tree(APPLICATION, after)
    added = sorted(p for p in new_tree if p not in old_tree)
    modified = sorted(p for p in new_tree if p in old_tree and new_tree[p] != old_tree[p])
    removed = sorted(p for p in old_tree if p not in new_tree)
    if not quiet:
        out.print()
        out.print(f"🔧 Committed the fix to the sandbox repository: {before[:7]}..{after[:7]} {FIX_MESSAGE}")
        out.print(f"   added {', '.join(added) or '-'}; modified {', '.join(modified) or '-'}")
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": before,
            "after": after,
            "repository": {"full_name": repository},
            "pusher": {"name": "demo-developer"},
            "commits": [
                {
                    "id": after,
                    "message": FIX_MESSAGE,
                    "author": {"name": "Demo Developer", "email": "dev@example.com"},
                    "added": added,
                    "modified": modified,
                    "removed": removed,
                }
            ],
        }
    ).encode()
    # Signed as GitHub signs it, with the configured secret, and handed to the service behind
    # POST /api/v1/webhooks/github: the signature is verified there, not trusted here.
    signature = signature_of(resolve(settings.secret, app.environ, where="webhooks.github.secret"), body)
    delivery = f"demo-{uuid.uuid4()}"
    outcome = run(receive_github(app, event="push", delivery=delivery, signature=signature, body=body))
    if not quiet:
        out.print(f"📨 Delivered the signed push of {repository} as GitHub delivery {delivery}")
        print_outcome(outcome)
    plan = outcome.replanned.plan if outcome.replanned else None
    result = approve_and_run(ctx, plan, quiet=quiet) if isinstance(plan, Plan) else None
    history = application_history(app, APPLICATION, environment=ENVIRONMENT)
    if not quiet:
        out.print()
        print_history(history)
    return {
        "commit": {
            "before": before,
            "after": after,
            "added": added,
            "modified": modified,
            "removed": removed,
        },
        "webhook": outcome.as_json(),
        "run": result,
        "history": history.model_dump(mode="json"),
    }


def failure_left(app: App, world_dir: Path) -> str | None:
    """The run the failure story left in this directory, when the sandbox still holds the commit
    it failed on; None otherwise (a fix already pushed, a fresh directory, another world)."""
    from opsmith.sandbox.world import World
    from opsmith.services.history import built_commit, last_failed

    found = last_failed(app, APPLICATION, ENVIRONMENT)
    if found is None or not (world_dir / "repos" / APPLICATION).is_dir():
        return None
    plan, failed = found
    head = World(world_dir).repos.resolve(APPLICATION, "main")
    return failed.run_id if built_commit(plan, failed) == head else None


def _tasks_of(app: App, run_id: str) -> list[Task]:
    from opsmith.services.tasks import list_tasks

    return sorted((t for t in list_tasks(app, limit=200) if t.run_id == run_id), key=lambda t: t.created_at)


def _task_of(app: App, run_id: str) -> Task | None:
    return next((t for t in _tasks_of(app, run_id) if t.type == "deployment_failure"), None)


def _print_task(task: Task | None, follow_ups: list[Task]) -> None:
    out.print()
    if task is None:
        out.print("[yellow]No task was made for this run[/] (tasks.environments?)")
        return
    deadline = f", due {task.deadline:%H:%M} UTC" if task.deadline else ""
    out.print(f"📋 TASK {task.id} ({task.priority.value}{deadline}): {escape(task.title)}")
    for one in [task, *follow_ups]:
        chosen = one.assignment
        if one is not task:
            out.print(f"   ↳ follow-up {one.id} ({one.type}, {one.priority.value}): {one.status.value}")
        if chosen is not None:
            out.print(f"     assigned to [bold]{chosen.agent_id}[/] by {chosen.by}: {escape(chosen.reason)}")
        if one is task:
            out.print(f"     status: {one.status.value} after {one.attempts} attempt(s)")
            said = {k: v for k, v in (one.result or {}).items() if k in ("outcome", "next_step")}
            for key, value in said.items():
                out.print(f"     {key.replace('_', ' ')}: {escape(str(value))}")
        if one.last_error:
            out.print(f"     [yellow]{escape(one.last_error)}[/]")

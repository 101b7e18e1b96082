"""`opsmith run PLAN`, `opsmith continue RUN`, `opsmith status RUN`, `opsmith logs RUN`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmith.cli.context import emit_json, err, out, run, state

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from rich.table import Table

    from opsmith.domain.plan import Plan
    from opsmith.engine.events import RunEvent
    from opsmith.engine.state import RunState

    Listener = Callable[[RunEvent], None]
    Starter = Callable[[Listener | None], Coroutine[Any, Any, tuple[Plan, RunState, str | None]]]

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
AutoOpt = Annotated[
    bool, typer.Option("--auto-validate", help="pass validation gates as the acting user instead of pausing")
]
ICON = {
    "step.started": "▶ ",
    "step.succeeded": "✅",
    "step.failed": "❌",
    "step.retrying": "🔁",
    "step.denied": "⛔",
    "gate.waiting": "⏸ ",
    "gate.passed": "✔ ",
    "rollback.started": "🔄",
    "rollback.action": "↩ ",
    "rollback.finished": "🔄",
    "run.started": "🚀",
    "run.finished": "🏁",
    "run.paused": "⏸ ",
    "run.needs_attention": "⚠ ",
    "step.interrupted": "⚡",
    "step.skipped": "⤼ ",
    "step.decided": "✋",
    "rollback.calling": "↩ ",
}


def run_command(
    ctx: typer.Context,
    plan_id: Annotated[str | None, typer.Argument(help="an approved plan")] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="RUN", help="go on with a run whose process died or paused"),
    ] = None,
    auto_validate: AutoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an approved plan with live progress; a failure rolls back what completed, newest first.

    Exit 0 when the run succeeded (or waits at a validation gate), 1 when it failed or was rolled
    back, 2 when it may not run."""
    from opsmith.errors import UsageError
    from opsmith.services.running import start_run

    if resume is not None:
        if plan_id is not None:
            raise UsageError("give a plan to run or --resume RUN, not both")
        _resume(ctx, resume, None, auto_validate, as_json)
        return
    if plan_id is None:
        raise UsageError(
            "which plan? opsmith run PLAN", hint="list approved plans: opsmith plans --status approved"
        )
    who = state(ctx).identity
    chosen = plan_id
    _drive(
        ctx,
        chosen,
        lambda listener: start_run(
            state(ctx).app, who, chosen, auto_validate=auto_validate, listener=listener
        ),
        as_json,
    )


def resume_command(
    ctx: typer.Context,
    run_id: Annotated[
        str, typer.Argument(help="a paused run, one that needs attention, or one whose process died")
    ],
    retry: Annotated[
        str | None, typer.Option("--retry", metavar="STEP", help="run an interrupted step again")
    ] = None,
    skip: Annotated[
        str | None,
        typer.Option("--skip", metavar="STEP", help="count an interrupted step as done (you checked)"),
    ] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="give up: fail the interrupted steps and undo what completed")
    ] = False,
    auto_validate: AutoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Go on with a run. Finished steps are not run again; an interrupted step that is not
    idempotent waits for your choice: --retry STEP, --skip STEP or --rollback."""
    from opsmith.engine.recovery import Choice
    from opsmith.errors import UsageError
    from opsmith.services.running import Decision

    chosen = [d for d in (retry and Decision(Choice.RETRY, retry), skip and Decision(Choice.SKIP, skip)) if d]
    if rollback:
        chosen.append(Decision(Choice.FAIL))
    if len(chosen) > 1:
        raise UsageError("choose one of --retry, --skip and --rollback", hint="decide one step per command")
    _resume(ctx, run_id, chosen[0] if chosen else None, auto_validate, as_json)


def _resume(ctx: typer.Context, run_id: str, decision: Any, auto_validate: bool, as_json: bool) -> None:
    from opsmith.services import reads
    from opsmith.services.running import resume_run

    who = state(ctx).identity
    plan_id = reads.run_state(state(ctx).app, run_id).plan_id
    _drive(
        ctx,
        plan_id,
        lambda listener: resume_run(
            state(ctx).app, who, run_id, decision=decision, auto_validate=auto_validate, listener=listener
        ),
        as_json,
    )


def pause_command(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="a run")], as_json: JsonOpt = False
) -> None:
    """Pause a run: no new step starts, the ones in flight finish. Resume with opsmith resume RUN."""
    _stop(ctx, run_id, "pause", as_json)


def _stop(ctx: typer.Context, run_id: str, what: str, as_json: bool) -> None:
    from opsmith.services import reads
    from opsmith.services.running import request_stop

    current, said = run(
        request_stop(
            state(ctx).app, state(ctx).identity, run_id, what, listener=None if as_json else _print_event
        )
    )
    if as_json:
        plan = reads.plan(state(ctx).app, current.plan_id)
        emit_json({**_run_json(plan, current), "result": said})
    else:
        out.print(f"{run_id}: {said} (status {current.status.value})")


def cancel_run(ctx: typer.Context, run_id: str, rollback: bool, as_json: bool) -> None:
    """Cancel a run: nothing new starts; with rollback, what completed is undone newest first."""
    _stop(ctx, run_id, "cancel+rollback" if rollback else "cancel", as_json)


def sweep_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Roll back runs whose validation gate timed out and list runs whose process died (run it
    from a timer, e.g. every minute)."""
    from opsmith.services.running import sweep

    found = run(sweep(state(ctx).app, state(ctx).identity, listener=None if as_json else _print_event))
    if as_json:
        emit_json([{"run_id": r, "result": what} for r, what in found])
        return
    for run_id, what in found:
        out.print(f"{run_id}: {what}")
    if not found:
        out.print("nothing to do: no gate timed out, no run lost its process")


def continue_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="a run waiting at a validation gate")],
    auto_validate: AutoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate the gate a run waits at, and carry on."""
    from opsmith.services import reads
    from opsmith.services.running import continue_run

    who = state(ctx).identity
    plan_id = reads.run_state(state(ctx).app, run_id).plan_id
    _drive(
        ctx,
        plan_id,
        lambda listener: continue_run(
            state(ctx).app, who, run_id, auto_validate=auto_validate, listener=listener
        ),
        as_json,
    )


def _drive(ctx: typer.Context, plan_id: str, start: Starter, as_json: bool) -> None:
    """Run `start` with the right way of showing progress: none (JSON), lines, or live bars."""
    from opsmith.services import reads

    if as_json or not out.is_terminal:
        plan, final, failure = run(start(None if as_json else _print_event))
    else:
        from opsmith.cli.progress import LiveProgress

        with LiveProgress(reads.plan(state(ctx).app, plan_id), out) as live:
            plan, final, failure = run(start(live))
    _report(plan, final, failure, as_json)


def status_command(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False
) -> None:
    """A run's status and every step's status, attempts, duration and output."""
    from opsmith.services import reads

    current, plan = reads.run_with_plan(state(ctx).app, run_id)
    if as_json:
        emit_json(_run_json(plan, current))
    else:
        out.print(f"{current.run_id} of {plan.id}: [bold]{current.status.value}[/]")
        out.print(_steps_table(plan, current))


def logs_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument()],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The events of a run, in order."""
    import time

    from opsmith.engine.state import FINAL_RUN_STATUSES, RunStatus
    from opsmith.services import reads

    app = state(ctx).app
    seen = 0
    while True:
        for event in reads.run_events(app, run_id, after=seen):
            seen = event.seq
            if as_json:
                emit_json(event.model_dump(mode="json"))
            else:
                _print_event(event)
        status = reads.run_state(app, run_id).status
        waiting = status in FINAL_RUN_STATUSES or status in (RunStatus.AWAITING_VALIDATION, RunStatus.FAILED)
        if not follow or waiting:
            return
        time.sleep(0.5)


def _print_event(event: RunEvent) -> None:
    icon = ICON.get(event.type.value, "• ")
    where = f"[{event.step_id}] " if event.step_id else ""
    out.print(f"{event.at:%H:%M:%S} {icon} {where}{event.message}", highlight=False)


def _report(plan: Plan, final: RunState, failure: str | None, as_json: bool) -> None:
    from opsmith.engine.state import RunStatus

    if as_json:
        from opsmith.engine.reflection import reflect

        reflection = reflect(plan, final).model_dump()
        emit_json(
            {
                **_run_json(plan, final, failure),
                "reflection": reflection,
            }
        )
    else:
        out.print()
        out.print(f"📊 EXECUTION SUMMARY: {final.run_id} of {plan.id}")
        out.print(_steps_table(plan, final))
        _print_reflection(plan, final)
        if final.status is RunStatus.AWAITING_VALIDATION:
            out.print(f"⏸  waiting for validation: opsmith continue {final.run_id}")
        elif final.status is RunStatus.PAUSED:
            out.print(f"⏸  paused: opsmith resume {final.run_id}")
        elif failure:
            err.print(f"[red]{failure}[/]")
        out.print(f"Status: [bold]{final.status.value}[/]")
    raise typer.Exit(
        0 if final.status in (RunStatus.SUCCEEDED, RunStatus.AWAITING_VALIDATION, RunStatus.PAUSED) else 1
    )


def _print_reflection(plan: Plan, final: RunState) -> None:
    from opsmith.engine.reflection import reflect

    found = reflect(plan, final)
    out.print("🪞 REFLECTION")
    for title, lines in (
        ("estimates against actual", found.estimates),
        ("failed", found.failures),
        ("retried", found.retries),
        ("suggestions", found.suggestions),
    ):
        if lines:
            out.print(f"  {title}:")
            for line in lines:
                out.print(f"    • {line}", highlight=False)


STATUS_ICON = {
    "succeeded": "✅",
    "failed": "❌",
    "rolled_back": "↩ ",
    "rollback_failed": "⚠ ",
    "pending": "· ",
    "running": "▶ ",
    "retry_wait": "🔁",
    "skipped": "⤼ ",
    "cancelled": "✖ ",
    "ready": "· ",
}


def _steps_table(plan: Plan, current: RunState) -> Table:
    from rich.table import Table

    from opsmith.services.views import duration

    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column()
    for number, step in enumerate(plan.steps, start=1):
        s = current.step(step.id)
        seconds = duration(s)
        took = f" in {seconds:.2f}s" if seconds is not None else ""
        tries = f", {s.attempts} attempts" if s.attempts > 1 else ""
        detail = s.error or _short(s.output)
        table.add_row(
            STATUS_ICON.get(s.status.value, "• "),
            f"Step {number}: {step.name} [{step.server}/{step.tool}] {s.status.value}{took}{tries}"
            + (f"\n   {detail}" if detail else ""),
        )
    return table


def _short(output: dict[str, Any] | None) -> str:
    from opsmith.engine.local import summarize

    return summarize(output)


def _run_json(plan: Plan, current: RunState, failure: str | None = None) -> dict[str, Any]:
    from opsmith.services.views import run_report

    return run_report(plan, current, failure).model_dump(mode="json")

"""`opsmith run PLAN`, `opsmith continue RUN`, `opsmith status RUN`, `opsmith logs RUN`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from opsmith.cli.context import emit_json, err, out, run, state

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

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
}


def run_command(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="an approved plan")],
    auto_validate: AutoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an approved plan with live progress; a failure rolls back what completed, newest first."""
    from opsmith.running import start_run

    who = state(ctx).identity
    _drive(
        ctx,
        plan_id,
        lambda listener: start_run(
            state(ctx).app, who, plan_id, auto_validate=auto_validate, listener=listener
        ),
        as_json,
    )


def continue_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="a run waiting at a validation gate")],
    auto_validate: AutoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate the gate a run waits at, and carry on."""
    from opsmith.running import continue_run
    from opsmith.store.runs import RunRepository

    who = state(ctx).identity
    plan_id = RunRepository(state(ctx).app.database).get(run_id).plan_id
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
    if as_json or not out.is_terminal:
        plan, final, failure = run(start(None if as_json else _print_event))
    else:
        from opsmith.cli.progress import LiveProgress
        from opsmith.store.plans import PlanRepository

        with LiveProgress(PlanRepository(state(ctx).app.database).get(plan_id), out) as live:
            plan, final, failure = run(start(live))
    _report(plan, final, failure, as_json)


def status_command(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False
) -> None:
    """A run's status and every step's status, attempts, duration and output."""
    from opsmith.store.plans import PlanRepository
    from opsmith.store.runs import RunRepository

    app = state(ctx).app
    current = RunRepository(app.database).get(run_id)
    plan = PlanRepository(app.database).get(current.plan_id)
    if as_json:
        emit_json(_run_json(current))
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
    from opsmith.store.runs import RunRepository

    runs = RunRepository(state(ctx).app.database)
    seen = 0
    while True:
        for event in runs.events(run_id, after=seen):
            seen = event.seq
            if as_json:
                emit_json(event.model_dump(mode="json"))
            else:
                _print_event(event)
        status = runs.get(run_id).status
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
                **_run_json(final),
                "plan_status": plan.status.value,
                "failure": failure,
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
        elif failure:
            err.print(f"[red]{failure}[/]")
        out.print(f"Status: [bold]{final.status.value}[/]")
    raise typer.Exit(0 if final.status in (RunStatus.SUCCEEDED, RunStatus.AWAITING_VALIDATION) else 1)


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


def _duration(step: Any) -> float | None:
    start, end = step.started_at, step.finished_at
    if start is None or end is None:
        return None
    if hasattr(start, "timestamp"):
        return float(end.timestamp() - start.timestamp())
    return float(end - start)


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
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column()
    for number, step in enumerate(plan.steps, start=1):
        s = current.step(step.id)
        seconds = _duration(s)
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


def _run_json(current: RunState) -> dict[str, Any]:
    return {
        "run_id": current.run_id,
        "plan_id": current.plan_id,
        "plan_hash": current.plan_hash,
        "status": current.status.value,
        "steps": [
            {**s.model_dump(mode="json"), "duration_seconds": _duration(s)} for s in current.steps.values()
        ],
    }

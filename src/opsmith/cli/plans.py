"""`opsmith intent`, `opsmith plan [amend]`, `opsmith show`, `opsmith plans`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import emit_json, out, run, state
from opsmith.domain.errors import UsageError

if TYPE_CHECKING:
    from opsmith.domain.plan import Plan

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="fill an argument: KEY=VALUE or STEP.KEY=VALUE")
]


def intent_command(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="the request, in plain language")],
    as_json: JsonOpt = False,
) -> None:
    """Show how a request is understood (the `intent` of its plan); unknown names are flagged."""
    from opsmith.services.planning import planner_for

    intent = planner_for(state(ctx).app).intent(text)
    if as_json:
        emit_json(intent.model_dump(mode="json"))
    else:
        from opsmith.cli.plan_view import intent_view

        out.print(intent_view(intent))


def plan_command(
    ctx: typer.Context,
    words: Annotated[list[str] | None, typer.Argument(help='"REQUEST", or: amend PLAN_ID')] = None,
    sets: SetOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="a plan written by hand (YAML or JSON steps)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan a request over the running servers and store it: `opsmith plan "Deploy x to staging"`.

    `opsmith plan amend PLAN_ID --set key=value` fills what an incomplete plan is missing.
    """
    from opsmith.services.planning import amend_plan, make_manual_plan, make_plan, parse_overrides

    app = state(ctx).app
    overrides = parse_overrides(sets or [])
    who = state(ctx).identity
    words = words or []
    if file is not None:
        if words or sets:
            raise UsageError("--file takes the whole plan: give no request and no --set with it")
        plan = run(make_manual_plan(app, who, _read(file), source=str(file)))
    elif not words:
        raise UsageError(
            'what should be planned? opsmith plan "REQUEST"', hint="or: opsmith plan --file PLAN.yaml"
        )
    elif words[:1] == ["amend"] and len(words) == 2:
        plan = run(amend_plan(app, who, words[1], overrides))
    elif words[:1] == ["amend"]:
        raise UsageError("amend takes one plan id", hint="opsmith plan amend PLAN_ID --set KEY=VALUE")
    else:
        plan = run(make_plan(app, who, " ".join(words), overrides))
    _show(plan, as_json)
    raise typer.Exit(1 if plan.status.value == "incomplete" else 0)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read the plan file {path}: {exc}", hint="give a readable UTF-8 YAML or JSON file"
        ) from exc


def show_command(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="a plan id, as `opsmith plans` lists them")],
    as_json: JsonOpt = False,
) -> None:
    """Show a stored plan."""

    from opsmith.services import reads

    _show(reads.plan(state(ctx).app, plan_id), as_json)


def plans_command(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="only plans in this status")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored plans, newest first."""

    from opsmith.services.reads import list_plans

    plans = list_plans(state(ctx).app, status)
    if as_json:
        from opsmith.services.views import plan_summary

        emit_json([plan_summary(p) for p in plans])
        return
    from rich.table import Table

    from opsmith.cli.plan_view import risk_text

    table = Table(title=f"{len(plans)} plans", title_justify="left")
    for column in ("id", "status", "risk", "steps", "estimate", "request"):
        table.add_column(column, overflow="fold")
    for p in plans:
        table.add_row(
            p.id, p.status.value, risk_text(p.risk), str(len(p.steps)), p.estimated_duration.text, p.request
        )
    out.print(table)


def _show(plan: Plan, as_json: bool) -> None:
    if as_json:
        emit_json(plan.model_dump(mode="json"))
    else:
        from opsmith.cli.plan_view import plan_view

        out.print(plan_view(plan, width=max(60, out.width)))

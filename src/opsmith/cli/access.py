"""`opsmith approve|reject|cancel PLAN`, `opsmith whoami`, `opsmith role set USER ROLE`."""

from __future__ import annotations

from typing import Annotated

import typer

from opsmith.cli.context import emit_json, out, state

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
PlanArg = Annotated[str, typer.Argument(help="a plan id, as `opsmith plans` lists them")]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="why")]

role_app = typer.Typer(help="Role changes (admin only).", no_args_is_help=True, rich_markup_mode=None)


def approve_command(
    ctx: typer.Context, plan_id: PlanArg, comment: CommentOpt = "", as_json: JsonOpt = False
) -> None:
    """Approve exactly this version of a plan (its content hash) as the acting user."""
    from opsmith.services.approvals import approve

    plan, tally = approve(state(ctx).app, state(ctx).identity, plan_id, comment)
    if as_json:
        from opsmith.services.views import approval_report

        emit_json(approval_report(plan, tally))
        return
    out.print(f"{state(ctx).identity.user} approved {plan.id} ({plan.hash[:19]}...)")
    if plan.status.value == "approved":
        out.print(f"[green]approved[/] by {', '.join(tally.approvers)}")
    else:
        waiting = tally.needed - len(tally.valid)
        out.print(f"{len(tally.valid)} of {tally.needed} approvals; waiting for {waiting} more")


def reject_command(
    ctx: typer.Context, plan_id: PlanArg, comment: CommentOpt = "", as_json: JsonOpt = False
) -> None:
    """Reject a plan: it can no longer be approved or run."""
    from opsmith.services.approvals import reject

    plan = reject(state(ctx).app, state(ctx).identity, plan_id, comment)
    if as_json:
        emit_json({"plan": plan.id, "status": plan.status.value})
    else:
        out.print(f"{plan.id} rejected")


def cancel_command(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(metavar="PLAN|RUN", help="a plan not started yet, or a run")],
    rollback: Annotated[
        bool, typer.Option("--rollback", help="for a run: undo what completed, newest first")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a plan that has not started, or a run (in-flight steps finish; --rollback undoes)."""
    from opsmith.services.approvals import cancel

    if plan_id.startswith("run_"):
        from opsmith.cli.runs import cancel_run

        cancel_run(ctx, plan_id, rollback, as_json)
        return

    plan = cancel(state(ctx).app, state(ctx).identity, plan_id)
    if as_json:
        emit_json({"plan": plan.id, "status": plan.status.value})
    else:
        out.print(f"{plan.id} cancelled")


def whoami_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The acting user, their role and where that came from."""
    from opsmith.services.access import whoami

    who, permission = whoami(state(ctx).app, state(ctx).identity)
    data = {**who.model_dump(), "permission": permission.model_dump(mode="json")}
    if as_json:
        emit_json(data)
    else:
        may = ", ".join(a.value for a in permission.actions) or "only view"
        out.print(
            f"{who.user} ({who.role}, from {who.source}): may {may} in {', '.join(permission.environments)}"
            f" up to {permission.max_risk.value} risk"
        )


@role_app.command("set")
def set_role_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="a configured user")],
    role: Annotated[
        str, typer.Argument(help="viewer, operator, deployer, approver, admin or a configured role")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Give a user a role. Only an admin may, and nobody can raise their own role."""
    from opsmith.services.access import set_role

    change = set_role(state(ctx).app, state(ctx).identity, user, role, via="cli")
    if as_json:
        emit_json({"user": change.user, "role": change.role, "set_by": change.set_by})
    else:
        out.print(f"{change.user} is now {change.role}")

"""Plans and runs built by hand for the engine tests (this module holds builders, no tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsmith.domain.compliance import Requirement
from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step, ToolCall
from opsmith.domain.risk import Risk
from opsmith.engine.state import RunState, RunStatus, StepState, StepStatus, new_run

NOW = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)


def step(
    step_id: str,
    *deps: str,
    args: dict[str, Any] | None = None,
    rollback: ToolCall | None = None,
    requires_validation: bool = False,
) -> Step:
    return Step(
        id=step_id,
        name=step_id.replace("_", " "),
        capability=step_id,
        server="sandbox",
        tool=f"do_{step_id}",
        args=args or {},
        depends_on=list(deps),
        risk=Risk.LOW,
        requires_validation=requires_validation,
        rollback=rollback,
    )


def plan_of(*steps: Step, compliance: list[Requirement] | None = None) -> Plan:
    return Plan(
        id="plan-1",
        request="deploy app to staging",
        title="Deploy app",
        intent=Intent(request="deploy app to staging", action="deploy"),
        playbook="test",
        priority="normal",
        risk=Risk.LOW,
        requires_approval=False,
        compliance=compliance or [],
        rollback_strategy="LIFO",
        failure_handling="rollback",
        estimated_duration=Estimate(minimum_seconds=0, maximum_seconds=0, text="< 1 min", critical_path=[]),
        steps=list(steps),
        status=PlanStatus.APPROVED,
        created_at=NOW,
    )


def plan_to_approve(
    *,
    risk: Risk,
    needed: int,
    created_at: datetime,
    requested_by: str,
    status: PlanStatus = PlanStatus.PENDING_APPROVAL,
    args: dict[str, Any] | None = None,
) -> Plan:
    """`plan_x`, one production deploy step at `risk` that needs `needed` approvals; its hash set."""
    made = Plan(
        id="plan_x",
        request="Deploy a to production",
        title="t",
        intent=Intent(request="Deploy a to production", action="deploy", environment="production"),
        playbook="p",
        priority="HIGH",
        risk=risk,
        requires_approval=True,
        approvals_needed=needed,
        rollback_strategy="",
        failure_handling="",
        estimated_duration=Estimate(
            minimum_seconds=1, maximum_seconds=2, text="< 1 min", critical_path=["s"]
        ),
        steps=[
            Step(
                id="s",
                name="s",
                capability="deploy",
                server="k",
                tool="apply_deployment",
                risk=risk,
                args=args or {},
            )
        ],
        status=status,
        created_at=created_at,
        requested_by=requested_by,
    )
    return made.model_copy(update={"hash": made.content_hash()})


def run_of(plan: Plan, status: RunStatus = RunStatus.RUNNING, **steps: StepStatus) -> RunState:
    """A run of `plan` in `status`; named steps in the given status (successes numbered in order given)."""
    run = new_run(plan, run_id="run-1")
    states = dict(run.steps)
    seq = 0
    for step_id, step_status in steps.items():
        done = step_status in (StepStatus.SUCCEEDED, StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED)
        states[step_id] = StepState(
            step_id=step_id,
            status=step_status,
            output={} if done else None,
            completed_seq=seq if done else None,
        )
        seq += done
    return RunState(
        run_id=run.run_id,
        plan_id=run.plan_id,
        plan_hash=run.plan_hash,
        status=status,
        steps=states,
        next_seq=seq,
    )

"""The reflection after a run is computed from the plan and the recorded run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.risk import Risk
from opsmith.engine.reflection import reflect
from opsmith.engine.state import RunState, RunStatus, StepState, StepStatus

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


def plan() -> Plan:
    steps = [
        Step(
            id="build",
            name="b",
            capability="build",
            server="ci",
            tool="trigger_build",
            risk=Risk.MEDIUM,
            estimated_duration=(60, 120),
        ),
        Step(
            id="deploy",
            name="d",
            capability="deploy",
            server="k",
            tool="apply_deployment",
            risk=Risk.HIGH,
            depends_on=["build"],
            estimated_duration=(60, 120),
        ),
    ]
    return Plan(
        id="p",
        request="r",
        title="t",
        intent=Intent(request="r", action="deploy"),
        playbook="x",
        priority="HIGH",
        risk=Risk.HIGH,
        requires_approval=False,
        rollback_strategy="",
        failure_handling="",
        estimated_duration=Estimate(minimum_seconds=120, maximum_seconds=240, text="", critical_path=[]),
        steps=steps,
        status=PlanStatus.APPROVED,
        created_at=T0,
    )


def test_estimates_failures_retries_and_a_suggestion_from_the_error() -> None:
    error = "rollout failed: CrashLoopBackOff: Error: Cannot find module './config/production.json'"
    run = RunState(
        run_id="r",
        plan_id="p",
        plan_hash="h",
        status=RunStatus.ROLLED_BACK,
        next_seq=1,
        steps={
            "build": StepState(
                step_id="build",
                status=StepStatus.SUCCEEDED,
                attempts=2,
                started_at=T0,
                finished_at=T0 + timedelta(seconds=90),
                completed_seq=0,
            ),
            "deploy": StepState(
                step_id="deploy",
                status=StepStatus.FAILED,
                attempts=1,
                started_at=T0,
                finished_at=T0 + timedelta(seconds=5),
                error=error,
            ),
        },
    )
    found = reflect(plan(), run)
    assert found.estimates == ["build: took 90.00s, within the estimate 1-2 min"]
    assert found.failures == [f"deploy (k/apply_deployment): {error}"]
    assert found.retries == ["build: 2 attempts"]
    assert found.suggestions[0].startswith("the image lacks config/production.json")
    assert "COPY config/ ./config/" in found.suggestions[0]

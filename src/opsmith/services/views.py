"""One serialisation of runs and their steps, for `--json`, the MCP face and the API alike."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from opsmith.domain.approval import ApprovalState
from opsmith.domain.plan import Plan
from opsmith.engine.events import RunEvent
from opsmith.engine.reflection import step_seconds
from opsmith.engine.state import RunState, RunStatus, StepState, StepStatus


class StepRun(BaseModel):
    step_id: str
    status: str
    attempts: int
    started_at: datetime | float | None = None
    finished_at: datetime | float | None = None
    duration_seconds: float | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    undo: str | None = Field(default=None, description="what became of its undo, if one was asked for")


class RunReport(BaseModel):
    run_id: str
    plan_id: str
    plan_hash: str
    plan_status: str
    status: str
    steps: list[StepRun]
    failure: str | None = None
    next: str = Field(description="what has to happen next, and who does it")


def plan_summary(plan: Plan) -> dict[str, object]:
    """A plan in a list: enough to choose it, without its steps."""
    return {
        "id": plan.id,
        "status": plan.status.value,
        "risk": plan.risk.value,
        "steps": len(plan.steps),
        "estimated_duration": plan.estimated_duration.text,
        "request": plan.request,
        "hash": plan.hash,
        "created_at": plan.created_at.isoformat(),
    }


def approval_report(plan: Plan, tally: ApprovalState) -> dict[str, object]:
    """A plan's approvals as they count now: who, how many are needed, and why others do not."""
    return {
        "plan": plan.id,
        "status": plan.status.value,
        "hash": plan.hash,
        "approved": tally.approved,
        "approvers": tally.approvers,
        "needed": tally.needed,
        "void": [{"approver": a.approver, "why": why} for a, why in tally.void],
    }


OUTPUT_LIMIT = 16_384  # characters of JSON a step output or event may take in a live view
TAIL = 4_096


def bounded(value: Any, limit: int | None) -> Any:
    """`value`, or when its JSON is longer than `limit`, its tail and its size: a 50 MB log is
    never sent whole to a page; the whole of it is paged from the step's output endpoint."""
    if limit is None or value is None:
        return value
    text = json.dumps(value, default=str)
    if len(text) <= limit:
        return value
    return {"truncated": True, "chars": len(text), "tail": text[-TAIL:]}


def event_json(event: RunEvent, limit: int | None = OUTPUT_LIMIT) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    data["data"] = {key: bounded(value, limit) for key, value in data["data"].items()}
    return data


def output_page(state: RunState, step_id: str, offset: int, limit: int) -> dict[str, Any]:
    """One slice of a step's output as JSON text; a negative offset counts from the end (a tail)."""
    text = json.dumps(state.step(step_id).output, default=str)
    start = max(0, len(text) + offset) if offset < 0 else min(offset, len(text))
    piece = text[start : start + limit]
    return {
        "step_id": step_id,
        "chars": len(text),
        "offset": start,
        "text": piece,
        "next_offset": start + len(piece) if start + len(piece) < len(text) else None,
    }


def run_report(
    plan: Plan, state: RunState, failure: str | None = None, *, output_limit: int | None = None
) -> RunReport:
    """The run as every face shows it: its status, each step's, the failure, and what comes next."""
    if failure is None:
        failure = next((s.error for s in state.steps.values() if s.status is StepStatus.FAILED), None)
    return RunReport(
        run_id=state.run_id,
        plan_id=state.plan_id,
        plan_hash=state.plan_hash,
        plan_status=plan.status.value,
        status=state.status.value,
        steps=[step_run(s, output_limit) for s in state.steps.values()],
        failure=failure,
        next=run_next(plan, state),
    )


def step_run(step: StepState, output_limit: int | None = None) -> StepRun:
    return StepRun(
        step_id=step.step_id,
        status=step.status.value,
        attempts=step.attempts,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_seconds=duration(step),
        output=bounded(step.output, output_limit),
        error=step.error,
        undo=step.undo.value if step.undo is not None else None,
    )


def duration(step: StepState) -> float | None:
    return step_seconds(step)


def run_next(plan: Plan, state: RunState) -> str:
    if state.status is RunStatus.AWAITING_VALIDATION:
        done = [
            s.id
            for s in plan.steps
            if s.requires_validation and state.step(s.id).status is StepStatus.SUCCEEDED
        ]
        gate = f" after step {done[-1]}" if done else ""
        return (
            f"paused at a validation gate{gate}: a person must check the result and run "
            f"`opsmith continue {state.run_id}`"
        )
    if state.status is RunStatus.SUCCEEDED:
        return "done: every step succeeded"
    if state.status is RunStatus.PAUSED:
        return f"paused: `opsmith resume {state.run_id}` goes on"
    if state.status in (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.ROLLING_BACK):
        return "in progress; ask for its status again"
    return f"{state.status.value}: see `opsmith logs {state.run_id}` and the failure"

"""Tasks and agents: list and report (a bug report is a task), assign to an agent, retry; the
agents; the status dashboard and metrics; the log of task attempts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from opsmith.api.bodies import MAX_INT, Page, page
from opsmith.api.deps import AppDep, Caller
from opsmith.domain.tasks import Task, TaskLogEntry
from opsmith.services import tasks
from opsmith.services.tasks import AgentView

router = APIRouter(tags=["tasks"])


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(
        min_length=1, max_length=64, description="the agent's id, as GET /api/v1/agents lists it"
    )


def task_json(task: Task) -> dict[str, Any]:
    """A task as every face shows it (`opsmith tasks --json` too)."""
    return task.model_dump(mode="json", exclude={"lease_owner", "key"})


def agent_json(view: AgentView) -> dict[str, Any]:
    agent = view.agent
    return {
        "id": agent.id,
        "type": agent.type,
        "capabilities": sorted(agent.capabilities),
        "max_concurrent": agent.max_concurrent,
        "load": view.load,
        "enabled": agent.enabled,
        "backup": agent.backup,
        "alive": view.alive,
        "last_heartbeat": None if agent.last_heartbeat is None else agent.last_heartbeat.isoformat(),
        "success_rate": round(agent.success_rate, 4),
        "successes": agent.successes,
        "failures": agent.failures,
        "average_seconds": agent.average_seconds,
    }


def entry_json(entry: TaskLogEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json")


@router.get("/api/v1/tasks", summary="List tasks, newest first")
async def list_tasks(
    app: AppDep,
    who: Caller,
    status: Annotated[list[str] | None, Query(description="only these statuses (repeatable)")] = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> Page[dict[str, Any]]:
    found = tasks.list_tasks(app, status or [], limit=limit, offset=offset)
    return page([task_json(t) for t in found], limit, offset)


_REPORT = Body(
    description="title, description, severity (low|normal|high|critical|emergency, or minor, major, "
    "blocker...), and optionally run_id, component, logs",
    examples=[{"title": "Checkout fails", "description": "500 on /pay", "severity": "high"}],
)


@router.post("/api/v1/tasks", status_code=201, summary="Report a bug: a task whose priority is its severity")
async def report_bug(app: AppDep, who: Caller, body: Annotated[dict[str, Any], _REPORT]) -> dict[str, Any]:
    # The body is checked by the service, so a missing field is named the same way in every face.
    return task_json(tasks.report_bug(app, who, body))


@router.get("/api/v1/tasks/{task_id}", summary="One task, with its assignment's reasons and result")
async def get_task(task_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return task_json(tasks.get_task(app, task_id))


@router.post("/api/v1/tasks/{task_id}/assign", summary="Give a task to a named agent (operators, admins)")
async def assign_task(task_id: str, body: AssignBody, app: AppDep, who: Caller) -> dict[str, Any]:
    return task_json(tasks.assign_task(app, who, task_id, body.agent))


@router.post("/api/v1/tasks/{task_id}/retry", summary="Queue a task again, due now (operators, admins)")
async def retry_task(task_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return task_json(tasks.retry_task(app, who, task_id))


@router.get("/api/v1/agents", summary="The agents: capabilities, load, heartbeat, success rate")
async def list_agents(app: AppDep, who: Caller) -> list[dict[str, Any]]:
    return [agent_json(v) for v in tasks.list_agents(app)]


@router.get("/api/v1/status/dashboard", summary="Tasks by status and priority, overdue ones, agents' load")
async def dashboard(app: AppDep, who: Caller) -> dict[str, Any]:
    return tasks.dashboard(app)


@router.get("/api/v1/status/metrics", summary="Task throughput, success rate and average durations")
async def metrics(
    app: AppDep, who: Caller, hours: float = Query(24.0, gt=0, le=24 * 90, description="the window")
) -> dict[str, Any]:
    return tasks.metrics(app, hours=hours)


@router.get("/api/v1/execution-logs", summary="The recorded task attempts, newest first")
async def execution_logs(
    app: AppDep,
    who: Caller,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
    all_entries: bool = Query(False, alias="all", description="every log entry, not only attempts"),
) -> Page[dict[str, Any]]:
    found = tasks.execution_logs(app, limit=limit, offset=offset, kind=None if all_entries else "attempt")
    return page([entry_json(e) for e in found], limit, offset)

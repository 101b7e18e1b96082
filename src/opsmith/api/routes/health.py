"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from opsmith.api import problems
from opsmith.api.deps import Caller, HostDep
from opsmith.domain.servers import Health
from opsmith.errors import OpsmithError
from opsmith.services import metrics, reads, workers
from opsmith.services.hosting import Host

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers (with executor: celery, the broker too, and a worker is alive)",
    response_model=None,
    responses={503: {"description": "the database, the broker or every worker does not answer"}},
)
async def readyz(host: HostDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        reads.list_plans(host.app, limit=1)
        checks["database"] = "ok"
    except OpsmithError as failed:
        checks["database"] = failed.message
        ready = False
    health = metrics.health(host.servers.statuses())
    checks["servers"] = health
    checks["runs_driven"] = len(host.drivers.tasks)
    ready = await _distribution(host, checks) and ready
    # A server that is down leaves opsmith ready (plans say what is missing); no database does not.
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _distribution(host: Host, checks: dict[str, Any]) -> bool:
    """With `executor: celery`: the broker and the live workers (no step is made without both)."""
    try:
        # In a thread: a broker that does not answer holds the ping for its whole timeout.
        found = await asyncio.to_thread(workers.distribution, host.app)
    except OpsmithError as failed:
        checks["workers"] = failed.message
        return False
    if found is None:
        return True
    checks["broker"] = "ok" if found.broker_up else f"{found.broker} does not answer"
    checks["workers"] = len(found.workers)
    return found.ready


@router.get(
    "/metrics",
    summary="Prometheus metrics (a token of any role)",
    response_class=Response,
    responses={status: problems.RESPONSES[status] for status in (401, 429)},
)
async def prometheus(host: HostDep, who: Caller) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics.snapshot(host.app), host.servers.statuses()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Collector:
    def __init__(self, snap: metrics.Snapshot, statuses: list[Any]) -> None:
        self._snap = snap
        self._statuses = statuses

    def collect(self) -> Any:
        runs = GaugeMetricFamily("opsmith_runs", "Runs by status", labels=["status"])
        for status, count in self._snap.runs.items():
            runs.add_metric([status], count)
        yield runs
        yield GaugeMetricFamily(
            "opsmith_approvals_waiting", "Plans waiting for approval", value=self._snap.approvals_waiting
        )
        calls = CounterMetricFamily(
            "opsmith_tool_calls", "Tool calls in the newest audit entries", labels=["tool", "outcome"]
        )
        seconds = HistogramMetricFamily(
            "opsmith_step_duration_seconds", "Durations of successful tool calls", labels=["tool"]
        )
        for tool, found in sorted(self._snap.tools.items()):
            calls.add_metric([tool, "ok"], found.calls - found.errors)
            calls.add_metric([tool, "error"], found.errors)
            buckets = [(str(b), n) for b, n in zip(metrics.BUCKETS, found.within, strict=True)]
            buckets.append(("+Inf", found.timed))
            seconds.add_metric([tool], buckets, sum_value=found.seconds)
        yield calls
        yield seconds
        up = GaugeMetricFamily("opsmith_server_up", "1 when the MCP server answers", labels=["server"])
        for status in self._statuses:
            up.add_metric([status.name], 1 if status.health in (Health.UP, Health.DEGRADED) else 0)
        yield up

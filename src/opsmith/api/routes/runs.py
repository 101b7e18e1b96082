"""Runs: started from an approved plan and driven in the background; read, followed live, paused,
resumed, continued past a gate, cancelled or rolled back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from opsmith.api.auth import identify_socket
from opsmith.api.bodies import MAX_INT, CancelBody, Page, ResumeBody, page
from opsmith.api.deps import AppDep, Caller, HostDep, HubDep
from opsmith.api.events import Dropped, EventHub
from opsmith.domain.identity import Identity
from opsmith.engine.local import CANCEL, CANCEL_AND_ROLLBACK, PAUSE
from opsmith.engine.recovery import Choice
from opsmith.services import reads, running
from opsmith.services.hosting import Host
from opsmith.services.running import Decision, Outcome, Started
from opsmith.services.views import OUTPUT_LIMIT, event_json, output_page, run_report

router = APIRouter(tags=["runs"])

_CHOICES = {"retry": Choice.RETRY, "skip": Choice.SKIP, "rollback": Choice.FAIL}
SSE_HEARTBEAT = 15.0
STOP_WAIT = 2.0  # a rollback that takes longer answers 202 and goes on in the background


@router.post("/api/v1/plans/{plan_id}/runs", status_code=202, summary="Run an approved plan")
async def start_run(plan_id: str, host: HostDep, who: Caller) -> dict[str, Any]:
    app = host.app

    def drive(on_started: Started) -> Coroutine[Any, Any, Outcome]:
        return running.start_run(app, who, plan_id, on_started=on_started, via="api")

    state = await host.drivers.launch(drive)
    return run_report(reads.plan(app, state.plan_id), state, output_limit=OUTPUT_LIMIT).model_dump(
        mode="json"
    )


@router.get("/api/v1/runs", summary="List runs, newest first")
async def list_runs(
    app: AppDep,
    who: Caller,
    status: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> Page[dict[str, Any]]:
    found = reads.list_runs(app, status, limit=limit, offset=offset)
    items = [
        {
            "run_id": r.run_id,
            "plan_id": r.plan_id,
            "status": r.status,
            "started_by": r.started_by,
            "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in found
    ]
    return page(items, limit, offset)


@router.get("/api/v1/runs/{run_id}", summary="One run, as `opsmith status --json` prints it")
async def get_run(run_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    state, plan = reads.run_with_plan(app, run_id)
    return run_report(plan, state, output_limit=OUTPUT_LIMIT).model_dump(mode="json")


@router.get(
    "/api/v1/runs/{run_id}/steps/{step_id}/output",
    summary="A step's output as JSON text, one slice at a time (a negative offset reads its tail)",
)
async def step_output(
    run_id: str,
    step_id: str,
    app: AppDep,
    who: Caller,
    offset: int = Query(0, ge=-10_000_000, le=10_000_000_000),
    limit: int = Query(65_536, ge=1, le=1_048_576),
) -> dict[str, Any]:
    return output_page(reads.run_state(app, run_id), step_id, offset, limit)


@router.get(
    "/api/v1/runs/{run_id}/events",
    summary="The run's events after `after`: a JSON page, or a live stream (Accept: text/event-stream)",
    response_model=None,
)
async def run_events(
    run_id: str,
    request: Request,
    app: AppDep,
    hub: HubDep,
    who: Caller,
    after: int = Query(0, ge=0, le=MAX_INT),
    limit: int = Query(500, ge=1, le=5000),
    last_event_id: str | None = Header(default=None),
) -> dict[str, Any] | StreamingResponse:
    if "text/event-stream" in request.headers.get("accept", ""):
        # A reconnecting EventSource sends the last id it saw; it wins over the query.
        start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
        reads.run_state(app, run_id)  # an unknown run is a 404 before the stream opens
        return StreamingResponse(
            _sse(hub, run_id, start), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
    events = reads.run_events(app, run_id, after=after, limit=limit)
    if not events:
        reads.run_state(app, run_id)
    last = events[-1].seq if events else after
    return {
        "items": [event_json(e) for e in events],
        "after": after,
        "next_after": last if len(events) == limit else None,
    }


@router.websocket("/api/v1/runs/{run_id}/events")
async def run_events_socket(websocket: WebSocket, run_id: str, after: int = 0) -> None:
    hub: EventHub = websocket.app.state.hub
    await identify_socket(websocket)
    await websocket.accept()
    follower = hub.follow(run_id, max(0, after))

    async def forward() -> None:
        async for event in follower:
            await websocket.send_text(json.dumps(event_json(event)))

    async def until_gone() -> None:
        # The client sends nothing; a receive returns when it leaves or the server shuts down.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sending, leaving = asyncio.create_task(forward()), asyncio.create_task(until_gone())
    try:
        await asyncio.wait({sending, leaving}, return_when=asyncio.FIRST_COMPLETED)
        if sending.done():
            sending.result()  # Dropped, or a send to a client that left
    except Dropped:
        await websocket.close(code=1013, reason="fell behind; reconnect with ?after=LAST_SEQ")
    except WebSocketDisconnect:
        pass
    finally:
        for task in (sending, leaving):
            task.cancel()
        await asyncio.gather(sending, leaving, return_exceptions=True)
        await follower.aclose()


async def _sse(hub: EventHub, run_id: str, after: int) -> AsyncIterator[str]:
    # The hub sends the keep-alive beat (an empty batch): a timeout around its generator would close it.
    follower = hub.batches(run_id, after, idle=SSE_HEARTBEAT)
    try:
        while True:
            try:
                batch = await anext(follower)
            except Dropped:
                yield "event: dropped\ndata: {}\n\n"
                return
            if not batch:
                yield ": keep-alive\n\n"
                continue
            # One chunk per batch: a watcher catching up gets hundreds of events per write.
            yield "".join(
                f"id: {e.seq}\nevent: {e.type.value}\ndata: {json.dumps(event_json(e))}\n\n" for e in batch
            )
    finally:
        await follower.aclose()


@router.post("/api/v1/runs/{run_id}/continue", status_code=202, summary="Carry on past a validation gate")
async def continue_run(run_id: str, host: HostDep, who: Caller) -> dict[str, Any]:
    app = host.app

    def drive(on_started: Started) -> Coroutine[Any, Any, Outcome]:
        return running.continue_run(app, who, run_id, on_started=on_started)

    state = await host.drivers.launch(drive)
    return run_report(reads.plan(app, state.plan_id), state, output_limit=OUTPUT_LIMIT).model_dump(
        mode="json"
    )


@router.post("/api/v1/runs/{run_id}/resume", status_code=202, summary="Go on with a paused or orphaned run")
async def resume_run(run_id: str, body: ResumeBody, host: HostDep, who: Caller) -> dict[str, Any]:
    app = host.app
    decision = Decision(_CHOICES[body.choice], body.step) if body.choice else None

    def drive(on_started: Started) -> Coroutine[Any, Any, Outcome]:
        return running.resume_run(app, who, run_id, decision=decision, on_started=on_started)

    state = await host.drivers.launch(drive)
    return run_report(reads.plan(app, state.plan_id), state, output_limit=OUTPUT_LIMIT).model_dump(
        mode="json"
    )


@router.post("/api/v1/runs/{run_id}/pause", status_code=202, summary="Pause after in-flight steps")
async def pause_run(run_id: str, host: HostDep, who: Caller) -> dict[str, Any]:
    return await _stop(host, who, run_id, PAUSE)


@router.post("/api/v1/runs/{run_id}/cancel", status_code=202, summary="Cancel, and undo what it did if asked")
async def cancel_run(run_id: str, body: CancelBody, host: HostDep, who: Caller) -> dict[str, Any]:
    return await _stop(host, who, run_id, CANCEL_AND_ROLLBACK if body.rollback else CANCEL)


@router.post("/api/v1/runs/{run_id}/rollback", status_code=202, summary="Roll back (a run at a gate, or any)")
async def rollback_run(run_id: str, host: HostDep, who: Caller) -> dict[str, Any]:
    return await _stop(host, who, run_id, CANCEL_AND_ROLLBACK)


async def _stop(host: Host, who: Identity, run_id: str, what: str) -> dict[str, Any]:
    app = host.app
    done = await host.drivers.soon(running.request_stop(app, who, run_id, what), wait=STOP_WAIT)
    if done is None:
        state, said = reads.run_state(app, run_id), "rolling back: follow its events"
    else:
        state, said = done
    plan = reads.plan(app, state.plan_id)
    report = run_report(plan, state, output_limit=OUTPUT_LIMIT).model_dump(mode="json")
    return {**report, "result": said}

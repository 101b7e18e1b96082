"""POST /api/v1/webhooks/github: GitHub's push (and ping) deliveries, authenticated by their signature;
GET /api/v1/webhooks/deliveries/{id}: what a delivery led to.

No bearer token on the POST: GitHub cannot send one. The body is read raw, because the signature is
over the bytes as sent. Each refusal is a problem answer saying what was wrong; nothing of a refused
delivery is written (services.replan.accept_github). An accepted push is recorded and answered 202
at once, GitHub allowing a delivery 10 s: the re-plan runs after the answer, in this server's
delivery worker (`worker`, started with the server; it first handles what a stopped server left).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from opsmith.api.deps import AppDep, Caller
from opsmith.api.problems import problem
from opsmith.bootstrap import App
from opsmith.domain.push import (
    DeliveryOutcome,
    DeliveryReplayed,
    MalformedPayload,
    SignatureMismatch,
    UnwatchedRepository,
    WebhookRefused,
)
from opsmith.services import replan

router = APIRouter(tags=["webhooks"])

# The status of each refusal, most specific first; the generic handler maps every other error.
_STATUS: tuple[tuple[type[WebhookRefused], int, str], ...] = (
    (SignatureMismatch, 401, "signature-mismatch"),
    (DeliveryReplayed, 409, "delivery-replayed"),
    (UnwatchedRepository, 404, "unwatched-repository"),
    (MalformedPayload, 400, "malformed-payload"),
)


def queue_of(api: FastAPI) -> asyncio.Queue[str]:
    """The ids of accepted pushes waiting for this server's worker."""
    found: asyncio.Queue[str] | None = getattr(api.state, "webhook_deliveries", None)
    if found is None:
        found = api.state.webhook_deliveries = asyncio.Queue()
    return found


async def worker(api: FastAPI, app: App, *, recover: bool, every: float = 300.0) -> None:
    """Handle the accepted pushes one after another, for as long as the server runs; with `recover`,
    first those a stopped server recorded and never settled, and again after `every` idle seconds.
    Cancelled mid-way, a delivery stays recorded as received, and the next start handles it."""
    queue = queue_of(api)
    if recover:
        await replan.recover_deliveries(app)
    while True:
        try:
            delivery_id = await asyncio.wait_for(queue.get(), timeout=every)
        except TimeoutError:
            if recover:
                await replan.recover_deliveries(app)
            continue
        await replan.handle_quietly(app, delivery_id)


@router.post(
    "/api/v1/webhooks/github",
    summary="A GitHub delivery (push, ping), signed with X-Hub-Signature-256; a push is answered 202",
    response_model=None,
    status_code=202,
)
async def github_webhook(
    request: Request,
    app: AppDep,
    x_github_event: str | None = Header(None, description="push or ping"),
    x_github_delivery: str | None = Header(None, description="the delivery's id; a replay is refused"),
    x_hub_signature_256: str | None = Header(None, description="sha256=<hex HMAC-SHA256 of the body>"),
) -> JSONResponse:
    body = await request.body()
    try:
        outcome = replan.accept_github(
            app, event=x_github_event, delivery=x_github_delivery, signature=x_hub_signature_256, body=body
        )
    except WebhookRefused as refused:
        status, kind = next(
            ((c, k) for t, c, k in _STATUS if isinstance(refused, t)), (422, "webhook-refused")
        )
        return problem(status, refused.message, kind=kind, hint=refused.hint, instance=request.url.path)
    if outcome.outcome is DeliveryOutcome.RECEIVED and outcome.delivery_id is not None:
        queue_of(request.app).put_nowait(outcome.delivery_id)
        return JSONResponse(outcome.as_json(), status_code=202)
    return JSONResponse(outcome.as_json(), status_code=200)  # a ping, an event not acted on: done


@router.get(
    "/api/v1/webhooks/deliveries/{delivery_id}",
    summary="A webhook delivery as recorded: outcome, detail, the plan it led to and why",
)
async def get_delivery(delivery_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return replan.delivery_status(app, delivery_id)

"""POST /api/v1/webhooks/github: GitHub's push (and ping) deliveries, authenticated by their signature.

No bearer token: GitHub cannot send one. The body is read raw, because the signature is over the
bytes as sent. Each refusal is a problem answer saying what was wrong; nothing of a refused
delivery is written (services.replan.receive_github).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from opsmith.api.deps import AppDep
from opsmith.api.problems import problem
from opsmith.domain.push import (
    DeliveryReplayed,
    MalformedPayload,
    SignatureMismatch,
    UnwatchedRepository,
    WebhookRefused,
)
from opsmith.services.replan import receive_github

router = APIRouter(tags=["webhooks"])

# The status of each refusal, most specific first; the generic handler maps every other error.
_STATUS: tuple[tuple[type[WebhookRefused], int, str], ...] = (
    (SignatureMismatch, 401, "signature-mismatch"),
    (DeliveryReplayed, 409, "delivery-replayed"),
    (UnwatchedRepository, 404, "unwatched-repository"),
    (MalformedPayload, 400, "malformed-payload"),
)


@router.post(
    "/api/v1/webhooks/github",
    summary="A GitHub delivery (push, ping), signed with X-Hub-Signature-256",
    response_model=None,
)
async def github_webhook(
    request: Request,
    app: AppDep,
    x_github_event: str | None = Header(None, description="push or ping"),
    x_github_delivery: str | None = Header(None, description="the delivery's id; a replay is refused"),
    x_hub_signature_256: str | None = Header(None, description="sha256=<hex HMAC-SHA256 of the body>"),
) -> dict[str, Any] | JSONResponse:
    body = await request.body()
    try:
        outcome = await receive_github(
            app, event=x_github_event, delivery=x_github_delivery, signature=x_hub_signature_256, body=body
        )
    except WebhookRefused as refused:
        status, kind = next(
            ((c, k) for t, c, k in _STATUS if isinstance(refused, t)), (422, "webhook-refused")
        )
        return problem(
            status,
            refused.message,
            kind=kind,
            hint=refused.hint,
            instance=request.url.path,
        )
    return outcome.as_json()

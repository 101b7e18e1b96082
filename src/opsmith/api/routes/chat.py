"""Chat callbacks: Slack's interactive buttons (Approve, Reject) on approval requests.

Authenticated by Slack's signature over the raw body, not by a bearer token; the service checks it,
maps the Slack user and decides. Slack wants an answer within three seconds: the decision is quick,
and the message update goes out after the answer (a background task).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse

from opsmith.api import problems
from opsmith.api.deps import AppDep
from opsmith.domain.slack import (
    RETRY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InteractionRefused,
    SignatureRefused,
)
from opsmith.services.chat_approvals import SlackRequest, handle_interaction, send_reply

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["payload"],
                    "properties": {"payload": {"type": "string", "description": "block_actions JSON"}},
                }
            }
        },
    },
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in (
            (TIMESTAMP_HEADER, "Unix seconds when Slack sent it; more than 5 minutes away is refused"),
            (SIGNATURE_HEADER, "v0=<hex HMAC-SHA256 of v0:TIMESTAMP:BODY under the signing secret>"),
            (RETRY_HEADER, "set when Slack sends a click again; it still decides once"),
        )
    ],
}
_ANSWER = {
    "type": "object",
    "required": ["outcome", "plan_id", "text"],
    "properties": {
        "outcome": {"type": "string", "enum": ["approved", "rejected", "refused", "already_decided"]},
        "plan_id": {"type": "string"},
        "text": {"type": "string"},
    },
}


@router.post(
    "/slack/interactions",
    summary="A click on an approval request's Approve or Reject button in Slack",
    openapi_extra=_FORM,
    responses={
        200: {
            "description": "What the click amounted to",
            "content": {"application/json": {"schema": _ANSWER}},
        },
        400: problems.RESPONSES[400],
        401: problems.RESPONSES[401],
    },
    response_class=JSONResponse,
)
async def slack_interaction(request: Request, background: BackgroundTasks, app: AppDep) -> Any:
    body = await request.body()
    slack = SlackRequest(
        body=body,
        timestamp=request.headers.get(TIMESTAMP_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        retry=request.headers.get(RETRY_HEADER),
    )
    try:
        reply = handle_interaction(app, slack)
    except SignatureRefused as refused:
        return problems.problem(
            401,
            refused.message,
            kind="slack-signature-refused",
            hint=refused.hint,
            instance=request.url.path,
            headers={"WWW-Authenticate": 'Signature realm="slack"'},
        )
    except InteractionRefused as refused:
        return problems.problem(
            400,
            refused.message,
            kind="slack-interaction-refused",
            hint=refused.hint,
            instance=request.url.path,
        )
    background.add_task(send_reply, app, reply)
    return JSONResponse(reply.view())

"""Errors as RFC 9457 problem details: the one mapping from opsmith's error types to HTTP.

The status comes from the error's type, never from its text. The body carries the same message
and hint the CLI prints, so a script reading either learns the same thing:

    {"type": "urn:opsmith:problem:run-refused", "title": "Conflict", "status": 409,
     "detail": "plan ... is pending_approval, not approved", "hint": "...", "instance": "/api/v1/..."}

Every unknown thing is a 404: an id or name no plan, run, step, server, tool, group, secret, token
or user has (a NotFoundError, mapped once), and a path no route has. A 405 names in `Allow` every
method its path takes, as RFC 9110 requires.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from opsmith.domain.approval import ApprovalError, PlanChanged, PlanNotOpen
from opsmith.domain.errors import (
    AuthenticationError,
    NotFoundError,
    OperationError,
    OpsmithError,
    ServerUnavailableError,
    StoreBusyError,
    ToolCallError,
    UsageError,
)
from opsmith.engine.errors import IllegalTransition
from opsmith.services.access import AccessRefused
from opsmith.services.explain import RunNotFailed
from opsmith.services.running import RunRefused
from opsmith.services.tool_calls import CallRefused, ConfirmationNeeded
from opsmith.store.runs import PlanTaken

MEDIA_TYPE = "application/problem+json"
# The methods a 405's Allow may name, in the order it names them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[OpsmithError], int], ...] = (
    (AuthenticationError, 401),
    (NotFoundError, 404),  # every unknown plan, run, step, server, tool, group, secret, token, user
    (ConfirmationNeeded, 428),
    (PlanChanged, 409),
    (PlanNotOpen, 409),
    (AccessRefused, 403),
    (CallRefused, 403),
    (ApprovalError, 403),
    (RunRefused, 409),
    (RunNotFailed, 409),  # the run exists; its state has nothing to explain
    (PlanTaken, 409),
    (IllegalTransition, 409),
    (UsageError, 422),
    (StoreBusyError, 503),
    (ServerUnavailableError, 503),
    (ToolCallError, 502),
    (OperationError, 500),
)


class Problem(BaseModel):
    """The body of every error answer, as the OpenAPI schema documents it."""

    model_config = ConfigDict(extra="allow")  # a problem may say more: "errors" of a 422

    type: str
    title: str
    status: int
    detail: str
    hint: str | None = None
    instance: str | None = None


# For `responses=`: the problem answers an /api/v1 operation may give, in their own media type
# (FastAPI would otherwise document its own 422 body, as application/json).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
    }
    for status in (400, 401, 403, 404, 409, 422, 428, 429, 502, 503)
}


class TooManyFailures(Exception):
    """A client that failed to authenticate too often, for a while."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed attempts to authenticate")
        self.retry_after = retry_after


def status_of(error: OpsmithError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    hint: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"urn:opsmith:problem:{kind or _slug(title)}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if hint:
        body["hint"] = hint
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(api: FastAPI) -> None:
    """Every error the API can meet becomes a problem response."""

    @api.exception_handler(OpsmithError)
    async def _known(request: Request, error: OpsmithError) -> JSONResponse:
        status = status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "1"}
        return problem(
            status,
            error.message,
            kind=_slug(type(error).__name__),
            hint=error.hint,
            instance=request.url.path,
            headers=headers,
        )

    @api.exception_handler(TooManyFailures)
    async def _throttled(request: Request, error: TooManyFailures) -> JSONResponse:
        seconds = max(1, int(error.retry_after + 0.999))
        return problem(
            429,
            f"too many failed attempts to authenticate from this client; try again in {seconds} s",
            kind="too-many-failures",
            hint="check the token you send: Authorization: Bearer osm_...",
            instance=request.url.path,
            headers={"Retry-After": str(seconds)},
        )

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in error.errors()
        ]
        first = errors[0] if errors else {"where": "request", "problem": "invalid"}
        return problem(
            422,
            f"{first['where']}: {first['problem']}",
            kind="invalid-request",
            hint="see the schema at /docs",
            instance=request.url.path,
            errors=errors,
        )

    @api.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        phrase = HTTPStatus(error.status_code).phrase
        detail = error.detail if isinstance(error.detail, str) else phrase
        headers = dict(error.headers) if error.headers else None
        if error.status_code == 405:
            allow = allowed_methods(api.router.routes, request.scope, (headers or {}).get("Allow", ""))
            return problem(
                405,
                f"{request.method} is not a method this path takes",
                hint=f"it takes {', '.join(allow)}" if allow else "see the API's paths at /docs",
                instance=request.url.path,
                headers={**(headers or {}), "Allow": ", ".join(allow)},
            )
        if error.status_code == 404 and detail == phrase:
            # The router's own 404: no route has this path (an unknown id on a known path is a
            # NotFoundError, which says what it looked for).
            return problem(
                404, "nothing is at this path", hint="see the API's paths at /docs", instance=request.url.path
            )
        return problem(error.status_code, detail, instance=request.url.path, headers=headers)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # The cause goes to the log; the client learns only that it was ours, never internals.
        _log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "opsmith failed unexpectedly; the server's log has the details",
            kind="internal",
            instance=request.url.path,
        )


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope, refused_by: str = "") -> list[str]:
    """Every method some route takes at the path of `scope`, for a 405's Allow header (RFC 9110
    section 10.2.1). Starlette names only the methods of the first route that matched the path, and
    there is one route per method. `refused_by`: the Allow the refusing route sent (a mount, which
    takes any method to its app, knows its own)."""
    probe = {
        "type": "http",
        "path": scope["path"],
        # A mount that matched rewrote root_path; the app's own is kept in app_root_path.
        "root_path": scope.get("app_root_path", scope.get("root_path", "")),
        "headers": [],
        "query_string": b"",
    }
    found = {m.strip().upper() for m in refused_by.split(",") if m.strip()}
    for route in routes:
        if isinstance(route, Mount):
            continue
        for method in _METHODS:
            if method not in found and route.matches({**probe, "method": method})[0] is Match.FULL:
                found.add(method)
    return sorted(found, key=lambda m: (_METHODS.index(m) if m in _METHODS else len(_METHODS), m))


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.replace(" ", "")).lower()

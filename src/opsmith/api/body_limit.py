"""A cap on the size of every request body, checked before anything reads it whole.

The endpoints that anyone may call (GitHub's push webhook, Slack's interactions) read their
body before they can check its signature, and uvicorn sets no limit of its own: without this, one
caller could make the server hold gigabytes. A declared Content-Length over the cap is refused at
once; a body sent in chunks is counted as it arrives and refused when it passes the cap.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmith.api.problems import problem


class BodyLimit:
    """ASGI middleware: 413 (a problem response) for a body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._limit:
            response = problem(413, self._detail(), hint=self._hint(), instance=scope.get("path"))
            await response(scope, receive, send)  # the body is never read
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._limit:
                    # Raised inside the route that reads the body: the API's HTTPException handler
                    # answers it as a problem response, and nothing of the request is acted on.
                    raise HTTPException(413, self._detail())
            return message

        await self._app(scope, counted, send)

    def _detail(self) -> str:
        return f"the request body is larger than the {self._limit:,} bytes this server accepts"

    @staticmethod
    def _hint() -> str:
        return "send less, or raise api.max_body_bytes in opsmith.yaml"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # not a number: counted as it arrives instead
    return None

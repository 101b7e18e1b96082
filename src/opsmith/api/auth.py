"""Who is calling: a bearer token (scripts), or the console's session cookie holding the same token.

The token is checked by `services.tokens.authenticate` on every request, so a revoked token or a
changed role takes effect at once. A client that fails too often is refused for a while without
its token even being looked at. A request authenticated by the cookie that changes something must
also carry the CSRF token the console got at login (double submit): another site can make the
browser send the cookie, never read it.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Request, WebSocket, WebSocketException
from starlette.requests import HTTPConnection

from opsmith.api.problems import TooManyFailures
from opsmith.bootstrap import App
from opsmith.domain.errors import AuthenticationError
from opsmith.domain.identity import Identity
from opsmith.services.access import AccessRefused
from opsmith.services.tokens import authenticate

SESSION_COOKIE = "opsmith_session"
CSRF_COOKIE = "opsmith_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class FailureGate:
    """At most `limit` failed authentications per client within `window` seconds."""

    limit: int
    window: float
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, client: str, now: float) -> None:
        recent = self._recent(client, now)
        if len(recent) >= self.limit:
            raise TooManyFailures(retry_after=recent[0] + self.window - now)

    def failed(self, client: str, now: float) -> None:
        self._recent(client, now).append(now)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self.failures.setdefault(client, deque())
        # The same sum as the retry time in `check`, so a kept failure always has time left.
        while recent and recent[0] + self.window <= now:
            recent.popleft()
        if not recent:
            # Bounded memory under a flood of clients: a client with nothing recent is forgotten.
            self.failures.pop(client, None)
            recent = self.failures.setdefault(client, deque())
        return recent


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def identify(app: App, gate: FailureGate, request: Request) -> Identity:
    """The caller's identity, or AuthenticationError / TooManyFailures."""
    client = client_of(request)
    now = time.monotonic()
    gate.check(client, now)
    presented, by_cookie = _presented(request)
    try:
        if presented is None:
            raise AuthenticationError(
                "no credentials: this endpoint needs a token",
                hint="send Authorization: Bearer osm_... (opsmith token create), or log in to the console",
            )
        identity = authenticate(app, presented)
    except AuthenticationError:
        gate.failed(client, now)
        raise
    if by_cookie and request.method not in _SAFE:
        _check_csrf(request)
    return identity


async def identify_socket(websocket: WebSocket) -> Identity:
    """A WebSocket's caller, before it is accepted. A browser sends the session cookie to any site's
    socket, so a cookie is accepted only from the console's own origin."""
    app = websocket.app.state.host.app
    gate: FailureGate = websocket.app.state.gate
    client = websocket.client.host if websocket.client else "unknown"
    now = time.monotonic()
    try:
        gate.check(client, now)
    except TooManyFailures as throttled:
        raise WebSocketException(code=1008, reason="too many failed attempts to authenticate") from throttled
    presented, by_cookie = _presented(websocket)
    try:
        if presented is None:
            raise AuthenticationError("no credentials: this endpoint needs a token")
        if by_cookie and not _same_origin(websocket):
            raise AuthenticationError("a session cookie sent from another site")
        return authenticate(app, presented)
    except AuthenticationError as refused:
        gate.failed(client, now)
        raise WebSocketException(code=1008, reason=refused.message) from refused


def _same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    return origin is not None and host is not None and origin.split("://", 1)[-1] == host


def _presented(request: HTTPConnection) -> tuple[str | None, bool]:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "the Authorization header is not a bearer token", hint="send Authorization: Bearer osm_..."
            )
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def _check_csrf(request: Request) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise AccessRefused(
            "this change came without the console's CSRF token",
            hint="reload the console page and try again",
        )

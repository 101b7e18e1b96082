"""The console's login: a token checked once by the token service, then kept in cookies.

The session cookie holds the token itself, HttpOnly so no script can read it; the API's auth reads
the same cookie, so a page and the calls its script makes act as one identity. The CSRF cookie is
random and readable by the console's script, which sends it back as a header (double submit).
Both are SameSite=Strict: another site's page never sends them.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.exceptions import HTTPException

from opsmith.api.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, FailureGate, client_of, identify
from opsmith.api.problems import TooManyFailures
from opsmith.domain.errors import AuthenticationError
from opsmith.domain.identity import Identity
from opsmith.services.hosting import Host
from opsmith.services.tokens import authenticate

MAX_FORM_BYTES = 4096  # a login form holds one token; anything longer is not one


class LoginFailed(Exception):
    """A login refused; `message` is safe to show (it never quotes what was typed)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def visitor(request: Request) -> Identity:
    """The identity behind a page request; a browser without a valid session is sent to /login.
    A visit with no credentials at all is not a failed authentication: it counts for nothing."""
    if SESSION_COOKIE not in request.cookies and "authorization" not in request.headers:
        raise _to_login(request)
    host: Host = request.app.state.host
    gate: FailureGate = request.app.state.gate
    try:
        return identify(host.app, gate, request)
    except AuthenticationError as refused:
        raise _to_login(request) from refused


def _to_login(request: Request) -> HTTPException:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "log in to the console first", headers={"Location": login_url(here)})


def login_url(wanted: str) -> str:
    return "/login" if wanted in ("", "/") else f"/login?next={quote(wanted, safe='/')}"


def safe_next(wanted: str | None) -> str:
    """Where to go after login: only a path of this site, never another site (open redirect)."""
    if not wanted or not wanted.startswith("/") or wanted.startswith("//") or "\\" in wanted:
        return "/"
    return wanted


async def log_in(request: Request) -> tuple[Identity, str, str]:
    """The identity of the token posted in the login form, the token, and where to go next.
    Refused attempts count toward the API's failure gate, so guessing is as slow here as there."""
    host: Host = request.app.state.host
    gate: FailureGate = request.app.state.gate
    client, now = client_of(request), time.monotonic()
    if not same_origin(request):
        raise LoginFailed("this login form was sent from another site", 403)
    try:
        gate.check(client, now)
    except TooManyFailures as throttled:
        seconds = max(1, int(throttled.retry_after + 0.999))
        raise LoginFailed(
            f"too many failed attempts to log in from here; try again in {seconds} s", 429
        ) from throttled
    form = await _form(request)
    token = form.get("token", "").strip()
    if not token:
        raise LoginFailed("paste a token (osm_...) to log in", 400)
    try:
        identity = authenticate(host.app, token)
    except AuthenticationError as refused:
        gate.failed(client, now)
        raise LoginFailed(refused.message, 401) from refused
    return identity, token, safe_next(form.get("next"))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise LoginFailed("the login form is too large to hold a token", 413)
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    return {name: values[0] for name, values in fields.items()}


def _secure(request: Request) -> bool:
    """Whether cookies are sent over HTTPS only: the request came over TLS, or the operator says a
    TLS proxy is in front (`api.secure_cookies`). Forwarded headers are not trusted: any local
    process could send them."""
    host: Host = request.app.state.host
    return request.url.scheme == "https" or host.app.config.api.secure_cookies


def start_session(request: Request, response: Response, token: str) -> None:
    secure = _secure(request)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/", secure=secure)
    give_csrf(request, response)


def give_csrf(request: Request, response: Response) -> None:
    """A fresh CSRF cookie; the script reads it, so it is not HttpOnly."""
    secure = _secure(request)
    response.set_cookie(
        CSRF_COOKIE, secrets.token_urlsafe(32), httponly=False, samesite="strict", path="/", secure=secure
    )


def end_session(request: Request, response: Response) -> None:
    secure = _secure(request)
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly, samesite="strict")


def csrf_matches(request: Request) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def same_origin(request: Request) -> bool:
    """A form post from this site, or from a client that names no origin (not a browser)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host")

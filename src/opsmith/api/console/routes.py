"""The console's pages: each reads through `pages` and renders one template. Changes go through
the REST API from the page's script, so nothing here writes anything but the session cookies (and
the audit entries of the evidence a person asks the run monitor to read again)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from opsmith.api.auth import CSRF_COOKIE
from opsmith.api.console import pages, session
from opsmith.api.console.session import LoginFailed
from opsmith.api.deps import AppDep, HostDep
from opsmith.api.problems import problem, status_of
from opsmith.domain.identity import Identity
from opsmith.errors import NotFoundError, OpsmithError
from opsmith.services import reads

STATIC = Path(__file__).parent / "static"

templates = Jinja2Templates(
    env=Environment(
        loader=PackageLoader("opsmith.api.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)

# No inline script or style anywhere, so the policy can forbid them: an injected tag does nothing.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
Visitor = Annotated[Identity, Depends(session.visitor)]


def render(
    request: Request, name: str, context: dict[str, Any], *, who: Identity | None, status: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, name, {**context, "who": who}, status_code=status, headers=_HEADERS
    )
    if who is not None and CSRF_COOKIE not in request.cookies:
        session.give_csrf(request, response)  # a session whose CSRF cookie went missing gets one
    return response


def page(
    request: Request, name: str, who: Identity, build: Callable[[], dict[str, Any]], nav: str = ""
) -> HTMLResponse:
    """`name` filled from `build()`; an error a person can act on is shown as a page, not JSON."""
    try:
        context = build()
    except OpsmithError as error:
        status = status_of(error)
        title = HTTPStatus(status).phrase
        failed = {"title": title, "detail": error.message, "hint": error.hint, "nav": nav}
        return render(request, "error.html", failed, who=who, status=status)
    return render(request, name, {**context, "nav": nav}, who=who)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"next": session.safe_next(next), "error": ""}, who=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    try:
        _, token, wanted = await session.log_in(request)
    except LoginFailed as failed:
        context = {"next": "/", "error": failed.message}
        return render(request, "login.html", context, who=None, status=failed.status)
    response = RedirectResponse(wanted, status_code=303)
    session.start_session(request, response, token)
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    if not session.csrf_matches(request):
        return problem(
            403,
            "this logout came without the console's CSRF token",
            kind="access-refused",
            hint="use the console's Log out button",
            instance=request.url.path,
        )
    response = RedirectResponse("/login", status_code=303)
    session.end_session(request, response)
    return response


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, host: HostDep, who: Visitor) -> HTMLResponse:
    return page(
        request,
        "dashboard.html",
        who,
        lambda: pages.dashboard(host.app, host.servers.statuses(), who),
        "dashboard",
    )


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
async def plan_view(plan_id: str, request: Request, app: AppDep, who: Visitor) -> HTMLResponse:
    return page(request, "plan.html", who, lambda: pages.plan_page(app, who, plan_id))


@router.get("/runs", response_class=HTMLResponse)
async def runs_view(
    request: Request, app: AppDep, who: Visitor, status: str | None = None, offset: int = Query(0, ge=0)
) -> HTMLResponse:
    return page(request, "runs.html", who, lambda: pages.runs_page(app, status or None, offset), "runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_monitor(run_id: str, request: Request, app: AppDep, who: Visitor) -> HTMLResponse:
    try:
        analysis = await pages.run_analysis(app, who, run_id)
    except NotFoundError:
        analysis = None  # the page below says what is not there
    return page(
        request, "run.html", who, lambda: {**pages.run_page(app, who, run_id), "analysis": analysis}, "runs"
    )


@router.get("/runs/{run_id}/analysis", response_model=None)
async def run_analysis(run_id: str, request: Request, app: AppDep, who: Visitor) -> Response:
    """The monitor's explanation as an HTML fragment, for its script to show once a run it follows
    has failed; 204 when the run did not fail."""
    return _analysis(request, await pages.run_analysis(app, who, run_id), who)


@router.post("/runs/{run_id}/analysis", response_model=None)
async def run_analysis_again(run_id: str, request: Request, app: AppDep, who: Visitor) -> Response:
    """The explanation with the plan's read-only tools asked again (checked and audited as every
    tool call): it calls tools, so it is a POST with the console's CSRF token."""
    if not session.csrf_matches(request):
        return problem(
            403,
            "this request to read the logs again came without the console's CSRF token",
            kind="access-refused",
            hint="reload the console page and use its Read logs again button",
            instance=request.url.path,
        )
    return _analysis(request, await pages.run_analysis(app, who, run_id, fetch=True), who)


def _analysis(request: Request, analysis: dict[str, Any] | None, who: Identity) -> Response:
    if analysis is None:
        return Response(status_code=204, headers=_HEADERS)
    return render(request, "_analysis.html", {"analysis": analysis}, who=who)


@router.get("/runs/{run_id}/progress")
async def run_progress(run_id: str, app: AppDep, who: Visitor) -> JSONResponse:
    """The monitor's figures and controls as JSON, for its script to refresh from as events arrive."""
    state, plan = reads.run_with_plan(app, run_id)
    return JSONResponse(pages.run_progress(app, who, plan, state), headers={"Cache-Control": "no-store"})


@router.get("/audit", response_class=HTMLResponse)
async def audit_view(request: Request, app: AppDep, who: Visitor, subject: str | None = None) -> HTMLResponse:
    return page(request, "audit.html", who, lambda: pages.audit_page(app, subject), "audit")


@router.get("/applications/{application}/history", response_class=HTMLResponse)
async def history_view(application: str, request: Request, app: AppDep, who: Visitor) -> HTMLResponse:
    from opsmith.services.history import application_history

    def build() -> dict[str, Any]:
        found = application_history(app, application)
        return {"history": found, "changes": {c.to_plan: c for c in found.changes}}

    return page(request, "history.html", who, build, "dashboard")


@router.get("/servers", response_class=HTMLResponse)
async def servers_view(request: Request, host: HostDep, who: Visitor) -> HTMLResponse:
    return page(request, "servers.html", who, lambda: {"servers": host.servers.statuses()}, "servers")

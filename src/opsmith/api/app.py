"""The FastAPI application of `opsmith serve`, and the background duties it runs while it lives."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from opsmith.api import problems
from opsmith.api.auth import FailureGate
from opsmith.api.body_limit import BodyLimit
from opsmith.api.console import routes as console
from opsmith.api.events import EventHub
from opsmith.api.routes import admin, explanations, health, inventory, plans, runs, secrets
from opsmith.api.routes import applications as application_routes
from opsmith.api.routes import chat as chat_routes
from opsmith.api.routes import issues as issue_routes
from opsmith.api.routes import tasks as task_routes
from opsmith.api.routes import webhooks as webhook_routes
from opsmith.bootstrap import event_wakeups
from opsmith.services import hosting
from opsmith.services.hosting import Host
from opsmith.services.identity import acting_as
from opsmith.services.issues import sync_issues
from opsmith.services.tasks import orchestrate_once

_log = logging.getLogger(__name__)


def create_api(host: Host, *, duties: bool = True) -> FastAPI:
    """The API over `host`. `duties`: run the background duties (servers, sweep, take-over)."""
    settings = host.app.config.api

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if duties:
            await hosting.keep_servers(host)  # warm before the first request
            tasks = [
                asyncio.create_task(
                    hosting.every(settings.supervise_seconds, lambda: hosting.keep_servers(host), "servers")
                ),
                asyncio.create_task(
                    hosting.every(settings.sweep_seconds, lambda: hosting.sweep_gates(host), "sweep")
                ),
                asyncio.create_task(
                    hosting.every(
                        settings.takeover_seconds,
                        lambda: hosting.take_over_orphans(host, lambda user: acting_as(host.app, user)),
                        "take-over",
                    )
                ),
                asyncio.create_task(
                    hosting.every(
                        host.app.config.notifications.deliver_seconds,
                        lambda: hosting.deliver_notifications(host),
                        "notifications",
                    )
                ),
                asyncio.create_task(
                    hosting.every(
                        host.app.config.issues.sync_seconds, lambda: sync_issues(host.app), "issue sync"
                    )
                ),
                asyncio.create_task(
                    hosting.every(
                        host.app.config.tasks.orchestrate_seconds, lambda: orchestrate_once(host.app), "tasks"
                    )
                ),
            ]
        # Events are served with or without the duties: the hub's wake-ups (PostgreSQL) always listen.
        tasks.append(asyncio.create_task(api.state.hub.listen(), name="event wake-ups"))
        # Accepted pushes are re-planned after their 202, with or without the duties; the duties'
        # server also handles, first, those a stopped server left unsettled.
        tasks.append(
            asyncio.create_task(
                webhook_routes.worker(api, host.app, recover=duties), name="webhook deliveries"
            )
        )
        # What start-up made (modules, schemas, the warm catalog) lives as long as the process: frozen,
        # a full collection no longer walks it. Unfrozen, one took over 100 ms inside a plan request.
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            await api.state.hub.close()
            left = await host.drivers.stop(host.app, settings.shutdown_grace_seconds)
            if left:
                _log.warning("stopped while driving %s; a later take-over goes on with them", ", ".join(left))
            await host.servers.close()

    api = FastAPI(
        title="opsmith",
        summary="Plain-language operations requests, planned over MCP tools, approved, run and audited.",
        version="1",
        lifespan=lifespan,
    )
    api.state.host = host
    api.state.hub = EventHub(
        host.app,
        settings.event_poll_seconds,
        wakeups=event_wakeups(host.app.config),
        fallback_seconds=settings.event_fallback_seconds,
    )
    api.state.gate = FailureGate(limit=settings.auth_failures, window=settings.auth_window_seconds)
    problems.install(api)
    for module in (plans, runs, explanations, admin, inventory, secrets):
        api.include_router(module.router, responses=problems.RESPONSES)
    api.include_router(webhook_routes.router, responses=problems.RESPONSES)
    api.include_router(application_routes.router, responses=problems.RESPONSES)
    api.include_router(issue_routes.router, responses=problems.RESPONSES)
    api.include_router(task_routes.router, responses=problems.RESPONSES)
    api.include_router(health.router)
    api.include_router(chat_routes.router)  # signed by Slack, not a token: its own responses
    api.include_router(console.router)
    api.mount("/static", StaticFiles(directory=console.STATIC), name="static")
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        api.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return api

"""What a route gets from the request: the long-lived host, the event hub, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsmith.api.auth import FailureGate, identify
from opsmith.api.events import EventHub
from opsmith.bootstrap import App
from opsmith.domain.identity import Identity
from opsmith.services.hosting import Host


async def host(request: Request) -> Host:
    found: Host = request.app.state.host
    return found


async def hub(request: Request) -> EventHub:
    found: EventHub = request.app.state.hub
    return found


# Declared for the OpenAPI schema only (auto_error off): `identify` reads and checks the header
# itself, the same way for every route, and also takes the console's cookie.
_bearer = HTTPBearer(auto_error=False, description="a token from `opsmith token create`: osm_...")


async def caller(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Identity:
    gate: FailureGate = request.app.state.gate
    found: Host = request.app.state.host
    return identify(found.app, gate, request)


async def app_of(request: Request) -> App:
    found: Host = request.app.state.host
    return found.app


HostDep = Annotated[Host, Depends(host)]
AppDep = Annotated[App, Depends(app_of)]
HubDep = Annotated[EventHub, Depends(hub)]
Caller = Annotated[Identity, Depends(caller)]

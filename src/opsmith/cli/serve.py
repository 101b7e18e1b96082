"""`opsmith serve [--host H] [--port N]`: the REST API, live events and console in one process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsmith.cli.context import err, state

if TYPE_CHECKING:
    from fastapi import FastAPI

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="address to bind (default: api.host)")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="port (default: api.port; 0: any free)")
    ] = None,
) -> None:
    """Serve the API and console; keep the servers warm, drive runs, sweep gates, take over orphans.

    The first start creates an admin token for the account running it and prints it once.
    CLI commands in other terminals keep working against the same database.
    """
    import asyncio

    from opsmith.api.app import create_api
    from opsmith.bootstrap import serving
    from opsmith.cli.context import _os_user
    from opsmith.services.hosting import Host
    from opsmith.services.identity import identify
    from opsmith.services.tokens import first_admin_token

    current = state(ctx)
    app, warm = serving(current.app)
    owner = identify(app, _os_user(), current.as_user)
    settings = app.config.api
    bind = host or settings.host
    wanted_port = settings.port if port is None else port
    token = first_admin_token(app, owner.user, via="serve")
    if token is not None:
        # Plain print: Rich would wrap the token on a narrow terminal, and a copied token must be whole.
        print(f"admin token for {owner.user} (shown once, keep it safe): {token}", flush=True)
    if bind not in LOOPBACK:
        err.print(
            f"[yellow]warning:[/] binding {bind}: tokens travel in clear text unless a TLS proxy is in front",
            highlight=False,
        )
    asyncio.run(_serve(create_api(Host(app=app, servers=warm, owner=owner)), bind, wanted_port))


async def _serve(api: FastAPI, host: str, port: int) -> None:
    import asyncio

    import uvicorn

    # proxy_headers off: uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, and every local
    # process is 127.0.0.1, so anyone on the machine could pick the address the login throttle sees.
    config = uvicorn.Config(
        api, host=host, port=port, log_level="warning", lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # the port is known only once uvicorn bound it (port 0: any free one)
        if serving.done():
            await serving  # what stopped it: the port is taken, the address is not ours...
            return
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    address = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"opsmith serve: http://{address}:{bound[1]} (API docs at /docs)", flush=True)
    await serving

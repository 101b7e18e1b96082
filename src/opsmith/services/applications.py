"""Applications from the live systems: at discovery, each server whose binding set says how it
lists what it runs is asked once (a read-only call, checked and audited like `opsmith call`, as
the person planning). The names are recorded with the catalog and join `applications:` from the
configuration; a name neither source knows keeps the nearest-names error.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from opsmith.bootstrap import App
from opsmith.domain.binding import BindingSet
from opsmith.domain.errors import OpsmithError
from opsmith.domain.extraction import extract
from opsmith.domain.identity import Identity
from opsmith.ports import ToolProvider
from opsmith.services.tool_calls import CallRequest, checked_call

# Tool output is untrusted: only names shaped like a deployment's or a job's become vocabulary.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,126}")


def known_applications(app: App) -> list[str]:
    """What the last listings of the configured servers named, configuration order, each once."""
    recorded = app.servers.applications()
    names = [n for server in app.config.mcp_servers for n in recorded.get(server, [])]
    return list(dict.fromkeys(names))


async def discover_applications(
    app: App, identity: Identity, pool: ToolProvider, sets: Sequence[BindingSet]
) -> list[str]:
    """List each fitting server's applications and record them; what could not be listed, said."""
    if not app.config.planning.list_applications:
        return []
    catalog = pool.catalog
    jobs = []
    for server in catalog.servers():
        tools = set(catalog.names(server))
        found = next((s for s in sets if s.applications is not None and s.fits(server, tools)), None)
        if found is not None:
            jobs.append(_list(app, identity, pool, server, found))
    return [w for warning in await asyncio.gather(*jobs) if (w := warning)]


async def _list(app: App, identity: Identity, pool: ToolProvider, server: str, found: BindingSet) -> str:
    inventory = found.applications
    assert inventory is not None
    spec = pool.catalog.get(server, inventory.tool)
    if spec is None or not spec.hints.effective_read_only:
        return f"applications of {server} not listed: {inventory.tool} is not a read-only tool there"
    request = CallRequest(
        server, inventory.tool, dict(inventory.fixed), timeout=app.config.planning.listing_timeout
    )
    try:
        result = await checked_call(app, identity, pool, request, spec, via="discovery")
    except OpsmithError as error:
        return f"applications of {server} not listed: {error.message}"
    read = extract({"names": inventory.names}, structured=result.structured, text=result.text, args={})
    listed = read.get("names")
    if not isinstance(listed, list):
        return f"applications of {server} not listed: its {inventory.tool} output has no names to read"
    app.servers.record_applications(server, [n for n in listed if isinstance(n, str) and NAME.fullmatch(n)])
    return ""


__all__ = ["discover_applications", "known_applications"]

"""The recorded catalogs of real MCP servers still match what those servers list live.

Each server of tests/realservers.py is started once, over real stdio with the official SDK client,
and its whole tools/list is compared with tests/fixtures/catalogs/PACKAGE.json: a server upgrade
that adds, drops or changes a tool fails here, naming the tools, until the catalogs are
re-recorded with bench/record_catalogs.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from opsmith.config import Config, StdioServerConfig
from opsmith.domain.catalog import Catalog
from tests.conftest import own_children
from tests.fixtures import catalogs
from tests.realservers import (
    ROOT,
    SERVERS,
    RealServer,
    ServerEntry,
    ServerNotInstalledError,
    ToolListing,
    list_tools,
    server_entries,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

LIST_TIMEOUT = 60.0  # seconds for one server to start and list its tools
RECORD = "uv run --frozen python bench/record_catalogs.py"


@dataclass(frozen=True)
class Live:
    """One server's live listing, or why there is none, with what it wrote on stderr."""

    listing: ToolListing | None
    error: BaseException | None
    stderr: str

    def check(self, name: str) -> ToolListing:
        if self.listing is None:
            tail = "\n".join(self.stderr.splitlines()[-20:])
            raise AssertionError(f"{name} did not list its tools: {self.error!r}\nstderr:\n{tail}")
        return self.listing


async def _list_all(entries: Mapping[str, ServerEntry], logs: Path) -> dict[str, Live]:
    found: dict[str, Live] = {}

    async def one(name: str) -> None:
        log = logs / f"{name}.stderr"
        listing, error = None, None
        try:
            with log.open("w") as errlog:
                listing = await list_tools(entries[name], errlog=errlog, timeout=LIST_TIMEOUT)
        except Exception as exc:  # kept, to fail only this server's tests
            error = exc
        found[name] = Live(listing, error, log.read_text(errors="replace"))

    async with anyio.create_task_group() as group:
        for name in entries:
            group.start_soon(one, name)
    return found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Live]:
    """Every real server started once, all at once, listed, and stopped again."""
    directory = tmp_path_factory.mktemp("real-servers")
    entries = server_entries(directory)  # raises, telling to run ./scripts/setup, if one is missing
    before = {p.pid for p in own_children()}
    found = anyio.run(_list_all, entries, directory)
    left = [p for p in own_children() if p.pid not in before]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, f"servers outlived their sessions: {[' '.join(p.cmdline()) for p in alive]}"
    return found


def drift(recorded: list[dict[str, Any]], live: list[dict[str, Any]]) -> list[str]:
    """What changed between two tool lists, by tool name and field; empty when they are equal."""
    before = {t["name"]: t for t in recorded}
    after = {t["name"]: t for t in live}
    lines = []
    if added := sorted(after.keys() - before.keys()):
        lines.append(f"new tools ({len(added)}): {', '.join(added)}")
    if gone := sorted(before.keys() - after.keys()):
        lines.append(f"tools gone ({len(gone)}): {', '.join(gone)}")
    for name in sorted(before.keys() & after.keys()):
        fields = sorted(
            k for k in before[name].keys() | after[name].keys() if before[name].get(k) != after[name].get(k)
        )
        if fields:
            lines.append(f"changed: {name} ({', '.join(fields)})")
    return lines


def test_drift_names_new_gone_and_changed_tools() -> None:
    schema = {"type": "object"}
    recorded = [{"name": "a", "inputSchema": schema}, {"name": "b", "inputSchema": schema}]
    live = [{"name": "b", "inputSchema": schema, "title": "B"}, {"name": "c", "inputSchema": schema}]
    assert drift(recorded, live) == ["new tools (1): c", "tools gone (1): a", "changed: b (title)"]
    assert drift(recorded, recorded) == []


@pytest.mark.parametrize("name", list(SERVERS))
def test_live_tools_list_matches_the_recorded_catalog(live: dict[str, Live], name: str) -> None:
    package = SERVERS[name].package
    listing = live[name].check(name)
    now = catalogs.recording(listing.server_name, listing.server_version, listing.tools)
    recorded = catalogs.read(package)
    if now["tools"] != recorded["tools"]:
        changes = drift(recorded["tools"], now["tools"]) or [
            "the same tools, listed differently (a name twice?)"
        ]
        pytest.fail(
            f"{package} ({listing.server_name} {listing.server_version}; recorded from"
            f" {recorded['serverInfo']['name']} {recorded['serverInfo']['version']}) no longer lists what"
            f" {os.path.relpath(catalogs.path(package), ROOT)} holds:\n  "
            + "\n  ".join(changes)
            + f"\nif the change is expected: `{RECORD} {name}`, then review the diff",
            pytrace=False,
        )


@pytest.mark.parametrize("name", list(SERVERS))
def test_catalog_was_recorded_from_the_installed_version(live: dict[str, Live], name: str) -> None:
    listing = live[name].check(name)
    recorded = catalogs.read(SERVERS[name].package)["serverInfo"]
    assert recorded == {"name": listing.server_name, "version": listing.server_version}, (
        f"re-record after the upgrade: `{RECORD} {name}`"
    )


@pytest.mark.parametrize("name", list(SERVERS))
def test_recorded_catalog_loads_as_discovery_would_store_it(name: str) -> None:
    package = SERVERS[name].package
    catalog = catalogs.load(package, name)
    recorded = catalogs.read(package)["tools"]
    assert isinstance(catalog, Catalog) and catalog.servers() == [name]
    assert catalog.names(name) == sorted(t["name"] for t in recorded)
    for item in recorded:
        tool = catalog.get(name, item["name"])
        assert tool is not None and tool.input_schema == item["inputSchema"]
        assert tool.hints.read_only == item.get("annotations", {}).get("readOnlyHint")


def test_entries_are_valid_opsmith_server_configs(tmp_path: Path) -> None:
    config = Config.model_validate({"state_dir": str(tmp_path), "mcpServers": server_entries(tmp_path)})
    assert list(config.mcp_servers) == list(SERVERS)
    for name, spec in config.mcp_servers.items():
        assert isinstance(spec, StdioServerConfig) and Path(spec.command).is_absolute(), name


def test_a_missing_server_is_an_error_that_says_to_run_setup(tmp_path: Path) -> None:
    absent = RealServer(
        "kubernetes", "mcp-server-kubernetes", tmp_path / "nothing", SERVERS["kubernetes"].entry
    )
    with pytest.raises(
        ServerNotInstalledError, match=r"nothing \(mcp-server-kubernetes\).*run ./scripts/setup"
    ):
        absent.entry_in(tmp_path / "kubernetes")

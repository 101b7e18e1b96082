"""`opsmith serve` keeps the fleet's provider (and so its SSH connections) between runs: the next
open reuses it, it closes once no open used it for `fleet.keep_seconds`, and at shutdown. A command
that runs once (keep 0) makes its own and closes it at exit. Over the fakes, with a counting
stand-in for the provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from opsmith.bootstrap import KeptFleet, WithHosts
from opsmith.domain.catalog import Catalog
from opsmith.domain.host_tools import host_tools
from opsmith.domain.inventory import Inventory
from opsmith.domain.inventory_ansible import parse_inventory
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import ServerStatus
from tests.fakes import FakeServerHost, FakeTools, FakeWorld, fake_app

CONFIG = "mcpServers: {}\n"  # the inventory is imported (stored), so a test can import another
WEB12 = "[web]\nweb1 ansible_host=127.0.0.1\nweb2 ansible_host=127.0.0.1\n"
WEB3 = "[web]\nweb3 ansible_host=127.0.0.1\n"


class CountedHosts:
    """Stands in for HostTools: answers with the hosts of the inventory it reads at call time."""

    made: ClassVar[list[CountedHosts]] = []

    def __init__(self, inventory: Callable[[], Inventory]) -> None:
        self.inventory = inventory
        self.closed = 0
        CountedHosts.made.append(self)

    @property
    def catalog(self) -> Catalog:
        return Catalog(host_tools())

    def statuses(self) -> list[ServerStatus]:
        return []

    async def call(self, server: str, tool: str, arguments: dict[str, Any], **_: Any) -> ToolResult:
        return ToolResult(
            server=server, tool=tool, structured={"hosts": self.inventory().host_names_of("web")}
        )

    async def close(self) -> None:
        self.closed += 1


def source(keep: float) -> tuple[WithHosts, Any]:
    CountedHosts.made = []
    world = fake_app(CONFIG, FakeTools(specs=[]))
    imported(world, WEB12)
    return WithHosts(world.tools, world.app, keep_seconds=keep, make_hosts=CountedHosts), world


def imported(world: FakeWorld, text: str) -> None:
    world.app.inventory.replace(
        parse_inventory(text, "hosts.ini"), source="test", by="ada", at=world.clock.now()
    )


async def one_run(fleet: WithHosts) -> None:
    async with fleet.open(["hosts"]):
        pass


def test_a_command_makes_its_own_fleet_and_closes_it_at_exit() -> None:
    fleet, _ = source(keep=0)

    async def twice() -> None:
        await one_run(fleet)
        await one_run(fleet)

    asyncio.run(twice())
    assert [h.closed for h in CountedHosts.made] == [1, 1]


def test_serve_reuses_the_fleet_between_runs_and_closes_it_once_idle() -> None:
    fleet, _ = source(keep=0.05)

    async def scenario() -> None:
        await one_run(fleet)
        await one_run(fleet)  # within the keep time: the same provider, still open
        assert len(CountedHosts.made) == 1 and CountedHosts.made[0].closed == 0
        # Two runs at once share it; it stays open while either holds it.
        async with fleet.open(["hosts"]), fleet.open(["hosts"]):
            await asyncio.sleep(0.2)  # past the keep time, but in use
            assert CountedHosts.made[0].closed == 0
        await asyncio.sleep(0.2)  # idle past the keep time: closed, once
        assert [h.closed for h in CountedHosts.made] == [1]
        await one_run(fleet)  # the next run makes a new one
        assert len(CountedHosts.made) == 2
        await fleet.close()
        assert [h.closed for h in CountedHosts.made] == [1, 1]

    asyncio.run(scenario())


def test_a_kept_fleet_reads_the_inventory_of_each_open() -> None:
    fleet, world = source(keep=60)

    async def scenario() -> list[Any]:
        seen = []
        async with fleet.open(["hosts"]) as tools:
            seen.append((await tools.call("hosts", "service_status", {})).structured)
        imported(world, WEB3)  # an import between two runs
        async with fleet.open(["hosts"]) as tools:
            seen.append((await tools.call("hosts", "service_status", {})).structured)
        await fleet.close()
        return seen

    first, second = asyncio.run(scenario())
    assert len(CountedHosts.made) == 1
    assert first == {"hosts": ["web1", "web2"]} and second == {"hosts": ["web3"]}


def test_closing_serve_closes_the_kept_fleet_and_the_servers() -> None:
    CountedHosts.made = []
    world = fake_app(CONFIG, FakeTools(specs=[]))
    imported(world, WEB12)
    servers = FakeServerHost(world.tools)
    kept = KeptFleet(servers, world.app, keep_seconds=60)  # type: ignore[arg-type]
    kept._make = CountedHosts  # type: ignore[assignment]

    async def scenario() -> None:
        await one_run(kept)
        await kept.close()

    asyncio.run(scenario())
    assert [h.closed for h in CountedHosts.made] == [1] and servers.closed

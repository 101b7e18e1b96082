"""The server `hosts` (tools.hosts.provider.HostTools) over a real loopback fleet of OpenSSH servers:
a fleet operation runs on every host of a group at once, through the real SSH adapter, the real
script library and the stand-in systemctl each host has; per-host results, progress, the failure
policy, and refusals before anything runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.config import Config, parse_config
from opsmith.domain.errors import ScriptInputError, ToolCallError, UnknownGroupError
from opsmith.domain.hosts import Credential, Host
from opsmith.domain.inventory_ansible import parse_yaml
from opsmith.tools.hosts.provider import FleetPolicy, HostTools
from opsmith.tools.hosts.shells import Shells
from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

UNIT = "dataprocessor"


def inventory_text(groups: Mapping[str, list[Host]]) -> str:
    """An Ansible YAML inventory of these hosts, as an operator would write it."""
    children: dict[str, Any] = {}
    for group, hosts in groups.items():
        children[group] = {
            "vars": {"opsmith_credential": KEY_CREDENTIAL, "environment": "production"},
            "hosts": {
                h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user}
                for h in hosts
            },
        }
    return yaml.safe_dump({"all": {"children": children}})


def fleet_config(tmp_path: Path, fleet: SshdFleet) -> Config:
    text = yaml.safe_dump(
        {
            "state_dir": str(tmp_path / "state"),
            "fleet": {"known_hosts": str(fleet.known_hosts), "connect_timeout": 3, "command_timeout": 20},
        }
    )
    return parse_config(text, source="test")


Make = Callable[..., HostTools]


@pytest.fixture
async def tools(tmp_path: Path, sshd_fleet: SshdFleet) -> AsyncIterator[Make]:
    made: list[HostTools] = []

    def make(groups: Mapping[str, list[Host]], **policy: Any) -> HostTools:
        inventory = parse_yaml(inventory_text(groups), "test inventory")
        keys: dict[str, Credential] = {KEY_CREDENTIAL: sshd_fleet.credential()}
        provider = HostTools(
            inventory=lambda: inventory,
            credential=lambda name: keys[name],
            shell=Shells(fleet_config(tmp_path, sshd_fleet)),
            policy=FleetPolicy(**{"host_retries": 0, "command_timeout": 20.0, **policy}),
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()
    sshd_fleet.stop_units()


async def test_a_service_is_started_then_stopped_on_every_host_of_a_group_with_progress(
    tools: Make, sshd_fleet: SshdFleet
) -> None:
    hosts = sshd_fleet.good
    sshd_fleet.declare_units(UNIT, hosts=hosts)
    provider = tools({"data_processing": hosts})
    heard: list[dict[str, Any]] = []
    started = await provider.call(
        "hosts",
        "service_start",
        {"targets": "Data Processing", "service": UNIT},
        progress=lambda c: heard.append(dict(c)),
    )
    assert started.structured is not None
    assert started.structured["succeeded"] == len(hosts) == 20, started.text
    assert all(sshd_fleet.unit_running(h, UNIT) for h in hosts)
    assert heard[0] == {"total": 20, "completed": 0, "failed": 0, "pending": 20, "host": ""}
    assert [c["completed"] for c in heard] == list(range(21))
    assert heard[-1]["pending"] == 0
    rows = started.structured["hosts"]
    assert [r["host"] for r in rows] == [h.name for h in hosts]  # in the inventory's order
    assert started.structured["running_hosts"] == [h.name for h in hosts]
    assert all(r["result"]["op"] == "service_start" and r["exit_code"] == 0 for r in rows), rows[0]

    stopped = await provider.call("hosts", "service_stop", {"targets": "data_processing", "service": UNIT})
    assert stopped.structured is not None and stopped.structured["failed"] == 0, stopped.text
    assert not any(sshd_fleet.unit_running(h, UNIT) for h in hosts)
    assert {r["result"]["was_running"] for r in stopped.structured["hosts"]} == {True}
    assert stopped.structured["running_hosts"] == []
    checked = await provider.call(
        "hosts",
        "service_status",
        {"targets": "data_processing", "service": UNIT, "expect": {"state": "stopped"}},
    )
    assert checked.structured is not None and checked.structured["succeeded"] == 20
    with pytest.raises(ToolCallError) as unexpected:
        await provider.call(
            "hosts",
            "service_status",
            {"targets": [h.name for h in hosts[:2]], "service": UNIT, "expect": {"state": "running"}},
        )
    assert unexpected.value.output is not None
    assert {r["reason"] for r in unexpected.value.output["hosts"]} == {"state='stopped', expected 'running'"}
    none = await provider.call("hosts", "service_stop", {"targets": [], "service": UNIT})
    assert none.structured is not None and none.structured["total"] == 0  # "where it runs": nowhere
    again = await provider.call("hosts", "service_stop", {"targets": "data_processing", "service": UNIT})
    assert again.structured is not None
    assert {r["result"]["was_running"] for r in again.structured["hosts"]} == {False}  # idempotent


async def test_hosts_that_fail_fail_alone_with_their_reasons_and_the_policy_decides_the_call(
    tools: Make, sshd_fleet: SshdFleet
) -> None:
    good = sshd_fleet.good[:6]
    bad = [sshd_fleet.down, sshd_fleet.rejects, sshd_fleet.changed]
    sshd_fleet.declare_units(UNIT, hosts=good)
    provider = tools({"web": good + bad})
    with pytest.raises(ToolCallError) as caught:
        await provider.call("hosts", "service_start", {"targets": "web", "service": UNIT})
    answer = caught.value.output
    assert answer is not None
    assert (answer["succeeded"], answer["failed"]) == (6, 3)
    assert "6 of 9 hosts succeeded, 3 failed (33.33%; allowed 0%)" in caught.value.message
    reasons = {r["host"]: r["failure"] for r in answer["hosts"] if not r["ok"]}
    assert reasons == {"down": "unreachable", "rejects": "auth_rejected", "changed": "host_key_changed"}
    assert all(sshd_fleet.unit_running(h, UNIT) for h in good), "a failing host stops no other"
    # The same call that tolerates a third of its hosts failing succeeds, with the same reasons.
    tolerant = await provider.call(
        "hosts", "service_start", {"targets": "web", "service": UNIT, "max_failed_percent": 34}
    )
    assert tolerant.structured is not None and tolerant.structured["failed_hosts"] == [
        "changed",
        "down",
        "rejects",
    ]


async def test_a_bad_name_or_an_unknown_group_is_refused_before_any_host_is_touched(
    tools: Make, sshd_fleet: SshdFleet
) -> None:
    hosts = sshd_fleet.good[:3]
    sshd_fleet.declare_units(UNIT, hosts=hosts)
    provider = tools({"production_web": hosts})
    with pytest.raises(ScriptInputError) as bad:
        await provider.call(
            "hosts", "service_start", {"targets": "production_web", "service": "nginx; rm -rf /"}
        )
    assert "nginx; rm -rf /" in bad.value.message
    with pytest.raises(UnknownGroupError) as unknown:
        await provider.call("hosts", "service_start", {"targets": "Production Webs", "service": UNIT})
    assert "nearest: production_web" in unknown.value.message
    assert not any(sshd_fleet.unit_running(h, UNIT) for h in hosts)


async def test_a_file_is_uploaded_checked_and_put_in_place_with_a_backup(
    tools: Make, sshd_fleet: SshdFleet, tmp_path: Path
) -> None:
    host = sshd_fleet.good[0]
    target = tmp_path / "remote" / "app.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    source = tmp_path / "new.conf"
    source.write_text("listen 8080;\n")
    provider = tools({"one": [host]})
    done = await provider.call(
        "hosts", "install_file", {"targets": "one", "source": str(source), "target": str(target)}
    )
    assert done.structured is not None and done.structured["succeeded"] == 1, done.text
    assert target.read_text() == "listen 8080;\n"
    backups = [p for p in target.parent.iterdir() if p.name != "app.conf"]
    assert [b.read_text() for b in backups] == ["old\n"], backups
    result = done.structured["hosts"][0]["result"]
    assert result["changed"] is True and result["backup"] == str(backups[0]), result

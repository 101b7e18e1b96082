"""A package update undone host by host, over a loopback fleet of real sshd: each host runs the real
package scripts against the stand-in apt-get and dpkg-query of tests/fleet/bin (state per host in
$OPSMITH_STUB_STATE; no real package is touched), the update's answer records each host's previous
version, and the undo (package_install with a version per host) puts it back, a downgrade where it
must be. End to end from the CLI: issue 14's request planned complete in production, approved, run,
a restart that fails on one host, and the rollback that restores every host's version."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.domain.errors import ScriptInputError, ToolArgumentsError, ToolCallError
from opsmith.domain.hosts import Credential, Host
from opsmith.domain.inventory_ansible import parse_yaml
from opsmith.tools.hosts.provider import FleetPolicy, HostTools
from opsmith.tools.hosts.shells import Shells
from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet
from tests.integration.test_fleet_run import project_with, run
from tests.integration.test_host_tools import fleet_config, inventory_text

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

PACKAGE = "nginx"
OFFERED = ["1.22.1-9", "1.24.0-1", "1.26.0-1"]  # oldest first: 1.26.0-1 is the newest
NGINX = "Update nginx to latest version on all web servers in 'Production Web' group and restart service"


def packages(fleet: SshdFleet, host: Host) -> Path:
    return fleet.server(host.name).stub_state / "packages"


def offer(fleet: SshdFleet, host: Host, installed: str | None, *, broken: bool = False) -> None:
    """The host's repositories offer OFFERED (and installing fails when `broken`); `installed`
    is its version now, None for not installed. Whatever an earlier test left is gone."""
    state = packages(fleet, host)
    shutil.rmtree(state, ignore_errors=True)
    (state / "available").mkdir(parents=True)
    (state / "installed").mkdir()
    lines = [*OFFERED, *(["fail"] if broken else [])]
    (state / "available" / PACKAGE).write_text("".join(f"{line}\n" for line in lines))
    if installed is not None:
        (state / "installed" / PACKAGE).write_text(f"{installed}\n")


def version_on(fleet: SshdFleet, host: Host) -> str | None:
    path = packages(fleet, host) / "installed" / PACKAGE
    return path.read_text().strip() if path.exists() else None


def apt_calls(fleet: SshdFleet, host: Host) -> list[str]:
    log = packages(fleet, host) / "apt-get.log"
    return log.read_text().splitlines() if log.exists() else []


# -- the tool, called directly -------------------------------------------------------------------

Make = Callable[..., HostTools]


@pytest.fixture
async def tools(tmp_path: Path, sshd_fleet: SshdFleet) -> AsyncIterator[Make]:
    made: list[HostTools] = []

    def make(groups: Mapping[str, list[Host]], windows: tuple[str, ...] = ()) -> HostTools:
        data = yaml.safe_load(inventory_text(groups))
        for name in windows:  # a Windows host in the first group, never reached
            first = next(iter(data["all"]["children"].values()))
            first["hosts"][name] = {"ansible_host": "127.0.0.1", "ansible_connection": "winrm"}
        inventory = parse_yaml(yaml.safe_dump(data), "test inventory")
        keys: dict[str, Credential] = {KEY_CREDENTIAL: sshd_fleet.credential()}
        provider = HostTools(
            inventory=lambda: inventory,
            credential=lambda name: keys[name],
            shell=Shells(fleet_config(tmp_path, sshd_fleet)),
            policy=FleetPolicy(host_retries=0, command_timeout=20.0),
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


@pytest.mark.anyio
async def test_an_update_records_each_hosts_previous_version_and_the_install_puts_it_back(
    tools: Make, sshd_fleet: SshdFleet
) -> None:
    old, current, absent = sshd_fleet.good[15:18]
    offer(sshd_fleet, old, "1.22.1-9")
    offer(sshd_fleet, current, "1.26.0-1")
    offer(sshd_fleet, absent, None)
    provider = tools({"web": [old, current, absent]})

    updated = await provider.call("hosts", "package_update", {"targets": "web", "package": PACKAGE})
    answer = updated.structured
    assert answer is not None and answer["succeeded"] == 3, updated.text
    assert answer["current_versions"] == {h.name: "1.26.0-1" for h in (old, current, absent)}
    # Only where the version changed and there was one before; the fresh install is named apart.
    assert answer["previous_versions"] == {old.name: "1.22.1-9"}
    assert answer["installed_hosts"] == [absent.name]
    assert answer["changed_hosts"] == [old.name, absent.name]

    undone = await provider.call(
        "hosts", "package_install", {"package": PACKAGE, "version": answer["previous_versions"]}
    )
    assert undone.structured is not None and undone.structured["total"] == 1, undone.text
    assert undone.structured["targets"] == [old.name]  # the hosts of the version per host, nowhere else
    assert undone.structured["previous_versions"] == {old.name: "1.26.0-1"}  # an undo of the undo
    assert [version_on(sshd_fleet, h) for h in (old, current, absent)] == ["1.22.1-9", "1.26.0-1", "1.26.0-1"]
    assert apt_calls(sshd_fleet, old)[-1].endswith(f"--allow-downgrades {_confold()} install nginx=1.22.1-9")
    assert not any("nginx=" in call for call in apt_calls(sshd_fleet, current))

    # Each host its own version, in one call; a host already at its version is left alone.
    pins = {old.name: "1.22.1-9", current.name: "1.24.0-1"}
    both = await provider.call(
        "hosts", "package_install", {"package": PACKAGE, "version": pins, "targets": [current.name, old.name]}
    )
    assert both.structured is not None
    assert [(r["host"], r["result"]["changed"]) for r in both.structured["hosts"]] == [
        (current.name, True),  # in the order targets gives
        (old.name, False),
    ]
    assert version_on(sshd_fleet, current) == "1.24.0-1"
    nothing = await provider.call("hosts", "package_install", {"package": PACKAGE, "version": {}})
    assert nothing.structured is not None and nothing.structured["total"] == 0  # nothing to put back


def _confold() -> str:
    return "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"


@pytest.mark.anyio
async def test_an_update_that_fails_on_one_host_still_records_the_others_for_their_undo(
    tools: Make, sshd_fleet: SshdFleet
) -> None:
    fine, broken = sshd_fleet.good[15:17]
    offer(sshd_fleet, fine, "1.24.0-1")
    offer(sshd_fleet, broken, "1.24.0-1", broken=True)
    provider = tools({"web": [fine, broken]})
    with pytest.raises(ToolCallError) as failed:
        await provider.call("hosts", "package_update", {"targets": "web", "package": PACKAGE})
    output = failed.value.output
    assert output is not None and output["failed_hosts"] == [broken.name]
    assert output["previous_versions"] == {fine.name: "1.24.0-1"}  # the broken host did not move
    assert output["current_versions"] == {fine.name: "1.26.0-1", broken.name: "1.24.0-1"}
    assert "apt-get failed with exit code 100" in failed.value.message


@pytest.mark.anyio
async def test_a_version_per_host_is_refused_before_anything_runs(tools: Make, sshd_fleet: SshdFleet) -> None:
    one, two = sshd_fleet.good[15:17]
    offer(sshd_fleet, one, "1.24.0-1")
    offer(sshd_fleet, two, "1.24.0-1")
    provider = tools({"web": [one, two]}, windows=("win01",))
    refusals: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"version": {"win01": "1.0"}}, ToolArgumentsError, "a version per host is for Linux hosts only"),
        ({"version": {one.name: "1.0"}, "targets": "web"}, ToolArgumentsError, f"targets has {two.name}"),
        ({"version": {one.name: "1.0"}, "targets": [two.name]}, ToolArgumentsError, "which targets does not"),
        ({"version": {"no-such-host": "1.0"}}, Exception, "no host 'no-such-host' in the inventory"),
        (
            {"version": {one.name: "1.0 && reboot"}},
            ScriptInputError,
            f"version[{one.name!r}] '1.0 && reboot'",
        ),
        ({"version": {"bad host": "1.0"}}, ScriptInputError, "'bad host' is not a host name"),
        ({}, ToolArgumentsError, "needs targets, or a version per host"),
    ]
    for extra, kind, said in refusals:
        with pytest.raises(kind) as refused:
            await provider.call("hosts", "package_install", {"package": PACKAGE, **extra})
        assert said in str(refused.value), (extra, str(refused.value))
    assert apt_calls(sshd_fleet, one) == [] and apt_calls(sshd_fleet, two) == []  # nothing ran anywhere


# -- issue 14 from the CLI ------------------------------------------------------------------------


def web_project(tmp_path: Path, fleet: SshdFleet, hosts: list[Host]) -> Path:
    """test_fleet_run's project, its group named as issue 14 says ('Production Web')."""
    project = project_with(tmp_path, fleet, hosts)
    path = project / "opsmith.yaml"
    config = yaml.safe_load(path.read_text())
    groups = config["inventory"]["groups"]
    groups["production_web"] = groups.pop("data_processing")
    path.write_text(yaml.safe_dump(config))
    return project


def test_a_failed_restart_rolls_each_host_back_to_its_own_previous_version(
    tmp_path: Path, sshd_fleet: SshdFleet
) -> None:
    old, newer, absent, stubborn = hosts = sshd_fleet.good[16:20]
    before = {old.name: "1.22.1-9", newer.name: "1.24.0-1", absent.name: None, stubborn.name: "1.24.0-1"}
    for host in hosts:
        offer(sshd_fleet, host, before[host.name])
    sshd_fleet.declare_units(PACKAGE, hosts=[old, newer, absent])
    sshd_fleet.declare_units(PACKAGE, hosts=[stubborn], settings="fail_start=1\n")  # its restart fails
    project = web_project(tmp_path, sshd_fleet, hosts)
    try:
        key = (sshd_fleet.root / "client").read_text()
        assert run(project, "ada", "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key", stdin=key)[0] == 0
        # Every host is this machine: its configuration directory is one the hosts do not share.
        config = tmp_path / "no-nginx-config"
        code, out, err = run(project, "bob", "plan", NGINX, "--set", f"update.backup={config}", "--json")
        assert code == 0, err
        plan = json.loads(out)
        assert plan["intent"]["environment"] == "production" and plan["status"] == "pending_approval", plan
        assert [r["name"] for r in plan["compliance"] if r["met"] is False] == []
        update = {s["id"]: s for s in plan["steps"]}["update"]
        assert update["rollback"]["tool"] == "package_install"
        assert update["rollback"]["args"] == {
            "version": "${steps.update.previous_versions}",
            "package": PACKAGE,
        }
        assert run(project, "alice", "approve", plan["id"])[0] == 0

        code, out, err = run(project, "bob", "run", plan["id"], "--json")
        assert code == 1, (out, err)
        result = json.loads(out)
        assert result["status"] == "rolled_back", result
        assert stubborn.name in result["failure"], result["failure"]
        # Each host back at its own version; the one that had none keeps the newest (not removed).
        assert {h.name: version_on(sshd_fleet, h) for h in hosts} == {
            old.name: "1.22.1-9",
            newer.name: "1.24.0-1",
            absent.name: "1.26.0-1",
            stubborn.name: "1.24.0-1",
        }
        assert apt_calls(sshd_fleet, old)[-1].endswith(
            "--allow-downgrades " + _confold() + " install nginx=1.22.1-9"
        )

        status = json.loads(run(project, "vic", "status", result["run_id"], "--json")[1])
        steps = {s["step_id"]: s for s in status["steps"]}
        assert steps["update"]["status"] == "rolled_back", steps["update"]
        assert steps["update"]["output"]["previous_versions"] == {
            old.name: "1.22.1-9",
            newer.name: "1.24.0-1",
            stubborn.name: "1.24.0-1",
        }
        assert steps["update"]["output"]["installed_hosts"] == [absent.name]
        assert steps["restart"]["status"] == "failed"
    finally:
        sshd_fleet.declare_units(PACKAGE, hosts=[stubborn])  # a plain unit again for later tests
        sshd_fleet.stop_units()

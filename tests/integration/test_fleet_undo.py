"""The undo of a fleet step that failed on some hosts reaches only the hosts where it acted, on a
loopback fleet of real sshd, from the CLI: a stop on a group fails on a host whose unit refuses to
stop (its answer says it changed nothing) and on a host that is down; the undo, written for the
whole group, runs on the others only. Each run of the undo notes itself in a file of that host's
own, next to the stand-in systemctl's state, so what ran where is counted, not inferred."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.domain.hosts import Host
from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet
from tests.integration.test_fleet_run import documents, run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

UNIT = "undoprobe"
MARKER = "undoprobe-undone"
UNDO = f'echo undo >> "$OPSMITH_STUB_STATE/{MARKER}"; systemctl start {UNIT}'
PLAN = {
    "title": "Stop the probe service on the web hosts",
    "environment": "development",
    "steps": [
        {
            "id": "stop",
            "server": "hosts",
            "tool": "service_stop",
            "args": {"targets": "web", "service": UNIT, "timeout": 10},
            "rollback": {
                "tool": "run_command",
                "args": {"targets": "web", "argv": ["bash", "-c", UNDO]},
                "idempotent": True,
            },
        }
    ],
}


def project_with(tmp_path: Path, fleet: SshdFleet, hosts: list[Host]) -> Path:
    config = fleet.project_config(
        hosts, group="web", environment="development", users={"alice": "approver", "ada": "admin"}
    )
    (tmp_path / "opsmith.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(PLAN))
    return tmp_path


def undone(fleet: SshdFleet, host: Host) -> int:
    marker = fleet.server(host.name).stub_state / MARKER
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_a_stop_that_failed_on_some_hosts_is_undone_only_on_the_others(
    tmp_path: Path, sshd_fleet: SshdFleet
) -> None:
    good, stubborn, down = sshd_fleet.good[16:19], sshd_fleet.good[19], sshd_fleet.down
    reachable = [*good, stubborn]
    sshd_fleet.declare_units(UNIT, hosts=good)
    sshd_fleet.declare_units(UNIT, hosts=[stubborn], settings="fail_stop=1\n")
    for host in reachable:
        (sshd_fleet.server(host.name).stub_state / MARKER).unlink(missing_ok=True)
    project = project_with(tmp_path, sshd_fleet, [*reachable, down])
    try:
        for host in reachable:
            assert sshd_fleet.start_unit(host, UNIT)
        key = (sshd_fleet.root / "client").read_text()
        code, _, err = run(project, "ada", "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key", stdin=key)
        assert code == 0, err
        code, out, err = run(project, "ada", "plan", "--file", "plan.yaml", "--json")
        assert code == 0, err
        plan = json.loads(out)
        if plan["status"] == "pending_approval":
            assert run(project, "alice", "approve", plan["id"])[0] == 0

        code, out, err = run(project, "ada", "run", plan["id"], "--json")
        assert code == 1, (out, err)
        result = json.loads(out)
        assert result["status"] == "rolled_back", result
        stop = result["steps"][0]
        assert stop["status"] == "failed" and stop["undo"] == "done", stop
        assert sorted(stop["output"]["failed_hosts"]) == sorted([stubborn.name, down.name])

        # The undo ran once on each host where the stop acted, and never where it did not.
        assert [undone(sshd_fleet, h) for h in good] == [1, 1, 1]
        assert undone(sshd_fleet, stubborn) == 0
        assert all(sshd_fleet.unit_running(h, UNIT) for h in reachable)

        events = documents(run(project, "ada", "logs", result["run_id"], "--json")[1])
        (action,) = [e for e in events if e["type"] == "rollback.action"]
        data: dict[str, Any] = action["data"]
        assert sorted(data["hosts"]) == sorted(h.name for h in good), "sent to the hosts that acted"
        assert sorted(data["left_out_hosts"]) == sorted([stubborn.name, down.name])
        assert sorted(data["undone_hosts"]) == sorted(h.name for h in good)
        assert data["output"]["total"] == 3 and "left out (the step did not act there)" in action["message"]
    finally:
        sshd_fleet.stop_units()

"""A fleet step whose process is killed mid-fan-out, on a loopback fleet of real sshd: the hosts that
had finished are recorded with the run, a person is told how far it got, and `opsmith resume
--retry` acts only on the host that was in flight, never again on the others.

Each host runs one command that notes each run of it in a file of that host's own and then waits
while a file the test controls exists: the kill lands while one host waits, with no timer to race."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.domain.hosts import Host
from opsmith.engine.state import RunState, RunStatus, StepStatus
from tests.conftest import stores_of
from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet
from tests.integration.test_cli import OPSMITH
from tests.integration.test_fleet_run import run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

WAIT = 30.0  # seconds any wait of this test may take
# What each host runs: one line in its own `acted` file per run, then wait while `hold` exists.
ACT = 'echo run >> "$OPSMITH_STUB_STATE/acted"; while [ -e "$OPSMITH_STUB_STATE/hold" ]; do sleep 0.05; done'
PLAN = {
    "title": "Run the maintenance command on the web hosts",
    "environment": "development",
    "steps": [
        {
            "id": "act",
            "server": "hosts",
            "tool": "run_command",
            "args": {"targets": "web", "argv": ["bash", "-c", ACT]},
        }
    ],
}


def project_with(tmp_path: Path, fleet: SshdFleet, hosts: list[Host]) -> Path:
    users = {"alice": "approver", "bob": "deployer", "ada": "admin"}
    config = fleet.project_config(hosts, group="web", environment="development", users=users)
    (tmp_path / "opsmith.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(PLAN))
    return tmp_path


def state_of(fleet: SshdFleet, host: Host) -> Path:
    directory = fleet.server(host.name).stub_state
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def acted(fleet: SshdFleet, host: Host) -> int:
    marker = state_of(fleet, host) / "acted"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def latest(project: Path) -> RunState | None:
    if not (project / ".opsmith" / "opsmith.db").exists():
        return None
    runs = stores_of(project)[1]
    ids = runs.ids(list(RunStatus))
    return runs.get(ids[-1]) if ids else None


def until(what: str, check: Any, process: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        assert process.poll() is None, f"the run ended before {what}"
        time.sleep(0.05)
    pytest.fail(f"waited {WAIT:g}s for {what}")


def test_a_run_killed_mid_fan_out_resumes_only_on_the_host_it_had_not_finished(
    tmp_path: Path, sshd_fleet: SshdFleet
) -> None:
    hosts = sshd_fleet.good[15:19]
    blocked = hosts[3]
    for host in hosts:
        (state_of(sshd_fleet, host) / "acted").unlink(missing_ok=True)
    hold = state_of(sshd_fleet, blocked) / "hold"
    hold.touch()
    project = project_with(tmp_path, sshd_fleet, hosts)
    try:
        key = (sshd_fleet.root / "client").read_text()
        code, _, err = run(project, "ada", "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key", stdin=key)
        assert code == 0, err
        code, out, err = run(project, "bob", "plan", "--file", "plan.yaml", "--json")
        assert code == 0, err
        plan = json.loads(out)
        assert plan["steps"][0]["idempotent"] is False
        if plan["status"] == "pending_approval":
            assert run(project, "alice", "approve", plan["id"])[0] == 0

        process = subprocess.Popen(
            [OPSMITH, "--as", "ada", "run", plan["id"], "--json"],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
            start_new_session=True,
        )
        try:

            def three_recorded_and_one_in_flight() -> RunState | None:
                state = latest(project)
                record = state.step("act").fan_out if state is not None else None
                if record is None or len(record.rows) < 3 or acted(sshd_fleet, blocked) < 1:
                    return None
                return state

            until("three hosts recorded and the fourth in flight", three_recorded_and_one_in_flight, process)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        hold.unlink()  # what was in flight on that host may end now: the process that waited is gone

        crashed = latest(project)
        assert crashed is not None and crashed.step("act").status is StepStatus.RUNNING
        record = crashed.step("act").fan_out
        assert record is not None and record.total == 4
        assert sorted(record.rows) == sorted(h.name for h in hosts[:3])
        assert all(row["ok"] for row in record.rows.values())

        said = "done on 3 of 4 hosts, 0 failed, 1 unknown (in flight when the process stopped)"
        code, out, err = run(project, "ada", "resume", crashed.run_id, "--json")
        assert code == 1, err
        held = json.loads(out)
        assert held["status"] == "needs_attention" and said in held["failure"], held["failure"]
        assert held["steps"][0]["error"] == f"interrupted: {said}"
        code, out, _ = run(project, "ada", "status", crashed.run_id)
        assert code == 0 and said in " ".join(out.split()), out
        assert [acted(sshd_fleet, h) for h in hosts] == [1, 1, 1, 1], "nothing ran on while a person decides"

        code, out, err = run(project, "ada", "resume", crashed.run_id, "--retry", "act", "--json")
        assert code == 0, (out, err)
        done = json.loads(out)
        assert done["status"] == "succeeded", done
        assert [acted(sshd_fleet, h) for h in hosts] == [1, 1, 1, 2], "only the host in flight again"
        output = done["steps"][0]["output"]
        assert [row["host"] for row in output["hosts"]] == [h.name for h in hosts]
        assert output["total"] == 4 and output["succeeded"] == 4
        assert [row.get("recorded", False) for row in output["hosts"]] == [True, True, True, False]
    finally:
        hold.unlink(missing_ok=True)

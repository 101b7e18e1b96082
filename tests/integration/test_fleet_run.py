"""A fleet request from the CLI to real hosts: planned from plain language over the inventory in
opsmith.yaml, approved, run on a loopback fleet of real sshd with the credential from the vault,
per-host progress and results in the run, a partial failure undone, and no secret anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet
from tests.integration.test_cli import opsmith

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

UNIT = "dataprocessor"
STOP = f"Stop '{UNIT}' service on all servers in 'Data Processing' group"


def project_with(tmp_path: Path, fleet: SshdFleet, hosts: list[Any]) -> Path:
    users = {"alice": "approver", "bob": "deployer", "vic": "viewer", "ada": "admin"}
    config = fleet.project_config(hosts, group="data_processing", environment="production", users=users)
    (tmp_path / "opsmith.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def run(project: Path, user: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    done = opsmith(project, "--as", user, *args) if stdin is None else _with_stdin(project, user, args, stdin)
    return done.returncode, done.stdout, done.stderr


def _with_stdin(project: Path, user: str, args: tuple[str, ...], stdin: str) -> Any:
    import os
    import subprocess

    from tests.integration.test_cli import OPSMITH

    return subprocess.run(
        [OPSMITH, "--as", user, *args],
        cwd=project,
        env=dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents `opsmith logs --json` printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def planned_and_approved(project: Path, fleet: SshdFleet) -> dict[str, Any]:
    key = (fleet.root / "client").read_text()
    code, _, err = run(project, "ada", "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key", stdin=key)
    assert code == 0, err
    code, out, err = run(project, "bob", "plan", STOP, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert (
        plan["intent"]["environment"] == "production" and plan["intent"]["environment_source"] == "inventory"
    )
    assert [(s["id"], s["server"], s["tool"]) for s in plan["steps"]] == [
        ("status", "hosts", "service_status"),
        ("stop", "hosts", "service_stop"),
        ("verify", "hosts", "service_status"),
    ]
    assert plan["status"] == "pending_approval", plan
    code, _, err = run(project, "alice", "approve", plan["id"])
    assert code == 0, err
    return plan


def test_a_service_is_stopped_on_the_hosts_of_a_group_where_it_runs(
    tmp_path: Path, sshd_fleet: SshdFleet
) -> None:
    hosts = sshd_fleet.good[:8]
    sshd_fleet.declare_units(UNIT, hosts=hosts)
    running = hosts[:6]  # two hosts have it stopped already: left alone
    project = project_with(tmp_path, sshd_fleet, hosts)
    try:
        for host in running:
            assert sshd_fleet.start_unit(host, UNIT)
        plan = planned_and_approved(project, sshd_fleet)
        code, out, err = run(project, "bob", "run", plan["id"], "--json")
        assert code == 0, (out, err)
        result = json.loads(out)
        assert result["status"] == "succeeded", result
        assert not any(sshd_fleet.unit_running(h, UNIT) for h in hosts)

        status = json.loads(run(project, "vic", "status", result["run_id"], "--json")[1])
        steps = {s["step_id"]: s for s in status["steps"]}
        assert steps["stop"]["output"]["total"] == 6, "only where it ran"
        assert sorted(steps["stop"]["output"]["changed_hosts"]) == sorted(h.name for h in running)
        assert steps["verify"]["output"]["succeeded"] == 8
        events = documents(run(project, "vic", "logs", result["run_id"], "--json")[1])
        progress = [e for e in events if e["type"] == "step.progress" and e["step_id"] == "stop"]
        assert progress and progress[-1]["data"] == {
            "total": 6,
            "completed": 6,
            "failed": 0,
            "pending": 0,
            "host": progress[-1]["data"]["host"],
        }
        assert run(project, "ada", "audit", "verify")[0] == 0
        # The key logged in on every host, and is nowhere to be seen.
        secret = sshd_fleet.credential().secret.get_secret_value()
        body = "".join(secret.splitlines()[1:-1])
        for text in (out, json.dumps(status), json.dumps(events)):
            assert body[:40] not in text
    finally:
        sshd_fleet.stop_units()


def test_a_stop_that_fails_on_one_host_is_undone_where_it_succeeded(
    tmp_path: Path, sshd_fleet: SshdFleet
) -> None:
    good, stubborn = sshd_fleet.good[8:12], sshd_fleet.good[12]
    sshd_fleet.declare_units(UNIT, hosts=good)
    sshd_fleet.declare_units(UNIT, hosts=[stubborn], settings="fail_stop=1\n")
    project = project_with(tmp_path, sshd_fleet, [*good, stubborn])
    try:
        for host in [*good, stubborn]:
            assert sshd_fleet.start_unit(host, UNIT)
        plan = planned_and_approved(project, sshd_fleet)
        code, out, err = run(project, "bob", "run", plan["id"], "--json")
        assert code == 1, (out, err)
        result = json.loads(out)
        assert result["status"] == "rolled_back", result
        assert "1 failed" in result["failure"] and stubborn.name in result["failure"], result["failure"]
        # Stopped on four hosts before the fifth refused: the undo started it again there.
        assert all(sshd_fleet.unit_running(h, UNIT) for h in [*good, stubborn])
        status = json.loads(run(project, "vic", "status", result["run_id"], "--json")[1])
        stop = {s["step_id"]: s for s in status["steps"]}["stop"]
        assert stop["status"] == "failed" and stop["undo"] == "done", stop
    finally:
        sshd_fleet.stop_units()


def test_a_direct_call_on_hosts_is_checked_like_any_tool(tmp_path: Path, sshd_fleet: SshdFleet) -> None:
    hosts = sshd_fleet.good[13:15]
    sshd_fleet.declare_units(UNIT, hosts=hosts)
    project = project_with(tmp_path, sshd_fleet, hosts)
    key = (sshd_fleet.root / "client").read_text()
    assert run(project, "ada", "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key", stdin=key)[0] == 0
    args = json.dumps({"targets": "Data Processing", "service": UNIT})
    code, _, err = run(project, "vic", "call", "hosts", "service_status", "--args", args)
    assert code == 2 and "vic (viewer)" in err, err
    code, out, err = run(project, "ada", "call", "hosts", "service_status", "--args", args, "--json")
    assert code == 0, err
    answer = json.loads(out)["structured"]
    assert answer["succeeded"] == 2 and answer["stopped_hosts"] == sorted(h.name for h in hosts)
    code, out, _ = run(project, "ada", "tools", "--server", "hosts", "--json")
    assert code == 0 and "service_stop" in {t["name"] for t in json.loads(out)}
    audit = json.loads(run(project, "ada", "audit", "--json", "--limit", "50")[1])
    assert {("vic", "tool.refused"), ("ada", "tool.called")} <= {(e["actor"], e["action"]) for e in audit}

"""The run monitor of a step that fans out over hosts, in Debian's Chromium, against a real
`opsmith serve` whose inventory is a loopback fleet of real sshd (tests/fleet/sshd.py).

A stop planned from plain language over a group of four hosts: two answer at once, one is down,
and the service manager of the fourth is busy with another job (the test holds the lock its
systemctl waits for, up to 10 s a call: the status script makes two), so that host stays pending
while the page is looked at, and answers as soon as the test lets go. The monitor shows
the live counts and one row per finished host, the down host with its reason; once the last host
answers, every host's row, after a reload too; each row as the run recorded it (read through the
API). A down host fails the status step (the group allows no failure), so nothing is stopped.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from opsmith.domain.hosts import Host
from tests.browser.test_console import api, console, made_plan, shot
from tests.conftest import OS_USER
from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet
from tests.served import Served, serving

pytestmark = pytest.mark.integration

UNIT = "webcache"  # a unit no other fleet test declares, on hosts other tests also use
STOP = f"Stop '{UNIT}' service on all servers in 'web' group"
USERS = {"alice": "approver", "bob": "deployer", "vic": "viewer"}


@pytest.fixture(scope="module")
def hosts(sshd_fleet: SshdFleet) -> dict[str, Host]:
    good = sshd_fleet.good
    return {"quick": good[0], "also_quick": good[1], "busy": good[2], "down": sshd_fleet.down}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, sshd_fleet: SshdFleet, hosts: dict[str, Host]) -> Path:
    root = tmp_path_factory.mktemp("console-fleet")
    config = {
        "rbac": {"allow_as": True, "users": {**USERS, OS_USER: "admin"}},
        "mcpServers": {},
        "fleet": {"known_hosts": str(sshd_fleet.known_hosts), "connect_timeout": 3, "command_timeout": 30},
        "inventory": {
            "groups": {
                "web": {
                    "vars": {"environment": "staging", "opsmith_credential": KEY_CREDENTIAL},
                    "hosts": {
                        h.name: {"address": h.address, "port": h.port, "user": h.user} for h in hosts.values()
                    },
                }
            }
        },
    }
    (root / "opsmith.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def served(project: Path, sshd_fleet: SshdFleet) -> Iterator[Served]:
    with serving(project) as server:
        assert server.token is not None
        key = (sshd_fleet.root / "client").read_text()
        stored = api(
            server, server.token, "PUT", f"/api/v1/secrets/{KEY_CREDENTIAL}", kind="ssh_key", value=key
        )
        assert stored.status_code == 200, stored.text
        yield server


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    assert served.token is not None
    made = {}
    for user, role in USERS.items():
        answer = api(served, served.token, "POST", "/api/v1/tokens", user=user, role=role, name="browser")
        assert answer.status_code == 201, answer.text
        made[user] = answer.json()["token"]
    return made


@contextmanager
def busy(fleet: SshdFleet, host: Host) -> Iterator[None]:
    """The host's service manager busy with another job while inside: its systemctl (the
    stand-in's) waits for the host's lock, up to 10 s a call, so the host's scripts wait too."""
    lock = fleet.server(host.name).stub_state / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


def host_rows(page: Page, step: str) -> list[tuple[str, str, str]]:
    """The host table of a step's row, as the page shows it: (host, result, why) per row."""
    cells: list[list[str]] = page.locator(f'#steps tr[data-step="{step}"] .host-rows tbody tr').evaluate_all(
        "(rows) => rows.map((row) => Array.from(row.cells, (cell) => cell.textContent))"
    )
    return [(host, result, why) for host, result, why in cells]


def recorded_rows(served: Served, token: str, run_id: str, step: str) -> list[dict[str, Any]]:
    """The step's host rows as the run recorded them (its output, through the API)."""
    answer = api(served, token, "GET", f"/api/v1/runs/{run_id}/steps/{step}/output")
    assert answer.status_code == 200, answer.text
    output = json.loads(answer.json()["text"])
    rows: list[dict[str, Any]] = output["hosts"]
    return rows


def latest_progress(served: Served, token: str, run_id: str, step: str) -> dict[str, int]:
    """The counts of the step's latest `step.progress` event, as the API gives the run's events."""
    answer = api(served, token, "GET", f"/api/v1/runs/{run_id}/events?limit=5000")
    assert answer.status_code == 200, answer.text
    said = [
        e["data"] for e in answer.json()["items"] if e["type"] == "step.progress" and e["step_id"] == step
    ]
    assert said, "no progress event yet"
    return {k: int(said[-1][k]) for k in ("total", "completed", "failed", "pending")}


def assert_rows_match(page: Page, step: str, recorded: list[dict[str, Any]]) -> None:
    """Every recorded host has its row on the page, ok or failed as recorded, a failure with
    its kind and the start of its reason."""
    shown = {host: (result, why) for host, result, why in host_rows(page, step)}
    assert sorted(shown) == sorted(r["host"] for r in recorded), shown
    for row in recorded:
        result, why = shown[row["host"]]
        if row["ok"]:
            assert (result, why) == ("ok", ""), (row["host"], result, why)
        else:
            assert result == "failed" and why.startswith(f"{row['failure']}: "), (row, why)
            assert row["reason"][:60] in why, (row["reason"], why)


def test_the_monitor_shows_each_host_of_a_fleet_step_live_and_after_a_reload(
    browser: Browser,
    served: Served,
    tokens: dict[str, str],
    sshd_fleet: SshdFleet,
    hosts: dict[str, Host],
    shots: Path,
) -> None:
    reachable = [hosts["quick"], hosts["also_quick"], hosts["busy"]]
    sshd_fleet.declare_units(UNIT, hosts=reachable)
    try:
        for host in reachable:
            assert sshd_fleet.start_unit(host, UNIT)
        plan = made_plan(served, tokens["bob"], STOP)
        assert [s["id"] for s in plan["steps"]] == ["status", "stop", "verify"], plan["steps"]
        if plan["status"] == "pending_approval":  # staging's policy may approve it by itself
            path = f"/api/v1/plans/{plan['id']}/approve"
            approved = api(served, tokens["alice"], "POST", path, hash=plan["hash"])
            assert approved.status_code == 200, approved.text

        with console(browser, served, tokens["bob"]) as bob:
            page = bob.go(f"/plans/{plan['id']}")
            status_row = page.locator('#steps tr[data-step="status"]')
            counts = status_row.locator(".hosts")
            with busy(sshd_fleet, hosts["busy"]):
                page.get_by_role("button", name="Run").click()
                expect(page).to_have_url(re.compile(re.escape(served.url) + r"/runs/run_\w+$"))
                run_id = page.url.rsplit("/", 1)[-1]
                # Three hosts answered, the busy one has not: the live counts, and a row for each
                # host that finished, the down one with why.
                expect(counts).to_have_text(re.compile(r"^done on 2 of 4 hosts, 1 failed, 1 pending"))
                expect(status_row.locator(".st")).to_have_text("running")
                status_row.locator(".host-rows summary").click()
                live = status_row.locator(".host-rows tbody tr")
                expect(live).to_have_count(3)
                expect(status_row.locator(f'tr[data-host="{hosts["down"].name}"]')).to_contain_text("failed")
                expect(status_row.locator(f'tr[data-host="{hosts["busy"].name}"]')).to_have_count(0)
                shown = {host: result for host, result, _ in host_rows(page, "status")}
                assert shown == {hosts["quick"].name: "ok", hosts["also_quick"].name: "ok", "down": "failed"}
                # The counts are the run's: its latest progress event, read through the API.
                said = latest_progress(served, tokens["bob"], run_id, "status")
                assert said == {"total": 4, "completed": 3, "failed": 1, "pending": 1}, said
                assert (counts.text_content() or "").startswith(
                    f"done on {said['completed'] - said['failed']} of {said['total']} hosts, "
                    f"{said['failed']} failed, {said['pending']} pending"
                )
                shot(page, shots, "run-monitor-hosts.png")
            # The busy host answers: the step ends, failed (a host of the group was down).
            # Failed, not final: a person may still roll it back, so the page goes on following.
            expect(page.locator("#run-status")).to_have_text("failed")
            expect(counts).to_have_text("done on 3 of 4 hosts, 1 failed")
            expect(live).to_have_count(4)
            report = api(served, tokens["bob"], "GET", f"/api/v1/runs/{run_id}").json()
            steps = {s["step_id"]: s for s in report["steps"]}
            assert steps["status"]["status"] == "failed", steps["status"]
            expect(status_row.locator(".st")).to_have_text("failed")
            expect(page.locator('#steps tr[data-step="stop"] .st')).to_have_text("pending")
            recorded = recorded_rows(served, tokens["bob"], run_id, "status")
            assert [r["host"] for r in recorded if not r["ok"]] == ["down"]
            assert_rows_match(page, "status", recorded)

        # Another person opens the failed run: the same rows, drawn by the server, after a reload too.
        with console(browser, served, tokens["vic"]) as vic:
            page = vic.go(f"/runs/{run_id}")
            status_row = page.locator('#steps tr[data-step="status"]')
            expect(status_row.locator(".hosts")).to_have_text("done on 3 of 4 hosts, 1 failed")
            expect(status_row.locator(".host-rows tbody tr")).to_have_count(4)
            status_row.locator(".host-rows summary").click()
            expect(status_row.locator(f'tr[data-host="{hosts["busy"].name}"]')).to_be_visible()
            assert_rows_match(page, "status", recorded)
            page.reload()
            expect(status_row.locator(".host-rows tbody tr")).to_have_count(4)
            assert_rows_match(page, "status", recorded)
        assert all(sshd_fleet.unit_running(h, UNIT) for h in reachable), "the failed run stopped nothing"
    finally:
        sshd_fleet.stop_units()

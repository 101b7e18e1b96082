"""Two real `opsmith serve` replicas on one PostgreSQL database, a run driven by a third process (the
CLI), and a watcher on each replica: both see every event of the run once, in order; a watcher that
drops on one replica and comes back on the other with its last number gets the rest.

Both replicas poll only every 30 s, so the events that come after the watchers joined reach them
within seconds only because LISTEN/NOTIFY woke the hub: the lag of each is bounded well below the
poll, and a broken wake-up fails the test instead of passing slowly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON
from tests.integration.test_approval_cli import CONFIG
from tests.integration.test_cli import OPSMITH, opsmith
from tests.served import Served, issue_tokens, serving, wait_for

pytestmark = pytest.mark.integration

POLL = 30.0  # seconds: far longer than any wait below
LAG = 10.0  # seconds an event may take from its commit to a watcher on either replica


@dataclass
class Project:
    root: Path
    hold: Path  # the run's scale step waits until this file exists


@dataclass
class Watcher:
    """One client following a run; what it received, with when it received each event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def record(self, event: dict[str, Any]) -> bool:
        self.events.append(event)
        self.received.append(time.time())
        return bool(event["type"] == "run.finished")

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]


def project_on(root: Path, database_url: str, seeded: Path) -> Project:
    state, hold = root / "state", root / "release-scale"
    shutil.copytree(seeded, state)
    servers = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        held = f", --hold, 'scale_deployment={hold}'" if name == "kubernetes" else ""
        servers.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state}',"
            f" --latency-ms, '0'{held}]}}"
        )
    (root / "opsmith.yaml").write_text(
        f"{CONFIG}\ndatabase_url: '{database_url}'\n"
        f"api: {{event_poll_seconds: {POLL}, event_fallback_seconds: {POLL}}}\n"
        "mcpServers:\n" + "\n".join(servers) + "\n"
    )
    return Project(root, hold)


@pytest.fixture
def project(no_orphans: None, tmp_path: Path, seeded_template: Path, postgres_url: str) -> Project:
    # Asks for no_orphans first: its check runs after the replicas below were stopped.
    made = project_on(tmp_path, postgres_url, seeded_template)
    upgraded = opsmith(made.root, "db", "upgrade", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    return made


@pytest.fixture
def replicas(project: Project) -> Iterator[tuple[Served, Served]]:
    with ExitStack() as stack:
        first = stack.enter_context(serving(project.root))
        second = stack.enter_context(serving(project.root))
        assert first.token is not None and second.token is None, "one admin token, printed once"
        yield first, second


@pytest.fixture
def tokens(replicas: tuple[Served, Served]) -> dict[str, str]:
    return issue_tokens(replicas[0], {"bob": "deployer", "vic": "viewer"}, "replicas")


def websocket_watch(
    served: Served, token: str, run_id: str, after: int, watcher: Watcher, stop_after: int = 0
) -> None:
    from websockets.sync.client import connect

    url = served.ws_url(f"/api/v1/runs/{run_id}/events?after={after}")
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as socket:
        while not watcher.record(json.loads(socket.recv(timeout=POLL * 2))):
            if stop_after and len(watcher.events) >= stop_after:
                return


def sse_watch(served: Served, token: str, run_id: str, watcher: Watcher) -> None:
    path, accept = f"/api/v1/runs/{run_id}/events", {"Accept": "text/event-stream"}
    with (
        served.client(token, timeout=POLL * 2) as client,
        client.stream("GET", path, headers=accept) as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("data: ") and watcher.record(json.loads(line[6:])):
                return


def started(watcher: Watcher, target: Any, *args: Any) -> Watcher:
    def run() -> None:
        try:
            target(*args, watcher)
        except BaseException as error:  # reported by the test, not lost in the thread
            watcher.error = error

    watcher.thread = threading.Thread(target=run, daemon=True)
    watcher.thread.start()
    return watcher


def finished(watcher: Watcher) -> Watcher:
    assert watcher.thread is not None
    watcher.thread.join(timeout=POLL * 2)
    assert not watcher.thread.is_alive(), "the watcher never saw the run finish"
    assert watcher.error is None, repr(watcher.error)
    return watcher


def all_events(served: Served, token: str, run_id: str) -> list[dict[str, Any]]:
    with served.client(token) as client:
        page = client.get(f"/api/v1/runs/{run_id}/events", params={"limit": 1000})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


@pytest.mark.timeout(300)
def test_watchers_on_both_replicas_see_every_event_of_a_run_driven_elsewhere(
    project: Project, replicas: tuple[Served, Served], tokens: dict[str, str]
) -> None:
    first, second = replicas
    with second.client(tokens["bob"]) as deployer:
        answer = deployer.post(
            "/api/v1/plans", json={"request": "Scale my-application in staging", "set": {"replicas": 2}}
        )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["status"] == "approved", "staging at this risk needs no approval"
    driver = subprocess.Popen(
        [OPSMITH, "--as", "bob", "run", made["id"], "--json"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = str(wait_for(lambda: run_of(first, tokens["vic"], made["id"]), timeout=60))
        wait_for(lambda: all_events(second, tokens["vic"], run_id), timeout=60)
        on_first = started(Watcher(), websocket_watch, first, tokens["vic"], run_id, 0)
        on_second = started(Watcher(), sse_watch, second, tokens["vic"], run_id)
        dropping = started(
            Watcher(), lambda w: websocket_watch(second, tokens["vic"], run_id, 0, w, stop_after=2)
        )
        wait_for(lambda: on_first.events and on_second.events and len(dropping.events) >= 2, timeout=30)
        released = time.time()
        project.hold.touch()  # the run goes on: everything from here is new to both replicas
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=10)
    assert driver.returncode == 0, err
    journal = [e["seq"] for e in all_events(first, tokens["vic"], run_id)]
    assert journal == list(range(1, len(journal) + 1))
    for watcher in (finished(on_first), finished(on_second)):
        assert watcher.seqs == journal, "every event once, in order, on either replica"
        late = [
            (e["seq"], at - datetime.fromisoformat(e["at"]).timestamp())
            for e, at in zip(watcher.events, watcher.received, strict=True)
            if datetime.fromisoformat(e["at"]).timestamp() >= released
        ]
        assert late, "the run went on after the watchers joined"
        assert all(lag < LAG for _, lag in late), f"woken only by the {POLL} s poll: {late}"
    # The dropped watcher comes back on the other replica with the last number it saw.
    assert finished(dropping).seqs == [1, 2]
    resumed = Watcher()
    websocket_watch(first, tokens["vic"], run_id, dropping.seqs[-1], resumed)
    assert dropping.seqs + resumed.seqs == journal


def run_of(served: Served, token: str, plan_id: str) -> str | None:
    with served.client(token) as client:
        runs = client.get("/api/v1/runs").json()["items"]
    return next((r["run_id"] for r in runs if r["plan_id"] == plan_id), None)

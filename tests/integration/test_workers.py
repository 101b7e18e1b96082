"""`executor: celery` with real parts: Redis, `opsmith worker` processes, `opsmith run` as the driver,
and a fixture MCP server that records every call it really makes (tests/fixtures/servers/recording.py).

Nothing lost, nothing run twice: a duplicated or late message does nothing; a worker killed during
a step gets the idempotent step retried on another worker and holds the other for a person; a
broker that loses its messages (restarted with no persistence) delays the run, never breaks it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from opsmith.config import parse_config
from opsmith.distributed.broker import QUEUE, CeleryBroker
from opsmith.distributed.store import StepCallRepository, StepCallRow
from opsmith.domain.step_calls import CallKind, CallStatus, StepCall
from opsmith.store.database import Database
from tests.conftest import FIXTURE_SERVERS, PYTHON
from tests.dbservers import RedisServer
from tests.integration.test_cli import OPSMITH, opsmith
from tests.served import serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]
T = TypeVar("T")

THREE = """
title: Touch three things
environment: staging
steps:
  - {id: one, server: rec, tool: touch, args: {name: one}, idempotent: true}
  - {id: two, server: rec, tool: hold, args: {name: two}, depends_on: [one]}
  - {id: three, server: rec, tool: touch, args: {name: three}, depends_on: [one]}
"""

HOLD = """
title: Hold {name}
environment: staging
steps:
  - {{id: held, server: rec, tool: hold, args: {{name: {name}}}, idempotent: {idempotent}}}
"""

HOLD_THEN_TOUCH = """
title: Hold, then touch
environment: staging
steps:
  - {id: first, server: rec, tool: hold, args: {name: first}}
  - {id: second, server: rec, tool: touch, args: {name: second}, depends_on: [first]}
"""


class Project:
    def __init__(self, root: Path, redis: RedisServer, database_url: str) -> None:
        self.root = root
        self.redis = redis
        self.database_url = database_url
        self.record = root / "calls.jsonl"
        self.gates = root / "gates"
        self.gates.mkdir()
        rec = FIXTURE_SERVERS / "recording.py"
        self.config_text = f"""
executor: celery
celery: {{broker_url: "{redis.url}", heartbeat_seconds: 0.3, lost_after_seconds: 2, resend_after_seconds: 1}}
database_url: "{database_url}"
execution: {{retry_initial_delay: 0.1, step_timeout: 60}}
mcpServers:
  rec: {{command: {PYTHON}, args: ['{rec}'], env: {{RECORD_FILE: '{self.record}', GATE_DIR: '{self.gates}'}}}}
"""
        (root / "opsmith.yaml").write_text(self.config_text)
        self.calls_db = Database(database_url)
        self.calls = StepCallRepository(self.calls_db)

    def plan(self, text: str) -> str:
        (self.root / "plan.yaml").write_text(text)
        made = opsmith(self.root, "plan", "--file", "plan.yaml", "--json")
        assert made.returncode == 0, made.stderr
        plan = json.loads(made.stdout)
        assert plan["status"] == "approved", plan["status"]
        return str(plan["id"])

    def recorded(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def names(self) -> list[object]:
        return [r["name"] for r in self.recorded()]

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()

    @contextlib.contextmanager
    def worker(self, name: str) -> Iterator[subprocess.Popen[bytes]]:
        """`opsmith worker --name NAME` in a session of its own (a kill reaches its MCP servers too)."""
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed below, with the process
        process = subprocess.Popen(
            [OPSMITH, "worker", "--name", name, "--concurrency", "4"],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            until(lambda: name in self.live(), f"worker {name} never said it was alive", process)
            yield process
        finally:
            _stop_group(process)
            log.close()

    def live(self) -> list[str]:
        since = datetime.now(UTC) - timedelta(seconds=2)
        return [w.name for w in self.calls.live_workers(since)]

    def start_run(self, plan_id: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [OPSMITH, "run", plan_id, "--json"],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def until(found: Callable[[], T], failing: str, process: subprocess.Popen[bytes] | None = None) -> T:
    """Poll `found` until it is truthy (bounded: 40 s)."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"{failing}: the process exited with {process.returncode}")
        time.sleep(0.05)
    pytest.fail(failing)


def finished(run: subprocess.Popen[str]) -> dict[str, object]:
    out, err = run.communicate(timeout=60)
    assert out, err
    report: dict[str, object] = json.loads(out)
    return report


def steps_of(report: dict[str, object]) -> dict[str, tuple[str, int]]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return {s["step_id"]: (s["status"], s["attempts"]) for s in steps}


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of its session still there (its servers)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def only_in_flight(project: Project, calls: int) -> bool:
    """Nothing waits in the queue, and only `calls` messages are taken and not yet acknowledged."""
    import redis

    client = redis.Redis.from_url(project.redis.url)
    try:
        return client.llen(QUEUE) == 0 and client.hlen("unacked") == calls
    finally:
        client.close()


@pytest.fixture
def project(tmp_path: Path, no_orphans: None, redis_server: RedisServer) -> Iterator[Project]:
    # no_orphans first, so it looks for leftovers after Redis (restarted by a test) has stopped.
    made = Project(tmp_path, redis_server, f"sqlite:///{tmp_path / 'opsmith.db'}")
    yield made
    made.calls_db.engine.dispose()


def test_a_plan_runs_through_a_worker_and_a_duplicated_or_late_message_does_nothing(
    database_url: str, tmp_path: Path, no_orphans: None, redis_server: RedisServer
) -> None:
    # database_url first: the session's PostgreSQL starts before no_orphans looks at what runs.
    project = Project(tmp_path, redis_server, database_url)
    try:
        runs_through_a_worker(project)
    finally:
        project.calls_db.engine.dispose()  # its PostgreSQL backend ends before no_orphans looks


def runs_through_a_worker(project: Project) -> None:
    plan_id = project.plan(THREE)
    with project.worker("w1"):
        listed = opsmith(project.root, "workers", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [w["name"] for w in json.loads(listed.stdout)] == ["w1"]
        run = project.start_run(plan_id)
        until(lambda: "two" in project.names(), "step two never called its tool")
        (held,) = [c for c in project.calls.for_run(_run_id(project)) if c.step_id == "two"]
        assert held.status is CallStatus.CLAIMED and held.worker == "w1"
        # The same request twice more, while the call is in flight: both find it claimed.
        broker = CeleryBroker(parse_config(project.config_text, source="test").celery, {})
        broker.send(held.key)
        broker.send(held.key)
        # Taken from the queue, and acknowledged on delivery (see opsmith.distributed.broker).
        until(lambda: only_in_flight(project, 0), "the duplicates were never consumed")
        project.open_gate("two")
        report = finished(run)
        assert report["status"] == "succeeded", report
        assert steps_of(report) == {
            "one": ("succeeded", 1),
            "two": ("succeeded", 1),
            "three": ("succeeded", 1),
        }
        assert sorted(map(str, project.names())) == ["one", "three", "two"], "each tool ran exactly once"
        calls = project.calls.for_run(str(report["run_id"]))
        assert {(c.step_id, c.status, c.worker) for c in calls} == {
            (s, CallStatus.DONE, "w1") for s in ("one", "two", "three")
        }

        # A late request for a run that is over: refused, settled as not made, nothing called.
        now = datetime.now(UTC)
        late = StepCall(
            key=f"{report['run_id']}/three/1/call2",
            run_id=str(report["run_id"]),
            step_id="three",
            attempt=1,
            kind=CallKind.CALL,
            server="rec",
            tool="touch",
            args={"name": "late"},
            timeout=60,
            created_at=now,
            sent_at=now,
        )
        project.calls.request(late)
        broker.send(late.key)
        settled = until(
            lambda: (c := project.calls.get(late.key)) is not None and c.status is CallStatus.DONE and c,
            "the late request was never settled",
        )
        assert settled.worker is None and settled.outcome is not None
        assert "is succeeded" in str(settled.outcome["message"])
        assert "late" not in project.names()


def _run_id(project: Project) -> str:
    """The run whose calls were asked for (each test drives one run at a time)."""

    def newest() -> str | None:
        with project.calls_db.transaction() as connection:
            found = connection.execute(
                select(StepCallRow.run_id).order_by(StepCallRow.created_at.desc())
            ).first()
        return None if found is None else str(found.run_id)

    return until(newest, "no step call was asked for")


def test_a_worker_killed_mid_step_retries_an_idempotent_step_elsewhere_and_holds_the_other(
    project: Project,
) -> None:
    again = project.plan(HOLD.format(name="again", idempotent="true"))
    with project.worker("w1") as first:
        run = project.start_run(again)
        until(lambda: "again" in project.names(), "the held step never called its tool")
        kill_group(first)
        with project.worker("w2"):
            until(lambda: project.names().count("again") == 2, "the idempotent step was not retried")
            project.open_gate("again")
            report = finished(run)
            assert report["status"] == "succeeded", report
            assert steps_of(report) == {"held": ("succeeded", 2)}
            calls = project.calls.for_run(str(report["run_id"]))
            assert [(c.attempt, c.worker, (c.outcome or {}).get("kind")) for c in calls] == [
                (1, "w1", "lost"),
                (2, "w2", None),
            ]

    with project.worker("w3") as third:
        once = project.plan(HOLD.format(name="once", idempotent="false"))
        run = project.start_run(once)
        until(lambda: "once" in project.names(), "the second held step never called its tool")
        kill_group(third)
        report = finished(run)
    assert report["status"] == "needs_attention", report
    assert steps_of(report) == {"held": ("running", 1)}, "left for a person, as after a crash"
    assert "may or may not have done its work" in str(report["failure"])
    assert project.names().count("once") == 1


def test_a_broker_restarted_mid_run_loses_no_step(project: Project) -> None:
    plan_id = project.plan(HOLD_THEN_TOUCH)
    with project.worker("w1"), serving(project.root) as served, served.client() as anonymous:
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] | {"broker": "ok", "workers": 1} == ready.json()["checks"]
        run = project.start_run(plan_id)
        until(lambda: "first" in project.names(), "the first step never called its tool")
        # Redis goes away with every message it held; the next step's request cannot be sent.
        project.redis.stop()
        down = anonymous.get("/readyz")
        assert down.status_code == 503 and "does not answer" in down.json()["checks"]["broker"], down.text
        project.open_gate("first")
        run_id = _run_id(project)
        until(
            lambda: any(c.step_id == "second" for c in project.calls.for_run(run_id)),
            "the second step was never asked for",
        )
        project.redis.start()
        report = finished(run)
        assert report["status"] == "succeeded", report
        assert project.names() == ["first", "second"]


def test_calls_asked_for_at_once_are_stored_once_each(database_url: str) -> None:
    calls = StepCallRepository(Database(database_url))
    now = datetime.now(UTC)

    def call(step_id: str) -> StepCall:
        return StepCall(
            key=f"run-1/{step_id}/1/call1", run_id="run-1", step_id=step_id, attempt=1,
            kind=CallKind.CALL, server="rec", tool="touch", args={"name": step_id}, timeout=5.0,
            created_at=now, sent_at=now,
        )  # fmt: skip

    first = calls.request_many([call("a"), call("b")])
    assert {k: c.status for k, c in first.items()} == {
        "run-1/a/1/call1": CallStatus.QUEUED,
        "run-1/b/1/call1": CallStatus.QUEUED,
    }
    assert calls.claim("run-1/a/1/call1", "w1", now) is not None
    # Asked for again with one new call: the stored one comes back as stored, claimed.
    again = calls.request_many([call("a"), call("c")])
    assert again["run-1/a/1/call1"].status is CallStatus.CLAIMED
    assert again["run-1/a/1/call1"].worker == "w1"
    assert again["run-1/c/1/call1"].status is CallStatus.QUEUED
    assert len(calls.for_run("run-1")) == 3
    assert calls.finish("run-1/a/1/call1", "w1", {"ok": True}, now)
    keys = ["run-1/a/1/call1", "run-1/b/1/call1", "run-1/c/1/call1"]
    assert list(calls.get_many(keys, status=CallStatus.DONE)) == ["run-1/a/1/call1"]
    assert sorted(calls.get_many(keys, status=CallStatus.QUEUED)) == keys[1:]

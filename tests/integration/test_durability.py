"""Runs survive their process: kill -9 in the middle of a step, then resume from the store.

The sandbox servers run with one slow tool so the kill lands while that tool is being called.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from opsmith.engine.state import RunState, RunStatus, StepStatus
from opsmith.store.runs import RunRepository
from tests.conftest import PYTHON, project_database, stores_of
from tests.integration.test_approval_cli import CONFIG, as_user
from tests.integration.test_cli import OPSMITH

T = TypeVar("T")
pytestmark = pytest.mark.integration

REQUEST = "Deploy microservice-two to staging"


def project_with_slow(
    tmp_path: Path, state_dir: Path, slow: dict[str, str], database_url: str | None = None
) -> Path:
    """Sandbox servers with no latency except `slow` (server -> tool=ms); on `database_url` when
    given (the kill tests run on SQLite and PostgreSQL: a killed process must lose nothing on either)."""
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        extra = f", --latency, '{slow[name]}'" if name in slow else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    database = f"database_url: '{database_url}'\n" if database_url else ""
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}{database}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return tmp_path


def runs_of(project: Path) -> RunRepository:
    return stores_of(project)[1]


def start_run(project: Path, plan_id: str, *, own_session: bool = False) -> subprocess.Popen[str]:
    """`opsmith run PLAN --json` in the background, its JSON report on stdout."""
    return subprocess.Popen(
        [OPSMITH, "--as", "bob", "run", plan_id, "--json"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=own_session,
    )


def wait_until_running(project: Path, process: subprocess.Popen[str], step_id: str) -> RunState:
    """The run's state once `step_id` is running (fails if the run ends first or 60 s pass)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _latest(project)
        if state is not None and state.step(step_id).status is StepStatus.RUNNING:
            return state
        assert process.poll() is None, "the run ended before the step started"
        time.sleep(0.05)
    pytest.fail(f"step {step_id} never started")


def killed_when(process: subprocess.Popen[str], ready: Callable[[], T]) -> T:
    """Wait for `ready()`, then kill -9 the `opsmith run` process; returns what `ready` returned."""
    try:
        found = ready()
        children = psutil.Process(process.pid).children(recursive=True)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout is not None:
            process.stdout.close()
    # Its MCP servers read EOF on stdin and exit; make sure before the resume starts its own.
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    return found


def run_and_kill_during(project: Path, plan_id: str, step_id: str) -> RunState:
    """Start `opsmith run`, wait until `step_id` is running, let it call, then kill -9 the process."""
    process = start_run(project, plan_id, own_session=True)

    def calling() -> None:
        wait_until_running(project, process, step_id)
        time.sleep(0.5)  # the call is on its way to the slow tool

    killed_when(process, calling)
    state = _latest(project)
    assert state is not None
    return state


def _latest(project: Path) -> RunState | None:
    url = project_database(project)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # not made yet: opening it here would race the run's own migration
    runs = runs_of(project)
    ids = runs.ids(list(RunStatus))
    return runs.get(ids[-1]) if ids else None


def calls_per_step(project: Path, run_id: str) -> dict[str, int]:
    audit = json.loads(as_user(project, "ada", "audit", "--json", "--subject", run_id, "--limit", "500")[1])
    counts: dict[str, int] = {}
    for entry in audit:
        if entry["action"] == "tool.called":
            counts[entry["details"]["step"]] = counts.get(entry["details"]["step"], 0) + 1
    return counts


def plan_of(project: Path) -> str:
    code, out, err = as_user(project, "bob", "plan", REQUEST, "--json")
    assert code == 0, err
    return str(json.loads(out)["id"])


def test_an_interrupted_step_that_is_not_idempotent_waits_for_a_person(
    tmp_path: Path, state_dir: Path, database_url: str, no_orphans: None
) -> None:
    project = project_with_slow(tmp_path, state_dir, {"jenkins": "trigger_build=3000"}, database_url)
    plan_id = plan_of(project)
    crashed = run_and_kill_during(project, plan_id, "build")
    assert crashed.status.value == "running" and crashed.step("build").status is StepStatus.RUNNING

    code, out, err = as_user(project, "bob", "resume", crashed.run_id, "--json")
    assert code == 1, err
    held = json.loads(out)
    assert held["status"] == "needs_attention"
    assert "build may or may not have done its work" in held["failure"]
    assert {s["step_id"]: s["status"] for s in held["steps"]}["test"] == "pending", "nothing ran on"

    code, _, err = as_user(project, "bob", "resume", crashed.run_id, "--skip", "test")
    assert code == 2 and "only a step a crash interrupted can be decided" in err

    code, out, err = as_user(project, "bob", "resume", crashed.run_id, "--retry", "build", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["status"] == "succeeded"
    assert {s["step_id"]: s["attempts"] for s in done["steps"]}["build"] == 2
    events = [e.type.value for e in runs_of(project).events(crashed.run_id)]
    assert "step.interrupted" in events and "step.decided" in events and "run.needs_attention" in events
    assert as_user(project, "ada", "audit", "verify")[0] == 0


def test_an_interrupted_idempotent_step_runs_again_and_finished_steps_do_not(
    tmp_path: Path, state_dir: Path, database_url: str, no_orphans: None
) -> None:
    project = project_with_slow(tmp_path, state_dir, {"kubernetes": "apply_deployment=3000"}, database_url)
    plan_id = plan_of(project)
    crashed = run_and_kill_during(project, plan_id, "deploy")
    finished = [k for k, s in crashed.steps.items() if s.status is StepStatus.SUCCEEDED]
    assert {"build", "test", "push_image"} <= set(finished)

    code, out, err = as_user(project, "bob", "run", "--resume", crashed.run_id, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    calls = calls_per_step(project, crashed.run_id)
    assert all(calls[step] == 1 for step in finished), calls
    # The killed call was never recorded as a call; the re-run was.
    assert calls["deploy"] == 1


def project_holding(tmp_path: Path, state_dir: Path, server: str, tool: str, gate: Path) -> Path:
    """Sandbox servers with no latency whose `server`/`tool` calls wait until `gate` exists."""
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        extra = f", --hold, '{tool}={gate}'" if name == server else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return tmp_path


def wait_for_a_heartbeat_after(project: Path, run_id: str, expires: datetime | None) -> None:
    """Until the driver renewed its lease past `expires`: that renewal also read what was asked of it.

    While its one step is held nothing else extends the lease, so a later expiry is a heartbeat."""
    runs = runs_of(project)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        renewed = runs.lease(run_id).expires
        if renewed is not None and expires is not None and renewed > expires:
            return
        time.sleep(0.05)
    pytest.fail("the driver did not renew its lease")


@dataclass
class HeldBuild:
    """A run driven by its own `opsmith run`, its build step's call held until `gate` exists."""

    project: Path
    process: subprocess.Popen[str]
    state: RunState
    gate: Path

    def released_once_seen(self, asked: datetime | None) -> str:
        """Let the build end once the driver renewed its lease past `asked` (so it read what was
        asked of it and starts nothing after); the run's printed output."""
        wait_for_a_heartbeat_after(self.project, self.state.run_id, asked)
        self.gate.touch()
        stdout, _ = self.process.communicate(timeout=120)
        return stdout


@contextmanager
def a_held_build(tmp_path: Path, state_dir: Path) -> Iterator[HeldBuild]:
    gate = tmp_path / "build.gate"
    project = project_holding(tmp_path, state_dir, "jenkins", "trigger_build", gate)
    process = start_run(project, plan_of(project))
    try:
        yield HeldBuild(project, process, wait_until_running(project, process, "build"), gate)
    finally:
        gate.touch()  # a failed assertion must not leave the held call waiting
        if process.poll() is None:
            process.kill()


@pytest.mark.timeout(300)  # six opsmith commands, two of them whole runs; a loaded machine takes minutes
def test_a_running_run_cannot_be_taken_over_while_its_process_lives(tmp_path: Path, state_dir: Path) -> None:
    # The build is held open until the test creates the gate file, after its two CLI commands,
    # however long they take on a loaded machine.
    with a_held_build(tmp_path, state_dir) as held:
        project, run_id = held.project, held.state.run_id
        code, out, err = as_user(project, "bob", "pause", run_id)
        assert code == 0 and "asked" in out, err
        asked = runs_of(project).lease(run_id).expires
        code, _, err = as_user(project, "bob", "resume", run_id)
        assert code == 2 and "is being driven by" in err
        assert held.process.poll() is None and not held.gate.exists(), "the build was still being called"
        # Let the build end only once the driver has seen the pause, so it starts nothing after it.
        stdout = held.released_once_seen(asked)
    paused = json.loads(stdout)
    assert held.process.returncode == 0 and paused["status"] == "paused"
    statuses = {s["step_id"]: s["status"] for s in paused["steps"]}
    assert statuses["build"] == "succeeded" and statuses["test"] == "pending"
    code, out, err = as_user(project, "bob", "resume", paused["run_id"], "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"


def test_a_validation_gate_that_times_out_rolls_the_deployment_back(tmp_path: Path, state_dir: Path) -> None:
    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World
    from tests.conftest import sandbox_servers
    from tests.integration.test_run import approved_plan, pods

    # 0.0005 h = 1.8 s: the gate times out while the test waits.
    config = (
        f"{CONFIG}\nexecution: {{gate_timeout_hours: 0.0005}}\nmcpServers:\n{sandbox_servers(state_dir)}\n"
    )
    (tmp_path / "opsmith.yaml").write_text(config)
    World(state_dir).commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config",
    )
    before = {p["image"] for p in pods(tmp_path, "my-application")}
    plan = approved_plan(tmp_path, "Deploy the code to Kubernetes production")
    code, out, err = as_user(tmp_path, "bob", "run", str(plan["id"]), "--json")
    assert code == 0, err
    waiting = json.loads(out)
    assert waiting["status"] == "awaiting_validation"
    assert {p["image"] for p in pods(tmp_path, "my-application")} != before

    code, out, err = as_user(tmp_path, "bob", "sweep", "--json")
    assert code == 0, err
    if json.loads(out):  # the CLI may have taken longer than the gate's 1.8 s already
        assert json.loads(out)[0]["run_id"] == waiting["run_id"]
    else:
        time.sleep(2)
        code, out, err = as_user(tmp_path, "bob", "sweep", "--json")
        assert code == 0, err
        assert [r["run_id"] for r in json.loads(out)] == [waiting["run_id"]]
    status = json.loads(as_user(tmp_path, "ada", "status", waiting["run_id"], "--json")[1])
    assert status["status"] == "rolled_back"
    assert {p["image"] for p in pods(tmp_path, "my-application")} == before
    code, _, err = as_user(tmp_path, "bob", "continue", waiting["run_id"])
    assert code == 2 and "not waiting at a gate" in err


@pytest.mark.timeout(300)  # five opsmith commands; a loaded machine takes minutes
def test_a_run_cancelled_from_another_terminal_stops_after_its_in_flight_step(
    tmp_path: Path, state_dir: Path
) -> None:
    # The build is held open until the cancel was asked and seen, however slow the CLI calls are.
    with a_held_build(tmp_path, state_dir) as held:
        project, run_id = held.project, held.state.run_id
        code, out, err = as_user(project, "vic", "cancel", run_id)
        assert code == 2, "a viewer may not cancel"
        code, out, err = as_user(project, "bob", "cancel", run_id)
        assert code == 0 and "asked" in out, err
        stdout = held.released_once_seen(runs_of(project).lease(run_id).expires)
    cancelled = json.loads(stdout)
    assert held.process.returncode == 1 and cancelled["status"] == "cancelled"
    statuses = {s["step_id"]: s["status"] for s in cancelled["steps"]}
    assert statuses["build"] == "succeeded", "the in-flight step finished"
    assert statuses["test"] == "cancelled" and statuses["check_service"] == "cancelled"
    assert cancelled["plan_status"] == "cancelled"
    code, _, err = as_user(project, "bob", "resume", cancelled["run_id"])
    assert code == 2 and "nothing to resume" in err


def test_a_server_that_dies_mid_call_fails_the_step_without_repeating_it(
    tmp_path: Path, state_dir: Path, database_url: str, no_orphans: None
) -> None:
    project = project_with_slow(tmp_path, state_dir, {"jenkins": "trigger_build=6000"}, database_url)
    plan_id = plan_of(project)
    process = start_run(project, plan_id)
    try:
        wait_until_running(project, process, "build")
        time.sleep(0.5)
        jenkins = [
            p
            for p in psutil.Process(process.pid).children(recursive=True)
            if "opsmith.sandbox.jenkins" in " ".join(p.cmdline())
        ]
        assert len(jenkins) == 1
        jenkins[0].kill()
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    result = json.loads(stdout)
    assert process.returncode == 1 and result["status"] in ("failed", "rolled_back")
    build = {s["step_id"]: s for s in result["steps"]}["build"]
    assert build["status"] == "failed" and build["attempts"] == 1
    assert "closed the connection during trigger_build" in build["error"]
    calls = [
        e
        for e in json.loads(as_user(project, "ada", "audit", "--json", "--subject", result["run_id"])[1])
        if e["action"] == "tool.called"
    ]
    assert [(c["details"]["tool"], c["details"]["ok"]) for c in calls] == [("jenkins/trigger_build", False)]


def test_a_plan_whose_tool_vanished_is_refused_and_audited(tmp_path: Path, state_dir: Path) -> None:
    project = project_with_slow(tmp_path, state_dir, {})
    plan_id = plan_of(project)
    code, _, err = as_user(project, "ada", "servers", "stop", "sonarqube")
    assert code == 0, err
    code, _, err = as_user(project, "bob", "run", plan_id)
    assert code == 2 and "no longer offered: sonarqube/analyze_project" in err
    audit = json.loads(as_user(project, "ada", "audit", "--json", "--subject", plan_id)[1])
    assert audit[-1]["action"] == "run.refused"
    assert json.loads(as_user(project, "ada", "show", plan_id, "--json")[1])["status"] == "approved"


def test_sweep_and_resume_mend_what_a_process_killed_between_two_commits_left(
    tmp_path: Path, state_dir: Path, database_url: str
) -> None:
    import socket

    from opsmith.domain.plan import PlanStatus
    from opsmith.engine.state import new_run

    project = project_with_slow(tmp_path, state_dir, {}, database_url)
    plan_id = plan_of(project)
    plans, runs = stores_of(project)
    # Killed right after claiming the plan and creating its run: a pending run of a dead process.
    dead = f"{socket.gethostname()}:{2**22 + 12345}:feed"
    plan = plans.get(plan_id)
    runs.commit(new_run(plan, run_id="run_orphan"), owner=dead, claim=plan)
    assert plans.get(plan_id).status is PlanStatus.RUNNING
    code, _, err = as_user(project, "bob", "run", plan_id)
    assert code == 2 and "running, not approved" in err
    code, out, err = as_user(project, "bob", "sweep", "--json")
    assert code == 0, err
    assert json.loads(out) == [
        {"run_id": "run_orphan", "result": "its driver is gone: opsmith resume run_orphan"}
    ]
    code, out, err = as_user(project, "bob", "resume", "run_orphan", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded" and json.loads(out)["plan_status"] == "succeeded"

    # Killed after the run ended and before the plan followed it.
    plans.save(plans.get(plan_id).model_copy(update={"status": PlanStatus.RUNNING}))
    code, out, err = as_user(project, "bob", "sweep", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["result"] == f"plan {plan_id} marked succeeded, as its run ended"
    assert plans.get(plan_id).status is PlanStatus.SUCCEEDED


def test_a_person_orders_rollback_at_a_validation_gate(tmp_path: Path, state_dir: Path) -> None:
    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World
    from tests.conftest import sandbox_servers
    from tests.integration.test_run import approved_plan, pods

    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    World(state_dir).commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config",
    )
    before = {p["image"] for p in pods(tmp_path, "my-application")}
    plan = approved_plan(tmp_path, "Deploy the code to Kubernetes production")
    code, out, err = as_user(tmp_path, "bob", "run", str(plan["id"]), "--json")
    assert code == 0 and json.loads(out)["status"] == "awaiting_validation", err
    run_id = json.loads(out)["run_id"]
    code, _, err = as_user(tmp_path, "vic", "cancel", run_id, "--rollback")
    assert code == 2, "a viewer may not order a rollback"
    code, out, err = as_user(tmp_path, "bob", "cancel", run_id, "--rollback", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "rolled_back"
    assert {p["image"] for p in pods(tmp_path, "my-application")} == before
    assert (
        json.loads(as_user(tmp_path, "ada", "show", str(plan["id"]), "--json")[1])["status"] == "rolled_back"
    )

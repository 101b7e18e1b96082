"""`opsmith serve` takes over runs whose driving process died, by the rules of `opsmith resume`:
an interrupted idempotent step runs again, one that is not waits for a person. kill -9 lands while
a slow sandbox tool is being called by a CLI run; the server, started afterwards, finds the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsmith.engine.state import StepStatus
from tests.integration.test_durability import (
    calls_per_step,
    plan_of,
    project_with_slow,
    run_and_kill_during,
    runs_of,
)
from tests.served import serving, wait_for

pytestmark = pytest.mark.integration

FAST_DUTIES = "\napi: {takeover_seconds: 0.5, sweep_seconds: 5}\n"


def with_fast_takeover(project: Path) -> Path:
    config = project / "opsmith.yaml"
    config.write_text(config.read_text() + FAST_DUTIES)
    return project


def settled(project: Path, run_id: str, statuses: set[str]) -> dict[str, Any] | None:
    state = runs_of(project).get(run_id)
    return json.loads(state.model_dump_json()) if state.status.value in statuses else None


@pytest.mark.timeout(300)
def test_the_server_reruns_an_interrupted_idempotent_step_and_finishes_the_run(
    tmp_path: Path, state_dir: Path, no_orphans: None
) -> None:
    project = project_with_slow(tmp_path, state_dir, {"kubernetes": "apply_deployment=3000"})
    plan_id = plan_of(project)
    crashed = run_and_kill_during(project, plan_id, "deploy")
    assert crashed.step("deploy").status is StepStatus.RUNNING
    with serving(with_fast_takeover(project)):
        ended = {"succeeded", "failed", "rolled_back"}
        found = wait_for(lambda: settled(project, crashed.run_id, ended), 120)
    assert isinstance(found, dict) and found["status"] == "succeeded", found
    calls = calls_per_step(project, crashed.run_id)
    finished = [k for k, s in crashed.steps.items() if s.status is StepStatus.SUCCEEDED]
    assert finished and all(calls[step] == 1 for step in finished), calls
    events = [e.type.value for e in runs_of(project).events(crashed.run_id)]
    assert "step.interrupted" in events and events[-1] == "run.finished"


@pytest.mark.timeout(300)
def test_the_server_leaves_an_interrupted_step_that_is_not_idempotent_to_a_person(
    tmp_path: Path, state_dir: Path, no_orphans: None
) -> None:
    project = project_with_slow(tmp_path, state_dir, {"jenkins": "trigger_build=3000"})
    plan_id = plan_of(project)
    crashed = run_and_kill_during(project, plan_id, "build")
    with serving(with_fast_takeover(project)):
        found = wait_for(lambda: settled(project, crashed.run_id, {"needs_attention", "succeeded"}), 120)
    assert isinstance(found, dict) and found["status"] == "needs_attention", found
    assert found["steps"]["test"]["status"] == "pending", "nothing ran on after the held step"
    assert "build" not in calls_per_step(project, crashed.run_id), "the held build was not called again"

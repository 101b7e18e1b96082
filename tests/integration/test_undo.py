"""Undo: an interrupted undo runs again only if it is idempotent, a failed step's undo runs with what
that step recorded (or waits for a person), and a deployment's undo goes back to the revision the
deploy replaced. The engine against real SQLite with in-memory tools, then the real sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import ToolCallError
from opsmith.domain.plan import Plan, ToolCall
from opsmith.engine.recovery import Choice, recover, resolve, undecided
from opsmith.engine.state import RunState, RunStatus, StepStatus, UndoStatus, new_run
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import BUNDLED, load_playbooks
from opsmith.sandbox.world import World
from opsmith.store.database import Database
from opsmith.store.runs import RunRepository
from opsmith.tools.mcp import ServerPool
from tests.conftest import PYTHON
from tests.integration.test_approval_cli import CONFIG, as_user
from tests.integration.test_durability import killed_when, runs_of, start_run
from tests.integration.test_engine_local import Tools, executor
from tests.integration.test_planning import TUESDAY, config_for, plan
from tests.integration.test_run import approved_plan
from tests.unit.test_engine_helpers import NOW, plan_of, step

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def database(database_url: str) -> Database:
    """The engine over the real run store, on SQLite and on PostgreSQL."""
    db = Database(database_url)
    db.migrate()
    return db


# -- the engine: what it undoes, with what, and when it asks a person ---------------------------


class RolloutFailed(ToolCallError):
    """An error result that carries the structured content its tool reported with it."""

    def __init__(self, message: str, output: dict[str, Any]) -> None:
        super().__init__(message)
        self.output = output


def deploy_plan(*, idempotent_undo: bool = False) -> Plan:
    """backup -> deploy -> check; deploy's undo goes back to the revision deploy says it replaced."""
    back = ToolCall(
        server="k8s",
        tool="rollback",
        args={"to_revision": "${steps.deploy.previous_revision}", "name": "app"},
        idempotent=idempotent_undo,
    )
    plan = plan_of(
        step("backup", rollback=ToolCall(server="k8s", tool="drop_backup")),
        step("deploy", "backup", rollback=back),
        step("check", "deploy"),
    )
    steps = [s.model_copy(update={"changes_target": s.id != "check"}) for s in plan.steps]
    return plan.model_copy(update={"steps": steps})


def undo_calls(tools: Tools) -> list[str]:
    return [c for c in tools.calls if c in ("rollback", "drop_backup")]


class Recorder(Tools):
    """Tools that also keep the arguments of every call."""

    def __init__(self, behaviours: dict[str, Any] | None = None) -> None:
        super().__init__(behaviours)
        self.args: dict[str, list[dict[str, Any]]] = {}

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Any = None,
    ) -> Any:
        self.args.setdefault(tool, []).append(dict(arguments))
        return await super().call(server, tool, arguments, timeout=timeout)


async def test_a_failed_step_that_reported_what_it_replaced_is_undone_with_it(database: Database) -> None:
    async def fails_part_way(_: dict[str, Any]) -> dict[str, Any]:
        raise RolloutFailed("0/2 new pods ready", {"revision": 6, "previous_revision": 5})

    plan = deploy_plan()
    tools = Recorder({"do_deploy": fails_part_way})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.ROLLED_BACK
    assert final.step("deploy").status is StepStatus.FAILED
    assert final.step("deploy").output == {"revision": 6, "previous_revision": 5}
    assert final.step("deploy").undo is UndoStatus.DONE
    assert tools.args["rollback"] == [{"to_revision": 5, "name": "app"}]
    assert undo_calls(tools) == ["rollback", "drop_backup"], "the failed step's change first"


async def test_a_step_whose_output_broke_its_expectation_is_undone_with_that_output(
    database: Database,
) -> None:
    from opsmith.domain.evidence import Condition

    async def not_ready(_: dict[str, Any]) -> dict[str, Any]:
        return {"revision": 6, "previous_revision": 5, "ready": 0}

    plan = deploy_plan()
    expecting = [Condition(path="ready", op=">=", value=1)]
    steps = [s.model_copy(update={"expect": expecting}) if s.id == "deploy" else s for s in plan.steps]
    plan = plan.model_copy(update={"steps": steps})
    tools = Recorder({"do_deploy": not_ready})
    final = await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    assert final.status is RunStatus.ROLLED_BACK
    assert tools.args["rollback"] == [{"to_revision": 5, "name": "app"}]


async def test_a_failed_step_that_recorded_nothing_its_undo_needs_waits_for_a_person(
    database: Database,
) -> None:
    async def fails(_: dict[str, Any]) -> dict[str, Any]:
        raise ToolCallError("k8s/do_deploy reported an error: connection reset")

    plan = deploy_plan()
    tools = Recorder({"do_deploy": fails})
    first = executor(plan, tools, database)
    held = await first.execute(new_run(plan, run_id="r1"))
    assert held.status is RunStatus.NEEDS_ATTENTION
    assert held.step("deploy").undo is UndoStatus.HELD
    assert undecided(held) == ["deploy"]
    assert undo_calls(tools) == [], "neither skipped silently nor guessed, and older undos wait"
    assert first.failure is not None
    assert "the undo of deploy waits for a person" in first.failure
    assert "opsmith resume r1 --rollback STEP" in first.failure
    events = RunRepository(database).events("r1")
    held_event = next(e for e in events if e.data.get("held"))
    assert held_event.step_id == "deploy" and held_event.data["needs"] == ["previous_revision"]
    assert "previous_revision of deploy, which it did not record" in held_event.message

    # A person runs the undo: what deploy never recorded is left out (the tool's default applies).
    second = executor(plan, tools, database)
    runs = RunRepository(database)
    assert runs.claim("r1", second.owner)
    decided = resolve(runs.get("r1"), "deploy", Choice.FAIL, at=NOW)
    assert decided.status is RunStatus.ROLLING_BACK
    runs.commit(decided, owner=second.owner)
    final = await second.execute(decided)
    assert final.status is RunStatus.ROLLED_BACK
    assert tools.args["rollback"] == [{"name": "app"}]
    assert undo_calls(tools) == ["rollback", "drop_backup"]
    calling = next(
        e for e in runs.events("r1") if e.type.value == "rollback.calling" and e.step_id == "deploy"
    )
    assert calling.data["left_out"] == ["to_revision"]


async def test_a_person_may_count_a_held_undo_as_done_and_the_rest_is_undone(database: Database) -> None:
    async def fails(_: dict[str, Any]) -> dict[str, Any]:
        raise ToolCallError("k8s/do_deploy reported an error")

    plan = deploy_plan()
    tools = Recorder({"do_deploy": fails})
    await executor(plan, tools, database).execute(new_run(plan, run_id="r1"))
    second = executor(plan, tools, database)
    runs = RunRepository(database)
    assert runs.claim("r1", second.owner)
    decided = resolve(runs.get("r1"), "deploy", Choice.SKIP, at=NOW)
    runs.commit(decided, owner=second.owner)
    final = await second.execute(decided)
    assert final.status is RunStatus.ROLLED_BACK
    assert final.step("deploy").undo is UndoStatus.SKIPPED
    assert undo_calls(tools) == ["drop_backup"]


async def interrupt_undo(plan: Plan, database: Database) -> tuple[RunState, Tools]:
    """Run `plan` until check fails and deploy's undo is in its call, then stop the process there."""
    started = asyncio.Event()

    async def check_fails(_: dict[str, Any]) -> dict[str, Any]:
        raise ToolCallError("check failed")

    async def hangs(_: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(60)
        return {}

    async def deploys(_: dict[str, Any]) -> dict[str, Any]:
        return {"revision": 6, "previous_revision": 5}

    tools = Tools({"do_deploy": deploys, "do_check": check_fails, "rollback": hangs})
    runner = executor(plan, tools, database)
    task = asyncio.create_task(runner.execute(new_run(plan, run_id="r1")))
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()  # the process dies: nothing after the call's start is recorded
    await asyncio.gather(task, return_exceptions=True)
    return RunRepository(database).get("r1"), tools


async def test_an_undo_interrupted_by_a_crash_is_not_run_again_unless_idempotent(database: Database) -> None:
    plan = deploy_plan(idempotent_undo=False)
    crashed, _ = await interrupt_undo(plan, database)
    assert crashed.status is RunStatus.ROLLING_BACK
    assert crashed.step("deploy").undo is UndoStatus.CALLING

    recovered = recover(plan, crashed)
    assert recovered.held == ["deploy"] and recovered.state.status is RunStatus.NEEDS_ATTENTION
    tools = Tools()
    second = executor(plan, tools, database)
    runs = RunRepository(database)
    assert runs.claim("r1", second.owner)
    decided = resolve(recovered.state, "deploy", Choice.RETRY, at=NOW)
    runs.commit(decided, owner=second.owner)
    final = await second.execute(decided)
    assert final.status is RunStatus.ROLLED_BACK
    assert tools.calls == ["rollback", "drop_backup"]


async def test_an_idempotent_undo_interrupted_by_a_crash_runs_again(database: Database) -> None:
    plan = deploy_plan(idempotent_undo=True)
    crashed, _ = await interrupt_undo(plan, database)
    recovered = recover(plan, crashed)
    assert recovered.rerun == ["deploy"] and recovered.state.status is RunStatus.ROLLING_BACK
    tools = Tools()
    second = executor(plan, tools, database)
    runs = RunRepository(database)
    assert runs.claim("r1", second.owner)
    runs.commit(recovered.state, owner=second.owner)
    final = await second.execute(recovered.state)
    assert final.status is RunStatus.ROLLED_BACK and tools.calls == ["rollback", "drop_backup"]


# -- the planner: each undo says whether it is idempotent -------------------------------------------


@pytest.fixture
async def catalog(tmp_path: Path, state_dir: Path) -> AsyncIterator[Catalog]:
    async with ServerPool(config_for(tmp_path, state_dir), dict(os.environ)) as pool:
        await pool.start()
        yield Catalog(pool.catalog.tools())


async def test_undos_are_idempotent_as_their_tool_or_playbook_says(
    tmp_path: Path, state_dir: Path, catalog: Catalog
) -> None:
    planner = Planner(config_for(tmp_path, state_dir), load_playbooks())
    staging = plan(planner, catalog, "Deploy my-application to staging").step("deploy").rollback
    assert staging is not None and staging.tool == "rollback_deployment"
    assert staging.args["to_revision"] == "${steps.deploy.previous_revision}"
    assert not staging.idempotent, "rollback_deployment does not declare idempotentHint"
    production = plan(planner, catalog, "Deploy my-application to production").step("deploy").rollback
    assert production is not None and production.idempotent, "restoring a backup: the playbook says so"
    situation = Situation(catalog=catalog, now=TUESDAY)
    scaling = planner.plan("Scale my-application in staging", situation, {"replicas": 3})
    scale = scaling.step("scale").rollback
    assert scale is not None and scale.idempotent, "scale_deployment declares idempotentHint"


# -- the real sandbox: the deployment's undo goes back to the revision the deploy replaced ------------

APP = "microservice-two"
REQUEST = f"Deploy {APP} to staging"


def staging_project(directory: Path, state_dir: Path, *, slow: str = "") -> Path:
    """A project on the sandbox servers of `state_dir` whose staging playbook is the bundled one with
    one more step at its end that always fails, so that its runs roll back after the deploy."""
    playbooks = directory / "playbooks"
    playbooks.mkdir(parents=True)
    bundled = yaml.safe_load((BUNDLED / "environment_deployment.yaml").read_text())
    bundled["steps"].append(
        {
            "id": "doomed",
            "capability": "verify_pods",
            "name": "A check that cannot pass",
            "depends_on": ["check_service"],
            "args": {"label_selector": "app={{ subject }}"},
            "expect": [{"path": "total", "op": "==", "value": -1}],
        }
    )
    (playbooks / "environment_deployment.yaml").write_text(yaml.safe_dump(bundled, sort_keys=False))
    config = CONFIG.replace(
        'planning: {default_application: my-application, image_repository: "myorg/{app}"}',
        "planning: {default_application: my-application, image_repository: 'myorg/{app}',"
        f" playbook_dirs: ['{playbooks}']}}",
    )
    assert "playbook_dirs" in config
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        extra = f", --latency, '{slow}'" if slow and name == "kubernetes" else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    (directory / "opsmith.yaml").write_text(f"{config}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return directory


def new_version(state_dir: Path, note: str) -> None:
    """A commit that changes what the image holds, so the next build pushes a new image."""
    world = World(state_dir)
    head = world.repos.tree(APP, world.repos.resolve(APP, "main"))
    world.commit_files(APP, {"server.js": head["server.js"].decode() + f"// {note}\n"}, f"chore: {note}")


def deployed(state_dir: Path) -> tuple[int, str, set[str]]:
    """The staging deployment's current revision, its image, and the images its pods run."""
    world = World(state_dir)
    found = world.cluster.deployment("staging", APP)
    running = {p.image for p in world.cluster.pods("staging", f"app={APP}", None).pods}
    return found.revision, found.image, running


def run_failing(project: Path) -> dict[str, Any]:
    """Plan and run the staging deployment; the report, with its steps by id."""
    planned = approved_plan(project, REQUEST)
    code, out, err = as_user(project, "bob", "run", str(planned["id"]), "--json")
    assert code == 1, err
    result: dict[str, Any] = json.loads(out)
    result["by_step"] = {s["step_id"]: s for s in result["steps"]}
    assert result["by_step"]["doomed"]["status"] == "failed", result
    return result


def undo_of_deploy(project: Path, run_id: str) -> dict[str, Any]:
    """The audited call of the deploy's undo in that run."""
    from opsmith.store.audit import AuditLog

    audit = AuditLog(Database(f"sqlite:///{project / '.opsmith' / 'opsmith.db'}"))
    calls = [e.details for e in audit.entries(subject=run_id) if e.action == "tool.called"]
    tools = [c["tool"] for c in calls if c["step"] == "deploy"]
    assert tools == ["kubernetes/apply_deployment", "kubernetes/rollback_deployment"], calls
    return dict(calls[-1])


def test_deploying_the_running_image_again_then_failing_leaves_it_as_it_was(
    tmp_path: Path, state_dir: Path
) -> None:
    fails = staging_project(tmp_path / "fails", state_dir)
    # The seeded world runs the build of this commit already: the deploy applies that image again.
    revision, image, running = deployed(state_dir)
    assert running == {image}

    again = run_failing(fails)
    assert again["status"] == "rolled_back", again
    deploy = again["by_step"]["deploy"]
    assert deploy["output"]["action"] == "unchanged" and deploy["output"]["previous_revision"] == revision
    assert deploy["status"] == "rolled_back" and deploy["undo"] == "done"
    assert undo_of_deploy(fails, again["run_id"])["args"]["to_revision"] == revision
    assert deployed(state_dir) == (revision, image, {image}), "the undo went back no revision at all"


def test_deploying_a_new_image_then_failing_restores_exactly_the_previous_one(
    tmp_path: Path, state_dir: Path
) -> None:
    fails = staging_project(tmp_path / "fails", state_dir)
    revision, previous, _ = deployed(state_dir)
    older = {h.image for h in World(state_dir).cluster.deployment("staging", APP).revision_history} - {
        previous
    }
    assert older, "the history holds an older image the undo must not go back to"
    new_version(state_dir, "a change that fails later")

    failed = run_failing(fails)
    assert failed["status"] == "rolled_back", failed
    deploy = failed["by_step"]["deploy"]["output"]
    assert deploy["action"] == "rolled-out" and deploy["previous_revision"] == revision
    assert deploy["image"] != previous
    assert undo_of_deploy(fails, failed["run_id"])["args"]["to_revision"] == revision
    _, image, running = deployed(state_dir)
    assert image == previous and running == {previous}, "back to the image the deploy replaced"


def wait_for(project: Path, process: Any, ready: Callable[[RunState], bool], what: str) -> RunState:
    deadline = time.monotonic() + 120
    runs = runs_of(project)
    while time.monotonic() < deadline:
        ids = runs.ids(list(RunStatus)) if (project / ".opsmith" / "opsmith.db").exists() else []
        if ids and ready(state := runs.get(ids[-1])):
            return state
        assert process.poll() is None, f"the run ended before {what}"
        time.sleep(0.1)
    pytest.fail(f"never saw {what}")


@pytest.mark.timeout(300)  # four opsmith commands; on a loaded 2-core machine one takes up to 40 s
def test_an_undo_a_crash_interrupted_waits_for_a_person_and_then_restores_the_image(
    tmp_path: Path, state_dir: Path, no_orphans: None
) -> None:
    fails = staging_project(tmp_path / "fails", state_dir, slow="rollback_deployment=5000")
    _, before, _ = deployed(state_dir)
    new_version(state_dir, "doomed")
    plan_id = str(approved_plan(fails, REQUEST)["id"])
    process = start_run(fails, plan_id, own_session=True)
    crashed = killed_when(
        process,
        lambda: wait_for(
            fails, process, lambda s: s.step("deploy").undo is UndoStatus.CALLING, "the deploy's undo start"
        ),
    )
    assert crashed.status is RunStatus.ROLLING_BACK
    assert deployed(state_dir)[1] != before, "killed before the undo did its work"

    code, out, err = as_user(fails, "bob", "resume", crashed.run_id, "--json")
    assert code == 1, err
    held = json.loads(out)
    assert held["status"] == "needs_attention", held
    assert "deploy may or may not have done its work" in held["failure"]
    assert {s["step_id"]: s["undo"] for s in held["steps"]}["deploy"] == "held"
    assert deployed(state_dir)[1] != before, "rollback_deployment is not idempotent: not run again unasked"

    code, out, err = as_user(fails, "bob", "resume", crashed.run_id, "--retry", "deploy", "--json")
    assert code == 1, err
    done = json.loads(out)
    assert done["status"] == "rolled_back", done
    assert deployed(state_dir)[1:] == (before, {before})

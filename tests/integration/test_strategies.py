"""Canary and blue-green deployments run through the real sandbox servers and the opsmith CLI.

A canary that fails is aborted: the stable revision keeps all traffic. A blue-green switch that
fails is switched back. Every assertion on the outcome reads the cluster back through
`opsmith call kubernetes ...` after the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsmith.sandbox.world import World
from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG, as_user
from tests.integration.test_run import approved_plan, pods

pytestmark = pytest.mark.integration

STRATEGIES = CONFIG.replace(
    "  microservice-two: {}",
    "  microservice-one: {strategy: canary}\n  microservice-two: {strategy: blue-green}",
)

# microservice-one reads its settings from config/<APP_ENV>.json; the sandbox cluster sets APP_ENV
# to the namespace, so an image without config/production.json runs in staging and crashes in
# production, as a forgotten production config does.
SETTINGS_PER_ENVIRONMENT = """'use strict';

const express = require('express');
const routes = require('./src/routes');
const settings = require(`./config/${process.env.APP_ENV}.json`);

const PORT = Number(process.env.PORT) || settings.port;

const app = express();
app.use(express.json());
app.get('/healthz', (req, res) => res.json({ healthy: true }));
app.use('/api', routes);

app.listen(PORT, () => {
  console.log(`Server started on port ${PORT}`);
});
"""


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text(f"{STRATEGIES}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def kubernetes(project: Path, tool: str, **args: object) -> dict[str, Any]:
    code, out, err = as_user(project, "ada", "call", "kubernetes", tool, "--args", json.dumps(args), "--json")
    assert code == 0, err
    return dict(json.loads(out)["structured"])


def service(project: Path, app: str, namespace: str = "production") -> dict[str, Any]:
    return kubernetes(project, "get_service", service_name=f"{app}-service", namespace=namespace)


def run(project: Path, request: str, playbook: str) -> tuple[int, dict[str, Any]]:
    plan = approved_plan(project, request)
    assert plan["playbook"] == playbook
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--auto-validate", "--json")
    assert out, err
    return code, json.loads(out)


def tool_calls(project: Path, run_id: str) -> list[dict[str, Any]]:
    code, out, err = as_user(project, "ada", "audit", "--json", "--subject", run_id, "--limit", "200")
    assert code == 0, err
    return [e["details"] for e in json.loads(out) if e["action"] == "tool.called"]


def running_now(state_dir: Path, app: str, namespace: str = "production") -> list[dict[str, Any]]:
    """What runs before a test acts, read in-process (fast); outcomes are read through the CLI."""
    return [p.model_dump() for p in World(state_dir).cluster.pods(namespace, f"app={app}", None).pods]


def settings_per_environment(state_dir: Path, environments: list[str]) -> None:
    world = World(state_dir)
    head = world.repos.tree("microservice-one", world.repos.resolve("microservice-one", "main"))
    dockerfile = head["Dockerfile"].decode()
    assert "COPY src/ ./src/\n" in dockerfile
    files: dict[str, str | None] = {
        "server.js": SETTINGS_PER_ENVIRONMENT,
        "Dockerfile": dockerfile.replace("COPY src/ ./src/\n", "COPY src/ ./src/\nCOPY config/ ./config/\n"),
    }
    for environment in environments:
        files[f"config/{environment}.json"] = json.dumps({"port": 8080, "orders": {"page_size": 50}}) + "\n"
    world.commit_files("microservice-one", files, "feat: settings per environment from config/<APP_ENV>.json")


def test_a_canary_that_crash_loops_is_aborted_and_the_stable_revision_keeps_all_traffic(
    project: Path, state_dir: Path
) -> None:
    stable = running_now(state_dir, "microservice-one")
    stable_images = {p["image"] for p in stable}
    assert len(stable) == 2 and len(stable_images) == 1
    staging_before = {p["image"] for p in running_now(state_dir, "microservice-one", "staging")}
    settings_per_environment(state_dir, ["staging"])  # config/production.json is forgotten

    code, result = run(project, "Deploy microservice-one to production", "production_canary")
    assert code == 1, result
    assert result["status"] == "rolled_back" and result["plan_status"] == "rolled_back"
    steps = {s["step_id"]: s for s in result["steps"]}
    new_image = steps["push_image"]["output"]["image"]
    assert new_image not in stable_images
    assert steps["staging_validate"]["status"] == "succeeded", "the new image runs in staging"
    assert steps["canary"]["status"] == "failed"
    assert (
        "CrashLoopBackOff" in steps["canary"]["error"]
        and "config/production.json" in steps["canary"]["error"]
    )
    assert steps["promote"]["status"] == "pending"
    assert steps["staging_deploy"]["status"] == "rolled_back"

    # The canary's undo aborted it, back to the revision the backup recorded, and nothing further.
    undo = [c for c in tool_calls(project, result["run_id"]) if c["step"] == "canary"][-1]
    assert undo["tool"] == "kubernetes/rollback_deployment" and undo["ok"]
    assert undo["args"]["to_revision"] == steps["backup"]["output"]["revision"]
    assert "aborted" in undo["result"]

    after = pods(project, "microservice-one")
    assert {p["image"] for p in after} == stable_images, "no pod of the canary's revision remains"
    assert len(after) == len(stable)
    assert all(p["status"] == "Running" and p["ready"] for p in after)
    assert all("track" not in p["labels"] for p in after)
    svc = service(project, "microservice-one")
    assert svc["traffic_split"] == {after[0]["replica_set"]: 100}
    assert svc["healthy"] and {e["replica_set"] for e in svc["endpoints"]} == {after[0]["replica_set"]}
    deployment = kubernetes(
        project, "get_deployment", deployment_name="microservice-one", namespace="production"
    )
    assert deployment["canary"] is None and deployment["image"] in stable_images
    assert {p["image"] for p in pods(project, "microservice-one", "staging")} == staging_before


def test_a_healthy_canary_is_promoted_to_all_pods(project: Path, state_dir: Path) -> None:
    replicas = len(running_now(state_dir, "microservice-one"))
    settings_per_environment(state_dir, ["staging", "production"])

    code, result = run(project, "Deploy microservice-one to production", "production_canary")
    assert code == 0, result
    assert result["status"] == "succeeded"
    steps = {s["step_id"]: s for s in result["steps"]}
    new_image = steps["push_image"]["output"]["image"]
    assert steps["canary"]["output"]["image"] == new_image
    assert steps["monitor_logs"]["output"]["health"] == "healthy"

    after = pods(project, "microservice-one")
    assert len(after) == replicas
    assert {p["image"] for p in after} == {new_image}
    assert all(p["status"] == "Running" and p["ready"] and "track" not in p["labels"] for p in after)
    svc = service(project, "microservice-one")
    assert svc["traffic_split"] == {after[0]["replica_set"]: 100} and svc["healthy"]


def test_a_blue_green_switch_that_fails_is_switched_back(project: Path, state_dir: Path) -> None:
    before = running_now(state_dir, "microservice-two")
    live_images = {p["image"] for p in before}
    world = World(state_dir)
    head = world.repos.tree("microservice-two", world.repos.resolve("microservice-two", "main"))
    server, dockerfile = head["server.js"].decode(), head["Dockerfile"].decode()
    assert "|| 8081" in server and "EXPOSE 8081" in dockerfile
    # The new version listens on 8090; the production service still sends traffic to 8081. Its pods
    # start and log cleanly, so only the traffic the switch sends them shows the problem.
    world.commit_files(
        "microservice-two",
        {"server.js": server.replace("|| 8081", "|| 8090"), "Dockerfile": dockerfile.replace("8081", "8090")},
        "chore: listen on 8090",
    )

    code, result = run(project, "Deploy microservice-two to production", "production_blue_green")
    assert code == 1, result
    assert result["status"] == "rolled_back" and result["plan_status"] == "rolled_back"
    steps = {s["step_id"]: s for s in result["steps"]}
    new_image = steps["push_image"]["output"]["image"]
    previous_color = steps["deploy_idle"]["output"]["active_color"]
    assert previous_color == "blue"
    assert steps["verify_pods"]["status"] == "succeeded" and steps["check_logs"]["status"] == "succeeded"
    assert steps["switch"]["status"] == "failed"
    assert "switched microservice-two from blue to green" in steps["switch"]["error"]
    assert "port 8090" in steps["switch"]["error"] and "port 8081" in steps["switch"]["error"]
    assert steps["check_service"]["status"] == "pending"
    assert steps["deploy_idle"]["status"] == "rolled_back"

    calls = [c for c in tool_calls(project, result["run_id"]) if c["step"] in ("switch", "deploy_idle")]
    assert [(c["tool"], c["ok"]) for c in calls] == [
        ("kubernetes/apply_deployment", True),
        ("kubernetes/switch_traffic", False),
        ("kubernetes/switch_traffic", True),  # the switch back
        ("kubernetes/rollback_deployment", True),
    ]
    assert calls[2]["args"]["color"] == "blue"

    svc = service(project, "microservice-two")
    assert svc["active_color"] == "blue" and svc["selector"] == {"app": "microservice-two", "color": "blue"}
    assert svc["healthy"] and svc["ready_endpoints"] == len(before)
    assert {e["color"] for e in svc["endpoints"]} == {"blue"} and all(
        e["answering"] for e in svc["endpoints"]
    )
    after = pods(project, "microservice-two")
    assert {p["image"] for p in after} == live_images and new_image not in live_images
    assert all(p["labels"].get("color") == "blue" and p["status"] == "Running" for p in after)
    assert len(after) == len(before)


def test_a_blue_green_deployment_switches_traffic_to_the_new_colour(project: Path, state_dir: Path) -> None:
    World(state_dir).commit_file(
        "microservice-two", "src/version.js", "'use strict';\n\nmodule.exports = '1.3.1';\n", "chore: 1.3.1"
    )
    code, result = run(project, "Deploy microservice-two to production", "production_blue_green")
    assert code == 0, result
    assert result["status"] == "succeeded"
    steps = {s["step_id"]: s for s in result["steps"]}
    new_image = steps["push_image"]["output"]["image"]
    assert steps["switch"]["output"]["previous_color"] == "blue"

    svc = service(project, "microservice-two")
    assert svc["active_color"] == "green" and svc["healthy"]
    green = [p for p in pods(project, "microservice-two") if p["labels"].get("color") == "green"]
    assert green and {p["image"] for p in green} == {new_image}
    assert all(p["status"] == "Running" and p["ready"] for p in green)
    assert {e["pod"] for e in svc["endpoints"]} == {p["name"] for p in green}

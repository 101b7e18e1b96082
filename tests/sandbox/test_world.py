"""World logic called directly: CI, quality, registry and cluster computed from real repositories."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from opsmith.sandbox.errors import SandboxError
from opsmith.sandbox.images import DockerBuild, ImageConfig
from opsmith.sandbox.runtime import start
from opsmith.sandbox.samples.apps import SAMPLE_APPS
from opsmith.sandbox.world import World
from tests.sandbox.helpers import build_and_push, change_service, fix_my_application

PROD = "production"


# --- CI -------------------------------------------------------------------------------------------


def test_build_artifact_checksums_are_those_of_the_repository_files(world: World) -> None:
    build = world.builds.trigger(app="my-application")
    tree = world.repos.tree("my-application", world.repos.resolve("my-application", "main"))

    assert build.status == "SUCCESS"
    assert build.number == 2  # seeding built release v0.9.5 as #1
    assert build.commit_sha == world.repos.resolve("my-application", "main")
    assert {a.path: (a.sha256, a.size) for a in build.artifact} == {
        path: (hashlib.sha256(content).hexdigest(), len(content)) for path, content in tree.items()
    }
    assert build.dependencies == {"express": "4.19.2", "helmet": "7.1.0"}
    assert f"Archiving artifacts: {len(tree)} files, {sum(map(len, tree.values()))} bytes" in build.log


def test_unknown_job_lists_the_known_jobs(world: World) -> None:
    with pytest.raises(SandboxError, match="my-application-build"):
        world.builds.trigger(job="production-build-pipeline")
    with pytest.raises(SandboxError, match="payments-api"):
        world.builds.trigger(app="nope")


def test_a_syntax_error_fails_the_build(world: World) -> None:
    world.commit_file("microservice-one", "src/store.js", "function broken( {\n", "wip")
    with pytest.raises(SandboxError, match=r"src/store.js:1 SyntaxError"):
        world.builds.trigger(app="microservice-one", raise_on_failure=True)
    assert world.builds.record("microservice-one-build", None).status == "FAILURE"


def test_tests_pass_or_fail_from_repository_content(world: World) -> None:
    build = world.builds.trigger(app="my-application")
    run = world.builds.run_tests(build.job, build.number)
    assert (run.status, run.failed, run.passed) == ("PASSED", 0, 8)
    assert 70 < run.coverage_percent < 100  # src/logger.js is not referenced by any test

    failing = {"suite": "config", "cases": [{"name": "config present", "expect": [
        {"file": "config/production.json", "exists": True}]}]}  # fmt: skip
    world.commit_file("my-application", "tests/config.test.json", json.dumps(failing), "test: config")
    build = world.builds.trigger(app="my-application")
    run = world.builds.run_tests(build.job, build.number, "config")
    assert run.status == "FAILED"
    assert run.cases[0].message == "expected file config/production.json to exist"
    with pytest.raises(SandboxError, match="config present"):
        world.builds.run_tests(build.job, build.number, fail_on_error=True)
    assert world.builds.test_results(build.job, build.number).failed == 1

    fix_my_application(world)
    build = world.builds.trigger(app="my-application")
    assert world.builds.run_tests(build.job, build.number, fail_on_error=True).status == "PASSED"


# --- quality and security -----------------------------------------------------------------------------


def test_payments_api_has_high_and_critical_vulnerabilities(world: World) -> None:
    report = world.quality.vulnerabilities("payments-api", "main", ["HIGH", "CRITICAL"])
    assert report.counts["CRITICAL"] == 1
    assert report.counts["HIGH"] == 2
    assert {v.id for v in report.vulnerabilities} == {"CVE-2021-44906", "CVE-2020-8203", "CVE-2021-23337"}
    with pytest.raises(SandboxError, match="CVE-2021-44906"):
        world.quality.vulnerabilities("payments-api", "main", None, block_on_critical=True)

    analysis = world.quality.analyze("payments-api", "main", "production-gate")
    assert analysis.quality_gate.status == "FAILED"
    assert analysis.quality_gate.failing == ["security_rating is 5, required <= 1"]
    smells = world.quality.issues("payments-api", "CODE_SMELL", None, 50).issues
    assert ("src/payments.js", 12) in {(s.file, s.line) for s in smells}  # `var amount`


def test_my_application_passes_quality_and_security(world: World) -> None:
    assert world.quality.vulnerabilities("my-application", "main", None).counts["CRITICAL"] == 0
    analysis = world.quality.analyze("my-application", "main", "production-gate", fail_on_gate=True)
    assert analysis.quality_gate.status == "PASSED"
    assert analysis.metrics.files == 5
    assert any(i.rule == "javascript:S1135" and i.file == "src/logger.js" for i in analysis.issues)


def test_gate_thresholds_are_configurable(world: World) -> None:
    world.quality.configure("default", "coverage", ">=", 99)
    with pytest.raises(SandboxError, match="coverage is"):
        world.quality.analyze("my-application", "main", "default", fail_on_gate=True)


# --- registry -----------------------------------------------------------------------------------------


def test_image_follows_the_dockerfile_and_lacks_the_config(world: World) -> None:
    pushed = build_and_push(world, "my-application", "v1.0.0-prod")
    assert [layer.instruction for layer in pushed.layers] == [
        "FROM node:18-alpine",
        "COPY package*.json ./",
        "RUN npm ci --omit=dev",
        "COPY server.js ./",
        "COPY src/ ./src/",
    ]
    report = world.registry.verify(pushed.image, ["config/production.json", "server.js"])
    assert report.integrity == "valid"
    assert report.recomputed_digest == pushed.digest
    assert report.missing_files == ["config/production.json"]
    assert not report.verified
    with pytest.raises(SandboxError, match=r"lacks required files config/production\.json"):
        world.registry.verify(pushed.image, ["config/production.json"], fail_on_missing=True)

    again = build_and_push(world, "my-application", "v1.0.0-prod")
    assert again.digest == pushed.digest
    assert again.already_present
    change_service(world, "my-application", "changed")
    with pytest.raises(SandboxError, match="immutable"):
        build_and_push(world, "my-application", "v1.0.0-prod")


def test_tag_pull_and_delete(world: World) -> None:
    tagged = world.registry.tag("myorg/microservice-one:v1.1.0", "stable", None)
    assert world.registry.pull("myorg/microservice-one:stable").digest == tagged.digest
    deleted = world.registry.delete("myorg/microservice-one:stable")
    assert deleted.deleted_tags == ["stable"]
    assert not deleted.manifest_deleted
    assert deleted.in_use_by == ["development/microservice-one", "production/microservice-one",
                                 "staging/microservice-one"]  # fmt: skip
    with pytest.raises(SandboxError, match="not found"):
        world.registry.pull("myorg/microservice-one:stable")


# --- cluster ------------------------------------------------------------------------------------------


def test_broken_image_crash_loops_and_rollback_restores_the_previous_image(world: World) -> None:
    pushed = build_and_push(world, "my-application", "v1.0.0-prod")
    with pytest.raises(SandboxError, match=r"Cannot find module './config/production.json'"):
        world.cluster.apply(PROD, "my-application", pushed.image, 2, "RollingUpdate", 1, 0)

    pods = world.cluster.pods(PROD, "app=my-application", None)
    crashing = [p for p in pods.pods if p.status == "CrashLoopBackOff"]
    assert len(crashing) == 1
    assert crashing[0].restarts >= 3
    assert not crashing[0].ready
    assert pods.ready == 2  # maxUnavailable=0 kept the old pods serving
    logs = world.cluster.logs(PROD, crashing[0].name, None, 100).pods[0].lines
    assert "Error: Cannot find module './config/production.json'" in logs
    assert "    at Function.Module._resolveFilename (node:internal/modules/cjs/loader:1077:15)" in logs
    assert "Failed to load configuration file" in logs
    assert world.cluster.deployment(PROD, "my-application").status == "Failed"

    result = world.cluster.rollback(PROD, "my-application", None, None)
    assert result.image == "myorg/my-application:v0.9.5"
    assert result.replicas == "2/2"
    pods = world.cluster.pods(PROD, "app=my-application", "status.phase=Running")
    assert pods.total == 2
    assert pods.ready == 2
    assert {p.image for p in pods.pods} == {"myorg/my-application:v0.9.5"}
    assert world.cluster.service(PROD, "my-application-service").ready_endpoints == 2


def test_committed_fix_then_rebuild_deploys_running_pods(world: World) -> None:
    fix_my_application(world)
    pushed = build_and_push(world, "my-application", "v1.0.1-prod")
    assert world.registry.verify(pushed.image, ["config/production.json"]).verified
    result = world.cluster.apply(PROD, "my-application", pushed.image, 2, "RollingUpdate", 1, 0)
    assert result.replicas == "2/2"
    assert result.revision == 2
    view = world.cluster.logs(PROD, None, "app=my-application", 100)
    assert view.health == "healthy"
    assert len(view.pods) == 2
    assert view.pods[0].lines[-1] == "Server started on port 3000"
    assert "Configuration loaded from /app/config/production.json" in view.pods[0].lines


def test_scale_changes_the_pod_count(world: World) -> None:
    result = world.cluster.scale(PROD, "microservice-two", 5)
    assert (result.previous_replicas, len(result.pods), result.ready) == (2, 5, 5)
    assert world.cluster.pods(PROD, "app=microservice-two", None).total == 5
    world.cluster.scale(PROD, "microservice-two", 1)
    assert world.cluster.service(PROD, "microservice-two").ready_endpoints == 1


def test_canary_weight_then_promote(world: World) -> None:
    world.cluster.scale(PROD, "microservice-one", 4)
    change_service(world, "microservice-one", "canary")
    pushed = build_and_push(world, "microservice-one", "v1.2.0")
    result = world.cluster.canary(PROD, "microservice-one", pushed.image, 25)
    assert result.replicas == "1/1"
    svc = world.cluster.service(PROD, "microservice-one-service")
    assert sorted(svc.traffic_split.values()) == [25, 75]
    assert svc.traffic_split[result.replica_set] == 25
    assert world.cluster.pods(PROD, "app=microservice-one,track=canary", None).total == 1

    promoted = world.cluster.promote(PROD, "microservice-one")
    assert promoted.replicas == "4/4"
    assert promoted.image == pushed.image
    pods = world.cluster.pods(PROD, "app=microservice-one", None)
    assert {p.image for p in pods.pods} == {pushed.image}
    assert pods.total == 4
    assert world.cluster.deployment(PROD, "microservice-one").canary is None


def test_rollback_aborts_an_active_canary(world: World) -> None:
    change_service(world, "microservice-one", "canary")
    pushed = build_and_push(world, "microservice-one", "v1.2.0")
    world.cluster.canary(PROD, "microservice-one", pushed.image, 10)
    result = world.cluster.rollback(PROD, "microservice-one", None, None)
    assert result.action == "canary-aborted"
    assert result.image == "myorg/microservice-one:v1.1.0"
    svc = world.cluster.service(PROD, "microservice-one-service")
    assert list(svc.traffic_split.values()) == [100]
    assert {p.image for p in world.cluster.pods(PROD, "app=microservice-one", None).pods} == {
        "myorg/microservice-one:v1.1.0"
    }


def test_blue_green_deploys_to_the_idle_colour_and_switches(world: World) -> None:
    change_service(world, "microservice-two", "green")
    pushed = build_and_push(world, "microservice-two", "v1.4.0")
    world.cluster.apply(PROD, "microservice-two", pushed.image, None, "BlueGreen", 1, 0)
    svc = world.cluster.service(PROD, "microservice-two-service")
    assert svc.active_color == "blue"
    assert {e.color for e in svc.endpoints} == {"blue"}
    assert world.cluster.pods(PROD, "app=microservice-two,color=green", None).ready == 2

    switched = world.cluster.switch_traffic(PROD, "microservice-two", None)
    assert (switched.previous_color, switched.active_color) == ("blue", "green")
    svc = world.cluster.service(PROD, "microservice-two-service")
    assert svc.active_color == "green"
    assert {e.color for e in svc.endpoints} == {"green"}
    assert world.cluster.deployment(PROD, "microservice-two").image == pushed.image


def test_switch_to_a_crash_looping_colour_fails_and_keeps_the_current_one(world: World) -> None:
    pushed = build_and_push(world, "my-application", "v1.0.0-prod")
    with pytest.raises(SandboxError, match="Cannot find module"):
        world.cluster.apply(PROD, "my-application", pushed.image, None, "BlueGreen", 1, 0)
    with pytest.raises(SandboxError, match="traffic stays on blue"):
        world.cluster.switch_traffic(PROD, "my-application", "green")
    svc = world.cluster.service(PROD, "my-application-service")
    assert svc.active_color == "blue"
    assert svc.ready_endpoints == 2


def test_rollback_to_a_backup_ends_an_active_canary(world: World) -> None:
    backup = world.cluster.backup(PROD, "microservice-one")
    change_service(world, "microservice-one", "canary")
    world.cluster.canary(
        PROD, "microservice-one", build_and_push(world, "microservice-one", "v1.2.0").image, 10
    )
    world.cluster.rollback(PROD, "microservice-one", None, backup.backup_id)
    assert world.cluster.deployment(PROD, "microservice-one").canary is None
    assert world.cluster.service(PROD, "microservice-one").traffic_split == {backup.replica_set: 100}
    assert {p.image for p in world.cluster.pods(PROD, "app=microservice-one", None).pods} == {backup.image}


def test_rolling_back_to_the_stable_revision_aborts_a_canary_and_otherwise_changes_nothing(
    world: World,
) -> None:
    stable = world.cluster.deployment(PROD, "microservice-one")
    unchanged = world.cluster.rollback(PROD, "microservice-one", stable.revision, None)
    assert (unchanged.revision, unchanged.image) == (stable.revision, stable.image)
    change_service(world, "microservice-one", "canary")
    world.cluster.canary(
        PROD, "microservice-one", build_and_push(world, "microservice-one", "v1.2.0").image, 10
    )
    aborted = world.cluster.rollback(PROD, "microservice-one", stable.revision, None)
    assert aborted.action == "canary-aborted" and aborted.image == stable.image


def test_blue_green_rollback_keeps_the_live_colour_and_removes_the_failed_one(world: World) -> None:
    backup = world.cluster.backup(PROD, "my-application")
    pushed = build_and_push(world, "my-application", "v1.0.0-prod")  # crash-loops
    with pytest.raises(SandboxError, match="Traffic stays on blue"):
        world.cluster.apply(PROD, "my-application", pushed.image, None, "BlueGreen", 1, 0)
    restored = world.cluster.rollback(PROD, "my-application", None, backup.backup_id)
    assert (restored.active_color, restored.image) == ("blue", backup.image)
    svc = world.cluster.service(PROD, "my-application")
    assert svc.active_color == "blue" and svc.selector == {"app": "my-application", "color": "blue"}
    assert svc.healthy
    pods = world.cluster.pods(PROD, "app=my-application", None).pods
    assert {(p.image, p.labels["color"]) for p in pods} == {(backup.image, "blue")}


def test_a_switch_to_a_colour_that_does_not_answer_fails_after_switching(world: World) -> None:
    server = world.repos.tree("microservice-two", world.repos.resolve("microservice-two", "main"))[
        "server.js"
    ]
    world.commit_file("microservice-two", "server.js", server.decode().replace("|| 8081", "|| 8090"), "8090")
    pushed = build_and_push(world, "microservice-two", "v1.4.0")
    deployed = world.cluster.apply(PROD, "microservice-two", pushed.image, None, "BlueGreen", 1, 0)
    assert deployed.active_color == "blue" and deployed.replicas == "2/2"
    with pytest.raises(
        SandboxError, match="listen on port 8090 while microservice-two-service sends traffic to port 8081"
    ):
        world.cluster.switch_traffic(PROD, "microservice-two", None)
    svc = world.cluster.service(PROD, "microservice-two")
    assert svc.active_color == "green" and not svc.healthy
    assert svc.endpoints and not any(e.answering for e in svc.endpoints)
    back = world.cluster.switch_traffic(PROD, "microservice-two", "blue")
    assert (back.previous_color, back.active_color) == ("green", "blue")
    assert world.cluster.service(PROD, "microservice-two").healthy


def test_a_canary_that_does_not_answer_fails_and_is_left_for_rollback_to_abort(world: World) -> None:
    server = world.repos.tree("microservice-one", world.repos.resolve("microservice-one", "main"))[
        "server.js"
    ]
    world.commit_file("microservice-one", "server.js", server.decode().replace("|| 8080", "|| 8090"), "8090")
    with pytest.raises(SandboxError, match="receives 10% of traffic, but its pods listen on port 8090"):
        world.cluster.canary(
            PROD, "microservice-one", build_and_push(world, "microservice-one", "v1.2.0").image, 10
        )
    assert world.cluster.deployment(PROD, "microservice-one").canary is not None
    assert world.cluster.rollback(PROD, "microservice-one", None, None).action == "canary-aborted"
    assert world.cluster.service(PROD, "microservice-one").healthy


def test_backup_then_restore(world: World) -> None:
    backup = world.cluster.backup(PROD, "my-application")
    fix_my_application(world)
    pushed = build_and_push(world, "my-application", "v1.0.1-prod")
    world.cluster.apply(PROD, "my-application", pushed.image, 3, "RollingUpdate", 1, 0)
    restored = world.cluster.rollback(PROD, "my-application", None, backup.backup_id)
    assert restored.image == backup.image == "myorg/my-application:v0.9.5"
    assert restored.replicas == "2/2"
    assert restored.backup_id == backup.backup_id


def test_delete_deployment_removes_its_pods(world: World) -> None:
    deleted = world.cluster.delete("staging", "payments-api")
    assert deleted.pods_deleted
    assert deleted.service_kept == "payments-api-service"
    assert world.cluster.pods("staging", "app=payments-api", None).total == 0
    with pytest.raises(SandboxError, match="not found"):
        world.cluster.deployment("staging", "payments-api")
    assert world.cluster.service("staging", "payments-api-service").ready_endpoints == 0


def test_runtime_reports_a_missing_package() -> None:
    context = {
        "package.json": b'{"name": "x", "version": "1.0.0", "scripts": {"start": "node index.js"}}',
        "index.js": b"const express = require('express');\nexpress().listen(3000);\n",
        "Dockerfile": b'FROM node:20-alpine\nWORKDIR /app\nCOPY . .\nCMD ["npm", "start"]\n',
    }
    docker = DockerBuild(context, {})
    docker.run("Dockerfile", context["Dockerfile"].decode())
    outcome = start(docker.fs, docker.config)
    assert not outcome.healthy
    assert "Error: Cannot find module 'express'" in outcome.logs
    assert start(docker.fs, ImageConfig(base_image="", workdir="/", cmd=[], entrypoint=[], env={},
                                        exposed_ports=[])).exit_code == 127  # fmt: skip


def test_the_cluster_sets_app_env_to_the_namespace() -> None:
    context = {
        "package.json": b'{"name": "x", "version": "1.0.0", "scripts": {"start": "node index.js"}}',
        "index.js": b"const s = require(`./config/${process.env.APP_ENV}.json`);\n"
        b"require('http').createServer().listen(s.port);\n",
        "config/staging.json": b'{"port": 4000}',
        "Dockerfile": b'FROM node:20-alpine\nWORKDIR /app\nCOPY . .\nCMD ["npm", "start"]\n',
    }
    docker = DockerBuild(context, {})
    docker.run("Dockerfile", context["Dockerfile"].decode())
    staging = start(docker.fs, docker.config, {"APP_ENV": "staging"})
    assert staging.healthy and staging.port == 4000
    production = start(docker.fs, docker.config, {"APP_ENV": "production"})
    assert not production.healthy
    assert "Error: Cannot find module './config/production.json'" in production.logs
    assert "Error: Cannot find module './config/undefined.json'" in start(docker.fs, docker.config).logs


# --- seeding ------------------------------------------------------------------------------------------


def _seed(path: str) -> None:
    World(Path(path)).ensure_seeded()


def test_concurrent_seeding_leaves_one_consistent_world(tmp_path: Path, seeded_template: Path) -> None:
    state = tmp_path / "state"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_seed, args=(str(state),)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]

    fresh, template = World(state), World(seeded_template)
    assert fresh.is_seeded()
    releases = sum(1 for app in SAMPLE_APPS.values() for c in app.commits if c.release)
    with fresh.db.tx() as conn:
        assert conn.execute("SELECT COUNT(*) FROM builds").fetchone()[0] == releases
        assert conn.execute("SELECT COUNT(*) FROM deployments").fetchone()[0] == 12
    for app in SAMPLE_APPS:
        # Fixed commit dates make the sample history identical in every world.
        assert fresh.repos.resolve(app, "main") == template.repos.resolve(app, "main")
    assert (
        fresh.registry.pull("myorg/my-application:v0.9.5").digest
        == template.registry.pull("myorg/my-application:v0.9.5").digest
    )

"""Planning over the real sandbox servers: the seed requests become the plans users expect."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opsmith.config import Config, parse_config
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import IntentError, PlanError
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.risk import Risk
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from opsmith.tools.mcp import ServerPool
from tests.conftest import sandbox_servers

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("UTC"))
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 30, tzinfo=ZoneInfo("UTC"))

APPS = """
applications:
  my-application: {}
  microservice-one: {strategy: canary}
  microservice-two: {strategy: canary}
  payments-api: {}
planning:
  default_application: my-application
  image_repository: "myorg/{app}"
"""


def config_for(tmp_path: Path, state_dir: Path, names: tuple[str, ...] | None = None) -> Config:
    servers = sandbox_servers(state_dir, names) if names else sandbox_servers(state_dir)
    return parse_config(f"state_dir: {tmp_path / 'o'}\n{APPS}\nmcpServers:\n{servers}", source="test")


@pytest.fixture
async def catalog(tmp_path: Path, state_dir: Path) -> AsyncIterator[Catalog]:
    async with ServerPool(config_for(tmp_path, state_dir), dict(os.environ)) as pool:
        await pool.start()
        yield Catalog(pool.catalog.tools())


@pytest.fixture
def planner(tmp_path: Path, state_dir: Path) -> Planner:
    return Planner(config_for(tmp_path, state_dir), load_playbooks())


def plan(planner: Planner, catalog: Catalog, request: str, now: datetime = TUESDAY, **kw: object) -> Plan:
    return planner.plan(request, Situation(catalog=catalog, now=now, **kw))  # type: ignore[arg-type]


async def test_seed_001_production_deployment(planner: Planner, catalog: Catalog) -> None:
    result = plan(planner, catalog, "Deploy the code to Kubernetes production")
    assert result.intent.subjects == ["my-application"]
    assert result.playbook == "production_deployment"
    tools = [f"{s.server}/{s.tool}" for s in result.steps]
    assert tools == [
        "jenkins/trigger_build",
        "jenkins/run_tests",
        "sonarqube/analyze_project",
        "sonarqube/get_vulnerabilities",
        "registry/push_image",
        "registry/verify_image",
        "kubernetes/backup_deployment",
        "kubernetes/apply_deployment",
        "kubernetes/get_pods",
        "kubernetes/get_pod_logs",
        "kubernetes/get_service",
    ]
    assert ["quality_scan", "security_scan"] in result.parallel_groups
    assert ["verify_pods", "check_logs"] in result.parallel_groups
    assert result.risk is Risk.HIGH
    assert result.step("deploy").risk is Risk.HIGH and result.step("verify_pods").risk is Risk.LOW
    assert result.requires_approval and result.status is PlanStatus.PENDING_APPROVAL
    names = [r.name for r in result.compliance]
    assert names == [
        "quality_gate_passed",
        "security_scan_passed",
        "approval_required",
        "backup_verified",
        "rollback_plan_ready",
        "monitoring_enabled",
    ]
    quality = next(r for r in result.compliance if r.name == "quality_gate_passed")
    assert quality.evidence is not None and quality.evidence.step == "quality_scan"
    assert quality.evidence.conditions[0].path == "quality_gate.status"
    assert "deploy" in quality.guards
    deploy = result.step("deploy")
    assert deploy.args["deployment_name"] == "my-application" and deploy.args["namespace"] == "production"
    assert deploy.args["image"] == "${steps.push_image.image}"
    assert deploy.rollback is not None and deploy.rollback.tool == "rollback_deployment"
    assert deploy.rollback.args["to_backup"] == "${steps.backup.backup_id}"
    total_max = sum(s.estimated_duration[1] for s in result.steps)
    assert result.estimated_duration.maximum_seconds < total_max, "critical path, not the sum"
    assert result.hash.startswith("sha256:")


async def test_stopping_a_server_changes_the_plan(tmp_path: Path, state_dir: Path) -> None:
    config = config_for(tmp_path, state_dir, ("jenkins", "registry", "kubernetes"))
    async with ServerPool(config, dict(os.environ)) as pool:
        await pool.start()
        without_sonar = Catalog(pool.catalog.tools())
    planner = Planner(config, load_playbooks())
    with pytest.raises(PlanError, match=r"quality_scan \(step quality_scan\): needs a code-quality server"):
        plan(planner, without_sonar, "Deploy the code to production")
    staging = plan(planner, without_sonar, "Deploy my-application to staging")
    assert "quality_scan" not in [s.id for s in staging.steps]
    assert any("quality_scan" in w for w in staging.warnings)
    unmet = [r.name for r in staging.compliance if r.unmet]
    assert unmet == ["quality_gate_passed"]
    assert staging.status is PlanStatus.INCOMPLETE


async def test_canary_for_one_service(planner: Planner, catalog: Catalog) -> None:
    result = plan(planner, catalog, "Deploy microservice-one to production")
    assert result.playbook == "production_canary"
    ids = [s.id for s in result.steps]
    assert ids.index("staging_deploy") < ids.index("canary") < ids.index("promote")
    assert result.step("staging_deploy").args["namespace"] == "staging"
    assert result.step("staging_validate").requires_validation
    assert result.step("canary").args["weight"] == 10
    assert any("notify" in w for w in result.warnings), "no notification server: optional step dropped"


async def test_two_services_deploy_one_after_another(planner: Planner, catalog: Catalog) -> None:
    result = plan(planner, catalog, "Deploy microservice-one and microservice-two to production")
    assert result.playbook == "multi_service"
    first, second = "microservice_one", "microservice_two"
    assert [f"build_{first}", f"build_{second}"] in result.parallel_groups
    assert f"validate_{first}" in result.step(f"deploy_{second}").depends_on


async def test_urgent_hotfix_is_a_fast_track(planner: Planner, catalog: Catalog) -> None:
    normal = plan(planner, catalog, "Deploy the code to production")
    urgent = plan(planner, catalog, "URGENT: Deploy hotfix to production NOW")
    assert urgent.intent.urgency == "urgent" and urgent.playbook == "urgent_hotfix"
    assert urgent.skipped, "what the fast track leaves out is said"
    assert urgent.estimated_duration.maximum_seconds < normal.estimated_duration.maximum_seconds
    assert urgent.step("deploy_idle").args["strategy"] == "BlueGreen"
    assert urgent.step("switch").rollback is not None
    assert urgent.requires_approval


async def test_rollback_and_scale_are_their_own_plans(planner: Planner, catalog: Catalog) -> None:
    rollback = plan(planner, catalog, "Rollback production deployment")
    assert rollback.playbook == "rollback"
    assert "apply_deployment" not in [s.tool for s in rollback.steps]
    assert "rollback_deployment" in [s.tool for s in rollback.steps]
    scale = plan(planner, catalog, "Scale staging to 5 replicas")
    assert scale.playbook == "scale" and scale.step("scale").args["replicas"] == 5
    assert scale.intent.environment == "staging"


async def test_delete_is_critical_with_a_backup_first_and_four_eyes(
    planner: Planner, catalog: Catalog
) -> None:
    result = plan(planner, catalog, "Delete microservice-two from staging")
    assert result.risk is Risk.CRITICAL and result.approvals_needed == 2
    assert result.step("delete").depends_on == ["backup"]


async def test_friday_evening_and_recent_failures(planner: Planner, catalog: Catalog) -> None:
    calm = plan(planner, catalog, "Deploy the code to production")
    friday = plan(planner, catalog, "Deploy the code to production", now=FRIDAY_EVENING)
    assert [r.rule for r in friday.context_rules] == ["risky_time"]
    assert "extended_monitoring" in [s.id for s in friday.steps]
    assert len(friday.steps) == len(calm.steps) + 1
    failing = plan(
        planner,
        catalog,
        "Deploy the code to production",
        recent_failures={("my-application", "production"): 2},
    )
    assert [r.rule for r in failing.context_rules] == ["recent_failures"]
    assert failing.approvals_needed == calm.approvals_needed + 1
    ids = [s.id for s in failing.steps]
    assert ids.index("staging_validate") < ids.index("deploy")
    assert "staging_validate" in failing.step("deploy").depends_on


async def test_missing_arguments_make_an_incomplete_plan_until_set(
    planner: Planner, catalog: Catalog
) -> None:
    incomplete = plan(planner, catalog, "Scale my-application in staging")
    assert incomplete.status is PlanStatus.INCOMPLETE
    assert incomplete.missing == {"scale": ["replicas"]}
    filled = planner.plan(
        "Scale my-application in staging", Situation(catalog=catalog, now=TUESDAY), {"replicas": 3}
    )
    assert filled.status is PlanStatus.PENDING_APPROVAL or filled.status is PlanStatus.APPROVED
    assert filled.step("scale").args["replicas"] == 3
    assert filled.hash != incomplete.hash


async def test_bad_requests_are_refused(planner: Planner, catalog: Catalog) -> None:
    with pytest.raises(IntentError):
        plan(planner, catalog, "Deploy the code")
    with pytest.raises(PlanError, match=r"unknown application 'paymnts-api'.*payments-api"):
        plan(planner, catalog, "Deploy paymnts-api to staging")
    with pytest.raises(IntentError):
        plan(planner, catalog, "do something with the app")


async def test_every_part_of_a_compound_request_is_planned_or_it_is_refused(
    planner: Planner, catalog: Catalog
) -> None:
    with pytest.raises(IntentError, match=r'no known action in "wipe the staging cache"') as caught:
        plan(planner, catalog, "deploy microservice-two to staging and then wipe the staging cache")
    assert caught.value.hint is not None and '"deploy microservice-two to staging"' in caught.value.hint
    with pytest.raises(PlanError, match=r'"restart nginx".*no playbook'):
        plan(planner, catalog, "Deploy microservice-two to staging and restart nginx")
    with pytest.raises(PlanError, match=r'"check the status of payments-api".*deploy as well'):
        plan(planner, catalog, "Deploy microservice-two to staging and check the status of payments-api")
    whole = plan(
        planner, catalog, "build, test and deploy microservice-two to staging, then verify it is healthy"
    )
    alone = plan(planner, catalog, "Deploy microservice-two to staging")
    assert whole.playbook == alone.playbook == "environment_deployment"
    assert [(s.server, s.tool) for s in whole.steps] == [(s.server, s.tool) for s in alone.steps]
    assert whole.intent.actions == ["deploy", "check"]
    both = plan(planner, catalog, "Deploy microservice-one and microservice-two to prod")
    assert both.playbook == "multi_service" and both.intent.actions == ["deploy"]

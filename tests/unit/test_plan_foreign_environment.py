"""A plan made from a request is refused when one of its steps would act in a more guarded
environment than the request's: a `--set namespace=production` on a staging request, or `--set
targets=` naming production hosts. The run would deny the step; the plan says so first, naming the
step and the value that was set. A less guarded environment (a production plan's staging check)
stays allowed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.config import parse_config
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import PlanError
from opsmith.domain.host_tools import host_tools
from opsmith.domain.inventory_ansible import parse_yaml
from opsmith.domain.plan import Plan
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from tests.fixtures.catalogs import tool_specs

CONFIG = parse_config(
    "applications:\n  my-application: {}\nplanning:\n  default_application: my-application\n",
    source="test",
)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday morning: no context rule fires
PLAYBOOKS = load_playbooks()
KUBERNETES = Catalog(tool_specs("mcp-server-kubernetes", "k8s"))
INVENTORY = parse_yaml(
    """
all:
  children:
    stage_web:
      vars: {environment: staging, opsmith_credential: fleet}
      hosts: {st01: {ansible_host: 10.0.0.1}, st02: {ansible_host: 10.0.0.2}}
    prod_web:
      vars: {environment: production, opsmith_credential: fleet}
      hosts: {pr01: {ansible_host: 10.0.1.1}}
""",
    "test",
)
SCALE = "Scale my-application in staging to 3 replicas"
STOP = "Stop 'dataprocessor' service on all servers in 'Stage Web' group"


def k8s_plan(request: str, overrides: dict[str, Any]) -> Plan:
    return Planner(CONFIG, PLAYBOOKS).plan(request, Situation(catalog=KUBERNETES, now=NOW), overrides)


def fleet_plan(request: str, overrides: dict[str, Any]) -> Plan:
    config = parse_config("planning: {default_application: null}\n", source="test")
    planner = Planner(config, PLAYBOOKS, inventory=INVENTORY)
    return planner.plan(request, Situation(catalog=Catalog(host_tools()), now=NOW), overrides)


def test_a_staging_request_with_a_production_namespace_set_is_refused_naming_the_override() -> None:
    with pytest.raises(PlanError) as refused:
        k8s_plan(SCALE, {"namespace": "production"})
    assert "acts in production" in refused.value.message
    assert "--set namespace" in refused.value.message
    assert "staging" in refused.value.message


@given(st.sampled_from(["production", "prod", "PRD", "live"]))
def test_every_spelling_of_production_is_refused(word: str) -> None:
    with pytest.raises(PlanError, match="acts in production"):
        k8s_plan(SCALE, {"namespace": word})


def test_the_same_request_plans_with_its_own_or_a_less_guarded_namespace() -> None:
    assert k8s_plan(SCALE, {}).intent.environment == "staging"
    plan = k8s_plan(SCALE, {"namespace": "development"})
    assert any(s.args.get("namespace") == "development" for s in plan.steps)


def test_a_production_request_keeps_its_staging_validation() -> None:
    plan = k8s_plan("Scale my-application in production to 3 replicas", {"namespace": "staging"})
    assert plan.intent.environment == "production"


def test_targets_set_to_production_hosts_on_a_staging_fleet_request_is_refused() -> None:
    assert fleet_plan(STOP, {}).intent.environment == "staging"
    with pytest.raises(PlanError) as refused:
        fleet_plan(STOP, {"targets": "prod_web"})
    assert "acts in production" in refused.value.message
    assert "--set targets" in refused.value.message
    with pytest.raises(PlanError, match="acts in production"):
        fleet_plan(STOP, {"targets": ["st01", "pr01"]})  # one production host is enough

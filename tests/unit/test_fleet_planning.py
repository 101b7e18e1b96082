"""Fleet requests planned over the inventory and the tools of the server `hosts`, as plain values:
the seed's three requests, the group found loosely or refused with the nearest names, the
environment taken from the hosts' variable, and requests about hosts kept apart from the others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsmith.config import parse_config
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import IntentError, PlanError, UnknownGroupError
from opsmith.domain.host_tools import host_tools
from opsmith.domain.inventory import Inventory
from opsmith.domain.inventory_ansible import parse_yaml
from opsmith.domain.plan import Plan
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks

INVENTORY = """
all:
  children:
    data_processing:
      vars: {environment: production, opsmith_credential: fleet}
      hosts:
        dp-linux: {ansible_host: 10.0.0.1}
        dp-windows: {ansible_host: 10.0.0.2, ansible_connection: winrm}
    production_web:
      vars: {environment: prod, opsmith_credential: fleet}
      hosts: {web01: {ansible_host: 10.0.1.1}, web02: {ansible_host: 10.0.1.2}}
    cis_servers:
      vars: {environment: production, opsmith_credential: fleet, ansible_connection: winrm}
      hosts: {"cis[01:25]": {}}  # the request says 25 Windows systems
    lab:
      vars: {opsmith_credential: fleet}
      hosts: {lab01: {ansible_host: 10.0.3.1}}
    mixed:
      hosts:
        m1: {ansible_host: 10.0.4.1, environment: staging}
        m2: {ansible_host: 10.0.4.2, environment: production}
"""
STOP = "Stop 'dataprocessor' service on all servers in 'Data Processing' group"
NGINX = "Update nginx to latest version on all web servers in 'Production Web' group and restart service"
CIS = (
    "Connect to 25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running,"
    " stop the service, copy new file, restart service, verify startup, and log results"
)
NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)  # a Tuesday morning


def planner(inventory: Inventory | None = None) -> Planner:
    config = parse_config("planning: {default_application: null}\n", source="test")
    return Planner(config, load_playbooks(), inventory=inventory or parse_yaml(INVENTORY, "test"))


def plan(request: str, inventory: Inventory | None = None) -> Plan:
    return planner(inventory).plan(request, Situation(catalog=Catalog(host_tools()), now=NOW), {})


def calls(made: Plan) -> list[tuple[str, str]]:
    return [(s.id, f"{s.server}/{s.tool}") for s in made.steps]


def test_stopping_a_service_reads_it_everywhere_stops_it_where_it_runs_and_checks_it_stopped() -> None:
    made = plan(STOP)
    assert calls(made) == [
        ("status", "hosts/service_status"),
        ("stop", "hosts/service_stop"),
        ("verify", "hosts/service_status"),
    ]
    assert made.intent.targets.group == "data_processing"  # 'Data Processing', as the inventory names it
    assert (made.intent.environment, made.intent.environment_source) == ("production", "inventory")
    steps = {s.id: s for s in made.steps}
    # The group's hosts as they are now, written into the plan (and its hash): what runs is what was approved.
    assert steps["status"].args == {"targets": ["dp-linux", "dp-windows"], "service": "dataprocessor"}
    assert all(s.targets == ["dp-linux", "dp-windows"] for s in made.steps)
    assert steps["stop"].args["targets"] == "${steps.status.running_hosts}"
    assert steps["stop"].rollback is not None and steps["stop"].rollback.tool == "service_start"
    assert steps["stop"].rollback.args["targets"] == "${steps.stop.changed_hosts}"
    assert steps["verify"].args["expect"] == {"state": "stopped"}
    assert made.requires_approval and made.status.value == "pending_approval"


def test_an_update_backs_up_the_configuration_and_restarts_the_service() -> None:
    made = plan(NGINX)
    assert calls(made) == [
        ("status", "hosts/service_status"),
        ("update", "hosts/package_update"),
        ("restart", "hosts/service_restart"),
        ("verify", "hosts/wait_healthy"),
    ]
    update = {s.id: s for s in made.steps}["update"]
    assert update.args == {"targets": ["web01", "web02"], "package": "nginx", "backup": "/etc/nginx"}
    assert made.intent.environment == "production"  # the group says "prod"
    # Production's policy wants every change undoable: the undo puts each host's previous version back.
    assert [r.name for r in made.compliance if r.unmet] == [] and made.status.value == "pending_approval"
    assert update.rollback is not None and update.rollback.tool == "package_install"
    assert update.rollback.args == {"version": "${steps.update.previous_versions}", "package": "nginx"}


def test_the_cis_request_checks_stops_where_running_copies_starts_and_verifies_its_startup() -> None:
    made = plan(CIS)
    assert calls(made) == [
        ("process", "hosts/process_check"),
        ("status", "hosts/service_status"),
        ("stop", "hosts/service_stop"),
        ("copy", "hosts/install_file"),
        ("start", "hosts/service_start"),
        ("verify", "hosts/wait_healthy"),
    ]
    steps = {s.id: s for s in made.steps}
    assert steps["process"].args["process"] == "stationcontroller.exe"
    assert steps["stop"].args["service"] == "stationcontroller"  # the program's, shown for review
    assert steps["verify"].args["timeout"] == 60
    # Which file goes where is not in the request: the plan asks for it instead of guessing.
    assert sorted(steps["copy"].missing_args) == ["source", "target"]
    assert made.status.value == "incomplete"


def test_an_unknown_group_is_refused_with_the_nearest_names() -> None:
    with pytest.raises(UnknownGroupError) as caught:
        plan("restart nginx on every host in 'Production Webs'")
    assert "nearest: production_web" in caught.value.message


def test_without_an_inventory_a_request_about_hosts_says_how_to_declare_one() -> None:
    with pytest.raises(PlanError) as caught:
        plan(STOP, Inventory())
    assert "no inventory of hosts" in caught.value.message
    assert caught.value.hint and "inventory:" in caught.value.hint


def test_hosts_without_an_environment_variable_need_the_request_to_name_one() -> None:
    with pytest.raises(IntentError) as caught:
        plan("stop 'nginx' service in group lab")
    assert "names no environment" in caught.value.message
    made = plan("stop 'nginx' service in group lab in staging")
    assert (made.intent.environment, made.intent.environment_source) == ("staging", "request")


def test_hosts_in_several_environments_are_refused_unless_the_request_names_one() -> None:
    with pytest.raises(IntentError) as caught:
        plan("stop 'nginx' service in group mixed")
    assert "production, staging" in caught.value.message
    # Named, the most guarded of them is what the plan is judged by: a staging plan over a
    # production host would be approved by staging's rules, so it is refused when planned.
    assert plan("stop 'nginx' service in group mixed in production").intent.environment == "production"
    with pytest.raises(PlanError, match="acts in production"):
        plan("stop 'nginx' service in group mixed in staging")


def test_a_request_about_hosts_never_takes_an_application_playbook_and_the_reverse() -> None:
    fleet = plan("restart 'nginx' service in group production_web")
    assert fleet.playbook == "fleet_service_restart"
    # Without hosts, a restart has no playbook: the fleet's are never taken for it.
    with pytest.raises(PlanError) as caught:
        plan("restart 'nginx' service in production")
    assert "no playbook for restart" in caught.value.message


def test_a_host_added_to_the_group_after_planning_changes_the_plan_hash() -> None:
    before = plan(STOP)
    grown = parse_yaml(
        INVENTORY.replace(
            "dp-linux: {ansible_host: 10.0.0.1}",
            "dp-linux: {ansible_host: 10.0.0.1}\n        dp-new: {ansible_host: 10.0.0.9}",
        ),
        "test",
    )
    after = plan(STOP, grown)
    assert "dp-new" in after.steps[0].args["targets"] and "dp-new" not in before.steps[0].args["targets"]
    assert plan(STOP).hash == before.hash  # the same inventory plans the same content
    assert after.hash != before.hash  # an approval of the first plan is no approval of the second

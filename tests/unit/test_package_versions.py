"""A package version per host, as plain values: the mapping checked key by key and value by value
(bad host names and versions refused with what was wrong), the schema of hosts/package_install that
states it, the scripts that install a pinned version (a downgrade where it is older), and the update
playbook that plans complete in production because its undo puts each host's previous version back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.config import parse_config
from opsmith.domain import inventory
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import ScriptInputError
from opsmith.domain.host_tools import HOST_NAME_PATTERN, PER_HOST_VERSION, host_tools, host_versions
from opsmith.domain.inventory_ansible import parse_yaml
from opsmith.domain.plan import Plan
from opsmith.domain.script_catalog import render
from opsmith.domain.scripts import VERSION_PATTERN
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks

HOSTS = st.from_regex(HOST_NAME_PATTERN, fullmatch=True)
VERSIONS = st.from_regex(VERSION_PATTERN, fullmatch=True)
TOOLS = {tool.name: tool for tool in host_tools()}
NGINX = "Update nginx to latest version on all web servers in 'Production Web' group and restart service"
INVENTORY = """
all:
  children:
    production_web:
      vars: {opsmith_credential: fleet}
      hosts:
        web01: {ansible_host: 10.0.1.1, environment: production}
        web02: {ansible_host: 10.0.1.2, environment: production}
        web03: {ansible_host: 10.0.1.3, environment: production}
"""


@settings(max_examples=50)  # long generated names: 100 examples take seconds
@given(st.dictionaries(HOSTS, VERSIONS, max_size=8))
def test_a_version_per_host_is_kept_as_given(versions: dict[str, str]) -> None:
    assert host_versions(versions) == versions
    assert list(host_versions(versions)) == list(versions)  # in the caller's order


@given(host=st.text(max_size=300), version=VERSIONS)
def test_a_key_that_is_not_a_host_name_is_refused_by_name(host: str, version: str) -> None:
    if re.fullmatch(HOST_NAME_PATTERN, host):
        assert host_versions({host: version}) == {host: version}
        return
    with pytest.raises(ScriptInputError) as refused:
        host_versions({"web01": "1.0", host: version})
    assert refused.value.message.startswith("version: ") and "is not a host name" in refused.value.message
    assert refused.value.hint and "inventory's host names" in refused.value.hint
    assert "\n" not in refused.value.message  # a newline in the name is shown escaped, not printed


@given(version=st.text(max_size=200))
def test_a_value_that_is_not_a_version_is_refused_naming_its_host(version: str) -> None:
    if re.fullmatch(VERSION_PATTERN, version):
        assert host_versions({"web01": version}) == {"web01": version}
        return
    with pytest.raises(ScriptInputError) as refused:
        host_versions({"web01": version})
    assert refused.value.message.startswith("version['web01'] ")
    assert "is not a valid package version" in refused.value.message


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (["web01", "1.0"], "not list"),
        ("1.0", "not str"),
        ({"web01": 1}, "must be a string, not int"),
        ({"web01": None}, "must be a string, not NoneType"),
        ({"web 01": "1.0"}, "'web 01' is not a host name"),
        ({"web01": "1.0; rm -rf /"}, "it contains ';' at position 3"),
        ({"web01": "1.0\n"}, "is not a valid package version"),
        ({3: "1.0"}, "3 is not a host name"),
    ],
)
def test_what_is_refused_and_why(value: object, said: str) -> None:
    with pytest.raises(ScriptInputError) as refused:
        host_versions(value)
    assert said in refused.value.message


def test_host_names_follow_the_inventorys_rule() -> None:
    assert f"^{inventory._HOST_NAME.pattern}$" == HOST_NAME_PATTERN


def test_package_install_takes_one_version_or_a_version_per_host_instead_of_targets() -> None:
    schema = TOOLS["package_install"].input_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["package"]  # the hosts of a version per host, or targets
    for good in (
        {"package": "nginx", "version": {"web01": "1.22.1-9", "10.0.0.7": "1:1.24.0-1"}},
        {"package": "nginx", "version": {}},  # an undo with nothing to put back
        {"package": "nginx", "version": "1.24.0-1", "targets": "production_web"},
        {"package": "nginx", "version": {"web01": "1.22.1-9"}, "targets": ["web01"]},
    ):
        jsonschema.validate(good, schema)
    for bad in (
        {"package": "nginx", "version": {"web 01": "1.0"}},
        {"package": "nginx", "version": {"web01": "1.0;reboot"}},
        {"package": "nginx", "version": {"web01": 1}},
        {"package": "nginx", "version": ["1.0"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert "Linux only" in TOOLS["package_install"].description
    assert {"package_install"} == PER_HOST_VERSION
    # Every other tool still needs its targets.
    assert all("targets" in t.input_schema["required"] for t in TOOLS.values() if t.name != "package_install")
    assert "previous_versions" in TOOLS["package_update"].description


def test_a_pinned_version_is_a_value_of_the_script_and_each_manager_can_go_down_to_it() -> None:
    script = render("package_install", "linux", {"package": "nginx", "version": "1.22.1-9"})
    assignments = script.text.split("\n_js()", 1)[0]
    assert "version='1.22.1-9'" in assignments.splitlines()
    assert "--allow-downgrades" in script.text  # apt-get install nginx=1.22.1-9
    assert "--oldpackage" in script.text  # zypper
    assert '"$pm" -y downgrade "$want"' in script.text  # dnf and yum, when install stays put
    with pytest.raises(ScriptInputError) as refused:
        render("package_install", "linux", {"package": "nginx", "version": "1.0 && reboot"})
    assert "is not a valid package version" in refused.value.message


def plan(request: str) -> Plan:
    config = parse_config("planning: {default_application: null}\n", source="test")
    planner = Planner(config, load_playbooks(), inventory=parse_yaml(INVENTORY, "test"))
    situation = Situation(catalog=Catalog(host_tools()), now=datetime(2026, 12, 1, 10, tzinfo=UTC))
    return planner.plan(request, situation, {})


def test_the_update_plans_complete_in_production_with_an_undo_per_host() -> None:
    made = plan(NGINX)
    assert made.playbook == "fleet_package_update"
    assert (made.intent.environment, made.intent.environment_source) == ("production", "inventory")
    assert made.status.value == "pending_approval" and made.requires_approval
    assert [r.name for r in made.compliance if r.unmet] == []
    assert made.skipped == []
    steps = {s.id: s for s in made.steps}
    undo = steps["update"].rollback
    assert undo is not None and (undo.server, undo.tool) == ("hosts", "package_install")
    # Only the per-host versions the update recorded: no `targets` (its keys are the hosts) and no
    # "latest" taken from the request's words.
    assert undo.args == {"version": "${steps.update.previous_versions}", "package": "nginx"}
    assert undo.idempotent
    assert not [w for w in made.warnings if "undo" in w], made.warnings
    # Restarting changes nothing to undo; checking changes nothing at all.
    assert [s.id for s in made.steps if s.changes_target] == ["update"]

"""A direct call of a fleet tool is checked against the environment its hosts declare: the targets
(a group, host names, or the hosts of a version per host) are resolved through the inventory, and a
role limited to some environments may act only on hosts that declare one of them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.host_tools import host_tools
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.identity import Identity
from opsmith.services.tool_calls import CallRefused, CallRequest, EnvironmentRefused, PlannedFor, checked_call
from tests.fakes import FakeTools, FakeWorld, fake_app

CONFIG = """
mcpServers: {}
rbac:
  roles:
    stager: {actions: [plan, execute], environments: [staging, development], max_risk: CRITICAL}
    anywhere: {actions: [plan, execute], max_risk: CRITICAL}
  users: {sam: stager, ann: anywhere}
inventory:
  groups:
    web_prod: {vars: {environment: prod}, hosts: {web1: {address: 127.0.0.1}, web2: {address: 127.0.0.1}}}
    web_stage: {vars: {environment: staging}, hosts: {st1: {address: 127.0.0.1}}}
    bare: {hosts: {b1: {address: 127.0.0.1}}}
    mixed: {children: [web_stage], hosts: {web1: {}}}
"""

SPECS = [t for t in host_tools() if t.name in {"service_restart", "service_status", "package_install"}]


class FleetTools(FakeTools):
    """FakeTools whose `hosts` is always there, as bootstrap.WithHosts adds it while the inventory
    has hosts."""

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[FakeTools]:
        return super().open([*names, HOSTS_SERVER])


def world() -> FakeWorld:
    answers = {name: (lambda tool, args: {"total": 0}) for name in ("service_restart", "package_install")}
    tools = FleetTools(specs=list(SPECS), answers=answers, names=[HOSTS_SERVER])
    return fake_app(CONFIG, tools)


def call(w: FakeWorld, user: str, tool: str, arguments: dict[str, Any]) -> None:
    who = Identity(user=user, role={"sam": "stager", "ann": "anywhere"}[user], source="config")
    spec = next(t for t in SPECS if t.name == tool)
    request = CallRequest(HOSTS_SERVER, tool, arguments, confirmed=True)
    asyncio.run(checked_call(w.app, who, w.tools, request, spec))


@pytest.mark.parametrize(
    ("targets", "allowed"),
    [
        ("web_stage", True),
        (["st1"], True),
        ("Web Prod", False),  # the group's name says nothing; its hosts declare production
        (["st1", "web2"], False),  # one production host among them is enough
        ("mixed", False),
        ("bare", False),  # declares no environment: only a role that may act anywhere
    ],
)
def test_a_role_limited_to_staging_acts_only_on_hosts_that_declare_it(targets: object, allowed: bool) -> None:
    w = world()
    arguments = {"targets": targets, "service": "nginx"}
    if allowed:
        call(w, "sam", "service_restart", arguments)
        assert w.tools.calls[-1][1] == "service_restart"
        return
    with pytest.raises(CallRefused) as refused:
        call(w, "sam", "service_restart", arguments)
    assert not w.tools.calls
    assert "sam (stager)" in refused.value.message
    audit = w.audit.chain[-1]
    assert audit.action == "tool.refused" and audit.subject == "hosts/service_restart"


def test_the_refusal_names_the_hosts_and_their_environment() -> None:
    w = world()
    with pytest.raises(CallRefused) as refused:
        call(w, "sam", "service_restart", {"targets": ["st1", "web2"], "service": "nginx"})
    assert "production" in refused.value.message and "web2" in refused.value.message
    with pytest.raises(CallRefused) as refused:
        call(w, "sam", "service_restart", {"targets": "bare", "service": "nginx"})
    assert "b1 declare no environment" in refused.value.message


def test_the_hosts_of_a_version_per_host_are_checked_too() -> None:
    w = world()
    with pytest.raises(CallRefused):
        call(w, "sam", "package_install", {"package": "nginx", "version": {"web1": "1.24.0-1"}})
    call(w, "sam", "package_install", {"package": "nginx", "version": {"st1": "1.24.0-1"}})
    assert w.tools.calls[-1][1] == "package_install"


def test_a_role_that_may_act_anywhere_acts_on_every_host() -> None:
    w = world()
    for targets in ("web_prod", "bare", "mixed"):
        call(w, "ann", "service_restart", {"targets": targets, "service": "nginx"})
    assert len(w.tools.calls) == 3


HOSTS = {"web1": "production", "web2": "production", "st1": "staging", "b1": None}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(HOSTS)), min_size=1, max_size=4, unique=True))
def test_a_call_is_allowed_iff_every_host_declares_an_allowed_environment(names: list[str]) -> None:
    w = world()
    expected = all(HOSTS[n] in {"staging", "development"} for n in names)
    try:
        call(w, "sam", "service_restart", {"targets": names, "service": "nginx"})
        allowed = True
    except CallRefused:
        allowed = False
    assert allowed == expected


def test_a_run_acts_on_no_host_more_guarded_than_its_plan() -> None:
    """The tools a run gets refuse a fleet call on hosts that declare a more guarded environment
    than the plan's, before anything is sent; the same or a less guarded one goes through."""
    w = world()
    staging = PlannedFor(w.tools, w.app, "staging")
    with pytest.raises(EnvironmentRefused) as refused:
        asyncio.run(staging.call(HOSTS_SERVER, "service_restart", {"targets": "mixed", "service": "nginx"}))
    assert not w.tools.calls
    assert "web1 declare production" in refused.value.message and "made for staging" in refused.value.message
    asyncio.run(staging.call(HOSTS_SERVER, "service_restart", {"targets": "web_stage", "service": "nginx"}))
    asyncio.run(staging.call(HOSTS_SERVER, "service_restart", {"targets": "bare", "service": "nginx"}))
    production = PlannedFor(w.tools, w.app, "production")
    asyncio.run(production.call(HOSTS_SERVER, "service_restart", {"targets": "mixed", "service": "nginx"}))
    assert len(w.tools.calls) == 3


HAND_WRITTEN = """
title: Restart nginx
environment: staging
steps:
  - {id: restart, server: hosts, tool: service_restart, args: {targets: web_prod, service: nginx}}
"""


def test_a_hand_written_staging_plan_cannot_restart_production_hosts() -> None:
    from opsmith.domain.plan import PlanStatus
    from opsmith.engine.state import RunStatus
    from opsmith.services.planning import make_manual_plan
    from opsmith.services.running import start_run

    w = world()
    sam = Identity(user="sam", role="stager", source="config")
    plan = asyncio.run(make_manual_plan(w.app, sam, HAND_WRITTEN, source="plan.yaml"))
    assert plan.status is PlanStatus.APPROVED  # staging, no approval needed: the rule the run must hold
    _, state, _ = asyncio.run(start_run(w.app, sam, plan.id))
    assert state.status is not RunStatus.SUCCEEDED
    assert not w.tools.calls
    assert "web1, web2 declare production" in (state.step("restart").error or "")

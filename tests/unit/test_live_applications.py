"""Applications from the live systems: the cluster's own listing, asked at discovery through the
rules of a direct call, joins the configuration's names. Services over fakes; the tools are the
recorded catalog of mcp-server-kubernetes."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.errors import ToolCallError, UnknownNameError
from opsmith.domain.identity import Identity
from opsmith.services.planning import make_plan
from tests.fakes import FakeTools, FakeWorld, fake_app
from tests.fixtures.catalogs import tool_specs

pytestmark = pytest.mark.anyio

CONFIG = """
applications:
  shop: {}
mcpServers:
  k8s: {command: "unused-in-unit-tests"}
rbac:
  users: {bob: deployer}
"""
BOB = Identity(user="bob", role="deployer", source="config")


def deployments(_: str, args: dict[str, Any]) -> dict[str, Any]:
    assert args == {"resourceType": "deployments", "allNamespaces": True, "output": "json"}
    # What mcp-server-kubernetes makes of `kubectl get deployments -A -o json`, plus hostile names.
    return {
        "items": [
            {"name": "billing", "namespace": "production", "kind": "Deployment", "status": "Available"},
            {"name": "billing", "namespace": "staging", "kind": "Deployment", "status": "Available"},
            {"name": "search-api", "namespace": "staging", "kind": "Deployment", "status": "Available"},
            {"name": "x; rm -rf /", "namespace": "staging"},
            {"name": "", "namespace": "staging"},
        ]
    }


def world(answer: Any = deployments) -> FakeWorld:
    return fake_app(
        CONFIG, FakeTools(specs=tool_specs("mcp-server-kubernetes", "k8s"), answers={"kubectl_get": answer})
    )


async def test_an_application_only_the_cluster_runs_is_planned_after_discovery() -> None:
    w = world()
    plan = await make_plan(w.app, BOB, "Scale billing in staging to 3 replicas", {})
    assert plan.intent.subjects == ["billing"]
    assert plan.step("scale").args["name"] == "billing" and plan.step("scale").args["namespace"] == "staging"
    assert w.servers.apps == {"k8s": ["billing", "search-api"]}, "only names shaped like names are kept"
    listed = [e for e in w.audit.entries() if e.action == "tool.called"]
    assert [e.details["via"] for e in listed] == ["discovery"] and listed[0].actor == "bob"


async def test_a_name_neither_source_knows_keeps_the_nearest_names_error() -> None:
    w = world()
    with pytest.raises(UnknownNameError, match="nearest known: billing"):
        await make_plan(w.app, BOB, "Scale biling in staging to 3 replicas", {})


async def test_a_listing_that_fails_is_said_and_the_configured_names_still_plan() -> None:
    def down(_: str, args: dict[str, Any]) -> dict[str, Any]:
        raise ToolCallError("k8s/kubectl_get failed: connection refused")

    w = world(down)
    plan = await make_plan(w.app, BOB, "Scale shop in staging to 3 replicas", {})
    assert any(x.startswith("applications of k8s not listed: k8s/kubectl_get failed") for x in plan.warnings)
    assert w.servers.apps == {}

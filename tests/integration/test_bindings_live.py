"""Every bundled binding holds against the live tools/list of the real server it is written for, and
the seed requests plan over those live servers, discovered by opsmith itself (ServerPool over stdio).

mcp-server-kubernetes runs against a dummy kubeconfig and mcp-jenkins against an unreachable URL:
both list their tools; execution stays on the sandbox, which has a cluster to act on.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators

from opsmith.config import Config
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.errors import PlanError
from opsmith.planner.binding_args import bound_arguments
from opsmith.planner.bindings import load_bindings
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from opsmith.tools.mcp import ServerPool
from tests.realservers import server_entries

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(180)]

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FACTS: dict[str, Any] = {
    "subject": "my-application",
    "app": "my-application",
    "environment": "production",
    "namespace": "production",
    "service_name": "my-application-service",
    "image_repository": "myorg/my-application",
    "branch": "main",
    "replicas": 3,
    "params": {"replicas": 3},
    "backup_step": "backup",  # the undo that re-applies a backup needs one to re-apply
}
# The playbook arguments a binding's templates may use (`step_args.image`), as a deploy passes them.
STEP_ARGS = {"image": "${steps.push_image.image}"}


async def _live(tmp_path: Path) -> tuple[Config, Catalog]:
    entries = server_entries(tmp_path / "servers", ("kubernetes", "jenkins", "git"))
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "mcpServers": entries,
            "applications": {"my-application": {}, "payments-api": {}},
            "planning": {"default_application": "my-application", "image_repository": "myorg/{app}"},
        }
    )
    async with ServerPool(config, dict(os.environ)) as pool:
        await pool.start()
        catalog = Catalog(pool.catalog.tools())
    assert set(catalog.servers()) == {"kubernetes", "jenkins", "git"}, catalog.servers()
    return config, catalog


def _problems_of(binding_tool: ToolSpec, fixed: dict[str, Any], arg_names: list[str]) -> list[str]:
    props: dict[str, Any] = binding_tool.input_schema.get("properties") or {}
    problems = [f"{n}: not declared by {binding_tool.name}" for n in [*fixed, *arg_names] if n not in props]
    for name, value in fixed.items():
        if name in props:
            validator = validators.validator_for(props[name])(props[name])
            problems += [f"{name}={value!r}: {e.message}" for e in validator.iter_errors(value)]
    return problems


async def test_bundled_bindings_and_seed_requests_over_the_live_servers(tmp_path: Path) -> None:
    config, catalog = await _live(tmp_path)

    # 1. Each bundled set fits a live server, and each of its bindings is valid for that server's tool.
    for binding_set in load_bindings():
        fitting = [s for s in catalog.servers() if binding_set.fits(s, set(catalog.names(s)))]
        assert fitting, f"bundled bindings {binding_set.name} fit none of the live servers"
        server = fitting[0]
        for binding in binding_set.bindings:
            tool = catalog.get(server, binding.tool)
            where = f"{binding_set.name}: {binding.capability} -> {binding.tool}"
            assert tool is not None, f"{where}: {server} does not offer it"
            assert _problems_of(tool, binding.fixed, list(binding.args)) == [], where
            filled = bound_arguments(binding, tool.input_schema, STEP_ARGS, FACTS, {})
            assert filled.problems == [] and filled.missing == [], (where, filled)

    planner = Planner(config, load_playbooks())

    def plan(request: str, **overrides: Any) -> dict[str, tuple[str, dict[str, Any]]]:
        result = planner.plan(request, Situation(catalog=catalog, now=NOW), overrides)
        return {s.id: (f"{s.server}/{s.tool}", s.args) for s in result.steps}

    # 2. The seed requests, step by step, over the live catalog.
    rollback = plan("Rollback production deployment")
    assert rollback["rollback"][0] == "kubernetes/kubectl_rollout"
    assert (
        rollback["rollback"][1]["subCommand"] == "undo"
        and rollback["rollback"][1]["name"] == "my-application"
    )
    assert rollback["verify_pods"][1]["labelSelector"] == "app=my-application"

    scale = plan("Scale my-application in staging to 3 replicas")
    assert scale["scale"] == (
        "kubernetes/kubectl_scale",
        {"name": "my-application", "namespace": "staging", "replicas": 3, "resourceType": "deployment"},
    )

    status = plan("show me the pods of my-application in production")
    assert {tool for tool, _ in status.values()} == {"kubernetes/kubectl_get"}

    with pytest.raises(PlanError) as refused:
        plan("Deploy the code to Kubernetes production")
    for capability in ("test", "quality_scan", "security_scan", "push_image", "verify_image"):
        assert f"{capability} (step" in refused.value.message, refused.value.message

"""Planning over the catalogs real servers list (recorded from mcp-server-kubernetes, mcp-jenkins and
mcp-server-git; tests/integration/test_real_catalogs.py keeps the recordings equal to the live
servers). The planner runs as a pure function of the catalog, the bundled playbooks and bindings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from opsmith.config import parse_config
from opsmith.domain.binding import BindingSet
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import PlanError
from opsmith.domain.plan import Plan, Step
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from tests.fixtures.catalogs import tool_specs

CONFIG = parse_config(
    """
applications:
  my-application: {}
  payments-api: {}
planning:
  default_application: my-application
  image_repository: "myorg/{app}"
""",
    source="test",
)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday morning: no context rule fires
PLAYBOOKS = load_playbooks()


def catalog(*servers: tuple[str, str]) -> Catalog:
    """(recording, configured name) pairs, in configuration order."""
    return Catalog([spec for recording, name in servers for spec in tool_specs(recording, name)])


KUBERNETES = ("mcp-server-kubernetes", "k8s")
JENKINS = ("mcp-jenkins", "ci")
GIT = ("mcp-server-git", "git")


def plan(request: str, cat: Catalog, overrides: dict[str, Any] | None = None, config: Any = CONFIG) -> Plan:
    return Planner(config, PLAYBOOKS).plan(request, Situation(catalog=cat, now=NOW), overrides)


def calls(result: Plan) -> dict[str, tuple[str, dict[str, Any]]]:
    return {s.id: (f"{s.server}/{s.tool}", s.args) for s in result.steps}


def step(result: Plan, step_id: str) -> Step:
    return next(s for s in result.steps if s.id == step_id)


def test_rollback_over_kubernetes_alone_undoes_the_rollout_and_checks_pods_and_service() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES))
    found = calls(result)
    assert found["rollback"] == (
        "k8s/kubectl_rollout",
        {
            "name": "my-application",
            "namespace": "production",
            "subCommand": "undo",
            "resourceType": "deployment",
        },
    )
    assert found["inspect"][0] == "k8s/kubectl_get" and found["inspect"][1]["resourceType"] == "deployment"
    assert found["verify_pods"][1] == {
        "namespace": "production",
        "labelSelector": "app=my-application",
        "resourceType": "pods",
        "output": "yaml",
    }
    assert found["check_service"][1]["name"] == "my-application-service"
    assert found["check_service"][1]["resourceType"] == "endpoints"
    # The plan says why: the binding, and the value that makes kubectl_rollout a rollback.
    reasons = step(result, "rollback").mapping.chosen.reasons  # type: ignore[union-attr]
    assert (
        any("mcp-server-kubernetes" in r for r in reasons)
        and "fixed subCommand=undo, resourceType=deployment" in reasons
    )
    # Checks read their fields from the tool's output through the binding.
    assert {"pods", "not_ready", "crash_looping"} <= set(step(result, "verify_pods").extract)
    assert not result.steps or result.status.value in ("pending_approval", "approved")


def test_a_read_check_on_a_tool_annotated_destructive_is_read_only_only_with_its_fixed_value() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES))
    inspect = step(result, "inspect")
    assert inspect.risk == "LOW" and inspect.idempotent
    rollback = step(result, "rollback")
    assert rollback.risk in ("HIGH", "CRITICAL") and rollback.changes_target


def test_scale_binds_replicas_and_its_undo_goes_back_to_the_count_read_before() -> None:
    result = plan("Scale my-application in staging to 3 replicas", catalog(KUBERNETES))
    tool, args = calls(result)["scale"]
    assert tool == "k8s/kubectl_scale"
    assert args == {
        "name": "my-application",
        "namespace": "staging",
        "replicas": 3,
        "resourceType": "deployment",
    }
    undo = step(result, "scale").rollback
    assert undo is not None and undo.tool == "kubectl_scale"
    assert undo.args["replicas"] == "${steps.inspect.replicas}"  # what the deployment had before
    assert not result.steps[0].missing_args


def test_scale_without_a_count_is_incomplete_and_says_what_is_missing() -> None:
    result = plan("Scale my-application in staging", catalog(KUBERNETES))
    assert result.status.value == "incomplete"
    assert "replicas" in step(result, "scale").missing_args


def test_a_fixed_argument_is_not_changed_by_set() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES), {"rollback.subCommand": "restart"})
    assert result.status.value == "incomplete"
    assert any("fixed to 'undo'" in p for p in step(result, "rollback").missing_args)
    assert step(result, "rollback").args["subCommand"] == "undo"


def test_status_of_the_pods_plans_read_only_calls() -> None:
    result = plan("show me the pods of my-application in production", catalog(KUBERNETES))
    assert {s.tool for s in result.steps} == {"kubectl_get"}
    assert all(s.risk == "LOW" and not s.changes_target for s in result.steps)
    assert result.status.value == "approved"


def test_a_kubernetes_tool_beats_a_git_tool_for_a_deployment_check() -> None:
    for order in ((GIT, KUBERNETES), (KUBERNETES, GIT)):
        result = plan("show me the pods of my-application in production", catalog(*order))
        assert {s.server for s in result.steps} == {"k8s"}, order


def test_deploy_over_kubernetes_and_jenkins_is_refused_naming_every_missing_capability() -> None:
    with pytest.raises(PlanError) as refused:
        plan("Deploy the code to Kubernetes production", catalog(KUBERNETES, JENKINS))
    message = refused.value.message
    for capability in ("test", "quality_scan", "security_scan", "push_image", "verify_image"):
        assert f"{capability} (step" in message
    assert "build (step" not in message and "deploy (step" not in message
    # Jenkins runs: the refusal says none of its tools runs tests, not that a CI server is needed.
    assert "test (step test): no tool of ci does it" in message and "needs a CI server" not in message
    assert "push_image (step push_image): needs an image registry server" in message
    # Why each configured server was not taken, and no running server suggested as the one to add.
    assert "considered k8s:" in message and "ci:" in message
    assert "configure a server" in (refused.value.hint or "")


def test_a_user_binding_replaces_the_bundled_one_for_the_server_it_fits() -> None:
    custom = BindingSet.model_validate(
        {
            "name": "my-kubernetes",
            "requires": ["kubectl_rollout"],
            "bindings": [
                {
                    "capability": "rollback",
                    "tool": "kubectl_rollout",
                    "fixed": {"subCommand": "undo", "resourceType": "deployment", "toRevision": 3},
                    "args": {"name": "{{ app }}", "namespace": "{{ namespace }}"},
                    "why": "our rollbacks go to the last known good revision",
                }
            ],
        }
    )
    planner = Planner(CONFIG, PLAYBOOKS, [custom, *Planner(CONFIG, PLAYBOOKS).bindings])
    result = planner.plan("Rollback production deployment", Situation(catalog=catalog(KUBERNETES), now=NOW))
    assert step(result, "rollback").args["toRevision"] == 3
    assert "binding my-kubernetes: our rollbacks go to the last known good revision" in (
        step(result, "rollback").mapping.chosen.reasons  # type: ignore[union-attr]
    )


def test_an_image_already_built_deploys_over_kubernetes_alone_without_ci() -> None:
    result = plan("Deploy my-application to staging", catalog(KUBERNETES), {"image": "myorg/web:7"})
    assert [s.id for s in result.steps] == ["deploy", "verify_pods", "check_service"]
    assert any(x.startswith("build: left out, the image myorg/web:7 is given") for x in result.skipped)
    deploy = step(result, "deploy")
    assert deploy.tool == "kubectl_apply" and deploy.depends_on == []
    manifest = yaml.safe_load(deploy.args["manifest"])
    assert manifest["kind"] == "Deployment" and manifest["metadata"]["namespace"] == "staging"
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "myorg/web:7"
    # The checks expect the image that was given, read from the manifest the call sends.
    verify = step(result, "verify_pods")
    assert any(c.value == "${steps.deploy.image}" for c in verify.expect) and "image" in deploy.extract


def test_a_change_after_a_backup_is_undone_by_re_applying_the_recorded_manifest() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES))
    undo = step(result, "rollback").rollback
    assert undo is not None and undo.tool == "kubectl_apply"
    assert undo.args == {"namespace": "production", "manifest": "${steps.backup.manifest}"}
    assert "re-applies the manifest the backup step recorded" in undo.description


def test_without_a_backup_the_undo_rolls_the_revision_back_and_says_what_it_left_out() -> None:
    result = plan("Deploy my-application to staging", catalog(KUBERNETES), {"image": "myorg/web:7"})
    undo = step(result, "deploy").rollback
    assert undo is not None and undo.tool == "kubectl_rollout"
    assert undo.args == {
        "name": "my-application",
        "namespace": "staging",
        "subCommand": "undo",
        "resourceType": "deployment",
    }
    assert any("does not report previous_revision; to_revision left out" in w for w in result.warnings)


def test_a_rollback_checks_the_pods_against_the_image_the_deployment_states_after_it() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES))
    assert step(result, "after").tool == "kubectl_get" and step(result, "verify_pods").depends_on == ["after"]
    assert any(c.value == "${steps.after.image}" for c in step(result, "verify_pods").expect)
    assert "image" in step(result, "after").extract


def test_one_image_for_several_applications_is_refused() -> None:
    multi = parse_config(
        "applications: {a: {}, b: {}}\nplanning: {image_repository: 'myorg/{app}'}\n", source="test"
    )
    with pytest.raises(PlanError, match="names one image"):
        plan("Deploy a and b to staging", catalog(KUBERNETES), {"image": "myorg/x:1"}, multi)


def test_a_check_told_to_wait_on_a_tool_that_cannot_is_polled_instead() -> None:
    result = plan("Rollback production deployment", catalog(KUBERNETES))
    assert step(result, "verify_pods").settle == 60.0
    assert "wait_seconds" not in step(result, "verify_pods").args
    assert any("cannot wait itself; opsmith calls it again" in w for w in result.warnings)
    assert step(result, "rollback").settle is None, "a change is never repeated to wait"


def test_a_request_without_an_application_says_so() -> None:
    bare = parse_config("applications: {web: {}, api: {}}\n", source="test")
    with pytest.raises(
        PlanError, match=r"names no application, and no planning\.default_application"
    ) as refused:
        plan("Rollback production", catalog(KUBERNETES), config=bare)
    assert "known: web, api" in (refused.value.hint or "")


UNBOUND = Planner(CONFIG, PLAYBOOKS, [])  # the mapping alone, as for a server no binding knows


def test_without_bindings_a_tool_serves_through_the_operation_or_kind_its_schema_offers() -> None:
    result = UNBOUND.plan(
        "show me the pods of my-application in production",
        Situation(catalog=catalog(GIT, KUBERNETES, JENKINS), now=NOW),
    )
    found = calls(result)
    assert found["deployment"] == (
        "k8s/kubectl_rollout",
        {
            "name": "my-application",
            "namespace": "production",
            "subCommand": "status",
            "resourceType": "deployment",
        },
    )
    assert found["pods"] == (
        "k8s/kubectl_get",
        {"labelSelector": "app=my-application", "namespace": "production", "resourceType": "pods"},
    )
    assert found["service"][1]["name"] == "my-application-service"
    assert found["service"][1]["resourceType"] == "services"
    assert all(s.risk == "LOW" for s in result.steps)
    assert step(result, "deployment").mapping.chosen.fixed == {"subCommand": "status"}  # type: ignore[union-attr]


def test_without_bindings_a_tool_of_another_domain_never_stands_in() -> None:
    with pytest.raises(PlanError) as refused:
        UNBOUND.plan(
            "Rollback production deployment", Situation(catalog=catalog(KUBERNETES, JENKINS), now=NOW)
        )
    message = refused.value.message
    assert message.startswith("no tool for 1 capability: backup (step backup)")
    assert "get_plugins_with_backup scored" in message  # considered, and said why not


def test_a_destructive_operation_never_serves_a_check() -> None:
    from opsmith.domain.capabilities import CAPABILITIES
    from opsmith.domain.catalog import operation_choices
    from opsmith.planner.mapping import score_choice

    cat = catalog(KUBERNETES)
    rollout = cat.get("k8s", "kubectl_rollout")
    assert rollout is not None
    choices = {c.value: c for c in operation_choices(rollout) if c.selects == "operation"}
    assert set(choices) == {"history", "pause", "restart", "resume", "status", "undo"}
    status = CAPABILITIES["deployment_status"]
    assert score_choice(status, choices["status"]) is not None
    assert score_choice(status, choices["restart"]) is None and score_choice(status, choices["undo"]) is None
    rollback = score_choice(CAPABILITIES["rollback"], choices["undo"])
    assert rollback is not None and rollback[0] >= 4


@pytest.mark.parametrize("planner", [Planner(CONFIG, PLAYBOOKS), UNBOUND], ids=["bound", "unbound"])
@pytest.mark.parametrize(
    ("request_text", "environment"),
    [
        ("Rollback production deployment", "production"),
        ("Scale my-application in staging to 3 replicas", "staging"),
        ("show me the pods of my-application in production", "production"),
        ("check payments-api in staging", "staging"),
    ],
)
def test_every_call_acts_on_the_requested_environment_never_on_a_schema_default(
    planner: Planner, request_text: str, environment: str
) -> None:
    try:
        result = planner.plan(request_text, Situation(catalog=catalog(KUBERNETES), now=NOW))
    except PlanError:
        return  # refused is safe; what is planned must act where it was asked to
    for s in result.steps:
        assert s.args.get("namespace") == environment, (s.id, s.args)
        if s.rollback is not None:
            assert s.rollback.args.get("namespace") == environment, (s.id, s.rollback.args)


def test_a_request_for_logs_reads_the_logs_by_the_deployments_name() -> None:
    result = plan("show me the logs of my-application in production", catalog(KUBERNETES))
    assert result.playbook == "logs" and result.status.value == "approved"
    assert calls(result)["logs"] == (
        "k8s/kubectl_logs",
        {"name": "my-application", "namespace": "production", "tail": 200, "resourceType": "deployment"},
    )
    assert any("label_selector (kubectl_logs does not use it for check_logs)" in w for w in result.warnings)
    assert [c.path for c in step(result, "logs").expect] == ["errors"]
    # Without "logs" in the request, a check is the status playbook.
    assert plan("check my-application in production", catalog(KUBERNETES)).playbook == "status"

"""Plans written by hand: read, checked against the catalog and graph rules, assessed like planned ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.config import Config
from opsmith.domain.approval_rule import ApprovalRule, approval_need
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.domain.errors import (
    GraphError,
    PlanError,
    ToolArgumentsError,
    UnknownServerError,
    UnknownToolError,
    UsageError,
)
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.risk import Risk, RiskRules, assess
from opsmith.planner.manual import plan_from_document

RO = ToolHints(read_only=True, destructive=False, idempotent=True)
W = ToolHints(read_only=False, destructive=False)
D = ToolHints(read_only=False, destructive=True)
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def schema(required: list[str] | None = None, closed: bool = False, **props: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}}
    if required:
        body["required"] = required
    if closed:
        body["additionalProperties"] = False
    return body


def tool(server: str, name: str, hints: ToolHints, input_schema: dict[str, Any] | None = None) -> ToolSpec:
    return ToolSpec(server=server, name=name, hints=hints, input_schema=input_schema or {"type": "object"})


CATALOG = Catalog(
    [
        tool("ci", "trigger_build", W, schema(["app"], closed=True, app="string", branch="string")),
        tool("ci", "abort_build", W, schema(["number"], number="integer")),
        tool("k8s", "backup_deployment", W, schema(["name"], name="string")),
        tool("k8s", "apply_deployment", D, schema(["image"], image="string", replicas="integer")),
        tool("k8s", "rollback_deployment", D, schema(["name"], name="string")),
        tool("k8s", "delete_deployment", D, schema(["name"], name="string")),
        tool("k8s", "get_pods", RO),
        tool("k8s", "get_pod_logs", RO),
        tool("k8s", "inspect_node", D),
    ]
)

VALID = """
title: Ship web
environment: staging
steps:
  - id: build
    server: ci
    tool: trigger_build
    args: {app: web, branch: main}
    rollback: {tool: abort_build, args: {number: "${steps.build.number}"}}
  - id: deploy
    name: Deploy web
    server: k8s
    tool: apply_deployment
    args: {image: "registry/web:${steps.build.number}", replicas: 2}
    depends_on: [build]
    rollback: {tool: rollback_deployment, args: {name: web}}
  - id: pods
    server: k8s
    tool: get_pods
    depends_on: [deploy]
    expect: [{path: ready, op: truthy}]
"""

PRODUCTION = """
title: Ship web to production
environment: production
steps:
  - {id: backup, server: k8s, tool: backup_deployment, args: {name: web}}
  - id: deploy
    server: k8s
    tool: apply_deployment
    args: {image: registry/web:1.4}
    depends_on: [backup]
    rollback: {tool: rollback_deployment, args: {name: web}}
  - {id: logs, server: k8s, tool: get_pod_logs, depends_on: [deploy]}
"""


def make(text: str, config: Config | None = None, **kwargs: Any) -> Plan:
    return plan_from_document(
        text, source="plan.yaml", catalog=CATALOG, config=config or Config(), now=NOW, **kwargs
    )


def refused(text: str, config: Config | None = None) -> UsageError:
    with pytest.raises(UsageError) as caught:
        make(text, config)
    return caught.value


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --- a valid plan ---------------------------------------------------------------------------------


def test_a_valid_three_step_plan_becomes_a_complete_plan() -> None:
    plan = make(VALID)
    assert [s.id for s in plan.steps] == ["build", "deploy", "pods"]
    assert [s.depends_on for s in plan.steps] == [[], ["build"], ["deploy"]]
    build, deploy, pods = plan.steps
    assert build.rollback is not None and (build.rollback.server, build.rollback.tool) == (
        "ci",
        "abort_build",
    )
    assert build.rollback.args == {"number": "${steps.build.number}"}
    assert deploy.rollback is not None and deploy.rollback.tool == "rollback_deployment"
    assert deploy.name == "Deploy web" and deploy.args["replicas"] == 2
    assert [c.describe() for c in pods.expect] == ["ready truthy"]
    assert plan.parallel_groups == [["build"], ["deploy"], ["pods"]]
    assert plan.estimated_duration.critical_path == ["build", "deploy", "pods"]
    assert plan.estimated_duration.maximum_seconds > 0
    assert plan.intent.action == "manual" and plan.intent.environment == "staging"
    assert plan.request == plan.title == "Ship web"
    assert plan.playbook == "manual" and plan.requested_by == ""
    assert plan.id == f"plan_manual_staging_{int(NOW.timestamp())}"
    assert plan.hash == plan.content_hash() and plan.hash.startswith("sha256:")


def test_compliance_applies_as_to_planned_plans() -> None:
    # The build step ships code (its capability is inferred from the tool as the planner would),
    # so staging's code checks apply, and nothing here provides them.
    plan = make(VALID)
    assert plan.steps[0].capability == "build"
    assert {r.name for r in plan.compliance} == {"quality_gate_passed", "tests_passed"}
    assert plan.status is PlanStatus.INCOMPLETE


def test_a_read_only_plan_without_policy_needs_no_approval() -> None:
    plan = make("title: look\nenvironment: staging\nsteps:\n  - {id: pods, server: k8s, tool: get_pods}\n")
    assert plan.risk is Risk.LOW and not plan.requires_approval
    assert plan.status is PlanStatus.APPROVED
    assert plan.approval_reasons == ["policy does not require approval for this plan"]


def test_json_is_read_too() -> None:
    as_json = json.dumps(yaml.safe_load(VALID))
    assert make(as_json).hash == make(VALID).hash


def test_taken_ids_give_a_new_id_and_degraded_servers_a_warning() -> None:
    taken = frozenset({f"plan_manual_staging_{int(NOW.timestamp())}"})
    plan = make(VALID, taken_ids=taken, degraded=frozenset({"k8s"}))
    assert plan.id.endswith("_2")
    assert plan.warnings == ["server k8s is degraded; steps on it may fail"]


def test_past_durations_set_the_estimate() -> None:
    plan = make(VALID, durations={"k8s/get_pods": 10.0})
    assert plan.steps[2].estimated_duration == (8.0, 15.0)


# --- risk and approval ---------------------------------------------------------------------------


def test_a_production_plan_requires_approval() -> None:
    plan = make(PRODUCTION)
    assert plan.requires_approval and plan.approvals_needed == 1
    assert "production requires approval" in plan.approval_reasons
    assert plan.status is PlanStatus.PENDING_APPROVAL
    assert {r.name for r in plan.compliance} >= {"backup_verified", "monitoring_enabled", "approval_required"}
    assert not plan.unmet
    deploy = plan.step("deploy")
    assert deploy.compliance and deploy.risk is Risk.HIGH  # deploy is MEDIUM, raised in production


def test_a_destructive_tool_gets_the_planners_risk_and_four_eyes() -> None:
    plan = make(
        "title: remove web\nenvironment: staging\n"
        "steps:\n  - {id: rm, server: k8s, tool: delete_deployment, args: {name: web}}\n"
    )
    step = plan.steps[0]
    expected = assess("delete_deployment", D, changes_target=True, environment="staging", rules=RiskRules())
    assert step.risk is expected.level is Risk.CRITICAL
    assert step.risk_reasons == expected.reasons
    assert plan.requires_approval and plan.approvals_needed == 2
    assert plan.status is PlanStatus.PENDING_APPROVAL


def test_a_destructive_hint_raises_a_low_word_to_medium() -> None:
    plan = make("title: t\nenvironment: staging\nsteps:\n  - {id: n, server: k8s, tool: inspect_node}\n")
    assert plan.steps[0].risk is Risk.MEDIUM
    assert "destructiveHint -> at least MEDIUM" in plan.steps[0].risk_reasons


def test_approval_policy_comes_from_the_config() -> None:
    config = Config.model_validate({"policy": {"approval": {"min_risk": "MEDIUM", "environments": []}}})
    plan = make(VALID, config)
    assert plan.requires_approval and plan.approval_reasons == ["risk MEDIUM >= MEDIUM"]


def test_risk_words_come_from_the_config() -> None:
    config = Config.model_validate({"planning": {"risk_words": {"HIGH": ["apply"]}}})
    plan = make(VALID, config)
    assert plan.step("deploy").risk is Risk.HIGH
    assert plan.step("deploy").risk_reasons[0] == "action word 'apply' in apply_deployment -> HIGH"


def test_approval_need_rule() -> None:
    rule = ApprovalRule()
    assert not approval_need(Risk.MEDIUM, "staging", changes_target=True, rule=rule).required
    assert approval_need(Risk.LOW, "production", changes_target=True, rule=rule).approvals == 1
    assert not approval_need(Risk.LOW, "production", changes_target=False, rule=rule).required
    critical = approval_need(Risk.CRITICAL, "staging", changes_target=False, rule=rule)
    assert critical.approvals == 2 and critical.reasons[-1].startswith("risk CRITICAL: 2 approvers")


# --- the hash ------------------------------------------------------------------------------------


def test_hash_changes_when_args_change_and_only_then() -> None:
    base = make(VALID)
    assert make(VALID.replace("Ship web", "Ship the web app")).hash != base.hash  # the request is hashed
    assert make(edit(VALID, "replicas: 2", "replicas: 3")).hash != base.hash
    assert make(edit(VALID, "name: web}", "name: web2}")).hash != base.hash
    later = plan_from_document(VALID, source="x", catalog=CATALOG, config=Config(), now=datetime.now(UTC))
    assert later.hash == base.hash


# --- the graph -----------------------------------------------------------------------------------


def test_a_cycle_is_refused_with_its_path() -> None:
    text = edit(
        VALID, "    rollback: {tool: abort_build", "    depends_on: [pods]\n    rollback: {tool: abort_build"
    )
    error = refused(text)
    assert isinstance(error, GraphError)
    assert error.message == "plan.yaml: cycle: build -> deploy -> pods -> build"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("depends_on: [build]", "depends_on: [biuld]", "step 'deploy' depends on unknown step 'biuld'"),
        ("id: pods", "id: build", "duplicate step id 'build'"),
        ("depends_on: [deploy]", "depends_on: [pods]", "step 'pods' depends on itself"),
    ],
)
def test_graph_mistakes_are_named(old: str, new: str, message: str) -> None:
    error = refused(edit(VALID, old, new))
    assert isinstance(error, GraphError) and message in error.message


def test_a_reference_to_a_step_it_does_not_wait_for_is_refused() -> None:
    text = edit(VALID, "depends_on: [build]", "depends_on: []")
    error = refused(text)
    assert isinstance(error, GraphError)
    assert "step 'deploy': args refer to ${steps.build.number}, but deploy does not wait for build" in str(
        error
    )
    assert error.hint == "add 'build' to the depends_on of 'deploy'"


def test_a_reference_to_a_missing_step_is_refused_with_the_nearest() -> None:
    error = refused(edit(VALID, "registry/web:${steps.build.number}", "${steps.buidl.number}"))
    assert isinstance(error, GraphError) and "the plan has no step 'buidl'" in error.message
    assert error.hint is not None and error.hint.startswith("steps, nearest first: build")


def test_references_through_other_steps_and_to_itself_in_a_rollback_are_fine() -> None:
    text = edit(VALID, "expect: [{path: ready, op: truthy}]", "args: {selector: '${steps.build.number}'}")
    assert make(text).step("pods").args == {"selector": "${steps.build.number}"}
    # build's rollback uses build's own output: it runs only after build succeeded.
    assert make(VALID).steps[0].rollback is not None


def test_a_when_on_a_step_it_does_not_wait_for_is_refused() -> None:
    text = edit(VALID, "    expect:", "    when: [{step: pods, path: ready, op: truthy}]\n    expect:")
    error = refused(text)
    assert isinstance(error, GraphError) and "pods does not wait for pods" in error.message


def test_references_in_condition_values_must_point_at_earlier_steps() -> None:
    fine = edit(VALID, "{path: ready, op: truthy}", "{path: image, op: '==', value: '${steps.build.number}'}")
    assert make(fine).step("pods").expect[0].value == "${steps.build.number}"
    error = refused(edit(VALID, "{path: ready, op: truthy}", "{path: a, op: '==', value: '${steps.pods.a}'}"))
    assert isinstance(error, GraphError) and "step 'pods': expect[0] value refer to" in error.message


def test_a_rollback_is_idempotent_as_stated_or_as_its_tool_says() -> None:
    plan = make(VALID)
    assert plan.step("build").rollback is not None and not plan.step("build").rollback.idempotent
    stated = make(edit(VALID, "args: {name: web}}", "args: {name: web}, idempotent: true}"))
    assert stated.step("deploy").rollback is not None and stated.step("deploy").rollback.idempotent
    assert stated.hash != plan.hash


def test_a_malformed_reference_is_refused() -> None:
    error = refused(edit(VALID, '${steps.build.number}"', '${steps.build}"'))
    assert isinstance(error, PlanError) and "is not a reference opsmith can fill" in error.message


# --- the catalog and the arguments ---------------------------------------------------------------


def test_an_unknown_tool_is_named_with_the_nearest() -> None:
    error = refused(edit(VALID, "tool: apply_deployment", "tool: apply_deploymnt"))
    assert isinstance(error, UnknownToolError)
    assert error.message == "plan.yaml: step 'deploy': server 'k8s' has no tool 'apply_deploymnt'"
    assert error.hint is not None and error.hint.startswith("nearest on k8s: apply_deployment")


def test_a_tool_on_another_server_is_pointed_at() -> None:
    error = refused(
        edit(VALID, "server: ci\n    tool: trigger_build", "server: k8s\n    tool: trigger_build")
    )
    assert isinstance(error, UnknownToolError) and error.hint is not None
    assert "ci offer(s) 'trigger_build'" in error.hint


def test_an_unknown_server_is_named_with_the_nearest() -> None:
    error = refused(edit(VALID, "server: ci", "server: cii"))
    assert isinstance(error, UnknownServerError) and "no server 'cii'" in error.message
    assert error.hint is not None and error.hint.startswith("nearest: ci")


def test_an_unknown_rollback_tool_is_named() -> None:
    error = refused(edit(VALID, "tool: abort_build", "tool: abort"))
    assert isinstance(error, UnknownToolError) and "step 'build' rollback: server 'ci'" in error.message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{app: web, branch: main}", "{branch: main}", "required argument 'app' is missing"),
        ("replicas: 2", "replicas: two", "argument replicas: 'two' is not of type 'integer'"),
        ("branch: main}", "brnch: main}", "ci/trigger_build has no argument 'brnch'"),
        ('{number: "${steps.build.number}"}', "{}", "rollback: ci/abort_build: required argument 'number'"),
    ],
)
def test_bad_arguments_are_named_against_the_schema(old: str, new: str, message: str) -> None:
    error = refused(edit(VALID, old, new))
    assert isinstance(error, ToolArgumentsError) and message in error.message
    assert error.hint is not None and "the tool expects" in error.hint


def test_an_unknown_argument_gets_the_nearest_name() -> None:
    error = refused(edit(VALID, "branch: main}", "brnch: main}"))
    assert error.hint is not None and error.hint.startswith("nearest: branch")


def test_a_whole_reference_stands_for_any_type() -> None:
    plan = make(edit(VALID, "replicas: 2", "replicas: '${steps.build.number}'"))
    assert plan.step("deploy").args["replicas"] == "${steps.build.number}"


# --- the document ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message", "nearest"),
    [
        ("depends_on: [build]", "depend_on: [build]", "step 'deploy': unknown key 'depend_on'", "depends_on"),
        ("title: Ship web", "titel: Ship web", "top level: unknown key 'titel'", "title"),
        (
            "rollback: {tool: abort_build",
            "rollback: {tol: abort_build",
            "rollback: unknown key 'tol'",
            "tool",
        ),
        ("{path: ready, op: truthy}", "{path: ready, opp: truthy}", "expect[0]: unknown key 'opp'", "op"),
    ],
)
def test_unknown_keys_are_refused_with_the_nearest(old: str, new: str, message: str, nearest: str) -> None:
    error = refused(edit(VALID, old, new))
    assert isinstance(error, PlanError) and message in error.message
    assert error.hint is not None and error.hint.startswith(f"did you mean {nearest!r}?")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the top level must be a mapping, got nothing"),
        ("- a\n- b\n", "the top level must be a mapping, got list"),
        ("title: [unclosed\n", "plan.yaml:2:1: not valid YAML"),
        ("title: t\nsteps: []\n", "steps: List should have at least 1 item"),
        ("title: t\nenvironment: prod\nsteps: []\n", "environment: Input should be 'production'"),
        ("steps: [{id: a, server: ci, tool: trigger_build}]\n", "plan.yaml: title: Field required"),
        ("title: t\nsteps: [{id: 'a b', server: k8s, tool: get_pods}]\n", "step 'a b': id: String should"),
        ("title: t\nsteps: [{id: 7, server: k8s, tool: get_pods}]\n", "step #1: id: Input should be a valid"),
        ("title: t\nsteps: [{id: a, server: k8s, tool: get_pods, depends_on: b}]\n", "depends_on: Input"),
        ("a: &x [1]\nb: *x\n", "aliases (*name) are not allowed"),
        ("title: a\ntitle: b\n", "key 'title' appears twice"),
        ('{"title": "a", "title": "b"}', "key 'title' appears twice"),
        ("title: t\nsteps: [{id: a, server: k8s, tool: get_pods, args: {x: .nan}}]\n", "not a finite number"),
        ("title: t\nsteps: [{id: a, server: k8s, tool: get_pods, args: {1: x}}]\n", "key 1 is not text"),
        ("title: t\nsteps: [{id: a, server: k8s, tool: get_pods, args: {x: !!binary aGk=}}]\n", "bytes"),
        ("title: t\nsteps: [{id: a, server: k8s, tool: get_pods, capability: bild}]\n", "capability 'bild'"),
        ("title: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels"),
    ],
)
def test_malformed_documents_are_refused_naming_the_place(text: str, message: str) -> None:
    error = refused(text)
    assert isinstance(error, PlanError) and message in error.message, error.message


def test_dates_stay_text() -> None:
    text = edit(VALID, "branch: main}", "branch: 2025-01-01}")
    assert make(text).steps[0].args["branch"] == "2025-01-01"


def test_per_step_retry_and_timeout_are_checked_and_carried_in_the_hash() -> None:
    bad = refused(edit(VALID, "    depends_on: [build]", "    depends_on: [build]\n    retry: {attempts: 0}"))
    assert "retry attempts must be a whole number >= 1" in bad.message
    plain = make(VALID)
    tuned = make(
        edit(
            VALID,
            "    depends_on: [build]",
            "    depends_on: [build]\n    retry: {attempts: 5}\n    timeout: 30",
        )
    )
    step = next(s for s in tuned.steps if s.retry is not None)
    assert step.retry is not None and step.retry.attempts == 5 and step.timeout == 30
    assert tuned.hash != plain.hash and tuned.hash == tuned.content_hash()


def test_a_changing_plan_must_name_its_environment() -> None:
    text = VALID.replace("environment: staging\n", "")
    error = refused(text)
    assert isinstance(error, PlanError) and "names no environment" in error.message
    config = Config.model_validate({"planning": {"default_environment": "development"}})
    plan = make(text, config)
    assert plan.intent.environment == "development" and plan.intent.environment_source == "default"


def test_a_read_only_plan_may_leave_the_environment_out() -> None:
    plan = make("title: t\nsteps: [{id: a, server: k8s, tool: get_pods}]\n")
    assert plan.intent.environment is None and plan.status is PlanStatus.APPROVED


# --- properties ----------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    """depends_on per step: step j may wait for any i < j."""
    size = draw(st.integers(min_value=2, max_value=10))
    return [sorted(draw(st.sets(st.integers(0, j - 1), max_size=j))) if j else [] for j in range(size)]


def dag_document(depends: list[list[int]]) -> str:
    steps = [
        {"id": f"s{j}", "server": "k8s", "tool": "get_pods", "depends_on": [f"s{i}" for i in deps]}
        for j, deps in enumerate(depends)
    ]
    return yaml.safe_dump({"title": "dag", "environment": "staging", "steps": steps})


def reachable(depends: list[list[int]]) -> set[tuple[int, int]]:
    """(i, j) where j waits for i, directly or through others."""
    pairs: set[tuple[int, int]] = set()
    for j, deps in enumerate(depends):
        for i in deps:
            pairs |= {(i, j)} | {(k, j) for (k, m) in pairs if m == i}
    return pairs


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_random_dags_are_accepted_and_one_back_edge_is_a_real_cycle(
    depends: list[list[int]], data: st.DataObject
) -> None:
    plan = make(dag_document(depends))
    assert [s.depends_on for s in plan.steps] == [[f"s{i}" for i in deps] for deps in depends]
    if not reachable(depends):
        depends[1] = [0]
    start, end = data.draw(st.sampled_from(sorted(reachable(depends))))
    looped = [list(deps) for deps in depends]
    looped[start].append(end)  # start now also waits for end, which waits for start
    error = refused(dag_document(looped))
    assert isinstance(error, GraphError)
    path = error.message.removeprefix("plan.yaml: cycle: ").split(" -> ")
    assert path[0] == path[-1] and len(path) >= 3 and len(set(path[:-1])) == len(path) - 1
    waits = {(f"s{i}", f"s{j}") for j, deps in enumerate(looped) for i in deps}
    for before, after in pairwise(path):
        assert (before, after) in waits, f"{before} -> {after} is not an edge"


KEYS = ["title", "request", "environment", "steps", "id", "server", "tool", "args", "depends_on",
        "rollback", "expect", "when", "path", "op", "value", "step", "retry", "timeout", "capability",
        "attempts", "name", "requires_validation", "idempotent", "titel"]  # fmt: skip
WORDS = ["ci", "k8s", "get_pods", "trigger_build", "abort_build", "staging", "production", "build",
         "deploy", "${steps.build.number}", "${steps.x", "==", "truthy", "a", ""]  # fmt: skip
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=25,
)
ids = st.sampled_from(["build", "deploy", "pods", "x"])
names = st.sampled_from([t.name for t in CATALOG] + ["nope"])
call_like = st.fixed_dictionaries(
    {"tool": names | json_values}, optional={"server": st.sampled_from(["ci", "k8s"]), "args": json_values}
)
expect_like = st.fixed_dictionaries(
    {"path": st.sampled_from(["ready", "a.b"]), "op": st.sampled_from(["==", "truthy", "~"])},
    optional={"value": json_values},
)
when_like = st.fixed_dictionaries(
    {"step": ids, "path": st.sampled_from(["ready"]), "op": st.sampled_from(["truthy"])},
)
step_like = st.fixed_dictionaries(
    {
        "id": st.one_of(ids, ids, ids, json_values),
        "server": st.sampled_from(["ci", "k8s", "cii"]),
        "tool": names,
    },
    optional={
        "args": st.dictionaries(st.sampled_from(["app", "name", "image", "replicas", "zz"]), json_values),
        "depends_on": st.lists(ids, max_size=3) | json_values,
        "rollback": call_like | json_values,
        "expect": st.lists(expect_like, max_size=2),
        "when": st.lists(when_like, max_size=2),
        "capability": st.sampled_from(["build", "backup", "bild"]),
        "retry": st.dictionaries(st.sampled_from(["attempts", "jitter"]), json_values),
        "requires_validation": st.one_of(st.booleans(), json_values),
    },
)
documents = st.fixed_dictionaries(
    {
        "title": st.one_of(st.just("t"), st.just("ship"), json_values),
        "steps": st.lists(step_like, max_size=4),
    },
    optional={
        "environment": st.one_of(st.sampled_from(["staging", "production"]), json_values),
        "request": st.one_of(st.just("r"), st.just("ship"), json_values),
    },
)


def only_usage_errors(text: str) -> None:
    try:
        make(text)
    except UsageError as error:
        assert "internal error" not in error.message, error.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_usage_errors(text: str) -> None:
    only_usage_errors(text)


@settings(max_examples=150, deadline=None)
@given(documents, st.booleans())
def test_arbitrary_documents_raise_only_usage_errors(document: dict[str, Any], as_json: bool) -> None:
    only_usage_errors(json.dumps(document) if as_json else yaml.safe_dump(document))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID)), st.integers(0, 20), st.text(max_size=12))
def test_damaged_valid_documents_raise_only_usage_errors(at: int, cut: int, insert: str) -> None:
    only_usage_errors(VALID[:at] + insert + VALID[at + cut :])


def test_a_step_acting_in_a_more_guarded_environment_than_the_plan_is_refused_when_planned() -> None:
    staging = edit(PRODUCTION, "environment: production", "environment: staging")
    error = refused(edit(staging, "args: {name: web}}", "args: {name: web, namespace: production}}"))
    assert "step 'backup' acts in production, and the plan is for staging" in error.message
    assert "environment: production" in (error.hint or "")
    undo = edit(
        staging,
        "rollback: {tool: rollback_deployment, args: {name: web}}",
        "rollback: {tool: rollback_deployment, args: {name: web, env: prod}}",
    )
    assert "step 'deploy' acts in production" in refused(undo).message
    # A production plan may look at staging first: the stricter rules judged it.
    assert make(edit(PRODUCTION, "args: {name: web}}", "args: {name: web, namespace: staging}}")).steps

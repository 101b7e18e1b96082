"""Arguments are filled under the tool's own names and checked against its JSON schema before a
call is sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.cli.tools import parse_arguments
from opsmith.domain.catalog import ToolSpec, accepts_undeclared
from opsmith.errors import ToolArgumentsError
from opsmith.planner.arguments import FilledArguments, fill_arguments
from opsmith.tools.arguments import check_arguments

SCALE = ToolSpec(
    server="kubernetes",
    name="scale_deployment",
    input_schema={
        "type": "object",
        "properties": {"name": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0}},
        "required": ["name", "replicas"],
        "additionalProperties": False,
    },
)


def test_valid_arguments_pass() -> None:
    check_arguments(SCALE, {"name": "web", "replicas": 3})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "web"}, "'replicas' is a required property"),
        ({"name": "web", "replicas": "three"}, "argument 'replicas': 'three' is not of type 'integer'"),
        ({"name": "web", "replicas": -1}, "argument 'replicas': -1 is less than the minimum of 0"),
        ({"name": "web", "replicas": 1, "force": True}, "Additional properties are not allowed"),
    ],
)
def test_schema_violations_name_the_argument(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        check_arguments(SCALE, arguments)
    assert message in caught.value.message
    assert caught.value.hint == "the tool expects name: string (required), replicas: integer (required)"


def test_a_broken_schema_is_reported_not_crashed_on() -> None:
    broken = ToolSpec(server="s", name="t", input_schema={"type": "no-such-type"})
    with pytest.raises(ToolArgumentsError, match="publishes an invalid input schema"):
        check_arguments(broken, {})


@given(st.text(max_size=200))
def test_any_args_text_is_an_object_or_one_clear_error(text: str) -> None:
    try:
        value = parse_arguments(text)
    except ToolArgumentsError as error:
        assert error.message.startswith("--args")
    else:
        assert isinstance(value, dict)


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8) | st.none(), max_size=5))
def test_checking_any_arguments_never_crashes(arguments: dict[str, object]) -> None:
    try:
        check_arguments(SCALE, arguments)
    except ToolArgumentsError as error:
        assert error.message.startswith("kubernetes/scale_deployment")


OPEN_BY_DEFAULT = ToolSpec(
    server="kubernetes",
    name="get_pods",
    # No additionalProperties: JSON Schema itself would let any other name through.
    input_schema={"type": "object", "properties": {"namespace": {"type": "string"}, "labelSelector": {}}},
)


def test_an_argument_the_tool_does_not_declare_is_refused_with_the_nearest_names() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        check_arguments(OPEN_BY_DEFAULT, {"namespace": "staging", "label_selector": "app=web"})
    assert "does not take the argument 'label_selector'" in caught.value.message
    assert "did you mean labelSelector" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},  # names nothing: nothing to hold the arguments against
        {"type": "object", "properties": {"a": {}}, "additionalProperties": True},
        {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}},
    ],
)
def test_a_schema_that_says_it_takes_more_lets_more_through(schema: dict[str, object]) -> None:
    check_arguments(ToolSpec(server="s", name="t", input_schema=schema), {"a": "1", "other": "x"})


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=4), max_size=4))
def test_only_declared_arguments_ever_pass(arguments: dict[str, str]) -> None:
    try:
        check_arguments(OPEN_BY_DEFAULT, arguments)
    except ToolArgumentsError:
        assert set(arguments) - {"namespace", "labelSelector"}
    else:
        assert set(arguments) <= {"namespace", "labelSelector"}


# --- Filling a plan's arguments under the names real servers give them ---------------------------

# inputSchema snippets as mcp-server-kubernetes 4.1.7 and mcp-jenkins publish them.
NAMESPACE = {"type": "string", "description": "Kubernetes namespace", "default": "default"}
CONTEXT = {
    "type": "string",
    "description": "Kubeconfig Context to use for the command (optional - defaults to null)",
    "default": "",
}
KUBECTL_LOGS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resourceType": {
            "type": "string",
            "enum": ["pod", "deployment", "job", "cronjob"],
            "description": "Type of resource to get logs from",
        },
        "name": {"type": "string", "description": "Name of the resource"},
        "namespace": NAMESPACE,
        "container": {
            "type": "string",
            "description": "Container name (required when pod has multiple containers)",
        },
        "tail": {"type": "number", "description": "Number of lines to show from end of logs"},
        "since": {"type": "string", "description": "Show logs since relative time (e.g. '5s', '2m', '3h')"},
        "timestamps": {"type": "boolean", "description": "Include timestamps in logs", "default": False},
        "labelSelector": {"type": "string", "description": "Filter resources by label selector"},
        "context": CONTEXT,
    },
    "required": ["resourceType", "name", "namespace"],
}
KUBECTL_SCALE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name of the deployment to scale"},
        "namespace": NAMESPACE,
        "replicas": {"type": "number", "description": "Number of replicas to scale to"},
        "resourceType": {
            "type": "string",
            "description": "Resource type to scale (deployment, replicaset, statefulset)",
            "default": "deployment",
        },
        "context": CONTEXT,
    },
    "required": ["name", "replicas"],
}
KUBECTL_GET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resourceType": {
            "type": "string",
            "description": "Type of resource to get (e.g., pods, deployments, services, configmaps, events, "
            "etc.)",
        },
        "name": {
            "type": "string",
            "description": "Name of the resource (optional - if not provided, lists all resources of the "
            "specified type)",
        },
        "namespace": NAMESPACE,
        "output": {
            "type": "string",
            "enum": ["json", "yaml", "wide", "name", "custom"],
            "description": "Output format",
            "default": "json",
        },
        "labelSelector": {
            "type": "string",
            "description": "Filter resources by label selector (e.g. 'app=nginx')",
        },
        "fieldSelector": {
            "type": "string",
            "description": "Filter resources by field selector (e.g. 'metadata.name=my-pod')",
        },
        "context": CONTEXT,
    },
    "required": ["resourceType"],
}
BUILD_ITEM: dict[str, Any] = {
    "additionalProperties": False,
    "properties": {
        "fullname": {"type": "string", "description": "The fullname of the item"},
        "build_type": {
            "enum": ["build", "buildWithParameters"],
            "type": "string",
            "description": "If your item is configured with parameters, you must use "
            "'buildWithParameters' as build_type.",
        },
        "data": {
            "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
            "default": None,
            "description": "The parameters to trigger the build with. Required if build_type is "
            "'buildWithParameters'.",
        },
    },
    "required": ["fullname", "build_type"],
    "type": "object",
}
FACTS: dict[str, Any] = {
    "subject": "web",
    "app": "web",
    "namespace": "staging",
    "environment": "staging",
    "replicas": "5",
    "params": {"replicas": "5"},
}
LOG_CHECK = {"label_selector": "app={{ subject }}", "tail_lines": 200, "wait_seconds": 60}


def test_a_log_check_reaches_kubectl_logs_under_its_camel_case_names() -> None:
    filled = fill_arguments(KUBECTL_LOGS, LOG_CHECK, FACTS, {})
    assert filled.args == {"labelSelector": "app=web", "tail": 200, "namespace": "staging"}
    assert filled.renamed == ["label_selector -> labelSelector", "tail_lines -> tail"]
    assert filled.dropped == ["wait_seconds"]
    assert filled.why_dropped == {}
    # Selected by labels, so `name` is not the application's: left for --set, not guessed.
    assert filled.missing == ["resourceType", "name"]


def test_the_subject_names_the_deployment_kubectl_scale_scales() -> None:
    filled = fill_arguments(KUBECTL_SCALE, {"replicas": "{{ params.replicas }}"}, FACTS, {})
    assert filled.args == {"replicas": 5, "name": "web", "namespace": "staging"}
    assert filled.inferred == ["name <- subject"]
    assert filled.missing == [] and filled.problems == []


def test_a_deployment_status_on_kubectl_get_gets_the_name_and_a_renamed_override() -> None:
    filled = fill_arguments(KUBECTL_GET, {}, FACTS, {"resource_type": "deployments"})
    assert filled.args == {"resourceType": "deployments", "name": "web", "namespace": "staging"}
    assert filled.renamed == ["resource_type -> resourceType"]
    assert filled.problems == [] and filled.missing == []


def test_a_pod_check_on_kubectl_get_selects_by_labels_and_names_nothing() -> None:
    filled = fill_arguments(KUBECTL_GET, {"label_selector": "app={{ subject }}"}, FACTS, {})
    assert filled.args == {"labelSelector": "app=web", "namespace": "staging"}
    assert filled.inferred == []


def test_a_jenkins_job_is_never_guessed_from_the_application_but_takes_a_job_override() -> None:
    templates = {"branch": "main", "parameters": {"environment": "{{ environment }}"}}
    filled = fill_arguments(BUILD_ITEM, templates, FACTS, {})
    assert filled.args == {}
    assert filled.dropped == ["branch", "parameters"]
    assert filled.missing == ["fullname", "build_type"]
    overridden = fill_arguments(BUILD_ITEM, {}, FACTS, {"job_name": "web-build", "build_type": "build"})
    assert overridden.args == {"fullname": "web-build", "build_type": "build"}
    assert overridden.renamed == ["job_name -> fullname"]
    assert overridden.problems == []


def test_an_override_outside_the_enum_is_still_a_problem_after_renaming() -> None:
    filled = fill_arguments(BUILD_ITEM, {}, FACTS, {"fullname": "web-build", "buildType": "deploy"})
    assert filled.renamed == ["buildType -> build_type"]
    assert filled.problems == ["build_type: 'deploy' is not one of ['build', 'buildWithParameters']"]


@pytest.mark.parametrize(
    "description", ["Container name", "Name of the node", "Branch to build", "Name of the file to read"]
)
def test_a_name_that_holds_something_else_gets_neither_the_subject_nor_a_deployment(description: str) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "description": description}}}
    filled = fill_arguments(schema, {"deployment_name": "{{ subject }}"}, FACTS, {})
    assert filled.args == {}
    assert filled.dropped == ["deployment_name"]


def test_an_undescribed_name_gets_the_subject_unless_a_more_specific_name_is_there() -> None:
    alone = {"type": "object", "properties": {"name": {"type": "string"}, "namespace": {}}}
    assert fill_arguments(alone, {}, FACTS, {}).args == {"name": "web", "namespace": "staging"}
    for specific in ("podName", "fullname", "deployment"):
        beside = {"type": "object", "properties": {"name": {"type": "string"}, specific: {"type": "string"}}}
        assert "name" not in fill_arguments(beside, {}, FACTS, {}).args


def test_facts_reach_parameters_by_spelling_and_synonym() -> None:
    schema = {"type": "object", "properties": {"deploymentName": {}, "ns": {}, "appName": {}, "app": {}}}
    filled = fill_arguments(schema, {}, FACTS, {})
    assert filled.args == {"deploymentName": "web", "ns": "staging", "appName": "web", "app": "web"}
    assert filled.inferred == ["deploymentName <- subject", "ns <- namespace", "appName <- subject"]


def test_a_count_gets_the_replicas_only_when_its_description_says_so() -> None:
    def count(description: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"count": {"type": "integer", "description": description}}}

    assert fill_arguments(count("Desired number of replicas"), {}, FACTS, {}).args == {"count": 5}
    assert fill_arguments(count("How many log lines"), {}, FACTS, {}).args == {}
    assert fill_arguments(count(""), {}, FACTS, {}).args == {}


TAIL_OR_LINES = {"type": "object", "properties": {"tail": {"type": "integer"}, "lines": {"type": "integer"}}}


def test_an_argument_two_parameters_could_take_is_dropped_and_says_why() -> None:
    filled = fill_arguments(TAIL_OR_LINES, {"tail_lines": 50}, FACTS, {})
    assert filled.args == {}
    assert filled.dropped == ["tail_lines"]
    assert filled.why_dropped == {"tail_lines": "could be tail or lines: name one of them"}


def test_an_ambiguous_override_is_a_problem() -> None:
    filled = fill_arguments(TAIL_OR_LINES, {}, FACTS, {"tail_lines": "50"})
    assert filled.problems == ["tail_lines: could be tail or lines: name one of them"]


def test_an_exact_name_beats_a_synonym_for_the_same_parameter() -> None:
    filled = fill_arguments(KUBECTL_LOGS, {"tail": 5, "tail_lines": 9}, FACTS, {})
    assert filled.args["tail"] == 5
    assert filled.dropped == ["tail_lines"]
    assert filled.why_dropped == {"tail_lines": "tail is already given as tail"}


def test_an_override_wins_over_the_playbook_whatever_either_is_called() -> None:
    filled = fill_arguments(KUBECTL_LOGS, LOG_CHECK, FACTS, {"labelSelector": "app=web,track=canary"})
    assert filled.args["labelSelector"] == "app=web,track=canary"
    filled = fill_arguments(KUBECTL_LOGS, LOG_CHECK, FACTS, {"label-selector": "tier=db", "tail": "20"})
    assert filled.args["labelSelector"] == "tier=db"
    assert filled.args["tail"] == 20


def test_an_override_that_matches_nothing_names_the_nearest_declared_names() -> None:
    filled = fill_arguments(KUBECTL_GET, {}, FACTS, {"label_selectr": "app=web"})
    [problem] = filled.problems
    assert problem.startswith(
        "label_selectr: not an argument of this tool (nearest: labelSelector, fieldSelector"
    )
    none = fill_arguments(
        {"type": "object", "properties": {}, "additionalProperties": False}, {}, {}, {"x": 1}
    )
    assert none.problems == ["x: not an argument of this tool (it takes none)"]


def test_an_open_schema_renames_what_it_declares_and_takes_the_rest_as_given() -> None:
    schema = {"type": "object", "properties": {"labelSelector": {}}, "additionalProperties": True}
    filled = fill_arguments(schema, {"label_selector": "app=web", "colour": "blue"}, FACTS, {"extra": 1})
    assert filled.args == {"labelSelector": "app=web", "colour": "blue", "extra": 1}
    assert filled.dropped == []


@pytest.mark.parametrize(
    ("prop", "text", "value"),
    [
        ({"type": "number"}, "200", 200),
        ({"type": "number"}, "0.5", 0.5),
        ({"type": "integer"}, "-3", -3),
        ({"type": "boolean"}, "True", True),
        ({"type": ["integer", "null"]}, "7", 7),
        ({"type": "string"}, "7", "7"),
        ({"type": "integer"}, "${steps.inspect.replicas}", "${steps.inspect.replicas}"),
    ],
)
def test_rendered_text_takes_the_type_the_renamed_parameter_asks_for(
    prop: dict[str, Any], text: str, value: object
) -> None:
    schema = {"type": "object", "properties": {"tailLines": prop}}
    filled = fill_arguments(schema, {"tail_lines": text}, {}, {})
    assert filled.args == {"tailLines": value}
    assert type(filled.args["tailLines"]) is type(value)


SPELLINGS = [
    "label_selector", "labelSelector", "label-selector", "selector", "labels",
    "tail_lines", "tailLines", "tail", "lines", "namespace", "ns", "Namespace",
    "name", "deployment_name", "deploymentName", "deployment", "app", "appName", "application",
    "fullname", "job_name", "image", "imageName", "replicas", "count", "replica_count",
    "wait_seconds", "timeoutSeconds", "container",
]  # fmt: skip
# Mostly names that meet (so renames, rivalries and ambiguity are common), some that meet nothing.
NAMES = st.one_of(
    st.sampled_from(SPELLINGS),
    st.sampled_from(SPELLINGS),
    st.sampled_from(SPELLINGS),
    st.from_regex(r"[a-z][a-zA-Z_\-]{0,8}", fullmatch=True),
)
DESCRIPTIONS = st.sampled_from(
    ["", "Name of the deployment", "Container name", "Number of replicas", "How many lines", "Name"]
)
SCHEMAS = st.builds(
    lambda props, extra: {"type": "object", "properties": props} | extra,
    st.dictionaries(NAMES, st.builds(lambda d: {"description": d}, DESCRIPTIONS), max_size=8),
    st.sampled_from([{}, {"additionalProperties": False}, {"additionalProperties": True}]),
)
VALUES = st.text(alphabet="abc=,", max_size=5) | st.integers()


def _targets(filled: FilledArguments, names: list[str]) -> dict[str, str]:
    renamed = dict(entry.split(" -> ") for entry in filled.renamed)
    return {name: renamed.get(name, name) for name in names if name not in filled.dropped}


@given(SCHEMAS, st.dictionaries(NAMES, VALUES, max_size=8))
def test_every_playbook_argument_is_sent_once_or_dropped(
    schema: dict[str, Any], templates: dict[str, Any]
) -> None:
    props = schema["properties"]
    filled = fill_arguments(schema, templates, FACTS, {})
    targets = _targets(filled, list(templates))
    assert set(filled.dropped) <= set(templates)
    assert len(set(targets.values())) == len(targets), "two arguments sent as one"
    for name, target in targets.items():
        assert filled.args[target] == templates[name]
    if not accepts_undeclared(schema):
        assert set(filled.args) <= set(props)
        assert set(targets.values()) <= set(props)


@given(SCHEMAS, st.dictionaries(NAMES, VALUES, max_size=8))
def test_an_exact_declared_name_is_never_renamed(schema: dict[str, Any], templates: dict[str, Any]) -> None:
    filled = fill_arguments(schema, templates, FACTS, {})
    for name in set(templates) & set(schema["properties"]):
        assert name not in filled.dropped
        assert not any(entry.startswith(f"{name} -> ") for entry in filled.renamed)
        assert filled.args[name] == templates[name]


@given(SCHEMAS, st.dictionaries(NAMES, VALUES, max_size=4))
def test_an_override_is_sent_under_a_declared_name_or_is_a_problem(
    schema: dict[str, Any], overrides: dict[str, Any]
) -> None:
    filled = fill_arguments(schema, {}, FACTS, overrides)
    targets = _targets(filled, list(overrides))
    for name, target in targets.items():
        sent = target in filled.args and filled.args[target] == overrides[name]
        complained = any(problem.startswith(f"{name}: ") for problem in filled.problems)
        assert sent != complained

"""Arguments are checked against the tool's JSON schema before a call is sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.cli.tools import parse_arguments
from opsmith.domain.catalog import ToolSpec
from opsmith.errors import ToolArgumentsError
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

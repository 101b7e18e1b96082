"""Runtime references `${steps.ID.path}`: types kept, text interpolated, every failure explained."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.errors import OperationError
from opsmith.engine.errors import UnresolvedReference
from opsmith.engine.references import RUNTIME_REF, referenced_steps, resolve
from opsmith.planner.templates import RUNTIME_REF as PLANNER_RUNTIME_REF

OUTPUTS: dict[str, dict[str, Any]] = {
    "build": {"image": {"name": "app", "tag": "1.4.2"}, "build_number": 42, "ok": True, "layers": ["a", "b"]},
    "scale": {"replicas": 3, "previous": None},
}


def test_same_pattern_as_the_planner() -> None:
    assert RUNTIME_REF.pattern == PLANNER_RUNTIME_REF.pattern


@pytest.mark.parametrize(
    ("ref", "value"),
    [
        ("${steps.build.build_number}", 42),
        ("${steps.build.ok}", True),
        ("${steps.build.image}", {"name": "app", "tag": "1.4.2"}),
        ("${steps.build.image.tag}", "1.4.2"),
        ("${steps.build.layers}", ["a", "b"]),
        ("${steps.build.layers.1}", "b"),
        ("${steps.scale.previous}", None),
    ],
)
def test_whole_string_reference_keeps_the_type(ref: str, value: object) -> None:
    assert resolve({"x": ref}, OUTPUTS, step_id="deploy") == {"x": value}


def test_reference_in_text_is_interpolated() -> None:
    args = {
        "image": "registry/${steps.build.image.name}:${steps.build.image.tag}",
        "note": "build #${steps.build.build_number} ok=${steps.build.ok} was ${steps.scale.previous}",
        "obj": "meta=${steps.build.image}",
    }
    assert resolve(args, OUTPUTS, step_id="deploy") == {
        "image": "registry/app:1.4.2",
        "note": "build #42 ok=true was null",
        "obj": 'meta={"name": "app", "tag": "1.4.2"}',
    }


def test_nested_arguments_and_plain_values() -> None:
    args = {
        "spec": {"replicas": "${steps.scale.replicas}", "labels": ["v${steps.build.image.tag}", "fixed"]},
        "count": 2,
        "flag": False,
        "text": "no reference, $HOME and ${not.a.ref}",
    }
    assert resolve(args, OUTPUTS, step_id="deploy") == {
        "spec": {"replicas": 3, "labels": ["v1.4.2", "fixed"]},
        "count": 2,
        "flag": False,
        "text": "no reference, $HOME and ${not.a.ref}",
    }


def test_resolved_values_are_copies() -> None:
    resolved = resolve({"image": "${steps.build.image}"}, OUTPUTS, step_id="deploy")
    resolved["image"]["tag"] = "changed"
    assert OUTPUTS["build"]["image"]["tag"] == "1.4.2"


def test_input_args_are_not_changed() -> None:
    args = {"a": ["${steps.scale.replicas}"]}
    resolve(args, OUTPUTS, step_id="deploy")
    assert args == {"a": ["${steps.scale.replicas}"]}


def test_missing_path_names_step_reference_and_keys() -> None:
    with pytest.raises(UnresolvedReference) as caught:
        resolve({"spec": {"tag": "${steps.build.image.version}"}}, OUTPUTS, step_id="deploy")
    assert caught.value.message == (
        "step deploy: args.spec.tag refers to ${steps.build.image.version}, but step build's output "
        "has no image.version (it had: build_number, image, layers, ok)"
    )
    assert "fix the path" in (caught.value.hint or "")
    assert isinstance(caught.value, OperationError)


def test_missing_path_in_text_and_lists() -> None:
    with pytest.raises(UnresolvedReference, match=r"args.tags\[1\] refers to \$\{steps.build.layers.5\}"):
        resolve({"tags": ["x", "v${steps.build.layers.5}"]}, OUTPUTS, step_id="deploy")


def test_step_that_has_not_succeeded() -> None:
    with pytest.raises(UnresolvedReference) as caught:
        resolve({"n": "${steps.test.count}"}, OUTPUTS, step_id="deploy", known_steps=["build", "test"])
    assert caught.value.message == (
        "step deploy: args.n refers to ${steps.test.count}, "
        "but step test has not succeeded, so it has no output"
    )
    assert caught.value.hint == "make deploy depend on test so that it runs after it"


def test_unknown_step() -> None:
    with pytest.raises(UnresolvedReference) as caught:
        resolve({"n": "${steps.biuld.image}"}, OUTPUTS, step_id="deploy", known_steps=["build", "deploy"])
    assert (
        caught.value.message
        == "step deploy: args.n refers to ${steps.biuld.image}, but the plan has no step 'biuld'"
    )
    assert caught.value.hint == "use one of the plan's steps (build, deploy) and re-plan"


def test_step_without_output() -> None:
    outputs: dict[str, dict[str, Any] | None] = {"build": None}
    with pytest.raises(UnresolvedReference, match="but step build returned no output"):
        resolve({"n": "${steps.build.image}"}, outputs, step_id="deploy")


def test_empty_output_says_so() -> None:
    with pytest.raises(UnresolvedReference, match=r"has no image \(it had: no keys\)"):
        resolve({"n": "${steps.build.image}"}, {"build": {}}, step_id="deploy")


def test_referenced_steps() -> None:
    args = {"a": "${steps.build.x} ${steps.scan.y}", "b": ["${steps.build.z}"], "c": {"d": "${steps.test.k}"}}
    assert referenced_steps(args) == ["build", "scan", "test"]
    assert referenced_steps(3) == []

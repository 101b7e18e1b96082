"""Playbook files are validated on load; --set values are parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.errors import PlaybookError, UsageError
from opsmith.planner.playbooks import load_playbooks, parse_playbook
from opsmith.services.planning import parse_overrides


def playbook(*steps: dict[str, object]) -> dict[str, object]:
    return {
        "name": "custom",
        "description": "d",
        "title": "t",
        "match": {"actions": ["deploy"]},
        "steps": list(steps),
    }


def test_the_bundled_playbooks_load() -> None:
    names = {p.name for p in load_playbooks()}
    assert {
        "production_deployment",
        "production_canary",
        "urgent_hotfix",
        "rollback",
        "scale",
        "delete",
        "multi_service",
        "status",
        "environment_deployment",
    } <= names


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [
                {"id": "a", "capability": "build", "name": "A", "depends_on": ["b"]},
                {"id": "b", "capability": "test", "name": "B", "depends_on": ["a"]},
            ],
            "cycle: a -> b -> a",
        ),
        ([{"id": "a", "capability": "teleport", "name": "A"}], "unknown capability 'teleport'"),
        ([{"id": "a", "capability": "build", "name": "A", "depends_on": ["zz"]}], "unknown step 'zz'"),
        ([{"id": "a", "capability": "build", "name": "{{ oops"}], "template '{{ oops'"),
        (
            [{"id": "a", "capability": "build", "name": "A", "args": {"x": "${steps.nope.id}"}}],
            "unknown step 'nope'",
        ),
        ([{"id": "a", "capability": "build", "name": "A", "colour": "red"}], "steps.0.colour: unknown key"),
        ([{"id": "A b", "capability": "build", "name": "A"}], "steps.0.id"),
        (
            [
                {"id": "a", "capability": "build", "name": "A"},
                {
                    "id": "b",
                    "capability": "test",
                    "name": "B",
                    "when": [{"step": "c", "path": "x", "op": "truthy"}],
                },
                {"id": "c", "capability": "test", "name": "C"},
            ],
            "when: refers to 'c', which is not an earlier step",
        ),
        (
            [{"id": "a", "capability": "build", "name": "A", "expect": [{"path": "x", "op": "~="}]}],
            "steps.0.expect.0.op",
        ),
    ],
)
def test_inconsistent_playbooks_are_refused_with_the_reason(
    steps: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(playbook(*steps), source="custom.yaml")
    assert message in caught.value.message
    assert caught.value.message.startswith("custom.yaml")


def test_user_directory_replaces_a_bundled_playbook(tmp_path: Path) -> None:
    (tmp_path / "scale.yaml").write_text(
        "name: scale\ndescription: mine\ntitle: t\nmatch: {actions: [scale]}\n"
        "steps:\n  - {id: scale, capability: scale, name: Scale}\n"
    )
    mine = next(p for p in load_playbooks([tmp_path]) if p.name == "scale")
    assert mine.description == "mine"
    with pytest.raises(PlaybookError, match="does not exist"):
        load_playbooks([tmp_path / "missing"])
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        load_playbooks([tmp_path])


def test_set_values_are_typed() -> None:
    assert parse_overrides(["replicas=3", "deploy.image=myorg/app:v2", "dry=true", "note="]) == {
        "replicas": 3,
        "deploy.image": "myorg/app:v2",
        "dry": True,
        "note": "",
    }


@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_set_values_parse_or_give_one_usage_error(items: list[str]) -> None:
    try:
        result = parse_overrides(items)
    except UsageError as error:
        assert error.message.startswith("--set")
    else:
        assert len(result) <= len(items)


def test_a_file_is_parsed_again_only_when_it_changed(tmp_path: Path) -> None:
    from opsmith.planner.playbooks import cached_by_stat

    path = tmp_path / "one.yaml"
    path.write_text("a: 1\n")
    reads: list[str] = []

    def load(p: Path) -> str:
        reads.append(p.read_text())
        return p.read_text()

    assert cached_by_stat(path, load) == "a: 1\n"
    assert cached_by_stat(path, load) == "a: 1\n" and len(reads) == 1, "unchanged: not read again"
    path.write_text("a: 22\n")
    assert cached_by_stat(path, load) == "a: 22\n" and len(reads) == 2, "edited: read again at once"

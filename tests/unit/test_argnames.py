"""Argument names are matched across spellings and synonyms, never to two parameters at once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.planner.argnames import (
    SYNONYMS,
    Match,
    canonical,
    match,
    nearest,
    normalise,
    place,
    says,
    synonyms,
)

WORDS = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True), min_size=1, max_size=4)


@given(WORDS)
def test_every_spelling_of_an_identifier_has_one_key(words: list[str]) -> None:
    spellings = {
        "_".join(words),
        "-".join(words),
        words[0] + "".join(w.capitalize() for w in words[1:]),
        "".join(w.capitalize() for w in words),
        "_".join(words).upper(),
    }
    assert len({normalise(s) for s in spellings}) == 1


@pytest.mark.parametrize("spelling", ["labelSelector", "label-selector", "LabelSelector", "LABEL_SELECTOR"])
def test_spellings_of_label_selector_meet(spelling: str) -> None:
    assert normalise(spelling) == normalise("label_selector")


def test_each_name_belongs_to_one_synonym_group() -> None:
    keys = [normalise(name) for group in SYNONYMS for name in group]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("labelSelector", "label_selector"), ("ns", "namespace"), ("fullname", "job"), ("colour", None)],
)
def test_canonical_is_the_first_name_of_the_group(name: str, expected: str | None) -> None:
    assert canonical(name) == expected


def test_synonyms_leave_the_name_itself_out() -> None:
    assert synonyms("tailLines") == {"tail", "lines"}
    assert synonyms("colour") == frozenset()


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Name of the deployment to scale", True),
        ("Name of the resource", True),
        (
            "Name of the resource (optional - if not provided, lists all resources of the specified type)",
            True,
        ),
        ("Container name (required when pod has multiple containers)", False),
        ("The node to drain", False),
        ("Branch to build", False),
        ("Name of the file", False),
        ("The name", None),
    ],
)
def test_a_generic_name_is_read_by_the_first_kind_its_description_names(
    description: str, expected: bool | None
) -> None:
    assert says("name", {"type": "string", "description": description}) is expected


def test_a_specific_parameter_has_nothing_to_say() -> None:
    assert says("namespace", {"description": "Name of the deployment"}) is None
    assert says("name", {"type": "string"}) is None


PROPS = {"labelSelector": {}, "tail": {}, "lines": {}, "ns": {}, "name": {"description": "Container name"}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tail", Match("tail", "exact")),
        ("label_selector", Match("labelSelector", "spelling")),
        ("selector", Match("labelSelector", "synonym")),
        ("namespace", Match("ns", "synonym")),
        ("tail_lines", Match(None, candidates=("tail", "lines"))),
        # The only `name` holds a container: no place for a deployment's name.
        ("deployment_name", Match(None)),
        ("colour", Match(None)),
    ],
)
def test_match_prefers_exact_then_spelling_then_synonym(name: str, expected: Match) -> None:
    assert match(name, PROPS) == expected


def test_a_spelling_beats_a_synonym_for_the_same_parameter() -> None:
    assert match("labels", {"labels": {}, "labelSelector": {}}) == Match("labels", "exact")
    assert match("label_selector", {"labels": {}, "labelSelector": {}}) == Match("labelSelector", "spelling")


def test_two_spellings_declared_make_a_third_ambiguous() -> None:
    found = match("label-selector", {"label_selector": {}, "labelSelector": {}})
    assert found == Match(None, candidates=("label_selector", "labelSelector"))


def test_one_parameter_takes_the_best_of_the_arguments_that_fill_it() -> None:
    placement = place(["selector", "label_selector", "tail", "tail_lines"], PROPS, open_schema=False)
    assert placement.placed == {"label_selector": "labelSelector", "tail": "tail"}
    assert placement.unplaced == {
        "selector": "labelSelector is already given as label_selector",
        "tail_lines": "could be tail or lines: name one of them",
    }
    assert placement.renamed == ["label_selector -> labelSelector"]


def test_arguments_tied_for_one_parameter_are_all_left_out() -> None:
    placement = place(["label_selector", "label-selector"], {"labelSelector": {}}, open_schema=False)
    assert placement.placed == {}
    assert placement.unplaced == {
        "label_selector": "label-selector also gives labelSelector",
        "label-selector": "label_selector also gives labelSelector",
    }


def test_an_open_schema_takes_what_matches_nothing_under_its_own_name() -> None:
    placement = place(["label_selector", "colour"], {"labelSelector": {}}, open_schema=True)
    assert placement.placed == {"label_selector": "labelSelector", "colour": "colour"}
    closed = place(["label_selector", "colour"], {"labelSelector": {}}, open_schema=False)
    assert closed.unknown == ["colour"]


def test_nearest_compares_keys() -> None:
    assert nearest("label_selectr", ["namespace", "labelSelector", "fieldSelector"])[0] == "labelSelector"
    assert nearest("anything", []) == []

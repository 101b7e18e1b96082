"""Tool catalog and annotation hints."""

from __future__ import annotations

import pytest

from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec


@pytest.mark.parametrize(
    ("hints", "labels"),
    [
        (ToolHints(), ["unannotated"]),
        (ToolHints(read_only=True, idempotent=True), ["read-only", "idempotent"]),
        (ToolHints(read_only=False), ["destructive"]),  # the spec's default for a writing tool
        (ToolHints(read_only=False, destructive=False), ["writes"]),
        (ToolHints(destructive=True, open_world=True), ["destructive", "open-world"]),
    ],
)
def test_hint_labels_follow_the_mcp_defaults(hints: ToolHints, labels: list[str]) -> None:
    assert hints.labels() == labels


def test_a_server_part_is_replaced_whole() -> None:
    catalog = Catalog(
        [ToolSpec(server="a", name="x"), ToolSpec(server="a", name="y"), ToolSpec(server="b", name="z")]
    )
    catalog.replace_server("a", [ToolSpec(server="a", name="w")])
    assert [t.qualified_name for t in catalog] == ["a/w", "b/z"]
    catalog.remove_server("b")
    assert len(catalog) == 1 and catalog.servers() == ["a"]


def test_summary_is_the_first_description_line() -> None:
    assert ToolSpec(server="s", name="t", description="Deploy it.\nMore words.").summary == "Deploy it."
    assert ToolSpec(server="s", name="t", title="Title only").summary == "Title only"

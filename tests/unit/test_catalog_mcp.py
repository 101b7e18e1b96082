"""`mcp_tool_json`: a discovered tool in the MCP spec's own `Tool` shape, plus its server."""

from __future__ import annotations

from typing import Any

import mcp.types
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.catalog import ToolHints, ToolSpec, mcp_tool_json


def test_a_fully_described_tool_uses_the_mcp_wire_names() -> None:
    tool = ToolSpec(
        server="kubernetes",
        name="kubectl_rollout",
        title="Rollout",
        description="Manage a rollout.",
        input_schema={"type": "object", "properties": {"subCommand": {"type": "string"}}},
        output_schema={"type": "object"},
        hints=ToolHints(read_only=False, destructive=True, idempotent=False, open_world=True),
    )
    assert mcp_tool_json(tool) == {
        "server": "kubernetes",
        "name": "kubectl_rollout",
        "title": "Rollout",
        "description": "Manage a rollout.",
        "inputSchema": {"type": "object", "properties": {"subCommand": {"type": "string"}}},
        "outputSchema": {"type": "object"},
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": True,
        },
    }


def test_what_the_server_did_not_declare_is_left_out() -> None:
    assert mcp_tool_json(ToolSpec(server="s", name="t")) == {
        "server": "s",
        "name": "t",
        "inputSchema": {"type": "object"},
    }


def test_only_declared_hints_appear_and_false_is_kept() -> None:
    tool = ToolSpec(server="s", name="t", hints=ToolHints(read_only=False))
    assert mcp_tool_json(tool)["annotations"] == {"readOnlyHint": False}


def test_no_invented_names_remain() -> None:
    data = mcp_tool_json(ToolSpec(server="s", name="t", hints=ToolHints(read_only=True)))
    assert not {"input_schema", "output_schema", "hints"} & set(data)
    assert data["annotations"] == {"readOnlyHint": True}


_schemas = st.dictionaries(
    st.sampled_from(["type", "title", "required"]), st.text(max_size=5), max_size=3
).map(lambda d: {**d, "type": "object"})
_flags = st.none() | st.booleans()


@st.composite
def tools(draw: st.DrawFn) -> ToolSpec:
    return ToolSpec(
        server=draw(st.text(min_size=1, max_size=10)),
        name=draw(st.text(min_size=1, max_size=20)),
        title=draw(st.none() | st.text(max_size=20)),
        description=draw(st.text(max_size=40)),
        input_schema=draw(_schemas),
        output_schema=draw(st.none() | _schemas),
        hints=ToolHints(
            read_only=draw(_flags), destructive=draw(_flags), idempotent=draw(_flags), open_world=draw(_flags)
        ),
    )


@given(tools())
def test_the_official_sdk_reads_it_back_unchanged(tool: ToolSpec) -> None:
    # The SDK's Tool model is the reference for the spec's names: what it parses from our JSON
    # and writes back (camelCase, nulls dropped) must be exactly what we wrote, minus `server`.
    data: dict[str, Any] = mcp_tool_json(tool)
    assert data.pop("server") == tool.server
    parsed = mcp.types.Tool.model_validate(data)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_none=True) == data
    assert parsed.name == tool.name and parsed.input_schema == tool.input_schema

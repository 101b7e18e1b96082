"""The one serialisation of runs for every face: large outputs bounded, and pageable whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState, StepState, StepStatus
from opsmith.services.views import TAIL, bounded, event_json, output_page

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)


def state_with(output: dict[str, Any]) -> RunState:
    step = StepState(step_id="logs", status=StepStatus.SUCCEEDED, output=output, completed_seq=1)
    return RunState(run_id="run_1", plan_id="plan_1", plan_hash="sha256:x", steps={"logs": step})


@given(value=json_values, limit=st.integers(min_value=1, max_value=400))
def test_a_value_is_kept_whole_or_replaced_by_its_tail_and_size(value: Any, limit: int) -> None:
    text = json.dumps(value)
    kept = bounded(value, limit)
    if value is None or len(text) <= limit:  # nothing is no output, not a truncated "null"
        assert kept == value
    else:
        assert kept == {"truncated": True, "chars": len(text), "tail": text[-TAIL:]}


@given(
    output=st.dictionaries(st.text(max_size=10), json_values, max_size=8),
    limit=st.integers(min_value=1, max_value=200),
)
def test_pages_of_a_step_output_put_together_are_the_whole_output(output: dict[str, Any], limit: int) -> None:
    state = state_with(output)
    text, pieces, offset = json.dumps(output), [], 0
    while offset is not None:
        page = output_page(state, "logs", offset, limit)
        assert page["chars"] == len(text) and len(page["text"]) <= limit
        pieces.append(page["text"])
        offset = page["next_offset"]
    assert "".join(pieces) == text


@given(output=st.dictionaries(st.text(max_size=10), json_values, max_size=8), tail=st.integers(1, 300))
def test_a_negative_offset_reads_the_tail(output: dict[str, Any], tail: int) -> None:
    text = json.dumps(output)
    page = output_page(state_with(output), "logs", -tail, 10_000)
    assert page["text"] == text[-tail:] and page["next_offset"] is None


def test_an_event_with_a_huge_output_is_sent_with_its_tail_only() -> None:
    lines = [f"line {i}: " + "x" * 80 for i in range(20_000)]
    event = RunEvent(
        run_id="run_1",
        seq=7,
        at=datetime.now(UTC),
        type=EventType.STEP_SUCCEEDED,
        step_id="logs",
        data={"output": {"lines": lines}, "attempt": 1},
    )
    shown = event_json(event)
    assert shown["data"]["attempt"] == 1 and shown["data"]["output"]["truncated"] is True
    assert shown["data"]["output"]["tail"].endswith('"]}') and "line 19999" in shown["data"]["output"]["tail"]
    assert len(json.dumps(shown)) < 10_000

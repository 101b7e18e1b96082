"""A step's output as checks and later steps see it: the tool's structured content (or its text),
with the fields the step's binding reads from it added."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsmith.domain.extraction import extract
from opsmith.domain.plan import Step
from opsmith.domain.results import ToolResult


def step_output(step: Step, result: ToolResult, args: Mapping[str, Any]) -> dict[str, Any]:
    output = dict(result.structured) if result.structured is not None else {"text": result.text}
    if step.extract:
        # Read fields never replace what the tool itself returned under the same name.
        read = extract(step.extract, structured=result.structured, text=result.text, args=args)
        output = {**read, **output}
    return output


def settle_pause(settle: float | None, elapsed: float) -> float | None:
    """How long to wait before asking a settling check again, or None when its time is up.

    About a dozen polls over the time allowed, at least 1 s and at most 5 s apart."""
    if settle is None:
        return None
    pause = min(5.0, max(1.0, settle / 12))
    return pause if elapsed + pause <= settle else None


__all__ = ["settle_pause", "step_output"]

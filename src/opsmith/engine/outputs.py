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


__all__ = ["step_output"]

"""The outcome of one tool call, as the engine and every face of opsmith see it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ToolResult(BaseModel):
    """A successful tool call: its structured content when the tool gave one, and its text."""

    model_config = ConfigDict(frozen=True)

    server: str
    tool: str
    structured: dict[str, Any] | None = None
    text: str = ""
    duration_ms: float = 0.0

    @property
    def data(self) -> Any:
        """Structured content if present, else the text."""
        return self.structured if self.structured is not None else self.text

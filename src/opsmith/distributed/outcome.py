"""A call's outcome as a worker stores it, and back: the ToolResult, or the error with the
semantics the engine's retry rules read (its type, `retryable`, whether the call may have run)."""

from __future__ import annotations

from typing import Any

from opsmith.domain.errors import (
    ConnectionLostError,
    OpsmithError,
    ServerUnavailableError,
    ToolArgumentsError,
    ToolCallError,
)
from opsmith.domain.results import ToolResult
from opsmith.engine.local import StepTimedOut


def of_result(result: ToolResult) -> dict[str, Any]:
    return {"ok": True, "result": result.model_dump(mode="json")}


def of_error(error: OpsmithError) -> dict[str, Any]:
    if isinstance(error, ConnectionLostError):
        kind = "connection_lost"
    elif isinstance(error, ServerUnavailableError):
        kind = "unavailable"
    elif isinstance(error, ToolArgumentsError):
        kind = "arguments"
    elif isinstance(error, StepTimedOut):
        kind = "timeout"
    else:
        kind = "failed"
    output = error.output if isinstance(error, ToolCallError) else None
    return {
        "ok": False,
        "kind": kind,
        "message": error.message,
        "hint": error.hint,
        "retryable": error.retryable,
        "output": output,
    }


def decoded(outcome: dict[str, Any]) -> ToolResult | OpsmithError:
    """What the call came to, as the engine's own call would have returned or raised it."""
    if outcome.get("ok"):
        return ToolResult.model_validate(outcome["result"])
    message, hint = str(outcome.get("message", "the call failed")), outcome.get("hint")
    kind = outcome.get("kind")
    if kind == "connection_lost":
        return ConnectionLostError(message, hint=hint)
    if kind == "unavailable":
        return ServerUnavailableError(message, hint=hint)
    if kind == "arguments":
        return ToolArgumentsError(message, hint=hint)
    if kind == "timeout":
        return StepTimedOut(message, hint=hint)
    output = outcome.get("output")
    return ToolCallError(
        message,
        hint=hint,
        retryable=bool(outcome.get("retryable")),
        output=output if isinstance(output, dict) else None,
    )

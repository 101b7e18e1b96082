"""Translate what the MCP SDK and the transports raise into opsmith's own errors."""

from __future__ import annotations

import httpx2
import mcp_types as types
from mcp import MCPError

from opsmith.errors import (
    ConnectionLostError,
    OpsmithError,
    ServerUnavailableError,
    ToolArgumentsError,
    ToolCallError,
)

# JSON-RPC codes after which the same call may well succeed if sent again.
_RETRYABLE_CODES = {types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT, -32603}


def root_cause(exc: BaseException) -> BaseException:
    """The innermost meaningful exception of a (nested) ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not _is_cancel(e)] or list(exc.exceptions)
        exc = inner[0]
    return exc


def describe(exc: BaseException) -> str:
    """One line a person can read, for status reasons and logs."""
    exc = root_cause(exc)
    if isinstance(exc, OpsmithError):
        return exc.message
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot connect: {exc}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start: {exc.strerror}: {exc.filename}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_connection_loss(exc: BaseException) -> bool:
    exc = root_cause(exc)
    if isinstance(exc, MCPError):
        return exc.code == types.CONNECTION_CLOSED
    return isinstance(exc, httpx2.TransportError | ConnectionError | EOFError)


def never_sent(exc: BaseException) -> bool:
    """Whether the request surely did not reach the server: no connection to it was ever made."""
    exc = root_cause(exc)
    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | ConnectionRefusedError)


def call_failure(server: str, tool: str, exc: BaseException, timeout: float) -> OpsmithError:
    """The opsmith error for a tools/call that raised instead of returning a result."""
    cause = root_cause(exc)
    if isinstance(cause, OpsmithError):
        return cause
    if isinstance(cause, MCPError) and cause.code == types.INVALID_PARAMS:
        return ToolArgumentsError(
            f"{server}/{tool} rejected its arguments: {cause.message}",
            hint=f"see the tool's input schema with: opsmith tools --server {server} --json",
        )
    if never_sent(cause):
        return ServerUnavailableError(
            f"cannot reach server {server!r} to call {tool}: {describe(cause)}",
            hint=f"check that it is running: `opsmith servers status {server}`",
        )
    if is_connection_loss(cause):
        # The SDK reports a connection that ended before, during or after the request was written
        # with the same code: the call may have reached the server.
        return ConnectionLostError(
            f"server {server!r} closed the connection during {tool}: {describe(cause)}",
            hint=f"opsmith restarts it; see its log and `opsmith servers status {server}`",
        )
    timed_out = isinstance(cause, MCPError) and cause.code == types.REQUEST_TIMEOUT
    if timed_out or isinstance(cause, TimeoutError):
        return ToolCallError(
            f"{server}/{tool} did not answer within {timeout:g}s",
            hint=f"raise call_timeout for server {server!r}, or check the server's log",
            retryable=True,
        )
    retryable = isinstance(cause, MCPError) and cause.code in _RETRYABLE_CODES
    return ToolCallError(f"{server}/{tool} failed: {describe(cause)}", retryable=retryable)


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError | GeneratorExit)

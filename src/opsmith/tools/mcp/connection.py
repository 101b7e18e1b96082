"""One configured MCP server: its session, its child's stderr, its health, its restarts.

Each session lives in a task of its own because the SDK's contexts (anyio task groups)
must be entered and left by the same task; callers only ever see `start`, `stop`,
`call` and `status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from opsmith import __version__
from opsmith.config import ServerConfig, StdioServerConfig, SupervisionConfig
from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.redaction import Redactor
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import Health, ServerStatus
from opsmith.errors import ConfigError, OpsmithError, ServerUnavailableError, ToolCallError
from opsmith.tools.mcp.failures import call_failure, describe, is_connection_loss
from opsmith.tools.mcp.stderr import StderrCapture
from opsmith.tools.mcp.transport import ResolvedServer, open_transport, resolve_server

ToolsListener = Callable[[str, list[ToolSpec]], None]

_MAX_PAGES = 1000
_STABLE_AFTER = 30.0  # a session that lived this long resets the restart backoff


class ServerConnection:
    """Start, watch, restart and call one MCP server."""

    def __init__(
        self,
        name: str,
        spec: ServerConfig,
        *,
        environ: Mapping[str, str],
        log_dir: Path,
        supervision: SupervisionConfig,
        on_tools: ToolsListener,
    ) -> None:
        self.name = name
        self.spec = spec
        self._environ = environ
        self._log_file = log_dir / f"{name}.log"
        self._supervision = supervision
        self._on_tools = on_tools
        self._health = Health.STOPPED
        self._reason: str | None = "not started"
        self._last_error: str | None = None
        self._failure: OpsmithError | None = None
        self._tools: list[ToolSpec] = []
        self._client: Client | None = None
        self._capture: StderrCapture | None = None
        self._redactor = Redactor()
        self._noise: str | None = None
        self._started_at: datetime | None = None
        self._started_mono: float | None = None
        self._restarts = 0
        self._protocol: str | None = None
        self._server_info: str | None = None
        self._title: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._background: set[asyncio.Task[Any]] = set()

    # -- what callers use -------------------------------------------------------------------

    @property
    def tools(self) -> list[ToolSpec]:
        return list(self._tools)

    @property
    def transport(self) -> str:
        return "stdio" if isinstance(self.spec, StdioServerConfig) else "http"

    def status(self) -> ServerStatus:
        uptime = None
        if self._health in (Health.UP, Health.DEGRADED) and self._started_mono is not None:
            uptime = round(time.monotonic() - self._started_mono, 3)
        return ServerStatus(
            name=self.name,
            transport=self.transport,
            health=self._health,
            reason=self._reason,
            tool_count=len(self._tools),
            last_error=self._last_error,
            started_at=self._started_at,
            uptime_seconds=uptime,
            restarts=self._restarts,
            log_file=str(self._log_file) if self.transport == "stdio" else None,
            protocol_version=self._protocol,
            server_info=self._server_info,
            title=self._title,
        )

    async def start(self) -> ServerStatus:
        """Start the server and wait until it is up or has failed (within its timeout)."""
        if self._runner is not None and not self._runner.done():
            return self.status()
        self._stopping = False
        self._restarts = 0
        self._failure = None
        first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._supervise(first), name=f"mcp-{self.name}")
        await first
        return self.status()

    async def stop(self) -> None:
        """Stop the session (the SDK closes stdin, then terminates the child's process group)."""
        self._stopping = True
        self._lost.set()
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(runner), timeout=10.0)
            except TimeoutError:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        self._set(Health.STOPPED, "stopped by opsmith")

    async def call(self, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> ToolResult:
        """Call a tool; an `isError` result raises ToolCallError, never returns."""
        client = self._client
        if client is None or self._lost.is_set():
            # Nothing is sent to a server that is down or whose session is ending: a caller may
            # send the call again later without risk of running it twice.
            if isinstance(self._failure, ConfigError):
                raise self._failure
            raise ServerUnavailableError(
                f"cannot call {self.name}/{tool}: the server is {self._health.value}: {self._reason}",
                hint=f"check `opsmith servers status {self.name}` and its log {self._log_file}",
            )
        limit = timeout or self.spec.call_timeout
        started = time.perf_counter()
        try:
            result = await client.call_tool(tool, arguments, read_timeout_seconds=limit)
        except Exception as exc:
            if is_connection_loss(exc):
                self._connection_lost(describe(exc))
            error = _redacted(call_failure(self.name, tool, exc, limit), self._redactor)
            if error is exc:
                raise
            raise error from exc
        elapsed = (time.perf_counter() - started) * 1000
        # Redacted here, at the one door results come in by: nothing after it (the run state,
        # events, the database, every face) ever holds a secret the server was given.
        text = self._redact(_text_of(result.content))
        structured = self._redactor.data(result.structured_content)
        if result.is_error:
            raise ToolCallError(
                f"{self.name}/{tool} reported an error: {text or 'no message'}",
                hint="the tool ran and refused or failed; read its message",
                output=structured,
            )
        return ToolResult(
            server=self.name,
            tool=tool,
            structured=structured,
            text=text,
            duration_ms=round(elapsed, 3),
        )

    # -- supervision ------------------------------------------------------------------------

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        delay = self._supervision.backoff_initial
        try:
            while True:
                began = time.monotonic()
                reached = await self._attempt(lambda: _resolve(first))
                _resolve(first)
                if self._stopping or (not reached and self._restarts == 0):
                    return  # a server that never came up is reported down, not retried in a loop
                if time.monotonic() - began >= _STABLE_AFTER:
                    delay = self._supervision.backoff_initial
                if self._restarts >= self._supervision.max_restarts:
                    self._set(
                        Health.DOWN,
                        f"gave up after {self._restarts} restarts; last error: {self._last_error}",
                    )
                    return
                self._set(Health.DOWN, f"restarting in {delay:.1f}s after: {self._last_error}")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                if self._stopping:
                    return
                delay = min(delay * 2, self._supervision.backoff_max)
                self._restarts += 1
        finally:
            _resolve(first)

    async def _attempt(self, on_ready: Callable[[], None]) -> bool:
        """Run one session until it ends; True if it got as far as listing tools."""
        self._lost = asyncio.Event()
        self._noise = None
        self._set(Health.STARTING, "starting")
        try:
            resolved = resolve_server(self.name, self.spec, self._environ)
        except ConfigError as exc:
            self._fail(exc)
            return False
        self._redactor = Redactor(resolved.secrets)
        capture = None
        if resolved.command is not None:
            capture = StderrCapture(self.name, self._log_file, resolved.secrets, self._child_exited)
        self._capture = capture
        ready = asyncio.Event()
        session = asyncio.create_task(self._session(resolved, capture, ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({session, waiter}, timeout=self.spec.timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if ready.is_set():
            on_ready()
            await asyncio.gather(session, return_exceptions=True)
            if not self._stopping and self._last_error is None:
                self._last_error = "session ended"
            return True
        if not session.done():
            self._fail(
                ServerUnavailableError(
                    self._with_stderr(
                        f"did not finish initialize and tools/list within {self.spec.timeout:g}s"
                        + (f"; it wrote non-MCP output to stdout: {self._noise}" if self._noise else "")
                    )
                )
            )
            on_ready()  # report the failure now; taking the child down may take a few seconds more
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)
        else:
            error = session.exception()
            self._fail(ServerUnavailableError(self._with_stderr(self._startup_reason(error))))
        return False

    async def _session(
        self, resolved: ResolvedServer, capture: StderrCapture | None, ready: asyncio.Event
    ) -> None:
        try:
            if capture is not None:
                await capture.start()
            async with AsyncExitStack() as stack:
                transport = open_transport(resolved, capture.child_end if capture else None)
                client = Client(
                    transport,
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="opsmith", version=__version__),
                )
                await stack.enter_async_context(client)
                if capture is not None:
                    capture.release_child_end()
                self._protocol = client.protocol_version
                info = client.server_info
                self._server_info = f"{info.name} {info.version}".strip() if info else None
                self._title = (info.title or None) if info else None
                await self._refresh_tools(client)
                self._client = client
                self._started_at = datetime.now(UTC)
                self._started_mono = time.monotonic()
                self._last_error = None
                self._set(Health.UP, None)
                ready.set()
                async with anyio.create_task_group() as group:
                    group.start_soon(self._watch_health, client)
                    group.start_soon(self._listen_for_changes, client)
                    await self._lost.wait()
                    group.cancel_scope.cancel()
        finally:
            self._client = None
            if capture is not None:
                await capture.close()

    async def _refresh_tools(self, client: Client) -> None:
        tools: list[types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor or cursor in seen:
                break
            seen.add(cursor)
        self._tools = [_spec(self.name, tool) for tool in tools]
        self._on_tools(self.name, self.tools)

    async def _watch_health(self, client: Client) -> None:
        interval = self._supervision.health_interval
        limit = min(self.spec.timeout, interval)
        while True:
            await anyio.sleep(interval)
            try:
                with anyio.fail_after(limit):
                    await self._probe(client)
            except TimeoutError:
                self._set(Health.DEGRADED, f"did not answer a health probe within {limit:g}s")
                continue
            except Exception as exc:
                if is_connection_loss(exc):
                    self._connection_lost(describe(exc))
                    return
                self._set(Health.DEGRADED, f"health probe failed: {self._redact(describe(exc))}")
                continue
            if self._health is Health.DEGRADED:
                self._set(Health.UP, None)

    async def _probe(self, client: Client) -> None:
        # ping was removed in protocol 2026-07-28; there a fresh tools/list is the cheapest
        # request every server must answer, and it also catches unannounced tool changes.
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            await self._refresh_tools(client)
        else:
            await client.send_ping()

    async def _listen_for_changes(self, client: Client) -> None:
        # Protocol 2026-07-28 delivers list changes only on a subscription; older protocols
        # send a notification to `_on_message` instead, so not supporting listen is normal.
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._refresh_after_change(client)
        except ListenNotSupportedError:
            return
        except Exception as exc:
            self._last_error = self._redact(f"change subscription ended: {describe(exc)}")

    async def _refresh_after_change(self, client: Client) -> None:
        try:
            await self._refresh_tools(client)
        except Exception as exc:
            self._set(Health.DEGRADED, self._redact(f"tools/list failed after a change: {describe(exc)}"))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            # Typically a line on stdout that is not JSON-RPC: note it, it explains later failures.
            self._noise = self._redact(_offending_line(message))[:200]
            self._last_error = f"non-MCP output on stdout: {self._noise}"
            return
        if isinstance(message, types.ToolListChangedNotification) and self._client is not None:
            task = asyncio.create_task(self._refresh_after_change(self._client))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- state ------------------------------------------------------------------------------

    def _child_exited(self) -> None:
        if not self._stopping:
            self._connection_lost("the server process exited")

    def _connection_lost(self, why: str) -> None:
        if self._stopping or self._lost.is_set():
            return
        self._last_error = self._with_stderr(self._redact(why))
        self._set(Health.DOWN, self._last_error)
        self._lost.set()

    def _fail(self, error: OpsmithError) -> None:
        self._failure = _redacted(error, self._redactor)
        self._last_error = self._failure.message
        self._set(Health.DOWN, self._failure.message)

    def _set(self, health: Health, reason: str | None) -> None:
        self._health = health
        self._reason = reason

    def _startup_reason(self, exc: BaseException | None) -> str:
        if exc is None:
            return "the session ended during start-up"
        text = self._redact(describe(exc))
        if is_connection_loss(exc):
            return f"exited or closed the connection during start-up ({text})"
        return f"failed to start: {text}"

    def _with_stderr(self, text: str) -> str:
        lines = self._capture.last_lines(3) if self._capture else []
        return f"{text}; stderr: {' | '.join(lines)}" if lines else text

    def _redact(self, text: str) -> str:
        return self._redactor.text(text)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _redacted(error: OpsmithError, redactor: Redactor) -> OpsmithError:
    message = redactor.text(error.message)
    error.message = message
    error.args = (message,)
    if error.hint:
        error.hint = redactor.text(error.hint)
    if isinstance(error, ToolCallError) and error.output is not None:
        error.output = redactor.data(error.output)
    return error


def _offending_line(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors():
        return repr(error.errors()[0].get("input", ""))
    return str(error)


def _text_of(content: list[Any]) -> str:
    parts = [block.text for block in content if isinstance(block, types.TextContent)]
    return "\n".join(parts)


def _spec(server: str, tool: types.Tool) -> ToolSpec:
    notes = tool.annotations
    hints = ToolHints(
        read_only=notes.read_only_hint if notes else None,
        destructive=notes.destructive_hint if notes else None,
        idempotent=notes.idempotent_hint if notes else None,
        open_world=notes.open_world_hint if notes else None,
    )
    title = tool.title or (notes.title if notes else None)
    return ToolSpec(
        server=server,
        name=tool.name,
        title=title,
        description=tool.description or "",
        input_schema=dict(tool.input_schema or {"type": "object"}),
        output_schema=dict(tool.output_schema) if tool.output_schema else None,
        hints=hints,
    )

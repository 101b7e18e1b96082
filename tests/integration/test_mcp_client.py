"""The MCP adapter against real servers over real stdio and streamable HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import anyio
import psutil
import pytest

from opsmith.config import parse_config
from opsmith.domain.servers import Health
from opsmith.errors import (
    ConnectionLostError,
    ServerUnavailableError,
    ToolArgumentsError,
    ToolCallError,
    UnknownToolError,
)
from opsmith.tools.mcp import ServerPool
from tests.conftest import NPM_BIN, PYTHON, fixture_server, own_children

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

EVERYTHING = NPM_BIN / "mcp-server-everything"


def pool_for(
    tmp_path: Path, servers: str, environ: dict[str, str] | None = None, extra: str = ""
) -> ServerPool:
    config = parse_config(f"state_dir: {tmp_path}\n{extra}\nmcpServers:\n{servers}", source="test config")
    return ServerPool(config, environ if environ is not None else dict(os.environ))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {deadline}s")


async def test_time_server_from_pypi_discovers_and_calls(tmp_path: Path) -> None:
    async with pool_for(tmp_path, "  time: {command: mcp-server-time}") as pool:
        [status] = await pool.start()
        assert status.health is Health.UP, status.reason
        assert pool.catalog.names("time") == ["convert_time", "get_current_time"]
        tool = pool.catalog.get("time", "get_current_time")
        assert tool is not None and tool.hints.read_only is True
        assert "timezone" in tool.input_schema["required"]
        result = await pool.call("time", "get_current_time", {"timezone": "UTC"})
        assert result.structured is not None and result.structured["timezone"] == "UTC"


async def test_is_error_result_is_a_failure_never_a_success(tmp_path: Path) -> None:
    async with pool_for(tmp_path, "  time: {command: mcp-server-time}") as pool:
        await pool.start()
        with pytest.raises(ToolCallError, match="Invalid timezone"):
            await pool.call("time", "get_current_time", {"timezone": "Mars/Olympus_Mons"})


async def test_arguments_are_checked_against_the_schema_before_sending(tmp_path: Path) -> None:
    async with pool_for(tmp_path, "  time: {command: mcp-server-time}") as pool:
        await pool.start()
        with pytest.raises(ToolArgumentsError, match="'timezone' is a required property"):
            await pool.call("time", "get_current_time", {})
        with pytest.raises(ToolArgumentsError, match="argument 'timezone'"):
            await pool.call("time", "get_current_time", {"timezone": 42})
        with pytest.raises(UnknownToolError, match="did you mean get_current_time"):
            await pool.call("time", "get_curent_time", {"timezone": "UTC"})


async def test_everything_server_from_npm_over_stdio(tmp_path: Path) -> None:
    async with pool_for(tmp_path, f"  everything: {{command: {EVERYTHING}}}") as pool:
        [status] = await pool.start()
        assert status.health is Health.UP, status.reason
        assert len(pool.catalog.tools("everything")) >= 13
        result = await pool.call("everything", "echo", {"message": "over stdio"})
        assert result.text == "Echo: over stdio"
        total = await pool.call("everything", "get-sum", {"a": 2, "b": 40})
        assert "42" in total.text


async def test_everything_server_from_npm_over_streamable_http(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PORT=str(port))
    child = subprocess.Popen(
        [str(EVERYTHING), "streamableHttp"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        servers = f"  remote: {{url: 'http://127.0.0.1:{port}/mcp', headers: {{X-Team: '${{TEAM}}'}}}}"
        async with pool_for(tmp_path, servers, dict(os.environ, TEAM="platform")) as pool:
            [status] = await pool.start()
            assert status.health is Health.UP and status.transport == "http", status.reason
            result = await pool.call("remote", "echo", {"message": "over http"})
            assert result.text == "Echo: over http"
    finally:
        child.terminate()
        child.wait(timeout=10)


async def test_http_server_that_is_not_there_is_down_with_reason(tmp_path: Path) -> None:
    port = free_port()
    async with pool_for(tmp_path, f"  gone: {{url: 'http://127.0.0.1:{port}/mcp', timeout: 5}}") as pool:
        [status] = await pool.start()
        assert status.health is Health.DOWN
        assert "connect" in (status.reason or "").lower()
        with pytest.raises(ServerUnavailableError):
            await pool.connection("gone").call("x", {})


async def test_tools_list_is_followed_across_pages(tmp_path: Path) -> None:
    async with pool_for(tmp_path, f"  paged: {fixture_server('paged.py')}}}") as pool:
        await pool.start()
        assert pool.catalog.names("paged") == [f"tool_{i:02d}" for i in range(10)]


async def test_list_changed_refreshes_that_servers_part_of_the_catalog(tmp_path: Path) -> None:
    servers = f"  changing: {fixture_server('changing.py')}}}\n  time: {{command: mcp-server-time}}"
    async with pool_for(tmp_path, servers) as pool:
        await pool.start()
        assert pool.catalog.names("changing") == ["echo", "freeze", "unlock"]
        await pool.call("changing", "unlock", {})
        with anyio.fail_after(10):
            while "unlocked" not in pool.catalog.names("changing"):
                await anyio.sleep(0.02)
        assert (await pool.call("changing", "unlocked", {})).text == "you found it"
        assert pool.catalog.names("time") == ["convert_time", "get_current_time"]


async def test_stderr_goes_to_a_log_with_secrets_redacted(tmp_path: Path) -> None:
    servers = f"  changing: {fixture_server('changing.py')}, env: {{FIXTURE_TOKEN: '${{TOKEN}}'}}}}"
    async with pool_for(tmp_path, servers, dict(os.environ, TOKEN="tok-9f8e7d6c5b")) as pool:
        await pool.start()
    log = (tmp_path / "logs" / "changing.log").read_text()
    assert "changing fixture starting with token=***" in log
    assert "tok-9f8e7d6c5b" not in log


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("hang.py", "did not finish initialize"),
        ("garbage.py", "non-MCP output to stdout: 'Starting awesome server"),
        ("exits.py", "license file /etc/fixture/license.key not found"),
    ],
)
async def test_bad_servers_are_down_within_their_timeout_and_others_still_work(
    tmp_path: Path, fixture: str, expected: str
) -> None:
    servers = f"  bad: {fixture_server(fixture)}, timeout: 2}}\n  time: {{command: mcp-server-time}}"
    async with pool_for(tmp_path, servers) as pool:
        started = time.monotonic()
        statuses = {s.name: s for s in await pool.start()}
        assert time.monotonic() - started < 2 + 5, "start must not wait much beyond the timeout"
        assert statuses["bad"].health is Health.DOWN
        assert expected in (statuses["bad"].reason or "")
        assert statuses["time"].health is Health.UP
        assert (await pool.call("time", "get_current_time", {"timezone": "UTC"})).structured


async def test_missing_command_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    async with pool_for(tmp_path, "  ghost: {command: no-such-binary-opsmith}") as pool:
        [status] = await pool.start()
        assert status.health is Health.DOWN
        assert (
            status.reason
            == "mcpServers.ghost.command: 'no-such-binary-opsmith' was not found or is not executable"
        )


async def test_sigkill_is_reported_down_then_the_server_is_restarted(tmp_path: Path) -> None:
    servers = f"  changing: {fixture_server('changing.py')}}}"
    extra = "supervision: {backoff_initial: 0.3, max_restarts: 3}"
    async with pool_for(tmp_path, servers, extra=extra) as pool:
        await pool.start()
        [child] = [p for p in own_children() if "changing.py" in " ".join(p.cmdline())]
        os.kill(child.pid, signal.SIGKILL)
        connection = pool.connection("changing")
        with anyio.fail_after(5):
            while connection.status().health is Health.UP:
                await anyio.sleep(0.01)
        assert connection.status().health is Health.DOWN
        assert "exited" in (connection.status().reason or "")
        with anyio.fail_after(15):
            while connection.status().health is not Health.UP:
                await anyio.sleep(0.05)
        assert connection.status().restarts == 1
        assert (await pool.call("changing", "echo", {"text": "back"})).text == "back"
        assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE


async def test_a_server_that_stops_answering_pings_is_degraded_then_recovers(tmp_path: Path) -> None:
    servers = f"  changing: {fixture_server('changing.py')}}}"
    async with pool_for(tmp_path, servers, extra="supervision: {health_interval: 0.2}") as pool:
        await pool.start()
        connection = pool.connection("changing")
        async with anyio.create_task_group() as group:
            group.start_soon(pool.call, "changing", "freeze", {"seconds": 2.0})
            with anyio.fail_after(5):
                while connection.status().health is not Health.DEGRADED:
                    await anyio.sleep(0.02)
            assert "did not answer a health probe" in (connection.status().reason or "")
        with anyio.fail_after(5):
            while connection.status().health is not Health.UP:
                await anyio.sleep(0.02)


async def test_python_module_server_in_pool_alongside(tmp_path: Path) -> None:
    servers = (
        f"  paged: {{command: {PYTHON}, args: ['-m', 'tests.fixtures.servers.paged'], cwd: '{Path.cwd()}'}}"
    )
    async with pool_for(tmp_path, servers) as pool:
        [status] = await pool.start()
        assert status.health is Health.UP, status.reason
        assert (await pool.call("paged", "tool_03", {})).text == "called tool_03"


async def test_a_call_that_outlives_its_timeout_is_a_retryable_failure(tmp_path: Path) -> None:
    async with pool_for(tmp_path, f"  changing: {fixture_server('changing.py')}}}") as pool:
        await pool.start()
        with pytest.raises(ToolCallError, match=r"did not answer within 0.5s") as caught:
            await pool.call("changing", "freeze", {"seconds": 1.5}, timeout=0.5)
        assert caught.value.retryable
        assert (await pool.call("changing", "echo", {"text": "alive"})).text == "alive"


async def test_a_server_killed_mid_call_may_have_run_it_and_a_call_while_down_was_never_sent(
    tmp_path: Path,
) -> None:
    servers = f"  changing: {fixture_server('changing.py')}}}"
    async with pool_for(tmp_path, servers, extra="supervision: {max_restarts: 0}") as pool:
        await pool.start()
        [child] = [p for p in own_children() if "changing.py" in " ".join(p.cmdline())]
        connection = pool.connection("changing")
        killer = threading.Timer(0.5, os.kill, (child.pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(ConnectionLostError) as lost:
            await pool.call("changing", "freeze", {"seconds": 10.0})
        killer.join()
        assert lost.value.may_have_reached and lost.value.retryable
        assert "closed the connection during freeze" in lost.value.message
        assert lost.value.__cause__ is not None, "the library's error is kept as the cause"
        with anyio.fail_after(5):
            while connection.status().health is not Health.DOWN:
                await anyio.sleep(0.01)
        with pytest.raises(ServerUnavailableError) as down:
            await pool.call("changing", "echo", {"text": "anyone?"})
        assert type(down.value) is ServerUnavailableError and not down.value.may_have_reached

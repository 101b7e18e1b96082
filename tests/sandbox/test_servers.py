"""The four servers as real processes: stdio for each, streamable HTTP for one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from opsmith.sandbox import SERVERS

# no_orphans compares against the children that existed before the test, so processes other
# tests leave running (such as multiprocessing's resource tracker) do not count.
pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.usefixtures("no_orphans")]

# server -> (tool count, a tool, good arguments, the field a bad call changes)
EXPECTED: dict[str, tuple[int, str, dict[str, Any], str]] = {
    "jenkins": (15, "get_build_status", {"app": "my-application"}, "app"),
    "sonarqube": (
        10,
        "get_vulnerabilities",
        {"project_key": "payments-api", "severity": ["CRITICAL"]},
        "project_key",
    ),
    "registry": (
        8,
        "verify_image",
        {"image": "myorg/payments-api:v2.4.0", "require_files": ["config/default.json"]},
        "image",
    ),
    "kubernetes": (
        12,
        "get_pods",
        {"namespace": "production", "label_selector": "app=my-application"},
        "namespace",
    ),
}


def _args(server: str, state_dir: Path, *extra: str) -> list[str]:
    return ["-m", SERVERS[server], "--state-dir", str(state_dir), "--latency-ms", "0", *extra]


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    with open(tmp_path / "stderr.log", "w") as handle:
        yield handle


@contextmanager
def http_server(server: str, state_dir: Path, port: int, errlog: TextIO) -> Iterator[None]:
    """Start the server, poll until its port accepts (with a deadline), always terminate it."""
    proc = subprocess.Popen(
        [sys.executable, *_args(server, state_dir, "--transport", "http", "--port", str(port))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errlog,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "server exited before listening"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start listening"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("server", sorted(EXPECTED))
async def test_server_over_stdio(server: str, state_dir: Path, errlog: TextIO) -> None:
    count, tool, arguments, field = EXPECTED[server]
    params = StdioServerParameters(command=sys.executable, args=_args(server, state_dir))
    async with Client(stdio_client(params, errlog=errlog)) as client:
        assert client.server_info.name == server
        tools = (await client.list_tools()).tools
        result = await client.call_tool(tool, arguments)
        bad = await client.call_tool(tool, {**arguments, field: "nowhere"})
    assert len(tools) == count
    for t in tools:
        assert t.title
        assert t.description
        assert "\n" not in t.description
        assert t.input_schema["type"] == "object"
        assert t.output_schema is not None
        assert t.annotations is not None
        assert t.annotations.open_world_hint is False
        assert t.annotations.read_only_hint is not None
        assert t.annotations.destructive_hint is not None
    assert not result.is_error, result.content
    assert result.structured_content
    if server == "sonarqube":
        assert result.structured_content["counts"]["CRITICAL"] == 1
    if server == "registry":
        assert result.structured_content["verified"] is True
    if server == "kubernetes":
        assert result.structured_content["ready"] == 2
    assert bad.is_error
    assert "nowhere" in bad.content[0].text  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_kubernetes_over_streamable_http(state_dir: Path, errlog: TextIO) -> None:
    port = _free_port()
    with http_server("kubernetes", state_dir, port, errlog):
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool(
                "get_service", {"service_name": "my-application-service", "namespace": "production"}
            )
    assert len(tools) == 12
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["node_port"] == 30001
    assert result.structured_content["ready_endpoints"] == 2


def test_http_requires_a_port(state_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, *_args("jenkins", state_dir, "--transport", "http")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--port" in proc.stderr
    assert proc.stdout == ""

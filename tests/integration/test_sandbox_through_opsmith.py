"""The sandbox world driven through opsmith's own MCP client, over stdio and over HTTP.

This is the crash-loop story of seed 001 at the tool level: a build and an image that lack
config/production.json deploy into CrashLoopBackOff, and a rollback brings the previous
image back, as get_pods shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsmith.config import parse_config
from opsmith.domain.servers import Health
from opsmith.errors import ToolCallError
from opsmith.tools.mcp import ServerPool
from tests.conftest import sandbox_servers
from tests.integration.test_mcp_client import free_port, wait_for_port

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]


def sandbox_pool(tmp_path: Path, servers: str) -> ServerPool:
    config = parse_config(f"state_dir: {tmp_path / 'opsmith'}\nmcpServers:\n{servers}", source="test")
    return ServerPool(config, dict(os.environ))


async def test_the_four_servers_offer_45_tools_with_schemas_and_annotations(
    state_dir: Path, tmp_path: Path
) -> None:
    async with sandbox_pool(tmp_path, sandbox_servers(state_dir)) as pool:
        statuses = await pool.start()
        assert all(s.health is Health.UP for s in statuses), statuses
        counts = {server: len(pool.catalog.tools(server)) for server in pool.catalog.servers()}
        assert counts == {"jenkins": 15, "sonarqube": 10, "registry": 8, "kubernetes": 12}
        for name in ("trigger_build", "run_tests", "analyze_project", "get_vulnerabilities", "push_image"):
            assert any(t.name == name for t in pool.catalog), name
        delete = pool.catalog.get("kubernetes", "delete_deployment")
        pods = pool.catalog.get("kubernetes", "get_pods")
        assert delete is not None and delete.hints.destructive is True
        assert pods is not None and pods.hints.read_only is True
        assert pods.output_schema is not None


async def test_missing_config_crash_loops_and_rollback_restores_the_previous_image(
    state_dir: Path, tmp_path: Path
) -> None:
    async with sandbox_pool(tmp_path, sandbox_servers(state_dir)) as pool:
        await pool.start()
        before = await pool.call(
            "kubernetes", "get_pods", {"namespace": "production", "label_selector": "app=my-application"}
        )
        assert before.structured is not None
        old_images = {pod["image"] for pod in before.structured["pods"]}
        assert len(old_images) == 1

        build = await pool.call("jenkins", "trigger_build", {"app": "my-application", "branch": "main"})
        assert build.structured is not None and build.structured["status"] == "SUCCESS"
        pushed = await pool.call(
            "registry",
            "push_image",
            {"image": "myorg/my-application", "build_number": build.structured["number"]},
        )
        assert pushed.structured is not None
        image = pushed.structured["image"]
        with pytest.raises(ToolCallError, match=r"config/production\.json"):
            await pool.call(
                "registry", "verify_image", {"image": image, "require_files": ["config/production.json"]}
            )

        with pytest.raises(ToolCallError, match="CrashLoopBackOff"):
            await pool.call(
                "kubernetes",
                "apply_deployment",
                {"deployment_name": "my-application", "namespace": "production", "image": image},
            )
        logs = await pool.call(
            "kubernetes",
            "get_pod_logs",
            {"namespace": "production", "label_selector": "app=my-application", "tail_lines": 50},
        )
        assert "Error: Cannot find module './config/production.json'" in logs.text

        await pool.call(
            "kubernetes",
            "rollback_deployment",
            {"deployment_name": "my-application", "namespace": "production"},
        )
        after = await pool.call(
            "kubernetes", "get_pods", {"namespace": "production", "label_selector": "app=my-application"}
        )
        assert after.structured is not None
        assert {pod["image"] for pod in after.structured["pods"]} == old_images
        assert {pod["status"] for pod in after.structured["pods"]} == {"Running"}


async def test_sandbox_server_over_streamable_http(state_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsmith.sandbox.kubernetes",
            "--transport",
            "http",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--latency-ms",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        async with sandbox_pool(tmp_path, f"  kubernetes: {{url: 'http://127.0.0.1:{port}/mcp'}}") as pool:
            [status] = await pool.start()
            assert status.health is Health.UP and status.tool_count == 12
            scaled = await pool.call(
                "kubernetes",
                "scale_deployment",
                {"deployment_name": "microservice-one", "namespace": "staging", "replicas": 3},
            )
            assert scaled.structured is not None
            pods = await pool.call(
                "kubernetes", "get_pods", {"namespace": "staging", "label_selector": "app=microservice-one"}
            )
            assert pods.structured is not None and len(pods.structured["pods"]) == 3
    finally:
        child.terminate()
        child.wait(timeout=10)

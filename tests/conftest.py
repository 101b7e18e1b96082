"""Shared helpers: configs pointing at real MCP servers, and process hygiene checks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SERVERS = Path(__file__).parent / "fixtures" / "servers"
NPM_BIN = Path(__file__).parent / "npm" / "node_modules" / ".bin"
PYTHON = sys.executable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fixture_server(name: str) -> str:
    return f"{{command: {PYTHON}, args: [{FIXTURE_SERVERS / name}]"


def own_children() -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def no_orphans() -> Iterator[None]:
    """Fails the test if it leaves any child process of this test process behind."""
    before = {p.pid for p in own_children()}
    yield
    deadline = 10.0
    left = [p for p in own_children() if p.pid not in before]
    gone, alive = psutil.wait_procs(left, timeout=deadline)
    del gone
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"child processes left behind: {[' '.join(p.cmdline()) for p in alive]}"

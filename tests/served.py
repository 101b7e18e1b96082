"""`opsmith serve` as a real process for tests: started on a free loopback port, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.test_cli import OPSMITH

_URL = re.compile(r"opsmith serve: (http://\S+)")
_TOKEN = re.compile(r"admin token for \S+ \(shown once, keep it safe\): (osm_\S+)")


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    token: str | None
    lines: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def ws_url(self, path: str) -> str:
        return "ws" + self.url.removeprefix("http") + path


@contextmanager
def serving(project: Path, *args: str, start_timeout: float = 90.0) -> Iterator[Served]:
    """The server on `project`'s config, once it printed where it listens; stopped and reaped after."""
    process = subprocess.Popen(
        [OPSMITH, "serve", "--port", "0", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if m := _TOKEN.search(line):
                found["token"] = m.group(1)
            if m := _URL.search(line):
                found["url"] = m.group(1)
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(start_timeout) or "url" not in found:
            raise AssertionError("opsmith serve did not start:\n" + "\n".join(lines))
        yield Served(process, found["url"], found.get("token"), lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=10)


def wait_for(check: object, timeout: float = 60.0, every: float = 0.05) -> object:
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"still not true after {timeout} s: {check}")

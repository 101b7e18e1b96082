"""`opsmith serve` as a real process, for the tests and the benches (bench/_serve.py): started on a
free loopback port in its own process group, stopped with SIGTERM and the group killed if it lingers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

OPSMITH = Path(sys.executable).with_name("opsmith")
_URL = re.compile(r"opsmith serve: (http://\S+)")
_TOKEN = re.compile(r"admin token for (\S+) \(shown once, keep it safe\): (osm_\S+)")


class ServeDidNotStart(AssertionError):
    """`opsmith serve` exited, or printed no address (or no token where one was needed), in time."""


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    user: str | None
    token: str | None
    lines: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def ws_url(self, path: str) -> str:
        return "ws" + self.url.removeprefix("http") + path


def stop_group(process: subprocess.Popen[str], grace: float) -> list[str]:
    """SIGTERM to the process, then SIGKILL to its whole group if anything of it is still alive;
    what had to be killed. Only for a process started with start_new_session=True."""
    killed = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            killed.append(f"pid {process.pid} ignored SIGTERM for {grace:g} s")
    try:
        os.killpg(process.pid, 0)  # raises once no process of the group is left
        os.killpg(process.pid, signal.SIGKILL)
        killed.append(f"process group {process.pid} outlived its leader")
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(timeout=10)
    return killed


@contextmanager
def serving(
    project: Path,
    *args: str,
    start_timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    need_token: bool = False,
) -> Iterator[Served]:
    """The server on `project`'s config, once it printed where it listens (and, with `need_token`,
    the admin token a first start prints); stopped and reaped after."""
    process = subprocess.Popen(
        [str(OPSMITH), "serve", "--port", "0", *args],
        cwd=project,
        env=dict(env) if env is not None else {**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its MCP servers join its group, so one killpg ends them all
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if m := _TOKEN.search(line):
                found["user"], found["token"] = m.group(1), m.group(2)
            if m := _URL.search(line):
                found["url"] = m.group(1)
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(start_timeout) or "url" not in found or (need_token and "token" not in found):
            printed = "" if "url" not in found else " (it printed no admin token)"
            raise ServeDidNotStart(f"opsmith serve did not start{printed}:\n" + "\n".join(lines))
        yield Served(process, found["url"], found.get("user"), found.get("token"), lines)
    finally:
        for what in stop_group(process, grace=30):
            print(f"warning: opsmith serve: {what}; killed", file=sys.stderr)
        reader.join(timeout=10)


def issue_tokens(served: Served, people: Mapping[str, str], name: str) -> dict[str, str]:
    """An API token for each user of `people` (user: role), issued by the admin the first start
    printed; user: token."""
    made = {}
    with served.client(served.token) as admin:
        for user, role in people.items():
            answer = admin.post("/api/v1/tokens", json={"user": user, "role": role, "name": name})
            assert answer.status_code == 201, answer.text
            made[user] = answer.json()["token"]
    return made


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

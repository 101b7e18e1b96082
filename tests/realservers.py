"""Real MCP servers this project did not write, as opsmith `mcpServers` entries for tests and benches.

./scripts/setup installs them, pinned: mcp-server-kubernetes from tests/npm (package-lock.json),
mcp-jenkins and mcp-server-git from tests/pyservers (a uv project of their own, uv.lock). Every
entry points its server at something unreachable or made in the caller's directory, so none of
them ever reaches a real cluster, Jenkins or repository; each still lists all its tools.

    entries = server_entries(tmp_path)            # {"kubernetes": {...}, "jenkins": {...}, "git": {...}}
    listing = await list_tools(entries["git"])    # the live tools/list, over stdio, via the SDK
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NotRequired, TextIO, TypedDict, cast

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import Implementation, Tool

ROOT = Path(__file__).resolve().parent.parent
NPM_BIN = ROOT / "tests" / "npm" / "node_modules" / ".bin"
PYSERVERS_BIN = ROOT / "tests" / "pyservers" / ".venv" / "bin"

# Dummy credentials: nothing listens where they would be sent.
UNREACHABLE_CLUSTER = "https://127.0.0.1:1"
UNREACHABLE_JENKINS = "http://127.0.0.1:9"
DUMMY_TOKEN = "opsmith-dummy-token"
DUMMY_PASSWORD = "opsmith-dummy-password"

START_TIMEOUT = 60.0  # seconds to start one server and list its tools; cold starts on 2 cores take ~5 s


class ServerEntry(TypedDict):
    """One `mcpServers` entry as opsmith.yaml spells it (see opsmith.config.StdioServerConfig)."""

    command: str
    args: list[str]
    env: dict[str, str]
    cwd: NotRequired[str]


class ServerNotInstalledError(RuntimeError):
    """A server's executable is missing: the machine was not set up."""


@dataclass(frozen=True)
class RealServer:
    """A server: the name opsmith's config gives it, its package, its executable, its entry."""

    name: str
    package: str
    binary: Path
    entry: Callable[[Path, Path], ServerEntry]  # (binary, a directory of its own) -> entry

    def entry_in(self, directory: Path) -> ServerEntry:
        if not os.access(self.binary, os.X_OK):
            raise ServerNotInstalledError(
                f"cannot start the {self.name} MCP server: {self.binary} ({self.package}) is not installed;"
                " run ./scripts/setup to install the pinned test servers"
            )
        directory.mkdir(parents=True, exist_ok=True)
        return self.entry(self.binary, directory)


KUBECONFIG = f"""\
apiVersion: v1
kind: Config
clusters:
  - name: unreachable
    cluster: {{server: "{UNREACHABLE_CLUSTER}", insecure-skip-tls-verify: true}}
users:
  - name: opsmith-dummy
    user: {{token: {DUMMY_TOKEN}}}
contexts:
  - name: unreachable
    context: {{cluster: unreachable, user: opsmith-dummy, namespace: default}}
current-context: unreachable
"""


def _kubernetes(binary: Path, directory: Path) -> ServerEntry:
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    return {"command": str(binary), "args": [], "env": {"KUBECONFIG": str(kubeconfig)}}


def _jenkins(binary: Path, directory: Path) -> ServerEntry:
    # mcp-jenkins loads a .env from its working directory or any parent unless given one, and logs
    # to ~/.mcp_jenkins: an empty env file and a home of its own keep both inside `directory`.
    env_file = directory / "empty.env"
    env_file.touch()
    home = directory / "home"
    home.mkdir(exist_ok=True)
    args = ["--env-file", str(env_file), "--jenkins-url", UNREACHABLE_JENKINS]
    args += ["--jenkins-username", "opsmith", "--jenkins-password", DUMMY_PASSWORD]
    return {"command": str(binary), "args": args, "env": {"HOME": str(home)}, "cwd": str(directory)}


def _git(binary: Path, directory: Path) -> ServerEntry:
    repository = directory / "repository"
    if not (repository / ".git").is_dir():
        make_repository(repository)
    return {"command": str(binary), "args": ["--repository", str(repository)], "env": {}}


KUBERNETES = RealServer("kubernetes", "mcp-server-kubernetes", NPM_BIN / "mcp-server-kubernetes", _kubernetes)
JENKINS = RealServer("jenkins", "mcp-jenkins", PYSERVERS_BIN / "mcp-jenkins", _jenkins)
GIT = RealServer("git", "mcp-server-git", PYSERVERS_BIN / "mcp-server-git", _git)
SERVERS = {server.name: server for server in (KUBERNETES, JENKINS, GIT)}


def server_entries(directory: Path, names: Iterable[str] = tuple(SERVERS)) -> dict[str, ServerEntry]:
    """`mcpServers` entries for the named real servers, each with what it needs made in `directory`.

    Raises ServerNotInstalledError (never skips) when a server's executable is missing.
    """
    return {name: server(name).entry_in(directory / name) for name in names}


def server(name: str) -> RealServer:
    try:
        return SERVERS[name]
    except KeyError:
        raise ValueError(f"no real test server named {name!r}; known: {', '.join(SERVERS)}") from None


def make_repository(path: Path) -> None:
    """A git repository at `path` with one commit, made without the user's or the system's git config."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("A repository made for opsmith's tests.\n")
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "opsmith tests",
        "GIT_AUTHOR_EMAIL": "tests@opsmith.invalid",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_NAME": "opsmith tests",
        "GIT_COMMITTER_EMAIL": "tests@opsmith.invalid",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    for command in (["init", "--quiet", "--initial-branch=main"], ["add", "README.md"]):
        subprocess.run(["git", *command], cwd=path, env=env, check=True, capture_output=True)
    subprocess.run(
        ["git", "commit", "--quiet", "--no-gpg-sign", "-m", "Initial commit"],
        cwd=path,
        env=env,
        check=True,
        capture_output=True,
    )


def stdio_parameters(entry: ServerEntry) -> StdioServerParameters:
    """The SDK's parameters for an entry (the SDK adds HOME, PATH and a few more to `env`)."""
    return StdioServerParameters(
        command=entry["command"], args=entry["args"], env=entry["env"], cwd=entry.get("cwd")
    )


@dataclass(frozen=True)
class ToolListing:
    """What a server said about itself: its `serverInfo` and its whole tools/list, every page."""

    server_name: str
    server_version: str
    tools: list[Tool]


async def list_tools(
    entry: ServerEntry, *, errlog: IO[str] | None = None, timeout: float = START_TIMEOUT
) -> ToolListing:
    """Start the server over stdio with the official SDK client, list its tools, stop it.

    Raises TimeoutError if starting and listing take longer than `timeout` seconds.
    """
    with anyio.fail_after(timeout):
        transport = stdio_client(stdio_parameters(entry), errlog=cast(TextIO, errlog or sys.stderr))
        client = Client(transport, client_info=Implementation(name="opsmith-tests", version="0"))
        async with client:
            info = client.server_info
            tools: list[Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
    return ToolListing(
        server_name=info.name if info else "", server_version=info.version if info else "", tools=tools
    )

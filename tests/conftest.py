"""Shared helpers: configs pointing at real MCP servers, and process hygiene checks."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from opsmith.store.plans import PlanRepository
    from opsmith.store.runs import RunRepository
    from tests.dbservers import PostgresServer, RedisServer
    from tests.fleet.sshd import SshdFleet

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SERVERS = Path(__file__).parent / "fixtures" / "servers"
NPM_BIN = Path(__file__).parent / "npm" / "node_modules" / ".bin"
PYTHON = sys.executable
# The account the tests run as: configured as an admin wherever tests act `--as` other users.
OS_USER = pwd.getpwuid(os.geteuid()).pw_name

# Hypothesis fails an example that takes over 200 ms of wall time by default. Under ./scripts/test
# two workers (pytest-xdist) share two cores with the servers other tests start, so a property about
# correctness failed on the clock alone (tests/unit/test_views.py: DeadlineExceeded).
# A property that is about speed sets its own deadline; this profile changes nothing else.
settings.register_profile("opsmith", deadline=None)
settings.load_profile("opsmith")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox world seeded per test session (seeding runs real builds, pushes, deploys)."""
    from opsmith.sandbox.world import World

    state = tmp_path_factory.mktemp("sandbox-template") / "state"
    World(state).ensure_seeded()
    return state


@pytest.fixture(scope="session")
def sshd_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    """20 real sshd on loopback and the special hosts fleet tests need (tests/fleet/sshd.py), started
    once per test session and stopped, with every process they forked, at its end."""
    from tests.fleet.sshd import SshdFleet

    with SshdFleet(tmp_path_factory.mktemp("sshd-fleet")) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster, one per test session (per xdist worker); take a fresh database from
    `postgres_url`, or `postgres_server.new_database()`."""
    from tests.dbservers import PostgresServer

    with PostgresServer.started() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """An empty database of its own on the session's PostgreSQL, as a `database_url`."""
    return postgres_server.new_database()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of the test's own (a test may restart or stop it), on a free loopback port."""
    from tests.dbservers import RedisServer

    with RedisServer.started() as server:
        yield server


@pytest.fixture
def state_dir(tmp_path: Path, seeded_template: Path) -> Path:
    """A private copy of the seeded sandbox world for one test."""
    target = tmp_path / "state"
    shutil.copytree(seeded_template, target)
    return target


def sandbox_servers(
    state_dir: Path, names: tuple[str, ...] = ("jenkins", "sonarqube", "registry", "kubernetes")
) -> str:
    """mcpServers YAML lines for sandbox servers over stdio on `state_dir`, with no latency."""
    return "\n".join(
        f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
        " --latency-ms, '0']}"
        for name in names
    )


def fixture_server(name: str) -> str:
    return f"{{command: {PYTHON}, args: [{FIXTURE_SERVERS / name}]"


def own_children() -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


def _started_by(process: psutil.Process, pids: set[int]) -> bool:
    try:
        return any(parent.pid in pids for parent in process.parents())
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def no_orphans() -> Iterator[None]:
    """Fails the test if it leaves any child process of this test process behind. What the
    processes that were there before start is theirs (a session's PostgreSQL forks a backend for
    each connection the test opens): request `no_orphans` after the fixtures that start them."""
    before = {p.pid for p in own_children()}
    yield
    deadline = 10.0
    left = [p for p in own_children() if p.pid not in before and not _started_by(p, before)]
    gone, alive = psutil.wait_procs(left, timeout=deadline)
    del gone
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"child processes left behind: {[' '.join(p.cmdline()) for p in alive]}"


def project_database(project: Path) -> str:
    """The `database_url` of a project's opsmith.yaml, or its default SQLite file."""
    import yaml

    written = project / "opsmith.yaml"
    config = yaml.safe_load(written.read_text()) if written.exists() else None
    found = config.get("database_url") if isinstance(config, dict) else None
    return str(found) if found else f"sqlite:///{project / '.opsmith' / 'opsmith.db'}"


def stores_of(project: Path) -> tuple[PlanRepository, RunRepository]:
    """The plan and run stores of a project's database, signed with its key as opsmith wires them
    (what a process of opsmith would write, for tests that play one that was killed)."""
    from opsmith.store import Database
    from opsmith.store.audit import AuditLog
    from opsmith.store.keys import load_seal
    from opsmith.store.plans import PlanRepository
    from opsmith.store.runs import RunRepository
    from opsmith.store.witness import FileWitness

    state = project / ".opsmith"
    database = Database(project_database(project))
    seal = load_seal(state / "integrity.key", {})
    audit = AuditLog(database, seal=seal, witness=FileWitness(state / "audit.head"))
    return PlanRepository(database, seal), RunRepository(database, audit, seal)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A `database_url` on each database opsmith supports: a SQLite file in tmp_path, then an empty
    database of its own on the session's PostgreSQL. Store tests take it to run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsmith.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()

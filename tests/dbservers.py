"""Real PostgreSQL and Redis servers for tests and benches, each from a throwaway directory, on a free
loopback port, stopped by whoever started them.

./scripts/setup installs Debian's postgresql and redis-server. PostgreSQL refuses to run as root, so
as root its processes run as the `postgres` user the package creates. The test cluster turns fsync
off: these tests check what opsmith writes and locks, not PostgreSQL's own crash safety.

    with PostgresServer.started(directory) as pg:
        url = pg.new_database()        # postgresql+psycopg://opsmith:...@127.0.0.1:PORT/t_1, empty
    with RedisServer.started(directory) as redis:
        redis.url                      # redis://127.0.0.1:PORT/0
        redis.restart()                # the same port, nothing kept (no persistence)
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

START_TIMEOUT = 30.0  # seconds; a fresh cluster is ready in about 1 s on these machines
STOP_TIMEOUT = 15.0


class ServerUnavailableError(RuntimeError):
    """The server's package is missing (the machine was not set up) or it did not start in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailableError(f"{what} exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    process.kill()
    raise ServerUnavailableError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT}s")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise ServerUnavailableError("PostgreSQL is not installed: run ./scripts/setup")
    return Path(found[-1]).parent


class _Throwaway:
    """A server in a directory of its own, made for it and removed once it stopped."""

    PREFIX = "opsmith-server-"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @classmethod
    @contextlib.contextmanager
    def started(cls, parent: Path | None = None) -> Iterator[Self]:
        # A directory outside pytest's (mode 0700, root's): PostgreSQL's `postgres` user must reach it.
        directory = Path(tempfile.mkdtemp(prefix=cls.PREFIX, dir=parent))
        server = cls(directory)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)


class PostgresServer(_Throwaway):
    """One PostgreSQL cluster. `new_database()` makes an empty database per caller, so tests sharing
    the cluster never see each other's rows."""

    PREFIX = "opsmith-pg-"
    USER = "opsmith"

    def __init__(self, directory: Path) -> None:
        self.bin = _postgres_bin()
        self.directory = directory
        self.password = secrets.token_hex(16)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        # As root, the cluster belongs to the package's `postgres` user; otherwise to whoever runs it.
        self._run_as = "postgres" if os.geteuid() == 0 else None

    def _command(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *argv] if self._run_as else list(argv)

    def start(self) -> None:
        data = self.directory / "data"
        if not data.exists():
            pwfile = self.directory / "pw"
            pwfile.write_text(self.password + "\n")
            if self._run_as:
                account = pwd.getpwnam(self._run_as)
                os.chmod(self.directory, 0o700)
                os.chown(self.directory, account.pw_uid, account.pw_gid)
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            subprocess.run(
                self._command(
                    str(self.bin / "initdb"), "-D", str(data), "-U", self.USER, "--pwfile", str(pwfile),
                    "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync",
                ),
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            pwfile.unlink()
        self.port = self.port or free_port()
        log = self.directory / "postgres.log"
        with open(log, "ab") as out:
            self._process = subprocess.Popen(
                self._command(
                    str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=200",
                ),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_for_port(self.port, self._process, "postgres", log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL opsmith's `database_url` takes."""
        return f"postgresql+psycopg://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        _stop(self._process)
        self._process = None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)
        self._process = None


class RedisServer(_Throwaway):
    """One redis-server with no persistence: a restart loses every queued message, the worst case a
    broker restart can be."""

    PREFIX = "opsmith-redis-"

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServerUnavailableError("redis-server is not installed: run ./scripts/setup")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = self.directory / "redis.log"
        with open(log, "ab") as out:
            self._process = subprocess.Popen(
                [
                    self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory),
                ],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_for_port(self.port, self._process, "redis-server", log)

    def stop(self) -> None:
        _stop(self._process)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

"""The sandbox world: one state directory shared by the four simulated servers.

It holds `world.db` (SQLite, WAL) and real git repositories under `repos/<app>`. Every tool call is
one short transaction, so four server processes can share a state directory safely.
"""

from __future__ import annotations

import fcntl
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from opsmith.sandbox.builds import BuildService
from opsmith.sandbox.cluster import ClusterService
from opsmith.sandbox.common import one_of, sha256_hex
from opsmith.sandbox.db import Database
from opsmith.sandbox.errors import SandboxError
from opsmith.sandbox.images import RegistryService
from opsmith.sandbox.quality import QualityService
from opsmith.sandbox.repos import RepoStore

SEED_VERSION = "1"


class World:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.db = Database(self.state_dir / "world.db")
        self.repos = RepoStore(self.state_dir / "repos")
        self.builds = BuildService(self)
        self.quality = QualityService(self)
        self.registry = RegistryService(self)
        self.cluster = ClusterService(self)
        self._frozen: datetime | None = None

    # --- time -----------------------------------------------------------------------------------

    def now(self) -> str:
        moment = self._frozen or datetime.now(UTC)
        return moment.replace(microsecond=0).isoformat()

    def clock(self) -> float:
        """Now in seconds since the epoch, finer than now(): pods that take a moment to start."""
        return self._frozen.timestamp() if self._frozen else time.time()

    @contextmanager
    def frozen_clock(self, moment: datetime) -> Iterator[None]:
        """Seeding runs on a fixed clock so a freshly seeded world is the same everywhere."""
        previous, self._frozen = self._frozen, moment
        try:
            yield
        finally:
            self._frozen = previous

    # --- apps and blobs -------------------------------------------------------------------------

    def apps(self) -> list[str]:
        return self.repos.apps()

    def require_app(self, app: str) -> str:
        return one_of("application", app, self.apps())

    def put_blobs(self, conn: sqlite3.Connection, contents: Iterable[bytes]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO blobs(sha256, content) VALUES (?, ?)",
            [(sha256_hex(c), c) for c in contents],
        )

    def get_blob(self, conn: sqlite3.Connection, sha: str) -> bytes:
        row = conn.execute("SELECT content FROM blobs WHERE sha256=?", (sha,)).fetchone()
        if row is None:
            raise SandboxError(f"blob {sha} is missing from the world store")
        return bytes(row[0])

    # --- seeding --------------------------------------------------------------------------------

    def is_seeded(self) -> bool:
        if not self.db.path.exists():
            return False
        try:
            with self.db.tx() as conn:
                row = conn.execute("SELECT value FROM meta WHERE key='seed_version'").fetchone()
        except sqlite3.OperationalError:
            return False
        return row is not None and row[0] == SEED_VERSION

    def ensure_seeded(self) -> None:
        """Create the sample world once; concurrent callers wait on a file lock and then find it done."""
        if self.is_seeded():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".seed.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.is_seeded():
                    return
                # A previous attempt may have died half-way; start from nothing.
                if self.repos.root.exists():
                    shutil.rmtree(self.repos.root)
                self.db.initialise()
                self.db.clear()
                from opsmith.sandbox.seed import seed_world

                seed_world(self)
                with self.db.tx(write=True) as conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('seed_version', ?)", (SEED_VERSION,)
                    )
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- helpers for tests and demos ------------------------------------------------------------

    def commit_files(self, app: str, files: Mapping[str, str | None], message: str) -> str:
        """Commit changes (None deletes a file) to `main` of a sample repo; returns the new sha."""
        self.require_app(app)
        return self.repos.commit(app, files, message)

    def commit_file(self, app: str, path: str, content: str, message: str) -> str:
        return self.commit_files(app, {path: content}, message)

"""The world's SQLite database: schema and short transactions shared by four server processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs(sha256 TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS builds(
    job TEXT NOT NULL, number INTEGER NOT NULL, app TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY(job, number));
CREATE TABLE IF NOT EXISTS test_runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, build_number INTEGER NOT NULL,
    app TEXT NOT NULL, commit_sha TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analyses(
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, commit_sha TEXT NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quality_gates(name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images(
    repository TEXT NOT NULL, digest TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY(repository, digest));
CREATE TABLE IF NOT EXISTS tags(
    repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY(repository, tag));
CREATE TABLE IF NOT EXISTS namespaces(name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS deployments(
    namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY(namespace, name));
CREATE TABLE IF NOT EXISTS services(
    namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY(namespace, name));
CREATE TABLE IF NOT EXISTS backups(
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL);
"""

TABLES = (
    "meta",
    "blobs",
    "builds",
    "test_runs",
    "analyses",
    "quality_gates",
    "images",
    "tags",
    "namespaces",
    "deployments",
    "services",
    "backups",
)


class Database:
    """Opens one connection per transaction so no handle is shared across threads or processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def initialise(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction; writers take the lock up front to avoid upgrade deadlocks."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def clear(self) -> None:
        with self.tx(write=True) as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")

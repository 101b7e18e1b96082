"""The database: engine set-up (SQLite in WAL mode by default) and migrations on first use."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from opsmith.errors import ConfigError, StoreError
from opsmith.store.failures import store_failure

_MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """One engine and its session factory; `migrate()` brings the schema to the newest revision."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
            raise ConfigError(
                "database_url is not a valid SQLAlchemy URL",
                hint="use e.g. sqlite:///path/to/opsmith.db or postgresql+psycopg://user@host/db",
            ) from exc
        self.display_url = parsed.render_as_string(hide_password=True)
        self._sqlite_file: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._sqlite_file = Path(parsed.database or "")
            try:
                self._sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory for database {self.display_url}: {exc.strerror}",
                    hint="set state_dir or database_url to a writable location",
                ) from exc
        try:
            self.engine: Engine = create_engine(parsed)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot open database {self.display_url}: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            mode = sqlite_synchronous.upper()
            if mode not in ("FULL", "NORMAL"):
                raise ConfigError(f"sqlite_synchronous must be full or normal, not {sqlite_synchronous!r}")

            def pragmas(dbapi_connection: Any, _record: Any) -> None:
                _sqlite_pragmas(dbapi_connection, mode)

            event.listen(self.engine, "connect", pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._checked = False

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error. Migrates on first use."""
        self.ensure_current()
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise store_failure(exc, f"use database {self.display_url}") from exc
            except BaseException:
                session.rollback()
                raise

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction, committed on success: lighter than a Session, for
        writes on the hot path of a run. `immediate` takes SQLite's write lock at the start, so a
        read-then-write (the audit chain) cannot lose to another writer at commit time."""
        self.ensure_current()
        try:
            with self.engine.connect() as connection:
                if immediate and self.engine.dialect.name == "sqlite":
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
                connection.commit()
        except SQLAlchemyError as exc:
            raise store_failure(exc, f"write to database {self.display_url}") from exc

    def ensure_current(self) -> None:
        if not self._checked:
            # Every command starts here: a plain read of the stored revision against the newest file
            # name spares loading alembic (~0.2 s) when nothing is to migrate.
            stale = self._stored_revision() != newest_revision_file()
            if stale and self.current_revision() != self.head_revision():
                self.migrate()
            self._checked = True

    def _stored_revision(self) -> str | None:
        try:
            with self._connect() as connection:
                found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
                return None if found is None else str(found)
        except StoreError:
            return None  # no schema yet, or no database: alembic decides and reports

    def migrate(self) -> str:
        """Upgrade to the newest revision; safe when several processes start at once."""
        from alembic import command  # alembic is imported only when migrating: it is slow to load

        with self._migration_lock(), self._connect() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        self._checked = True
        return self.head_revision()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert head is not None
        return head

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise store_failure(
                exc,
                f"use database {self.display_url}",
                hint="check database_url and that the database is reachable and writable",
            ) from exc

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self._sqlite_file is None:
            yield
            return
        lock_path = self._sqlite_file.with_name(self._sqlite_file.name + ".migrate.lock")
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def newest_revision_file() -> str:
    """The revision of the newest migration: files are named `NNNN_what.py` with revision NNNN
    (a unit test pins that every file follows this, and that alembic agrees on the head)."""
    names = sorted(p.name for p in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return names[-1][:4] if names else ""


def _alembic_config() -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _sqlite_pragmas(dbapi_connection: Any, synchronous: str) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL syncs the log at every commit: a commit survives power loss. NORMAL syncs only at
    # checkpoints: a commit survives a killed process, not a power cut, and costs far less.
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

"""The database: engine set-up (SQLite in WAL mode by default) and migrations on first use."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    JSON,
    ClauseElement,
    Connection,
    Dialect,
    Engine,
    Executable,
    Text,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from opsmith.errors import ConfigError, StoreError
from opsmith.store.failures import store_failure

_MIGRATIONS = Path(__file__).parent / "migrations"
# Keys of PostgreSQL advisory locks: one per thing that must happen one process at a time.
MIGRATION_LOCK = 0x6F70_736D_0001
AUDIT_APPEND_LOCK = 0x6F70_736D_0002
ISSUES_LOCK = 0x6F70_736D_0003


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
        elif parsed.get_backend_name() == "postgresql":
            event.listen(self.engine, "connect", _postgres_session)
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
                    _begin_immediate(connection)
                yield connection
                connection.commit()
        except SQLAlchemyError as exc:
            raise store_failure(exc, f"use database {self.display_url}") from exc

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
            if connection.dialect.name == "postgresql":
                # Held to the commit of the upgrade (PostgreSQL's DDL is transactional): a process
                # that waited reads the revision the first one left and has nothing to do.
                serialise(connection, MIGRATION_LOCK)
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


class EncodedJSON(TypeDecorator[Any]):
    """A JSON column's value handed over already encoded (pydantic's `model_dump_json`, several
    times faster than a dump to Python then json.dumps): SQLite stores the text as it is; other
    databases get it decoded again for their own JSON type."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Text() if dialect.name == "sqlite" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" or not isinstance(value, str):
            return value
        return json.loads(value)


def serialise(connection: Connection, key: int) -> None:
    """On PostgreSQL, wait until no other transaction holds `key`, and hold it to this transaction's
    end: for a read-then-write that SQLite's BEGIN IMMEDIATE (`transaction(immediate=True)`) makes
    one writer at a time, and that no row lock can guard (the row it would lock is not there yet)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_ADVISORY_LOCK, {"key": key})


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def _begin_immediate(connection: Connection) -> None:
    # With pysqlite, SQLAlchemy's begin only marks the transaction it will commit; the driver's own
    # BEGIN IMMEDIATE then takes the write lock, at half the cost of a trip through exec_driver_sql.
    connection.begin()
    dbapi = connection.dialect.loaded_dbapi
    try:
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    except dbapi.Error as exc:
        raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, dbapi.Error) from exc


class Prepared:
    """One Core statement for the hot path of a run, compiled once for the database's dialect.

    On SQLite it runs on the driver's own cursor of the transaction's connection: SQLAlchemy's work
    around each execute (cache key, execution context, result object) costs several times what
    SQLite takes for a one-row write, and a run makes a handful per step. Values go through the
    very type processors SQLAlchemy applies (JSON, DateTime), so what is written reads back alike
    either way, and driver errors reach `Database.transaction` as SQLAlchemy's would. Elsewhere it
    is a plain `connection.execute`. Only for statements with plain bind parameters."""

    def __init__(self, database: Database, statement: Executable) -> None:
        self._statement = statement
        self._dialect = database.engine.dialect
        self._raw = self._dialect.name == "sqlite" and self._dialect.paramstyle == "qmark"
        self._compiled: tuple[str, list[_Bind]] | None = None

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Execute once; the number of rows it changed."""
        if not self._raw:
            return int(getattr(connection.execute(self._statement, dict(params)), "rowcount", 0))
        sql, binds = self._compile()
        return self._driver(connection, sql, [_value(params, b) for b in binds])[0]

    def many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row of `rows`, in one driver call."""
        if not rows:
            return
        if not self._raw:
            connection.execute(self._statement, [dict(r) for r in rows] if len(rows) > 1 else dict(rows[0]))
            return
        sql, binds = self._compile()
        values = [[_value(row, b) for b in binds] for row in rows]
        self._driver(connection, sql, values[0] if len(values) == 1 else values, many=len(values) > 1)

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row the query returns, or None."""
        if not self._raw:
            row = connection.execute(self._statement, dict(params)).first()
            return None if row is None else tuple(row)
        sql, binds = self._compile()
        return self._driver(connection, sql, [_value(params, b) for b in binds])[1]

    def _compile(self) -> tuple[str, list[_Bind]]:
        if self._compiled is None:
            element = cast(ClauseElement, self._statement)
            compiled = cast(SQLCompiler, element.compile(dialect=self._dialect))
            if "POSTCOMPILE" in compiled.string:
                raise TypeError(f"not a plain statement (it expands parameters): {compiled.string}")
            binds = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                processor = bind.type.dialect_impl(self._dialect).bind_processor(self._dialect)
                binds.append(_Bind(name, bind.required, bind.effective_value, processor))
            self._compiled = (compiled.string, binds)
        return self._compiled

    def _driver(
        self, connection: Connection, sql: str, values: Any, *, many: bool = False
    ) -> tuple[int, tuple[Any, ...] | None]:
        if not connection.in_transaction():
            # The transaction SQLAlchemy then commits; the driver begins it with this statement.
            connection.begin()
        cursor = connection.connection.cursor()
        try:
            if many:
                cursor.executemany(sql, values)
            else:
                cursor.execute(sql, values)
            row = cursor.fetchone() if cursor.description else None
            return int(cursor.rowcount), None if row is None else tuple(row)
        except self._dialect.loaded_dbapi.Error as exc:
            # Wrapped as SQLAlchemy wraps it, so store_failure reads the driver's error code.
            raise DBAPIError.instance(sql, None, exc, self._dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()


class _Bind(NamedTuple):
    name: str
    required: bool
    default: Any
    processor: Callable[[Any], Any] | None


def _value(params: Mapping[str, Any], bind: _Bind) -> Any:
    if bind.name in params:
        value = params[bind.name]
    elif bind.required:
        raise KeyError(f"no value for the statement's parameter {bind.name!r}")
    else:
        value = bind.default
    return value if bind.processor is None else bind.processor(value)


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


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    from opsmith.store.postgres_text import keep_nul_out

    keep_nul_out(dbapi_connection)
    # Times are written aware and stored as timestamptz either way, but what PostgreSQL itself
    # renders as text (a raw read, now()) then follows the server's zone; UTC keeps it as SQLite has it.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.commit()

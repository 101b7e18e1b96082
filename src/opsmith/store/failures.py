"""Translate what SQLAlchemy and the database drivers raise into opsmith's store errors.

Whether the database was busy, or a concurrent write took the same key, is read from the driver's
error code (sqlite3's `sqlite_errorcode`, PostgreSQL's SQLSTATE), never from the message text.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from opsmith.errors import StoreBusyError, StoreConflictError, StoreError

# SQLite result codes: an extended code keeps its primary code in the low byte
# (SQLITE_BUSY_SNAPSHOT = 517 is SQLITE_BUSY, SQLITE_LOCKED_SHAREDCACHE = 262 is SQLITE_LOCKED).
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_DUPLICATE = {1555, 2067, 2579}  # SQLITE_CONSTRAINT_PRIMARYKEY, _UNIQUE, _ROWID

# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available.
_PG_BUSY = {"40001", "40P01", "55P03"}
_PG_DUPLICATE = {"23505"}  # unique_violation


def store_failure(exc: SQLAlchemyError, attempted: str, *, hint: str | None = None) -> StoreError:
    """The opsmith error for `exc`, raised while doing `attempted` (e.g. "write to sqlite:///x.db")."""
    driver = exc.orig if isinstance(exc, DBAPIError) else None
    if is_busy(driver):
        return StoreBusyError(
            f"cannot {attempted}: the database was busy ({_code(driver)})",
            hint="another process held the database; try again in a moment",
        )
    if is_duplicate(driver):
        return StoreConflictError(
            f"cannot {attempted}: a concurrent write took the same key first ({_code(driver)})",
            hint="try again: the work is redone from what is stored now",
        )
    return StoreError(f"cannot {attempted}: {exc.__class__.__name__}: {first_line(exc)}", hint=hint)


def is_busy(driver: BaseException | None) -> bool:
    """Whether the driver's exception says the database was locked or the transaction lost a race."""
    code = _sqlite_code(driver)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY
    return _sqlstate(driver) in _PG_BUSY


def is_duplicate(driver: BaseException | None) -> bool:
    """Whether the driver's exception is a unique or primary key violation."""
    code = _sqlite_code(driver)
    if code is not None:
        return code in _SQLITE_DUPLICATE
    return _sqlstate(driver) in _PG_DUPLICATE


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else ""


def _sqlite_code(driver: BaseException | None) -> int | None:
    code = getattr(driver, "sqlite_errorcode", None)
    return code if isinstance(code, int) else None


def _sqlstate(driver: BaseException | None) -> str | None:
    # psycopg 3 and SQLAlchemy's asyncpg adapter call it `sqlstate`, psycopg2 `pgcode`.
    state = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    return state if isinstance(state, str) else None


def _code(driver: BaseException | None) -> str:
    name = getattr(driver, "sqlite_errorname", None)
    return str(name or _sqlstate(driver) or _sqlite_code(driver))

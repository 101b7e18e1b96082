"""Tasks, agents and the task log over the database (the TaskStore port).

Every change of a task is a compare-and-set: `save(task, expected=..., owner=...)` writes only if
the row still has the status (and, for a running task, the lease owner) its writer read, so two
orchestrators never both assign, run or settle the same task; the loser learns it from the False it
gets. A running task's lease says until when its holder may settle it: one whose lease ran out
(its process stopped mid-attempt) is taken back by the next pass as a failed attempt.

A change's audit entries (`audit=`) are chained in the change's own transaction, as a run's are
(store/runs.py): one commit, so one wait for the disk per request, and never a task without its
entry or an entry without its task. The witness moves to the new head after that commit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.agents import Agent
from opsmith.domain.audit import AuditEntry
from opsmith.domain.journal import AuditNote
from opsmith.domain.notifications import Delivery
from opsmith.domain.redaction import redact
from opsmith.domain.tasks import (
    HELD,
    OPEN,
    Assignment,
    Priority,
    Task,
    TaskLogEntry,
    TaskStatus,
    UnknownTaskError,
)
from opsmith.errors import StoreError
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database, Prepared
from opsmith.store.models import Base

# As in the audit log: only another appender taking the next seq first (PostgreSQL), or a busy
# database, makes a write fail retryably; a handful of tries is plenty.
_ATTEMPTS = 8
R = TypeVar("R")


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    capabilities: Mapped[list[str]] = mapped_column(JSON)
    max_concurrent: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    backup: Mapped[bool] = mapped_column(Boolean, default=False)
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    busy_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(16))
    severity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    issue_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    assignment: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_by: Mapped[str] = mapped_column(String(200))
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TaskLogRow(Base):
    __tablename__ = "task_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


_T = cast(Table, TaskRow.__table__)
_A = cast(Table, AgentRow.__table__)
_L = cast(Table, TaskLogRow.__table__)
_HELD = [s.value for s in HELD]
_OPEN = [s.value for s in OPEN]


class TaskRepository:
    """Tasks, agents and the task log (the TaskStore port); audit entries go to `audit`'s chain."""

    def __init__(self, database: Database, audit: AuditLog) -> None:
        self._db = database
        self._audit = audit
        dialect = database.engine.dialect.name
        # Task creation is a request's whole work (POST /api/v1/tasks): its two inserts are
        # compiled once, not at every call.
        every: dict[str, Any] = {c.key: bindparam(c.key) for c in _T.c}
        # RETURNING tells a new row from a kept one on both databases (psycopg's rowcount is -1 here).
        self._insert_task = Prepared(
            database, _insert_once(dialect, _T, "key").values(every).returning(_T.c.id)
        )
        self._insert_log = Prepared(
            database, insert(_L).values({c.key: bindparam(c.key) for c in _L.c if c.key != "id"})
        )

    # --- tasks

    def add(
        self, task: Task, log: Sequence[TaskLogEntry] = (), *, audit: Sequence[AuditNote] = ()
    ) -> tuple[Task, bool]:
        """Store the task unless one with its key is stored: (the stored one, whether it is new).
        Its log entries and `audit` are written with it, and only when it is new."""

        def write(connection: Connection) -> tuple[tuple[Task, bool], bool]:
            if self._insert_task.first(connection, _task_values(task)) is not None:
                self._insert_log.many(connection, _log_rows(log))
                return (task, True), True
            row = connection.execute(select(_T).where(_T.c.key == task.key)).first()
            if row is None:  # no key, and the insert took nothing: cannot happen but for a clash of ids
                return (self._get(connection, task.id), False), False
            return (_task(row), False), False

        return self._write(write, audit)

    def _write(self, work: Callable[[Connection], tuple[R, bool]], audit: Sequence[AuditNote]) -> R:
        """`work` in one transaction, with `audit` chained in it when `work` says it changed
        something: all or nothing, tried again from the start when another appender took the next
        seq first. The witness advances after the commit, never before (a rolled-back entry must not
        look like a removed one)."""
        for attempt in range(1, _ATTEMPTS + 1):
            head: AuditEntry | None = None
            try:
                with self._db.transaction(immediate=True) as connection:
                    found, changed = work(connection)
                    if changed:
                        for note in audit:
                            head = self._audit.append_on(
                                connection,
                                note.actor,
                                note.action,
                                note.subject,
                                redact(note.details, ()),
                                previous=head,
                            )
                break
            except StoreError as error:
                if attempt == _ATTEMPTS or not error.retryable:
                    raise
                # Jitter so writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        else:  # pragma: no cover - the last attempt breaks or raises
            raise AssertionError("unreachable")
        if head is not None:
            self._audit.witnessed(head)
        return found

    def get(self, task_id: str) -> Task:
        with self._db.transaction() as connection:
            return self._get(connection, task_id)

    def _get(self, connection: Connection, task_id: str) -> Task:
        row = connection.execute(select(_T).where(_T.c.id == task_id)).first()
        if row is None:
            raise UnknownTaskError(f"no task {task_id!r}", hint="`opsmith tasks` lists them")
        return _task(row)

    def save(
        self,
        task: Task,
        *,
        expected: TaskStatus,
        owner: str | None = None,
        log: Sequence[TaskLogEntry] = (),
        audit: Sequence[AuditNote] = (),
        notices: Sequence[Delivery] = (),
    ) -> bool:
        """Write `task` if its row is still `expected` (and leased by `owner`, when given), with
        its log entries, `audit` and the `notices` to queue in the outbox in the same transaction;
        False (and nothing written) when another writer changed it first."""
        where = [_T.c.id == task.id, _T.c.status == expected.value]
        if owner is not None:
            where.append(_T.c.lease_owner == owner)
        values = _task_values(task)
        for fixed in ("id", "key", "created_at", "reported_by"):
            values.pop(fixed)

        def write(connection: Connection) -> tuple[bool, bool]:
            changed = connection.execute(update(_T).where(*where).values(**values))
            if changed.rowcount != 1:
                return False, False
            self._insert_log.many(connection, _log_rows(log))
            if notices:
                # Imported here: the outbox's module costs every command that queues nothing.
                from opsmith.store.notifications import enqueue_on

                enqueue_on(connection, notices)
            return True, True

        return self._write(write, audit)

    def find(
        self, statuses: Sequence[TaskStatus] | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[Task]:
        """Newest first."""
        query = select(_T).order_by(_T.c.created_at.desc(), _T.c.id.desc()).limit(limit).offset(offset)
        if statuses:
            query = query.where(_T.c.status.in_([s.value for s in statuses]))
        with self._db.transaction() as connection:
            return [_task(row) for row in connection.execute(query).all()]

    def due(self, now: datetime, *, limit: int) -> list[Task]:
        """Queued tasks whose next attempt is due, most severe first, then the oldest."""
        query = (
            select(_T)
            .where(
                _T.c.status == TaskStatus.QUEUED.value,
                or_(_T.c.next_attempt_at.is_(None), _T.c.next_attempt_at <= now),
            )
            .order_by(_T.c.severity.desc(), _T.c.created_at, _T.c.id)
            .limit(limit)
        )
        with self._db.transaction() as connection:
            return [_task(row) for row in connection.execute(query).all()]

    def held(self) -> list[Task]:
        """Every assigned or running task (what makes the agents' loads)."""
        with self._db.transaction() as connection:
            found = connection.execute(select(_T).where(_T.c.status.in_(_HELD)).order_by(_T.c.created_at))
            return [_task(row) for row in found.all()]

    def overdue(self, now: datetime, *, below_level: int, limit: int) -> list[Task]:
        """Open tasks past their deadline whose escalation level is below `below_level`."""
        query = (
            select(_T)
            .where(
                _T.c.status.in_(_OPEN),
                _T.c.deadline.is_not(None),
                _T.c.deadline <= now,
                _T.c.escalation_level < below_level,
            )
            .order_by(_T.c.deadline, _T.c.id)
            .limit(limit)
        )
        with self._db.transaction() as connection:
            return [_task(row) for row in connection.execute(query).all()]

    def counts(self, now: datetime) -> dict[str, Any]:
        """Tasks by status, open ones by priority, and how many open ones are overdue."""
        with self._db.transaction() as connection:
            by_status = connection.execute(select(_T.c.status, func.count()).group_by(_T.c.status)).all()
            by_priority = connection.execute(
                select(_T.c.priority, func.count()).where(_T.c.status.in_(_OPEN)).group_by(_T.c.priority)
            ).all()
            overdue = connection.execute(
                select(func.count()).where(
                    _T.c.status.in_(_OPEN), _T.c.deadline.is_not(None), _T.c.deadline <= now
                )
            ).scalar_one()
        return {
            "by_status": {str(s): int(n) for s, n in by_status},
            "by_priority": {str(p): int(n) for p, n in by_priority},
            "overdue": int(overdue),
        }

    # --- the log

    def logs(self, *, limit: int = 50, offset: int = 0, kind: str | None = None) -> list[TaskLogEntry]:
        """Newest first."""
        query = select(_L).order_by(_L.c.at.desc(), _L.c.id.desc()).limit(limit).offset(offset)
        if kind is not None:
            query = query.where(_L.c.kind == kind)
        with self._db.transaction() as connection:
            return [_entry(row) for row in connection.execute(query).all()]

    def attempts_since(self, since: datetime) -> list[TaskLogEntry]:
        """The attempts that ended since `since`, oldest first."""
        query = select(_L).where(_L.c.kind == "attempt", _L.c.at >= since).order_by(_L.c.at, _L.c.id)
        with self._db.transaction() as connection:
            return [_entry(row) for row in connection.execute(query).all()]

    # --- agents

    def agents(self) -> list[Agent]:
        with self._db.transaction() as connection:
            return [_agent(row) for row in connection.execute(select(_A).order_by(_A.c.id)).all()]

    def register(self, agents: Sequence[Agent], at: datetime) -> None:
        """Store each agent's definition (type, capabilities, capacity, enabled), keeping the record
        (heartbeat, successes...) of one stored before."""
        with self._db.transaction(immediate=True) as connection:
            for agent in agents:
                definition = {
                    "type": agent.type,
                    "capabilities": sorted(agent.capabilities),
                    "max_concurrent": agent.max_concurrent,
                    "enabled": agent.enabled,
                    "backup": agent.backup,
                    "updated_at": at,
                }
                changed = connection.execute(update(_A).where(_A.c.id == agent.id).values(**definition))
                if changed.rowcount == 0:
                    connection.execute(
                        _insert_once(connection.dialect.name, _A, "id").values(
                            id=agent.id, successes=0, failures=0, busy_seconds=0.0, **definition
                        )
                    )

    def heartbeat(self, agent_ids: Sequence[str], at: datetime) -> None:
        if not agent_ids:
            return
        with self._db.transaction() as connection:
            connection.execute(update(_A).where(_A.c.id.in_(list(agent_ids))).values(last_heartbeat=at))

    def record(self, agent_id: str, *, succeeded: bool, seconds: float) -> None:
        """Count one attempt of the agent in its record."""
        counter = _A.c.successes if succeeded else _A.c.failures
        with self._db.transaction() as connection:
            connection.execute(
                update(_A)
                .where(_A.c.id == agent_id)
                .values({counter: counter + 1, _A.c.busy_seconds: _A.c.busy_seconds + max(seconds, 0.0)})
            )


def _insert_once(dialect: str, table: Table, column: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite  # only writers pay for loading them

    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[column])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[column])
    return insert(table)


def _log_rows(log: Sequence[TaskLogEntry]) -> list[dict[str, Any]]:
    return [{**entry.model_dump(mode="json"), "at": entry.at} for entry in log]


def _task_values(task: Task) -> dict[str, Any]:
    values = task.model_dump(mode="python", exclude={"assignment", "priority", "status"})
    values["details"] = task.model_dump(mode="json", include={"details"})["details"]
    values["result"] = (
        None if task.result is None else task.model_dump(mode="json", include={"result"})["result"]
    )
    values["priority"] = task.priority.value
    values["severity"] = task.priority.severity
    values["status"] = task.status.value
    values["assignment"] = None if task.assignment is None else task.assignment.model_dump(mode="json")
    return values


def _task(row: Any) -> Task:
    return Task(
        id=row.id,
        key=row.key,
        type=row.type,
        title=row.title,
        details=row.details or {},
        priority=Priority(row.priority),
        status=TaskStatus(row.status),
        deadline=_aware(row.deadline),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        escalation_level=row.escalation_level,
        next_attempt_at=_aware(row.next_attempt_at),
        run_id=row.run_id,
        issue_id=row.issue_id,
        agent_id=row.agent_id,
        assignment=None if row.assignment is None else Assignment.model_validate(row.assignment),
        result=row.result,
        last_error=row.last_error,
        reported_by=row.reported_by,
        lease_owner=row.lease_owner,
        lease_expires=_aware(row.lease_expires),
        created_at=_aware(row.created_at) or row.created_at,
        updated_at=_aware(row.updated_at) or row.updated_at,
        escalated_at=_aware(row.escalated_at),
        finished_at=_aware(row.finished_at),
    )


def _entry(row: Any) -> TaskLogEntry:
    return TaskLogEntry(
        task_id=row.task_id,
        kind=row.kind,
        agent_id=row.agent_id,
        attempt=row.attempt,
        outcome=row.outcome,
        seconds=row.seconds,
        detail=row.detail or {},
        at=_aware(row.at) or row.at,
    )


def _agent(row: Any) -> Agent:
    return Agent(
        id=row.id,
        type=row.type,
        capabilities=frozenset(row.capabilities or []),
        max_concurrent=row.max_concurrent,
        enabled=bool(row.enabled),
        backup=bool(row.backup),
        last_heartbeat=_aware(row.last_heartbeat),
        successes=row.successes,
        failures=row.failures,
        busy_seconds=row.busy_seconds,
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["TaskRepository"]

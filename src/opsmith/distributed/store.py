"""The `step_calls` and `workers` tables (the StepCallStore port) over SQLite or PostgreSQL.

Every status change is one UPDATE guarded by the status it moves from, so two workers racing for
one call, or a driver giving up on a call its worker finishes at that moment, cannot both win:
the database decides, and the loser sees `False` / `None`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, DateTime, Float, Integer, String, Table, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.step_calls import CallKind, CallStatus, StepCall, WorkerInfo
from opsmith.errors import StoreConflictError
from opsmith.store.database import Database
from opsmith.store.models import Base


class StepCallRow(Base):
    __tablename__ = "step_calls"

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(80), index=True)
    step_id: Mapped[str] = mapped_column(String(80))
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    server: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    finished_hosts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    timeout: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class WorkerRow(Base):
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


_C = cast(Table, StepCallRow.__table__)
_W = cast(Table, WorkerRow.__table__)
_QUEUED, _CLAIMED, _DONE = CallStatus.QUEUED.value, CallStatus.CLAIMED.value, CallStatus.DONE.value


class StepCallRepository:
    """Step calls and workers over the database (the StepCallStore port)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- calls ----------------------------------------------------------------------------------

    def request(self, call: StepCall) -> StepCall:
        """Store the call unless one with its key is stored; the call as stored."""
        try:
            with self._db.transaction() as connection:
                connection.execute(insert(_C).values(**_values(call)))
            return call
        except StoreConflictError:
            pass  # stored before (the same call asked for again): the stored row is the call
        stored = self.get(call.key)
        assert stored is not None  # a key once stored is never deleted
        return stored

    def request_many(self, calls: Iterable[StepCall]) -> dict[str, StepCall]:
        """`request` for several calls in one transaction (the calls one driver asks for at once);
        each call as stored, by key."""
        wanted = {call.key: call for call in calls}
        if not wanted:
            return {}
        try:
            with self._db.transaction() as connection:
                found = connection.execute(select(_C).where(_C.c.key.in_(list(wanted)))).all()
                stored = {row.key: _call(row) for row in found}
                new = [_values(call) for key, call in wanted.items() if key not in stored]
                if new:
                    connection.execute(insert(_C), new)
        except StoreConflictError:
            # Stored meanwhile by someone else: one by one, each finds its own row.
            return {call.key: self.request(call) for call in wanted.values()}
        return {key: stored.get(key, call) for key, call in wanted.items()}

    def get(self, key: str) -> StepCall | None:
        with self._db.transaction() as connection:
            found = connection.execute(select(_C).where(_C.c.key == key)).first()
        return None if found is None else _call(found)

    def get_many(self, keys: Iterable[str], *, status: CallStatus | None = None) -> dict[str, StepCall]:
        wanted = list(keys)
        if not wanted:
            return {}
        query = select(_C).where(_C.c.key.in_(wanted))
        if status is not None:
            query = query.where(_C.c.status == status.value)
        with self._db.transaction() as connection:
            rows = connection.execute(query).all()
        return {row.key: _call(row) for row in rows}

    def for_run(self, run_id: str) -> list[StepCall]:
        with self._db.transaction() as connection:
            rows = connection.execute(select(_C).where(_C.c.run_id == run_id).order_by(_C.c.created_at)).all()
        return [_call(row) for row in rows]

    def claim(self, key: str, worker: str, at: datetime) -> StepCall | None:
        """queued -> claimed by `worker`; None when it is not queued (claimed or done already)."""
        values = {"status": _CLAIMED, "worker": worker, "claimed_at": at, "heartbeat_at": at}
        claim = update(_C).where(_C.c.key == key, _C.c.status == _QUEUED).values(**values).returning(*_C.c)
        with self._db.transaction() as connection:
            claimed = connection.execute(claim).first()
        return None if claimed is None else _call(claimed)

    def beat(self, key: str, worker: str, at: datetime) -> bool:
        """The worker still calls; False when the call is no longer its own (given up on)."""
        return self._move(key, _CLAIMED, {"heartbeat_at": at}, worker=worker)

    def finish(self, key: str, worker: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        """claimed by `worker` -> done with `outcome`: the worker's answer, or the driver's verdict
        that the worker went silent. False when the other one got there first."""
        return self._move(key, _CLAIMED, _done(outcome, at), worker=worker)

    def settle_queued(self, key: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        """queued -> done without a call (its driver gave up on it, or it may not run any more):
        a message that comes later finds it done. False when a worker claimed it first."""
        return self._move(key, _QUEUED, _done(outcome, at))

    def resent(self, key: str, at: datetime) -> None:
        self._move(key, _QUEUED, {"sent_at": at})

    def _move(self, key: str, status: str, values: Mapping[str, Any], *, worker: str | None = None) -> bool:
        condition = [_C.c.key == key, _C.c.status == status]
        if worker is not None:
            condition.append(_C.c.worker == worker)
        with self._db.transaction() as connection:
            moved = connection.execute(update(_C).where(*condition).values(**values))
        return moved.rowcount == 1

    # -- workers --------------------------------------------------------------------------------

    def register_worker(self, worker: WorkerInfo) -> None:
        values = {
            "host": worker.host,
            "pid": worker.pid,
            "concurrency": worker.concurrency,
            "started_at": worker.started_at,
            "heartbeat_at": worker.heartbeat_at,
        }
        with self._db.transaction() as connection:
            found = connection.execute(update(_W).where(_W.c.name == worker.name).values(**values))
            if found.rowcount == 0:
                connection.execute(insert(_W).values(name=worker.name, **values))

    def beat_worker(self, name: str, at: datetime) -> None:
        with self._db.transaction() as connection:
            connection.execute(update(_W).where(_W.c.name == name).values(heartbeat_at=at))

    def remove_worker(self, name: str) -> None:
        with self._db.transaction() as connection:
            connection.execute(delete(_W).where(_W.c.name == name))

    def live_workers(self, since: datetime) -> list[WorkerInfo]:
        """Workers heard from at or after `since`, by name."""
        with self._db.transaction() as connection:
            rows = connection.execute(select(_W).where(_W.c.heartbeat_at >= since).order_by(_W.c.name)).all()
        return [
            WorkerInfo(
                name=row.name,
                host=row.host,
                pid=row.pid,
                concurrency=row.concurrency,
                started_at=_utc(row.started_at),
                heartbeat_at=_utc(row.heartbeat_at),
            )
            for row in rows
        ]


def _done(outcome: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    return {"status": _DONE, "outcome": dict(outcome), "finished_at": at}


def _values(call: StepCall) -> dict[str, Any]:
    return {
        "key": call.key,
        "run_id": call.run_id,
        "step_id": call.step_id,
        "attempt": call.attempt,
        "kind": call.kind.value,
        "server": call.server,
        "tool": call.tool,
        "args": call.args,
        "finished_hosts": call.finished_hosts,
        "timeout": call.timeout,
        "status": call.status.value,
        "worker": call.worker,
        "created_at": call.created_at,
        "sent_at": call.sent_at,
        "claimed_at": call.claimed_at,
        "heartbeat_at": call.heartbeat_at,
        "finished_at": call.finished_at,
        "outcome": call.outcome,
    }


def _call(row: Row[Any]) -> StepCall:
    return StepCall(
        key=row.key,
        run_id=row.run_id,
        step_id=row.step_id,
        attempt=row.attempt,
        kind=CallKind(row.kind),
        server=row.server,
        tool=row.tool,
        args=row.args,
        finished_hosts=row.finished_hosts,
        timeout=row.timeout,
        status=CallStatus(row.status),
        worker=row.worker,
        created_at=_utc(row.created_at),
        sent_at=_utc(row.sent_at),
        claimed_at=_maybe(row.claimed_at),
        heartbeat_at=_maybe(row.heartbeat_at),
        finished_at=_maybe(row.finished_at),
        outcome=row.outcome,
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _maybe(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


__all__ = ["StepCallRepository"]

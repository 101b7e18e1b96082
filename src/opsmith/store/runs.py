"""Repository of runs: their state, their events and the audit entries of their tool calls, committed
together in one transaction per change, and the lease that lets one process at a time drive a run.

Only the lease holder writes a run (every commit is fenced on the lease owner), so the next event
number can be kept in memory once read. Other processes ask for a pause or a cancel through the
`requested` column; the holder sees it at its next heartbeat.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, Update, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from opsmith.domain.approval import seal_plan
from opsmith.domain.audit import AuditEntry
from opsmith.domain.errors import NotFoundError, OperationError, UsageError
from opsmith.domain.journal import AuditNote, Lease, RunSummary
from opsmith.domain.plan import Plan, PlanStatus, signed_fields
from opsmith.domain.redaction import redact
from opsmith.domain.seal import Seal
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunState, RunStatus
from opsmith.errors import StoreError
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database, EncodedJSON, Prepared
from opsmith.store.models import PlanRow
from opsmith.store.run_models import EventRow, RunRow, RunStepRow
from opsmith.store.wakeups import announce

_ATTEMPTS = 8


class UnknownRunError(NotFoundError):
    """A run id that is not in the store."""


class PlanTaken(UsageError):
    """The plan a new run was to claim is no longer approved as it was (another run took it)."""


class LeaseLost(OperationError):
    """Another process took over the run (this one was presumed dead): stop driving it."""


def new_owner() -> str:
    """host:pid:token. A local owner whose process is gone can be taken over at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def owner_is_gone(owner: str) -> bool:
    """Whether `owner` names a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunRepository:
    """With a seal, a plan whose status a run moves (running, succeeded...) is signed again with it."""

    def __init__(self, database: Database, audit: AuditLog | None = None, seal: Seal | None = None) -> None:
        self._db = database
        self._audit = audit or AuditLog(database)
        self._seal = seal
        self._saved: dict[str, RunState] = {}
        self._seq: dict[str, int] = {}
        self._sql = _Statements(database)
        # The last audit entry this repository wrote: the next one chains to it without a read.
        self._audit_head: AuditEntry | None = None

    def commit(
        self,
        state: RunState,
        *,
        owner: str,
        events: Sequence[RunEvent] = (),
        audits: Sequence[AuditNote] = (),
        started_by: str = "",
        lease_seconds: float = 30.0,
        clear_request: bool = False,
        changed: Sequence[str] | None = None,
        claim: Plan | None = None,
    ) -> list[RunEvent]:
        """With `claim`, a new run also moves its approved plan to running, in the same transaction
        (`PlanTaken` and nothing written if the plan is no longer approved with that hash).

        Write the run's head, the steps that changed since this repository last wrote it (or
        `changed`, when the caller knows), the events (numbered here) and the audit entries, all or
        nothing; `LeaseLost` if `owner` no longer holds the run. A new run is created leased to
        `owner`."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._db.transaction(immediate=True) as connection:
                    if claim is not None:
                        _claim(connection, claim, self._seal)
                    stored = self._write(
                        connection,
                        state,
                        owner,
                        events,
                        audits,
                        started_by,
                        lease_seconds,
                        clear_request,
                        changed,
                    )
                    if stored:  # sent when this commits, never before: any API replica may read them then
                        announce(connection, state.run_id, stored[-1].seq)
                break
            except StoreError as error:
                self._audit_head = None  # someone else may have appended: read the chain again
                if attempt == _ATTEMPTS or not error.retryable:
                    raise
                time.sleep(random.uniform(0.005, 0.05) * attempt)
            except BaseException:
                self._audit_head = None
                raise
        if audits and self._audit_head is not None:
            self._audit.witnessed(self._audit_head)
        self._saved[state.run_id] = state
        if stored:
            self._seq[state.run_id] = stored[-1].seq
        return stored

    def _write(
        self,
        connection: Connection,
        state: RunState,
        owner: str,
        events: Sequence[RunEvent],
        audits: Sequence[AuditNote],
        started_by: str,
        lease_seconds: float,
        clear_request: bool,
        changed: Sequence[str] | None,
    ) -> list[RunEvent]:
        now = datetime.now(UTC)
        run_id = state.run_id
        sql = self._sql
        last = self._saved.get(run_id)
        values = {"b_id": run_id, "b_owner": owner, "state": _head_json(state), "updated_at": now}
        # Columns that did not change stay out of the SET: SQLite rewrites an index entry for every
        # indexed column named there (status), one more page to write and sync per commit.
        same = last is not None and last.status is state.status and last.plan_hash == state.plan_hash
        if not same:
            values["plan_hash"], values["status"] = state.plan_hash, state.status.value
        updated = sql.head(clear=clear_request, columns=not same).run(connection, values)
        existing: set[str] = set(state.steps) if last is not None else set()
        if updated == 0:
            if sql.run_exists.first(connection, {"b_id": run_id}) is not None:
                raise LeaseLost(
                    f"run {run_id} is now driven by another process",
                    hint=f"this process stops; see: opsmith status {run_id}",
                )
            sql.insert_run.run(
                connection,
                {
                    "id": run_id,
                    "plan_id": state.plan_id,
                    "plan_hash": state.plan_hash,
                    "status": state.status.value,
                    "started_by": started_by,
                    "state": state.model_dump(mode="json", exclude={"steps"}),
                    "lease_owner": owner,
                    "lease_expires": now + timedelta(seconds=lease_seconds),
                    "created_at": now,
                    "updated_at": now,
                },
            )
        elif last is None:
            existing = {row.step_id for row in connection.execute(_STEP_IDS, {"b_run": run_id})}
        if last is not None and changed is not None:
            steps = [state.steps[k] for k in dict.fromkeys(changed)]
        else:
            # Unchanged steps are the very same objects in the new state (states are immutable).
            steps = [v for k, v in state.steps.items() if last is None or last.steps.get(k) is not v]
        new_rows: list[dict[str, Any]] = []
        old_rows: list[dict[str, Any]] = []
        for step in steps:
            row = {
                "b_run": run_id,
                "b_step": step.step_id,
                "status": step.status.value,
                "state": step.model_dump_json(),
            }
            (old_rows if step.step_id in existing else new_rows).append(row)
        sql.insert_step.many(connection, new_rows)
        sql.update_step.many(connection, old_rows)
        follows = PLAN_FOLLOWS.get(state.status)
        if follows is not None and (last is None or last.status is not state.status):
            _plan_follows(connection, state.plan_id, follows, self._seal)
        stored = self._events(connection, run_id, events)
        link = self._audit_head
        for note in audits:
            link = self._audit.append_on(
                connection, note.actor, note.action, note.subject, redact(note.details, ()), previous=link
            )
        self._audit_head = link  # kept only if the transaction commits (see commit)
        return stored

    def _events(self, connection: Connection, run_id: str, events: Sequence[RunEvent]) -> list[RunEvent]:
        if not events:
            return []
        seq = self._seq.get(run_id)
        if seq is None:
            found = self._sql.last_event.first(connection, {"b_run": run_id})
            seq = (found[0] if found else None) or 0
        stored = [e.model_copy(update={"run_id": run_id, "seq": seq + n}) for n, e in enumerate(events, 1)]
        rows = [
            {
                "run_id": e.run_id,
                "seq": e.seq,
                "at": e.at,
                "type": e.type.value,
                "step_id": e.step_id,
                "message": e.message,
                "data": e.data,
            }
            for e in stored
        ]
        self._sql.insert_event.many(connection, rows)
        return stored

    def claim(self, run_id: str, owner: str, *, seconds: float = 30.0) -> RunState | None:
        """Take the run's lease if it is free, expired, ours, or held by a local process that died,
        and return the run as it stands under the new lease, read in the same transaction: nothing
        the previous holder wrote can come between the claim and that read. None when it is held."""
        now = datetime.now(UTC)
        with self._db.transaction(immediate=True) as connection:
            locking = connection.dialect.name == "postgresql"
            # SQLite's BEGIN IMMEDIATE already made this the only writer. On PostgreSQL the row lock
            # does: a claimer that finds it locked steps aside at once instead of queueing behind
            # the one that is taking the run over, and whoever holds the lock reads what it writes.
            lease = connection.execute(_LEASE_LOCKED if locking else _LEASE, {"b_id": run_id}).first()
            if lease is None:
                if locking and connection.execute(_RUN_EXISTS, {"b_id": run_id}).first() is not None:
                    return None  # another process is claiming it at this very moment
                raise _unknown_run(connection, run_id)
            holder, expires = lease.lease_owner, _aware(lease.lease_expires)
            free = (
                holder is None
                or holder == owner
                or (expires is not None and expires < now)
                or owner_is_gone(holder)
            )
            if not free:
                return None
            same = _RUNS.c.lease_owner.is_(None) if holder is None else _RUNS.c.lease_owner == holder
            taken = connection.execute(
                update(_RUNS)
                .where(_RUNS.c.id == run_id, same)
                .values(lease_owner=owner, lease_expires=now + timedelta(seconds=seconds))
            )
            if taken.rowcount != 1:
                return None
            state = _read_run(connection, run_id)
        # Whoever held it before may have written since we last looked.
        self._saved.pop(run_id, None)
        self._seq.pop(run_id, None)
        return state

    def heartbeat(self, run_id: str, owner: str, *, seconds: float) -> str | None:
        """Extend the lease; returns the pending request (pause, cancel...). `LeaseLost` if taken."""
        with self._db.session() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner)
                .values(lease_expires=datetime.now(UTC) + timedelta(seconds=seconds))
            )
            if getattr(result, "rowcount", 0) == 0:
                raise LeaseLost(f"run {run_id} is now driven by another process")
            return session.scalar(select(RunRow.requested).where(RunRow.id == run_id))

    def release(self, run_id: str, owner: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None)
            )

    def lease(self, run_id: str) -> Lease:
        with self._db.session() as session:
            row = self._row(session, run_id)
            return Lease(row.lease_owner, _aware(row.lease_expires), row.requested)

    def request(self, run_id: str, what: str | None) -> None:
        """Ask the holder to pause or cancel (or withdraw the request with None)."""
        with self._db.session() as session:
            self._row(session, run_id)
            session.execute(update(RunRow).where(RunRow.id == run_id).values(requested=what))

    def get(self, run_id: str) -> RunState:
        with self._db.transaction() as connection:
            state = _read_run(connection, run_id)
            if state is None:
                raise _unknown_run(connection, run_id)
            return state

    def ids(self, statuses: Iterable[RunStatus]) -> list[str]:
        """Runs in any of `statuses`, oldest first."""
        wanted = [s.value for s in statuses]
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(RunRow.id).where(RunRow.status.in_(wanted)).order_by(RunRow.created_at)
                )
            )

    def latest_for_plan(self, plan_id: str) -> RunState | None:
        """The plan's newest run, if it has one."""
        with self._db.session() as session:
            run_id = session.scalar(
                select(RunRow.id).where(RunRow.plan_id == plan_id).order_by(RunRow.created_at.desc()).limit(1)
            )
        return None if run_id is None else self.get(run_id)

    def started_by(self, run_id: str) -> str:
        with self._db.session() as session:
            row = session.get(RunRow, run_id)
            return row.started_by if row else ""

    def summaries(
        self, statuses: Iterable[RunStatus] | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunSummary]:
        query = select(
            RunRow.id, RunRow.plan_id, RunRow.status, RunRow.started_by, RunRow.created_at, RunRow.updated_at
        )
        if statuses is not None:
            query = query.where(RunRow.status.in_([s.value for s in statuses]))
        query = query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit).offset(offset)
        with self._db.session() as session:
            return [
                RunSummary(
                    run_id=r.id,
                    plan_id=r.plan_id,
                    status=r.status,
                    started_by=r.started_by,
                    created_at=_aware(r.created_at) or r.created_at,
                    updated_at=_aware(r.updated_at) or r.updated_at,
                )
                for r in session.execute(query)
            ]

    def last_seq(self, run_id: str) -> int:
        with self._db.session() as session:
            return int(session.scalar(select(func.max(EventRow.seq)).where(EventRow.run_id == run_id)) or 0)

    def events(self, run_id: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
        query = select(EventRow).where(EventRow.run_id == run_id, EventRow.seq > after).order_by(EventRow.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._db.session() as session:
            rows = session.scalars(query)
            return [
                RunEvent(
                    run_id=r.run_id,
                    seq=r.seq,
                    at=_aware(r.at) or r.at,
                    type=EventType(r.type),
                    step_id=r.step_id,
                    message=r.message,
                    data=r.data,
                )
                for r in rows
            ]

    @staticmethod
    def _row(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise _unknown_run(session, run_id)
        return row


def _unknown_run(reader: Connection | Session, run_id: str) -> UnknownRunError:
    near = list(reader.execute(select(_RUNS.c.id).order_by(_RUNS.c.created_at.desc()).limit(3)).scalars())
    return UnknownRunError(
        f"no run {run_id!r}",
        hint=f"recent runs: {', '.join(near)}" if near else "start one: opsmith run PLAN",
    )


def _read_run(reader: Connection, run_id: str) -> RunState | None:
    """The run's head and its steps, in the caller's transaction."""
    head = reader.execute(_READ_HEAD, {"b_id": run_id}).scalar()
    if head is None:
        return None
    steps = reader.execute(_READ_STEPS, {"b_run": run_id})
    return RunState.model_validate({**head, "steps": {step_id: state for step_id, state in steps}})


# Built once: statements are the costly part of a small write through SQLAlchemy.
_RUNS = cast(Table, RunRow.__table__)
_STEPS = cast(Table, RunStepRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_FENCE = (_RUNS.c.id == bindparam("b_id")) & (_RUNS.c.lease_owner == bindparam("b_owner"))
# The head and the steps are written as pydantic encodes them (model_dump_json).
_ENCODED = bindparam("state", type_=EncodedJSON())


def _head_json(state: RunState) -> str:
    return state.model_dump_json(exclude={"steps"})


def _head_update(*, clear: bool, columns: bool) -> Update:
    """The run's head, fenced on the lease owner; `columns`: plan_hash and status too."""
    values: dict[str, Any] = {"state": _ENCODED, "updated_at": bindparam("updated_at")}
    if columns:
        values |= {"plan_hash": bindparam("plan_hash"), "status": bindparam("status")}
    if clear:
        values["requested"] = None
    return update(_RUNS).where(_FENCE).values(**values)


_HEADS = {
    (clear, columns): _head_update(clear=clear, columns=columns)
    for clear in (False, True)
    for columns in (False, True)
}
_RUN_EXISTS = select(_RUNS.c.id).where(_RUNS.c.id == bindparam("b_id"))
_LEASE = select(_RUNS.c.lease_owner, _RUNS.c.lease_expires).where(_RUNS.c.id == bindparam("b_id"))
_LEASE_LOCKED = _LEASE.with_for_update(skip_locked=True)
_READ_HEAD = select(_RUNS.c.state).where(_RUNS.c.id == bindparam("b_id"))
# In step id order, as SQLite reads them through the primary key anyway (it sorts nothing more for
# this); PostgreSQL would give them in whatever order its heap holds them after updates.
_READ_STEPS = (
    select(_STEPS.c.step_id, _STEPS.c.state)
    .where(_STEPS.c.run_id == bindparam("b_run"))
    .order_by(_STEPS.c.step_id)
)
_INSERT_RUN = insert(_RUNS).values({c.key: bindparam(c.key) for c in _RUNS.c if c.key != "requested"})
_STEP_IDS = select(_STEPS.c.step_id).where(_STEPS.c.run_id == bindparam("b_run"))
_INSERT_STEP = insert(_STEPS).values(
    run_id=bindparam("b_run"), step_id=bindparam("b_step"), status=bindparam("status"), state=_ENCODED
)
_UPDATE_STEP = (
    update(_STEPS)
    .where((_STEPS.c.run_id == bindparam("b_run")) & (_STEPS.c.step_id == bindparam("b_step")))
    .values(status=bindparam("status"), state=_ENCODED)
)
_LAST_EVENT = select(func.max(_EVENTS.c.seq)).where(_EVENTS.c.run_id == bindparam("b_run"))
_INSERT_EVENT = insert(_EVENTS).values({c.key: bindparam(c.key) for c in _EVENTS.c if c.key != "id"})


class _Statements:
    """The hot path's statements, prepared for one database (compiled on first use)."""

    def __init__(self, database: Database) -> None:
        self._heads = {key: Prepared(database, statement) for key, statement in _HEADS.items()}
        self.run_exists = Prepared(database, _RUN_EXISTS)
        self.insert_run = Prepared(database, _INSERT_RUN)
        self.insert_step = Prepared(database, _INSERT_STEP)
        self.update_step = Prepared(database, _UPDATE_STEP)
        self.last_event = Prepared(database, _LAST_EVENT)
        self.insert_event = Prepared(database, _INSERT_EVENT)

    def head(self, *, clear: bool, columns: bool) -> Prepared:
        return self._heads[(clear, columns)]


# What the plan becomes when its run reaches these statuses: written in the run's own transaction,
# so no crash can leave a plan `running` behind a finished run.
PLAN_FOLLOWS = {
    RunStatus.SUCCEEDED: PlanStatus.SUCCEEDED,
    RunStatus.ROLLED_BACK: PlanStatus.ROLLED_BACK,
    RunStatus.FAILED: PlanStatus.FAILED,
    RunStatus.NEEDS_ATTENTION: PlanStatus.FAILED,
    RunStatus.CANCELLED: PlanStatus.CANCELLED,
}


def _plan_follows(connection: Connection, plan_id: str, status: PlanStatus, seal: Seal | None) -> None:
    data = connection.execute(select(PlanRow.data).where(PlanRow.id == plan_id)).scalar()
    if data is not None:
        data = {**data, "status": status.value}
        if seal is not None:
            # Only the status changes, so the plan's own signed fields come from what is stored.
            data["seal"] = seal.sign(
                "plan",
                signed_fields(
                    data["id"], data["hash"], data["requested_by"], status, data.get("amended_by", [])
                ),
            )
        connection.execute(
            update(PlanRow).where(PlanRow.id == plan_id).values(status=status.value, data=data)
        )


def _claim(connection: Connection, plan: Plan, seal: Seal | None) -> None:
    running = plan.model_copy(update={"status": PlanStatus.RUNNING})
    if seal is not None:
        running = seal_plan(running, seal)
    result = connection.execute(
        update(PlanRow)
        .where(PlanRow.id == plan.id, PlanRow.status == PlanStatus.APPROVED.value, PlanRow.hash == plan.hash)
        .values(status=PlanStatus.RUNNING.value, data=running.model_dump(mode="json"))
    )
    if result.rowcount != 1:
        raise PlanTaken(
            f"plan {plan.id} is already being run (or changed) by someone else",
            hint="watch it with: opsmith plans --status running; a plan runs once",
        )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite keeps no zone: times are written in UTC and come back naive.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)

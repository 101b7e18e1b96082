"""The built-in issue tracker: one row per issue, and one per update to mirror on an external tracker.

An occurrence is recorded in one transaction (SQLite's write lock from its start): the newest issue
of its fingerprint is read, the change decided (opsmith.domain.issues.record) and written with its
update, whose run id is unique, so a run settled twice is recorded once. A sync claims an issue
under a lease first, so two workers never mirror the same issue at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.issues import (
    ExternalRef,
    Issue,
    IssueState,
    IssueUpdate,
    Occurrence,
    Recurrence,
    SyncState,
    UnknownIssueError,
    UpdateKind,
    record,
    withdrawn,
)
from opsmith.store.database import ISSUES_LOCK, Database, serialise
from opsmith.store.models import Base


class IssueRow(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tool: Mapped[str] = mapped_column(String(200))
    cause: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    run_ids: Mapped[list[str]] = mapped_column(JSON)
    external_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    external_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sync_state: Mapped[str] = mapped_column(String(16))
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IssueUpdateRow(Base):
    __tablename__ = "issue_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(160), nullable=True, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    occurrence: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


_I = cast(Table, IssueRow.__table__)
_U = cast(Table, IssueUpdateRow.__table__)
_SYNCING = (SyncState.PENDING.value, SyncState.FAILED.value)


class IssueRepository:
    """The built-in tracker over the database (the IssueStore port)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, occurrence: Occurrence, *, on_recurrence: Recurrence, sync: SyncState) -> Issue | None:
        """Record a failed run's occurrence: a new issue, a comment on the open one of its
        fingerprint, or (after a close) a reopen or a new issue per `on_recurrence`. The issue as it
        now stands; None when that run was recorded already."""
        with self._db.transaction(immediate=True) as connection:
            # Two failures of one fingerprint at once would each find no open issue and open two.
            serialise(connection, ISSUES_LOCK)
            if _recorded_run(connection, occurrence.run_id):
                return None
            return _record(connection, occurrence, on_recurrence, sync)

    def get(self, issue_id: int, *, with_updates: bool = False) -> Issue:
        with self._db.transaction() as connection:
            return _issue(_row(connection, issue_id), _updates(connection, issue_id) if with_updates else [])

    def for_run(self, run_id: str) -> Issue | None:
        with self._db.transaction() as connection:
            found = connection.execute(select(_U.c.issue_id).where(_U.c.run_id == run_id)).scalar()
            return None if found is None else _issue(_row(connection, int(found)))

    def recent(self, state: IssueState | None = None, limit: int = 50, offset: int = 0) -> list[Issue]:
        """Newest first."""
        query = select(_I).order_by(_I.c.updated_at.desc(), _I.c.id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(_I.c.state == state.value)
        with self._db.transaction() as connection:
            return [_issue(row) for row in connection.execute(query).all()]

    def due(self, now: datetime, *, limit: int, include_failed: bool = False) -> list[int]:
        """Ids of the issues waiting to be mirrored whose next attempt is due, oldest due first."""
        wanted = _SYNCING if include_failed else (SyncState.PENDING.value,)
        pending = and_(_I.c.sync_state == SyncState.PENDING.value, _I.c.next_attempt_at <= now)
        failed = _I.c.sync_state == SyncState.FAILED.value
        query = (
            select(_I.c.id)
            .where(_I.c.sync_state.in_(wanted), or_(pending, failed) if include_failed else pending)
            .order_by(_I.c.next_attempt_at, _I.c.id)
            .limit(limit)
        )
        with self._db.transaction() as connection:
            return [int(found) for found in connection.execute(query).scalars()]

    def claim(
        self, issue_id: int, owner: str, now: datetime, *, lease_seconds: float, include_failed: bool = False
    ) -> Issue | None:
        """Lease the issue for mirroring: it with its unmirrored updates, or None when another
        worker holds it or it waits for nothing (a failed one only with `include_failed`)."""
        free = or_(_I.c.lease_owner.is_(None), _I.c.lease_expires < now, _I.c.lease_owner == owner)
        wanted = _SYNCING if include_failed else (SyncState.PENDING.value,)
        with self._db.transaction(immediate=True) as connection:
            taken = connection.execute(
                update(_I)
                .where(_I.c.id == issue_id, _I.c.sync_state.in_(wanted), free)
                .values(lease_owner=owner, lease_expires=now + timedelta(seconds=lease_seconds))
            )
            if taken.rowcount != 1:
                return None
            pending = [u for u in _updates(connection, issue_id) if u.synced_at is None]
            return _issue(_row(connection, issue_id), pending)

    def linked(self, issue_id: int, ref: ExternalRef, update_id: int | None, at: datetime) -> None:
        """The issue exists on the external tracker as `ref`; `update_id` (its opening) is mirrored."""
        with self._db.transaction() as connection:
            connection.execute(
                update(_I)
                .where(_I.c.id == issue_id)
                .values(external_number=ref.number, external_url=ref.url, updated_at=at)
            )
            if update_id is not None:
                connection.execute(update(_U).where(_U.c.id == update_id).values(synced_at=at))

    def mirrored(self, update_id: int, at: datetime, *, kind: UpdateKind | None = None) -> None:
        with self._db.transaction() as connection:
            values: dict[str, Any] = {"synced_at": at}
            if kind is not None:
                values["kind"] = kind.value
            connection.execute(update(_U).where(_U.c.id == update_id).values(**values))

    def closed_elsewhere(self, issue_id: int, at: datetime, *, on_recurrence: Recurrence) -> list[Issue]:
        """The external copy was found closed: close this one too, and record its unmirrored
        repeats again as recurrences after the close (a reopen, or a new issue). The issues those
        went to."""
        with self._db.transaction(immediate=True) as connection:
            serialise(connection, ISSUES_LOCK)  # it records occurrences again, as `record` does
            issue = _issue(_row(connection, issue_id))
            waiting = [
                u
                for u in _update_rows(connection, issue_id)
                if u.synced_at is None and u.kind != UpdateKind.OPEN.value and u.occurrence is not None
            ]
            connection.execute(delete(_U).where(_U.c.id.in_([u.id for u in waiting])))
            closed = withdrawn(issue, [u.run_id for u in waiting if u.run_id], at)
            connection.execute(update(_I).where(_I.c.id == issue_id).values(**_values(closed)))
            touched: dict[int, Issue] = {}
            for row in waiting:
                occurrence = Occurrence.model_validate(row.occurrence)
                found = _record(connection, occurrence, on_recurrence, SyncState.PENDING)
                touched[found.id] = found
            return list(touched.values())

    def settle(
        self, issue_id: int, owner: str, at: datetime, *, error: str | None, next_attempt_at: datetime | None
    ) -> Issue:
        """End a sync attempt and free the lease: synced when nothing is left to mirror; after an
        error, pending again at `next_attempt_at`, or failed when that is None."""
        with self._db.transaction(immediate=True) as connection:
            row = _row(connection, issue_id)
            values: dict[str, Any] = {"lease_owner": None, "lease_expires": None, "updated_at": at}
            if error is None:
                left = any(u.synced_at is None for u in _update_rows(connection, issue_id))
                values |= {"sync_attempts": 0, "last_error": None}
                # A repeat recorded while this attempt ran is mirrored at once by the next one.
                values |= {"sync_state": SyncState.PENDING.value if left else SyncState.SYNCED.value}
                values |= {"next_attempt_at": at if left else None}
            else:
                state = SyncState.PENDING if next_attempt_at is not None else SyncState.FAILED
                values |= {"sync_state": state.value, "last_error": error, "next_attempt_at": next_attempt_at}
                values |= {"sync_attempts": row.sync_attempts + 1}
            connection.execute(
                update(_I).where(_I.c.id == issue_id, _I.c.lease_owner == owner).values(**values)
            )
            return _issue(_row(connection, issue_id))

    def close(self, issue_id: int, at: datetime) -> Issue:
        """Close it here (the built-in tracker's own close); a repeat then follows `on_recurrence`."""
        with self._db.transaction(immediate=True) as connection:
            _row(connection, issue_id)
            connection.execute(
                update(_I)
                .where(_I.c.id == issue_id, _I.c.state == IssueState.OPEN.value)
                .values(state=IssueState.CLOSED.value, closed_at=at, updated_at=at)
            )
            return _issue(_row(connection, issue_id))


def _recorded_run(connection: Connection, run_id: str) -> bool:
    return connection.execute(select(_U.c.id).where(_U.c.run_id == run_id)).first() is not None


def _record(
    connection: Connection, occurrence: Occurrence, on_recurrence: Recurrence, sync: SyncState
) -> Issue:
    newest = connection.execute(
        select(_I)
        .where(_I.c.fingerprint == occurrence.fingerprint.value)
        .order_by(_I.c.state.desc(), _I.c.id.desc())  # "open" sorts after "closed": an open one first
        .limit(1)
    ).first()
    change = record(None if newest is None else _issue(newest), occurrence, on_recurrence, sync)
    values = _values(change.issue)
    if newest is None or change.issue.id == 0:
        values.pop("id")
        key = connection.execute(insert(_I).values(**values)).inserted_primary_key
        assert key is not None
        issue_id = int(key[0])
    else:
        issue_id = change.issue.id
        connection.execute(update(_I).where(_I.c.id == issue_id).values(**values))
    connection.execute(
        insert(_U).values(
            issue_id=issue_id,
            run_id=occurrence.run_id,
            kind=change.kind.value,
            body=change.body,
            occurrence=occurrence.model_dump(mode="json"),
            created_at=occurrence.at,
            # Nothing to mirror when no external tracker is configured.
            synced_at=occurrence.at if sync is SyncState.LOCAL else None,
        )
    )
    return _issue(_row(connection, issue_id))


def _row(connection: Connection, issue_id: int) -> Any:
    row = connection.execute(select(_I).where(_I.c.id == issue_id)).first()
    if row is None:
        raise UnknownIssueError(f"no issue {issue_id} in the built-in tracker", hint="`opsmith tracker list`")
    return row


def _update_rows(connection: Connection, issue_id: int) -> Sequence[Any]:
    return connection.execute(select(_U).where(_U.c.issue_id == issue_id).order_by(_U.c.id)).all()


def _updates(connection: Connection, issue_id: int) -> list[IssueUpdate]:
    return [
        IssueUpdate(
            id=row.id,
            issue_id=row.issue_id,
            kind=UpdateKind(row.kind),
            run_id=row.run_id,
            body=row.body,
            created_at=_aware(row.created_at) or row.created_at,
            synced_at=_aware(row.synced_at),
        )
        for row in _update_rows(connection, issue_id)
    ]


def _values(issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id,
        "fingerprint": issue.fingerprint,
        "subject": issue.subject[:200],
        "environment": issue.environment,
        "tool": issue.tool[:200],
        "cause": issue.cause[:200],
        "title": issue.title[:300],
        "body": issue.body,
        "labels": list(issue.labels),
        "state": issue.state.value,
        "occurrences": issue.occurrences,
        "run_ids": list(issue.run_ids),
        "external_number": None if issue.external is None else issue.external.number,
        "external_url": None if issue.external is None else issue.external.url,
        "sync_state": issue.sync.value,
        "sync_attempts": issue.sync_attempts,
        "last_error": issue.last_error,
        "next_attempt_at": issue.next_attempt_at,
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
    }


def _issue(row: Any, updates: list[IssueUpdate] | None = None) -> Issue:
    external = None
    if row.external_number is not None:
        external = ExternalRef(number=row.external_number, url=row.external_url or "")
    return Issue(
        id=row.id,
        fingerprint=row.fingerprint,
        subject=row.subject,
        environment=row.environment,
        tool=row.tool,
        cause=row.cause,
        title=row.title,
        body=row.body,
        labels=list(row.labels or []),
        state=IssueState(row.state),
        occurrences=row.occurrences,
        run_ids=list(row.run_ids or []),
        external=external,
        sync=SyncState(row.sync_state),
        sync_attempts=row.sync_attempts,
        last_error=row.last_error,
        next_attempt_at=_aware(row.next_attempt_at),
        created_at=_aware(row.created_at) or row.created_at,
        updated_at=_aware(row.updated_at) or row.updated_at,
        closed_at=_aware(row.closed_at),
        updates=updates or [],
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

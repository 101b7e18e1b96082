"""The notification outbox: one row per notice and channel, claimed under a lease before it is sent.

A row is written when its event is decided and stays until it is delivered or given up, so a
process that stops loses nothing: the next worker finds it. A worker claims due rows in one
transaction (SQLite's write lock from its start; elsewhere each claim is an update conditioned on
the lease it read), so two workers never hold the same row. The attempt is counted at the claim:
a worker that dies while sending has used it up, and a row whose attempts ran out that way is
given up at the next claim instead of being sent forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.notifications import Delivery, DeliveryStatus, Notice, UnknownNotificationError
from opsmith.store.database import Database
from opsmith.store.models import Base

_PENDING = DeliveryStatus.PENDING.value


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(160), index=True)
    notice: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


_T = cast(Table, NotificationRow.__table__)
_C = _T.c


class NotificationRepository:
    """The outbox over the database (the NotificationStore port)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def enqueue(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Store each delivery unless one with its key is stored already; the ones stored."""
        with self._db.transaction(immediate=True) as connection:
            return enqueue_on(connection, deliveries)

    def claim_due(self, owner: str, now: datetime, *, limit: int, lease_seconds: float) -> list[Delivery]:
        """Lease up to `limit` pending rows whose next attempt is due and that nobody holds, oldest
        due first, counting the attempt each is claimed for."""
        free = or_(_C.lease_owner.is_(None), _C.lease_expires < now)
        due = and_(_C.status == _PENDING, _C.next_attempt_at <= now, free)
        claimed: list[Delivery] = []
        with self._db.transaction(immediate=True) as connection:
            connection.execute(
                update(_T)
                .where(due, _C.attempts >= _C.max_attempts)
                .values(
                    status=DeliveryStatus.FAILED.value,
                    last_error=_ABANDONED,
                    lease_owner=None,
                    lease_expires=None,
                    updated_at=now,
                )
            )
            query = select(_T).where(due).order_by(_C.next_attempt_at, _C.created_at).limit(limit)
            if connection.dialect.name == "postgresql":
                # SQLite's BEGIN IMMEDIATE makes one claimer at a time; on PostgreSQL each claimer
                # locks the rows it takes, and the others pass over them to the next due ones.
                query = query.with_for_update(skip_locked=True)
            found = connection.execute(query).all()
            for row in found:
                held = (
                    _C.lease_owner.is_(None) if row.lease_owner is None else _C.lease_owner == row.lease_owner
                )
                taken = connection.execute(
                    update(_T)
                    .where(_C.id == row.id, _C.status == _PENDING, held)
                    .values(
                        lease_owner=owner,
                        lease_expires=now + timedelta(seconds=lease_seconds),
                        attempts=row.attempts + 1,
                        updated_at=now,
                    )
                )
                if taken.rowcount == 1:
                    claimed.append(_delivery(row, attempts=row.attempts + 1))
        return claimed

    def delivered(self, delivery_id: str, owner: str, at: datetime) -> bool:
        """Mark it delivered, if `owner` still holds it; False when another worker took it since."""
        return self._settle(
            delivery_id,
            owner,
            status=DeliveryStatus.DELIVERED.value,
            delivered_at=at,
            last_error=None,
            next_attempt_at=None,
            updated_at=at,
        )

    def failed(
        self, delivery_id: str, owner: str, reason: str, at: datetime, next_attempt_at: datetime | None
    ) -> bool:
        """Record a failed attempt: pending again at `next_attempt_at`, or given up when None."""
        status = DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.FAILED
        return self._settle(
            delivery_id,
            owner,
            status=status.value,
            last_error=reason,
            next_attempt_at=next_attempt_at,
            updated_at=at,
        )

    def _settle(self, delivery_id: str, owner: str, **values: Any) -> bool:
        with self._db.transaction() as connection:
            changed = connection.execute(
                update(_T)
                .where(_C.id == delivery_id, _C.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None, **values)
            )
            return bool(changed.rowcount == 1)

    def retry(self, delivery_id: str, at: datetime, *, extra_attempts: int) -> Delivery:
        """A given-up delivery pending again now, with `extra_attempts` more attempts."""
        with self._db.transaction(immediate=True) as connection:
            row = _row(connection, delivery_id)
            connection.execute(
                update(_T)
                .where(_C.id == delivery_id)
                .values(
                    status=_PENDING,
                    max_attempts=row.attempts + extra_attempts,
                    next_attempt_at=at,
                    lease_owner=None,
                    lease_expires=None,
                    updated_at=at,
                )
            )
            return _delivery(_row(connection, delivery_id))

    def get(self, delivery_id: str) -> Delivery:
        with self._db.transaction() as connection:
            return _delivery(_row(connection, delivery_id))

    def recent(self, limit: int = 50, status: DeliveryStatus | None = None) -> list[Delivery]:
        """Newest first."""
        query = select(_T).order_by(_C.created_at.desc(), _C.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_C.status == status.value)
        with self._db.transaction() as connection:
            return [_delivery(row) for row in connection.execute(query).all()]


_ABANDONED = "gave up: the last attempt never reported back (its worker stopped while sending)"


def enqueue_on(connection: Connection, deliveries: Sequence[Delivery]) -> list[Delivery]:
    """`enqueue` inside a transaction another store runs: a notice written with the change it
    tells of, or not at all."""
    added: list[Delivery] = []
    for delivery in deliveries:
        statement = _insert_once(connection).values(**_values(delivery)).returning(_C.id)
        # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT, whether it took one.
        if connection.execute(statement).first() is not None:
            added.append(delivery)
    return added


def _insert_once(connection: Connection) -> Any:
    # A notice decided twice (a run's end settled again by a take-over or a sweep) is queued once.
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(_T).on_conflict_do_nothing(index_elements=["key"])
    if dialect == "postgresql":
        return postgresql.insert(_T).on_conflict_do_nothing(index_elements=["key"])
    return insert(_T)


def _row(connection: Connection, delivery_id: str) -> Any:
    row = connection.execute(select(_T).where(_C.id == delivery_id)).first()
    if row is None:
        raise UnknownNotificationError(
            f"no notification {delivery_id!r}", hint="`opsmith notifications` lists the recent ones"
        )
    return row


def _values(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "key": delivery.key,
        "event": delivery.notice.event.value,
        "channel": delivery.channel,
        "subject": delivery.subject[:160],
        "notice": delivery.notice.model_dump(mode="json"),
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "delivered_at": delivery.delivered_at,
    }


def _delivery(row: Any, *, attempts: int | None = None) -> Delivery:
    return Delivery(
        id=row.id,
        key=row.key,
        subject=row.subject,
        channel=row.channel,
        notice=Notice.model_validate(row.notice),
        status=DeliveryStatus(row.status),
        attempts=row.attempts if attempts is None else attempts,
        max_attempts=row.max_attempts,
        next_attempt_at=_aware(row.next_attempt_at),
        last_error=row.last_error,
        created_at=_aware(row.created_at) or row.created_at,
        updated_at=_aware(row.updated_at) or row.updated_at,
        delivered_at=_aware(row.delivered_at),
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

"""Webhook deliveries (a delivery id is accepted once) and the records of plans made after a push.

A delivery is claimed by inserting its id: a second insert of the same id finds the row and is a
replay, refused. Only a delivery whose handling failed may be claimed again, so GitHub's redelivery
of a failed one is acted on, and one that was acted on never twice.

A claimed push stays `received` until it is handled (in the background of `opsmith serve`); its
detail names the process handling it, and `take` moves it to another process only from the
detail that process read (a compare-and-set), so two servers never both handle one delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Connection, DateTime, String, Table, Text, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.push import DeliveryOutcome, DeliveryRecord, ReplanRecord
from opsmith.store.database import Database
from opsmith.store.models import Base


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    plan_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    push: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ReplanRow(Base):
    __tablename__ = "replans"

    plan_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    application: Mapped[str] = mapped_column(String(160), index=True)
    environment: Mapped[str] = mapped_column(String(32))
    failed_plan_id: Mapped[str] = mapped_column(String(128))
    failed_run_id: Mapped[str] = mapped_column(String(128))
    delivery_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    repository: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str] = mapped_column(String(255))
    before_sha: Mapped[str] = mapped_column(String(64))
    after_sha: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_D = cast(Table, WebhookDeliveryRow.__table__)
_R = cast(Table, ReplanRow.__table__)
_FAILED = DeliveryOutcome.FAILED.value
_RECEIVED = DeliveryOutcome.RECEIVED.value


class WebhookRepository:
    """Deliveries and re-plan records over the database (the WebhookStore port)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(self, delivery: DeliveryRecord) -> bool:
        """Store the delivery as received; False when its id was accepted before (a replay)."""
        values = _delivery_values(delivery)
        with self._db.transaction(immediate=True) as connection:
            found = connection.execute(
                select(_D.c.outcome).where(_D.c.delivery_id == delivery.delivery_id)
            ).first()
            if found is None:
                return _inserted(connection, values)
            if found.outcome != _FAILED:
                return False
            taken = connection.execute(
                update(_D)
                .where(_D.c.delivery_id == delivery.delivery_id, _D.c.outcome == _FAILED)
                .values(**values)
            )
            return taken.rowcount == 1

    def settle(
        self, delivery_id: str, outcome: DeliveryOutcome, detail: str, plan_id: str | None = None
    ) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                update(_D)
                .where(_D.c.delivery_id == delivery_id)
                .values(outcome=outcome.value, detail=detail[:4000], plan_id=plan_id)
            )

    def take(self, delivery_id: str, detail: str, *, seen: str) -> bool:
        """Set a received delivery's detail to `detail` if it is still `seen`; False otherwise."""
        with self._db.transaction(immediate=True) as connection:
            taken = connection.execute(
                update(_D)
                .where(_D.c.delivery_id == delivery_id, _D.c.outcome == _RECEIVED, _D.c.detail == seen)
                .values(detail=detail[:4000])
            )
            return taken.rowcount == 1

    def unhandled(self, limit: int = 50) -> list[DeliveryRecord]:
        """The deliveries still `received` (claimed, not yet settled), oldest first."""
        query = select(_D).where(_D.c.outcome == _RECEIVED).order_by(_D.c.received_at).limit(limit)
        with self._db.transaction() as connection:
            rows = connection.execute(query).all()
        return [_delivery(dict(r._mapping)) for r in rows]

    def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        with self._db.transaction() as connection:
            row = connection.execute(select(_D).where(_D.c.delivery_id == delivery_id)).first()
        return None if row is None else _delivery(dict(row._mapping))

    def deliveries(self, limit: int = 50) -> list[DeliveryRecord]:
        """Newest first."""
        with self._db.transaction() as connection:
            rows = connection.execute(select(_D).order_by(_D.c.received_at.desc()).limit(limit)).all()
        return [_delivery(dict(r._mapping)) for r in rows]

    def add_replan(self, record: ReplanRecord) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                insert(_R).values(
                    plan_id=record.plan_id,
                    application=record.application,
                    environment=record.environment,
                    failed_plan_id=record.failed_plan_id,
                    failed_run_id=record.failed_run_id,
                    delivery_id=record.delivery_id,
                    repository=record.repository,
                    ref=record.ref,
                    before_sha=record.before,
                    after_sha=record.after,
                    verdict=record.match.verdict.value,
                    record=record.model_dump(mode="json"),
                    created_at=record.created_at,
                )
            )

    def replans(self, application: str) -> list[ReplanRecord]:
        """The application's re-plan records, oldest first."""
        with self._db.transaction() as connection:
            rows = connection.execute(
                select(_R.c.record).where(_R.c.application == application).order_by(_R.c.created_at)
            ).all()
        return [ReplanRecord.model_validate(r.record) for r in rows]

    def replan(self, plan_id: str) -> ReplanRecord | None:
        with self._db.transaction() as connection:
            row = connection.execute(select(_R.c.record).where(_R.c.plan_id == plan_id)).first()
        return None if row is None else ReplanRecord.model_validate(row.record)


def _inserted(connection: Connection, values: Mapping[str, Any]) -> bool:
    # The same delivery claimed by another process a moment earlier inserts nothing here.
    dialect = connection.dialect.name
    if dialect == "sqlite":
        statement: Any = sqlite.insert(_D).on_conflict_do_nothing(index_elements=["delivery_id"])
    elif dialect == "postgresql":
        statement = postgresql.insert(_D).on_conflict_do_nothing(index_elements=["delivery_id"])
    else:
        statement = insert(_D)
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT, whether it took one or not.
    return connection.execute(statement.values(**values).returning(_D.c.delivery_id)).first() is not None


def _delivery_values(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "source": delivery.source,
        "event": delivery.event,
        "repository": delivery.repository,
        "received_at": delivery.received_at,
        "outcome": delivery.outcome.value,
        "detail": delivery.detail,
        "plan_id": delivery.plan_id,
        "push": delivery.push,
    }


def _delivery(row: Mapping[str, Any]) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row["delivery_id"],
        source=row["source"],
        event=row["event"],
        repository=row["repository"],
        received_at=_aware(row["received_at"]),
        outcome=DeliveryOutcome(row["outcome"]),
        detail=row["detail"] or "",
        plan_id=row["plan_id"],
        push=row["push"],
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["WebhookRepository"]

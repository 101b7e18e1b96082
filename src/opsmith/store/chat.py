"""Decisions taken from Slack: one row per Slack user and plan version (the ChatDecisionStore port).

The row is claimed (inserted) before the approval is asked for, in a transaction that holds the
write lock, so two deliveries of one click (a double click, Slack's retry) cannot both go on: the
second finds the row and only shows the plan's state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, String, Table, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.errors import StoreConflictError
from opsmith.domain.slack import ChatDecision, DecisionStatus, Verdict
from opsmith.store.database import Database
from opsmith.store.models import Base


class ChatDecisionRow(Base):
    __tablename__ = "slack_decisions"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    plan_hash: Mapped[str] = mapped_column(String(100))
    slack_team: Mapped[str] = mapped_column(String(64))
    slack_user: Mapped[str] = mapped_column(String(64))
    opsmith_user: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_T = cast(Table, ChatDecisionRow.__table__)
_C = _T.c


class ChatDecisionRepository:
    """Slack decisions over the database."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(self, decision: ChatDecision, *, stale_before: datetime) -> ChatDecision | None:
        try:
            with self._db.transaction(immediate=True) as connection:
                row = connection.execute(select(_T).where(_C.key == decision.key)).first()
                if row is not None:
                    found = _decision(row)
                    if found.status is DecisionStatus.DECIDED or found.updated_at >= stale_before:
                        return found
                    connection.execute(delete(_T).where(_C.key == decision.key))
                connection.execute(insert(_T).values(**_values(decision)))
        except StoreConflictError:
            # Without SQLite's write lock (PostgreSQL) two claims can both read nothing; the loser's
            # insert breaks the key, and the winner's row is what it finds.
            with self._db.transaction() as connection:
                row = connection.execute(select(_T).where(_C.key == decision.key)).first()
            if row is None:
                raise
            return _decision(row)
        return None

    def settle(self, key: str, outcome: str, at: datetime) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                update(_T)
                .where(_C.key == key)
                .values(status=DecisionStatus.DECIDED.value, outcome=outcome, updated_at=at)
            )

    def release(self, key: str) -> None:
        with self._db.transaction() as connection:
            connection.execute(delete(_T).where(_C.key == key, _C.status == DecisionStatus.DECIDING.value))


def _values(decision: ChatDecision) -> dict[str, Any]:
    return {
        "key": decision.key,
        "plan_id": decision.plan_id,
        "plan_hash": decision.plan_hash,
        "slack_team": decision.slack_team,
        "slack_user": decision.slack_user,
        "opsmith_user": decision.user,
        "action": decision.verdict.value,
        "status": decision.status.value,
        "outcome": decision.outcome,
        "created_at": decision.created_at,
        "updated_at": decision.updated_at,
    }


def _decision(row: Any) -> ChatDecision:
    return ChatDecision(
        key=row.key,
        plan_id=row.plan_id,
        plan_hash=row.plan_hash,
        slack_team=row.slack_team,
        slack_user=row.slack_user,
        user=row.opsmith_user,
        verdict=Verdict(row.action),
        status=DecisionStatus(row.status),
        outcome=row.outcome,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

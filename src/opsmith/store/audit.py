"""Repository of the audit trail: appends that keep one chain under concurrency, reads, verification."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, String, Text, insert, select, text, type_coerce
from sqlalchemy.orm import Session

from opsmith.domain.audit import AuditEntry, Link, Verification, new_entry, verify
from opsmith.domain.redaction import redact, redact_text
from opsmith.errors import StoreError
from opsmith.store.database import Database
from opsmith.store.models import AuditRow

# A collision only happens when another process appended between our read and our insert;
# a handful of retries is plenty, more would hide a real fault.
_ATTEMPTS = 8


class AuditLog:
    """The audit trail in the store. Details are redacted before they are hashed and stored."""

    def __init__(self, database: Database, clock: Callable[[], datetime] | None = None) -> None:
        self._db = database
        self._clock = clock or (lambda: datetime.now(UTC))

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        *,
        secrets: Iterable[str] = (),
    ) -> AuditEntry:
        """Add the next entry: read the last one and insert its successor in one transaction."""
        secrets = tuple(secrets)
        clean = redact(details or {}, secrets)
        actor, subject = redact_text(actor, secrets), redact_text(subject, secrets)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._db.session() as session:
                    self.lock_for_append(session)
                    return self.append_within(session, actor, action, subject, clean)
            except StoreError as error:
                # Busy, or another appender took this seq first: a fresh read chains after it.
                if attempt == _ATTEMPTS or not error.retryable:
                    raise
                # Jitter so processes that collided do not collide again in lockstep.
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def append_within(
        self, session: Session, actor: str, action: str, subject: str, details: Mapping[str, Any]
    ) -> AuditEntry:
        """Chain one already-redacted entry inside the caller's transaction, which took the write lock
        (see `lock_for_append`); lets a run commit a tool call's entry with the step's new state."""
        entry = new_entry(
            _last(session), at=self._clock(), actor=actor, action=action, subject=subject, details=details
        )
        session.add(_row(entry))
        session.flush()  # a seq taken meanwhile fails here, inside the caller's retry
        return entry

    def append_on(
        self,
        connection: Connection,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any],
        *,
        previous: Link | None = None,
    ) -> AuditEntry:
        """`append_within` for a Core connection (Database.transaction(immediate=True)): the same
        chain, read and written with prepared statements, for the hot path of a run.

        `previous`, when the caller remembers the last entry it wrote, saves reading it. If anyone
        appended since, the next seq exists and the transaction fails with StoreConflictError:
        the caller forgets what it remembered and tries again."""
        last = previous if previous is not None else connection.execute(_LAST_LINK).first()
        entry = new_entry(
            last, at=self._clock(), actor=actor, action=action, subject=subject, details=details
        )
        connection.execute(
            _INSERT,
            {
                "seq": entry.seq,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "details": entry.details,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            },
        )
        return entry

    def entries(self, subject: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Entries oldest first; with `limit`, only the newest `limit` of them (still oldest first)."""
        query = select(AuditRow).order_by(AuditRow.seq.desc())
        if subject is not None:
            query = query.where(AuditRow.subject == subject)
        if limit is not None:
            query = query.limit(limit)
        try:
            with self._db.session() as session:
                return [_entry(row) for row in reversed(list(session.scalars(query)))]
        except (ValueError, TypeError, ValidationError) as exc:
            raise StoreError(
                f"an audit entry cannot be read: {_first_line(exc)}",
                hint="run `opsmith audit verify` to find the entry that was altered",
            ) from exc

    def verify(self) -> Verification:
        """Check the whole chain. A row edited into something unreadable is reported, not raised."""
        columns = (
            AuditRow.seq,
            # Raw text, parsed here: a hand-edited value must become a finding, not a crash.
            type_coerce(AuditRow.at, String),
            AuditRow.actor,
            AuditRow.action,
            AuditRow.subject,
            type_coerce(AuditRow.details, Text),
            AuditRow.prev_hash,
            AuditRow.hash,
        )
        entries: list[AuditEntry] = []
        with self._db.session() as session:
            for seq, at, actor, action, subject, details, prev_hash, hash_ in session.execute(
                select(*columns).order_by(AuditRow.seq)
            ):
                try:
                    entry = AuditEntry(
                        seq=seq,
                        at=_moment(at),
                        actor=actor,
                        action=action,
                        subject=subject,
                        details=json.loads(details) if isinstance(details, str) else details,
                        prev_hash=prev_hash,
                        hash=hash_,
                    )
                except (ValueError, TypeError, ValidationError) as exc:
                    before = verify(entries)
                    if not before.ok:
                        return before
                    return Verification(
                        ok=False,
                        checked=len(entries),
                        first_bad_seq=seq,
                        problem=f"entry {seq} was edited: it can no longer be read ({_first_line(exc)})",
                        head=before.head,
                    )
                entries.append(entry)
        return verify(entries)

    def lock_for_append(self, session: Session) -> None:
        if self._db.engine.dialect.name == "sqlite":
            # Take the write lock before reading the last entry: with a deferred transaction two
            # writers would read the same last entry and one would fail on commit (a WAL snapshot
            # conflict that busy_timeout does not wait out). Other databases rely on the seq key.
            session.execute(text("BEGIN IMMEDIATE"))


_LAST_LINK = select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
_INSERT = insert(AuditRow)


def _last(session: Session) -> AuditEntry | None:
    row = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
    return None if row is None else _entry(row)


def _row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details=entry.details,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=_moment(row.at),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _moment(value: datetime | str) -> datetime:
    # SQLite keeps no zone: times are written in UTC and come back naive (or as text).
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first_line(exc: BaseException) -> str:
    message = str(exc)
    return message.splitlines()[0] if message else exc.__class__.__name__

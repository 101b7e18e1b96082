"""Repository of the audit trail: appends that keep one chain under concurrency, reads, verification."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from pydantic import ValidationError
from sqlalchemy import (
    CTE,
    Connection,
    Float,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.orm import Session

from opsmith.domain.audit import AuditEntry, Head, Link, Verification, new_entry, verify, verify_with_witness
from opsmith.domain.call_stats import CALLED, UNNAMED, CallStats
from opsmith.domain.redaction import redact, redact_text
from opsmith.domain.seal import Seal
from opsmith.errors import StoreError
from opsmith.store.database import AUDIT_APPEND_LOCK, Database, Prepared, serialise
from opsmith.store.models import AuditRow

if TYPE_CHECKING:
    from opsmith.ports import AuditWitness

# A collision only happens when another process appended between our read and our insert;
# a handful of retries is plenty, more would hide a real fault.
_ATTEMPTS = 8
_heads = logging.getLogger("opsmith.audit")
T = TypeVar("T")


class AuditLog:
    """The audit trail in the store. Details are redacted before they are hashed and stored.

    With a seal, every entry is signed; with a witness too, every committed append advances the
    witness (and the log) to the new head, and `verify` holds the chain against it."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] | None = None,
        *,
        seal: Seal | None = None,
        witness: AuditWitness | None = None,
    ) -> None:
        self._db = database
        self._clock = clock or (lambda: datetime.now(UTC))
        self._seal = seal
        self._witness = witness
        self._insert = Prepared(database, _INSERT)
        self._last_link = Prepared(database, _LAST_LINK)
        # Sums of the newest entries (`_kept_by_head`), by what was summed: the stamp, the value.
        self._kept: dict[object, tuple[object, object]] = {}
        self._statements: dict[object, Select[Any]] = {}  # their queries, built once

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
                    entry = self.append_within(session, actor, action, subject, clean)
                self.witnessed(entry)
                return entry
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
        entry = self._next(_last(session), actor, action, subject, details)
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
        serialise(connection, AUDIT_APPEND_LOCK)  # see lock_for_append
        last = previous if previous is not None else _link_of(self._last_link.first(connection, {}))
        entry = self._next(last, actor, action, subject, details)
        self._insert.run(
            connection,
            {
                "seq": entry.seq,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "details": entry.details,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
                "mac": entry.mac,
            },
        )
        return entry

    def _next(
        self, last: Link | None, actor: str, action: str, subject: str, details: Mapping[str, Any]
    ) -> AuditEntry:
        """The entry after `last`: timed by this log's clock, signed with its seal."""
        return new_entry(
            last,
            at=self._clock(),
            actor=actor,
            action=action,
            subject=subject,
            details=details,
            seal=self._seal,
        )

    def witnessed(self, entry: Link) -> None:
        """After the transaction that wrote `entry` committed: record it as the head, outside the
        database (never before the commit, or a rolled-back append would look like a removed one)."""
        if self._seal is None or self._witness is None:
            return
        self._witness.advance(Head.of(entry, self._seal))
        _heads.info("audit head seq=%d hash=%s", entry.seq, entry.hash)

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

    def call_durations(self, window: int) -> dict[str, float]:
        """Average seconds of each tool's successful calls (`tool.called` entries with `ok` and `ms`)
        among the newest `window` entries, averaged by the database: a plan asks for this, and
        reading thousands of entries for it would cost more than the planning. Kept by the newest
        entry: entries are only ever appended, so while it is the same, so are the averages."""

        def averages(connection: Connection, newest: int) -> dict[str, float]:
            query = self._statement("durations", _durations_query)
            rows = connection.execute(query, {"low": newest - window, "high": newest})
            return {str(name): float(avg) for name, avg in rows if avg is not None}

        return dict(self._kept_by_head("durations", window, averages))

    def tool_calls(self, window: int, bounds: Sequence[float]) -> dict[str, CallStats]:
        """Per tool, its `tool.called` entries among the newest `window`: calls, errors, and the
        successful calls' durations as counts at most each of `bounds` (seconds), as
        `opsmith.domain.call_stats.fold_calls` says; summed by the database in one query (a scrape
        reads no entry), and kept by the newest entry as `call_durations` is."""
        limits = tuple(float(b) for b in bounds)

        def stats(connection: Connection, newest: int) -> dict[str, CallStats]:
            query = self._statement(("calls", limits), lambda calls: _calls_query(calls, limits))
            rows = connection.execute(query, {"low": newest - window, "high": newest})
            return {
                str(row[0]): CallStats(
                    calls=int(row[1]),
                    errors=int(row[1]) - int(row[2] or 0),
                    timed=int(row[3] or 0),
                    seconds=float(row[4] or 0.0),
                    within=tuple(int(n or 0) for n in row[5:]),
                )
                for row in rows
            }

        return dict(self._kept_by_head(("calls", limits), window, stats))

    def _statement(self, kind: object, make: Callable[[Any], Select[Any]]) -> Select[Any]:
        """`make(calls)` over the `_calls` of this database, built once."""
        found = self._statements.get(kind)
        if found is None:
            found = self._statements[kind] = make(_calls(self._materialize()))
        return found

    def _materialize(self) -> bool:
        # Each use of a JSON value extracts it again unless the window's values are materialized
        # first (SQLite 3.35 and PostgreSQL 12 take MATERIALIZED); that is most of the query's cost.
        dialect = self._db.engine.dialect
        if dialect.name == "sqlite":
            return tuple(dialect.dbapi.sqlite_version_info) >= (3, 35)  # type: ignore[union-attr]
        if dialect.name == "postgresql":
            with self._db.transaction() as connection:
                version = connection.dialect.server_version_info or (0,)
            return tuple(version) >= (12,)
        return False

    def _kept_by_head(self, kind: object, window: int, compute: Callable[[Connection, int], T]) -> T:
        """`compute(connection, newest seq)`, or what it gave for the same newest entry (its seq and
        hash: a tail cut and written again is another entry) and window. Bounded by the newest seq
        read first, so an entry appended meanwhile is left for the next call, which sees it newest."""
        with self._db.transaction() as connection:
            seq, hash_ = self._last_link.first(connection, {}) or (0, None)  # 0: no entry yet
            stamp = (window, seq, hash_)
            kept = self._kept.get(kind)
            if kept is not None and kept[0] == stamp:
                return cast(T, kept[1])
            value = compute(connection, int(seq))
        self._kept[kind] = (stamp, value)
        return value

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
            AuditRow.mac,
        )
        entries: list[AuditEntry] = []
        with self._db.session() as session:
            for seq, at, actor, action, subject, details, prev_hash, hash_, mac in session.execute(
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
                        mac=mac or "",
                    )
                except (ValueError, TypeError, ValidationError) as exc:
                    before = verify(entries, self._seal)
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
        if self._seal is not None and self._witness is not None:
            return verify_with_witness(entries, self._seal, self._witness.read(), self._witness.where)
        return verify(entries, self._seal)

    def lock_for_append(self, session: Session) -> None:
        dialect = self._db.engine.dialect.name
        if dialect == "sqlite":
            # Take the write lock before reading the last entry: with a deferred transaction two
            # writers would read the same last entry and one would fail on commit (a WAL snapshot
            # conflict that busy_timeout does not wait out).
            session.execute(text("BEGIN IMMEDIATE"))
        else:
            # PostgreSQL: wait for the appends of other transactions to commit before reading the
            # last entry. Without it, writers that read the same head all chain to it and all but
            # one fail on the seq key, again and again under load (the chain stays one, but appends
            # run out of retries). Held to the transaction's end, so the audit entry must be its
            # last write: no row lock after it, which could wait on a writer waiting for this one.
            serialise(session.connection(), AUDIT_APPEND_LOCK)


_TINY = 1e-300  # far below any measured duration, far above where ms / 1000 underflows


def _calls(materialize: bool) -> CTE:
    """The `tool.called` entries with seq in (low, high]: their tool, whether ok, and seconds, each
    read out of the details once. Seqs are contiguous (each entry is the last + 1), so the newest
    `window` entries are such a range."""
    details = AuditRow.details
    ms = details["ms"].as_float()
    calls = (
        select(
            func.coalesce(details["tool"].as_string(), UNNAMED).label("tool"),
            details["tool"].as_string().is_not(None).label("named"),
            (details["ok"].as_boolean() == true()).label("ok"),
            # Divided as fold_calls divides (ms / 1000, then compared): the same floats, the same buckets.
            # A duration too small to divide is 0: PostgreSQL raises on a quotient that underflows
            # (a subnormal ms in an entry) where Python rounds it to 0.0, and one such entry would
            # fail every read of the sums.
            case(
                (func.abs(ms) < literal(_TINY, Float), literal(0.0, Float)),
                else_=ms / literal(1000.0, Float),
            ).label("seconds"),
        )
        .where(AuditRow.seq > bindparam("low"), AuditRow.seq <= bindparam("high"), AuditRow.action == CALLED)
        .cte("calls")
    )
    return calls.prefix_with("MATERIALIZED") if materialize else calls


def _durations_query(calls: CTE) -> Select[Any]:
    timed = and_(calls.c.ok, calls.c.named, calls.c.seconds.is_not(None))
    return select(calls.c.tool, func.avg(calls.c.seconds)).where(timed).group_by(calls.c.tool)


def _calls_query(calls: CTE, bounds: tuple[float, ...]) -> Select[Any]:
    ok, seconds = calls.c.ok, calls.c.seconds
    timed = and_(ok, seconds.is_not(None))
    return select(
        calls.c.tool,
        func.count(),
        func.sum(case((ok, 1), else_=0)),
        func.sum(case((timed, 1), else_=0)),
        func.sum(case((timed, seconds), else_=0.0)),
        *(func.sum(case((and_(timed, seconds <= literal(b, Float)), 1), else_=0)) for b in bounds),
    ).group_by(calls.c.tool)


_LAST_LINK = select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
_INSERT = insert(AuditRow).values({c.key: bindparam(c.key) for c in AuditRow.__table__.c})


class _Stored(NamedTuple):
    seq: int
    hash: str


def _link_of(row: tuple[Any, ...] | None) -> Link | None:
    return None if row is None else _Stored(row[0], row[1])


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
        mac=entry.mac,
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
        mac=row.mac or "",
    )


def _moment(value: datetime | str) -> datetime:
    # SQLite keeps no zone: times are written in UTC and come back naive (or as text).
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first_line(exc: BaseException) -> str:
    message = str(exc)
    return message.splitlines()[0] if message else exc.__class__.__name__

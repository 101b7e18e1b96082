"""The audit trail as a hash chain: who did what to which plan or run, and proof it was not altered.

Each entry carries the hash of its predecessor (`prev_hash`) and a hash of its own content
(`hash`), so the trail is one chain that starts at `GENESIS`:

    entry 1: prev_hash = GENESIS,        hash = H(1, ..., GENESIS)
    entry 2: prev_hash = entry 1's hash, hash = H(2, ..., entry 1's hash)

`verify()` recomputes every hash and follows the links. It detects, and names the first bad entry:
- an edited entry (any field changed without recomputing its hash): its hash no longer matches;
- an edited entry whose hash *was* recomputed: the next entry's `prev_hash` no longer matches;
- a removed entry in the middle or at the start: its seq is missing from the sequence;
- reordered or duplicated entries: the seqs do not increase by one, or a link does not match.

Hashes alone cannot stop someone who writes the database: they rewrite an entry and recompute
every hash after it, or cut off the newest entries, and the shorter chain is still consistent. So,
with a `Seal` (a key kept outside the database):
- every entry also carries `mac`, a keyed signature of its seq and hash: a rewritten entry whose
  hashes were recomputed is named by its signature, which nobody without the key can remake;
- every append also advances a witness outside the database to the new head (`Head`, signed as
  well). `verify_with_witness` reports a chain shorter than its witness as the range of entries
  removed from the tail, and a witnessed entry that changed as rewritten.

Secrets never enter the chain: the store redacts details (opsmith.domain.redaction) before they are
hashed and stored.
Pure: stdlib and pydantic only.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from opsmith.domain.text import without_nul

if TYPE_CHECKING:
    from opsmith.domain.seal import Seal

__all__ = [
    "GENESIS",
    "AuditEntry",
    "Head",
    "Verification",
    "canonical_json",
    "entry_hash",
    "jsonable",
    "new_entry",
    "verify",
    "verify_with_witness",
]

GENESIS = "sha256:" + "0" * 64


class AuditEntry(BaseModel):
    """One link of the chain. `at` is always UTC once built by `new_entry`."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: AwareDatetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    mac: str = ""  # the keyed signature of seq and hash; empty when written without a Seal

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # One representation of each instant, so the same entry reads back the same everywhere.
        return value.astimezone(UTC)

    def computed_hash(self) -> str:
        return entry_hash(
            self.seq, self.at, self.actor, self.action, self.subject, self.details, self.prev_hash
        )


class Verification(BaseModel):
    """The outcome of checking a chain; `problem` names the first bad entry."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int  # entries found intact before the first problem (all of them when ok)
    first_bad_seq: int | None = None
    problem: str | None = None
    head: str | None = None  # hash of the last intact entry: the value to anchor externally
    missing: tuple[int, int] | None = None  # first and last seq removed from the tail, if any


class Head(BaseModel):
    """The newest entry as the witness outside the database recorded it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    hash: str
    mac: str = ""

    @classmethod
    def of(cls, entry: Link, seal: Seal) -> Head:
        return cls(seq=entry.seq, hash=entry.hash, mac=seal.sign("audit.head", _link(entry)))

    def signed_by(self, seal: Seal) -> bool:
        return seal.valid("audit.head", _link(self), self.mac)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (dict/list/str/int/float/bool/None), deterministically.

    Details are normalised once, before hashing, so what is stored and read back is exactly
    what was hashed (tuples become lists, datetimes UTC ISO strings, keys strings).
    """
    kind = type(value)
    # The common kinds first, by exact type: this runs over every audit entry's details, twice.
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no NaN/Infinity; a string keeps the information and the JSON canonical.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        # Sets have no order; sorting their JSON forms makes the hash reproducible.
        return sorted((jsonable(v) for v in value), key=canonical_json)
    return str(value)


# Built once: json.dumps with options builds a new encoder for every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(value: Any) -> str:
    """The one byte-stable JSON form hashes are computed over."""
    return _CANONICAL.encode(jsonable(value))


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """ "sha256:" + hex digest of the canonical JSON of every field but the hash itself."""
    content = {
        "seq": seq,
        "at": _iso(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev_hash": prev_hash,
    }
    return "sha256:" + hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


class Link(Protocol):
    """What the next entry needs of the one before: its number and its hash."""

    @property
    def seq(self) -> int: ...

    @property
    def hash(self) -> str: ...


def new_entry(
    previous: Link | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    seal: Seal | None = None,
) -> AuditEntry:
    """The entry that follows `previous` (or starts the chain), with its hash computed and, given a
    seal, signed."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    at = at.astimezone(UTC)
    # Hashed as stored: a NUL (say in a refused request's plan id) is stored as U+FFFD on PostgreSQL,
    # and hashing the NUL would make the entry look edited there.
    actor, action, subject = without_nul(actor), without_nul(action), without_nul(subject)
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS if previous is None else previous.hash
    plain = jsonable(dict(details))
    digest = entry_hash(seq, at, actor, action, subject, plain, prev_hash)
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=plain,
        prev_hash=prev_hash,
        hash=digest,
        mac=seal.sign("audit", {"seq": seq, "hash": digest}) if seal is not None else "",
    )


def _link(entry: Link) -> dict[str, Any]:
    return {"seq": entry.seq, "hash": entry.hash}


def verify(entries: Sequence[AuditEntry], seal: Seal | None = None) -> Verification:
    """Check a whole chain, oldest first, and with a seal every entry's signature; stop at and name
    the first bad entry."""
    previous: AuditEntry | None = None
    for position, entry in enumerate(entries):
        expected = 1 if previous is None else previous.seq + 1
        problem = _problem(entry, previous, expected, entries, position, seal)
        if problem is not None:
            bad_seq, message = problem
            return Verification(
                ok=False,
                checked=position,
                first_bad_seq=bad_seq,
                problem=message,
                head=previous.hash if previous else None,
            )
        previous = entry
    return Verification(ok=True, checked=len(entries), head=previous.hash if previous else None)


def verify_with_witness(
    entries: Sequence[AuditEntry], seal: Seal, witness: Head | None, where: str = "the witness"
) -> Verification:
    """`verify`, then hold the chain against the head its witness recorded: a chain that ends
    before the witnessed entry lost its tail; a witnessed entry that differs was rewritten."""
    result = verify(entries, seal)
    if not result.ok:
        return result
    last = entries[-1].seq if entries else 0
    if witness is None:
        if not entries:
            return result
        return _failed(
            result,
            None,
            f"{where} of the audit head is missing or unreadable, so a removed tail cannot be ruled out",
        )
    if not witness.signed_by(seal):
        return _failed(result, None, f"{where} of the audit head was altered: its signature does not verify")
    if witness.seq > last:
        first = last + 1
        span = f"entry {first} is" if first == witness.seq else f"entries {first}-{witness.seq} are"
        ends = f"ends at entry {last}" if last else "is empty"
        return _failed(
            result,
            first,
            f"{span} missing (removed from the tail): the trail {ends}, but {where} recorded "
            f"entry {witness.seq}",
            missing=(first, witness.seq),
        )
    recorded = next(e for e in entries if e.seq == witness.seq)
    if recorded.hash != witness.hash:
        return _failed(
            result,
            witness.seq,
            f"entry {witness.seq} was rewritten: it differs from the entry {where} recorded",
        )
    return result


def _failed(
    result: Verification, seq: int | None, problem: str, missing: tuple[int, int] | None = None
) -> Verification:
    return result.model_copy(
        update={"ok": False, "first_bad_seq": seq, "problem": problem, "missing": missing}
    )


def _problem(
    entry: AuditEntry,
    previous: AuditEntry | None,
    expected: int,
    entries: Sequence[AuditEntry],
    position: int,
    seal: Seal | None = None,
) -> tuple[int, str] | None:
    if entry.computed_hash() != entry.hash:
        if entry.seq != expected and _hash_with_seq(entry, expected) == entry.hash:
            # Only the seq was rewritten: name the entry by the seq it was written with.
            return expected, (
                f"entry {expected} was edited: its seq was changed to {entry.seq}, "
                "so its hash does not match its content"
            )
        return entry.seq, f"entry {entry.seq} was edited: its hash does not match its content"
    if seal is not None and not seal.valid("audit", _link(entry), entry.mac):
        if not entry.mac:
            return entry.seq, f"entry {entry.seq} carries no signature: it was not written by opsmith"
        return entry.seq, (f"entry {entry.seq} was rewritten outside opsmith: its signature does not verify")
    if previous is None:
        if entry.seq != 1:
            return 1, f"entry 1 is missing (removed): the trail starts at entry {entry.seq}"
        if entry.prev_hash != GENESIS:
            return 1, "entry 1 does not start the chain: its prev_hash is not the genesis hash"
        return None
    if entry.seq == previous.seq:
        return entry.seq, f"entry {entry.seq} appears twice"
    if entry.seq < previous.seq:
        return entry.seq, f"entry {entry.seq} is out of order: it comes after entry {previous.seq}"
    if entry.seq > expected:
        if any(e.seq == expected for e in entries[position + 1 :]):
            return entry.seq, (f"entry {entry.seq} is out of order: it comes before entry {expected}")
        return expected, (
            f"entry {expected} is missing (removed): seq jumps from {previous.seq} to {entry.seq}"
        )
    if entry.prev_hash != previous.hash:
        return entry.seq, (
            f"entry {entry.seq} is out of order: its prev_hash is not the hash of entry "
            f"{previous.seq} (one of them was moved, or entry {previous.seq} was rewritten)"
        )
    return None


def _hash_with_seq(entry: AuditEntry, seq: int) -> str:
    return entry_hash(seq, entry.at, entry.actor, entry.action, entry.subject, entry.details, entry.prev_hash)


def _iso(moment: datetime) -> str:
    # Naive datetimes are taken as UTC: the store hands some back without their zone.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()

"""The audit hash chain on plain values: building, verifying, every kind of tampering, redaction."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.audit import (
    GENESIS,
    AuditEntry,
    Head,
    canonical_json,
    entry_hash,
    new_entry,
    verify,
    verify_with_witness,
)
from opsmith.domain.redaction import is_secret_key, redact
from opsmith.domain.seal import Seal

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def chain(n: int, start: datetime = T0) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            new_entry(
                entries[-1] if entries else None,
                at=start + timedelta(seconds=i),
                actor=f"user{i % 3}",
                action=("plan.approved", "run.state", "tool.called")[i % 3],
                subject=f"plan-{i // 4}",
                details={"i": i, "nested": {"list": [i, str(i)]}},
            )
        )
    return entries


def edited(entry: AuditEntry, **changes: Any) -> AuditEntry:
    """The entry with fields changed but its stored hash left as it was (a naive tamper)."""
    return entry.model_copy(update=changes)


def rehashed(entry: AuditEntry, **changes: Any) -> AuditEntry:
    """The entry with fields changed and its own hash recomputed (a careful tamper)."""
    changed = entry.model_copy(update=changes)
    return changed.model_copy(update={"hash": changed.computed_hash()})


# --- building ---------------------------------------------------------------------------------


def test_chain_starts_at_genesis_and_links_each_entry_to_the_one_before() -> None:
    entries = chain(5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS == "sha256:" + "0" * 64
    for before, after in pairwise(entries):
        assert after.prev_hash == before.hash
    assert all(e.hash.startswith("sha256:") and len(e.hash) == 71 for e in entries)
    assert len({e.hash for e in entries}) == 5


def test_entry_hash_is_sha256_of_canonical_json() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    expected_json = (
        '{"action":"plan.approved","actor":"ana","at":"2026-01-02T03:04:05+00:00",'
        '"details":{"a":1,"b":[true,null]},"prev_hash":"' + GENESIS + '","seq":1,"subject":"p1"}'
    )
    digest = hashlib.sha256(expected_json.encode()).hexdigest()
    assert entry_hash(1, at, "ana", "plan.approved", "p1", {"b": [True, None], "a": 1}, GENESIS) == (
        "sha256:" + digest
    )


def test_the_hash_does_not_depend_on_the_time_zone_the_instant_is_written_in() -> None:
    at_utc = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    at_cet = at_utc.astimezone(timezone(timedelta(hours=1)))
    assert entry_hash(1, at_utc, "a", "b", "c", {}, GENESIS) == entry_hash(
        1, at_cet, "a", "b", "c", {}, GENESIS
    )
    entry = new_entry(None, at=at_cet, actor="a", action="b", subject="c", details={})
    assert entry.at.utcoffset() == timedelta(0)
    assert verify([entry]).ok


def test_details_are_normalised_to_plain_json_before_hashing() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    entry = new_entry(
        None,
        at=T0,
        actor="a",
        action="run.state",
        subject="r",
        details={"t": (1, 2), 3: when, "x": float("nan")},
    )
    assert entry.details == {"t": [1, 2], "3": "2026-01-01T00:00:00+00:00", "x": "nan"}
    # What a store hands back after a JSON round trip still verifies.
    reread = entry.model_copy(update={"details": json.loads(json.dumps(entry.details))})
    assert verify([reread]).ok


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_entry(None, at=datetime(2026, 1, 1), actor="a", action="b", subject="c", details={})


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": [1, "é"]}}) == '{"a":{"c":[1,"\\u00e9"],"d":2},"b":1}'


# --- verifying --------------------------------------------------------------------------------


def test_an_intact_chain_verifies() -> None:
    result = verify(chain(12))
    assert result.ok and result.checked == 12
    assert result.first_bad_seq is None and result.problem is None
    assert result.head == chain(12)[-1].hash


def test_an_empty_chain_verifies() -> None:
    result = verify([])
    assert result.ok and result.checked == 0 and result.head is None


def test_edited_details_are_detected_and_named() -> None:
    entries = chain(10)
    entries[6] = edited(entries[6], details={"i": 999})
    result = verify(entries)
    assert not result.ok
    assert result.first_bad_seq == 7
    assert result.checked == 6
    assert result.problem == "entry 7 was edited: its hash does not match its content"


def test_edited_actor_is_detected() -> None:
    entries = chain(4)
    entries[1] = edited(entries[1], actor="mallory")
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "entry 2 was edited" in (result.problem or "")


def test_an_edit_with_a_recomputed_hash_is_caught_by_the_next_link() -> None:
    entries = chain(6)
    entries[2] = rehashed(entries[2], actor="mallory")
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "prev_hash is not the hash of entry 3" in (result.problem or "")


def test_a_removed_middle_entry_is_detected() -> None:
    entries = chain(8)
    del entries[4]
    result = verify(entries)
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.problem == "entry 5 is missing (removed): seq jumps from 4 to 6"


def test_a_removed_first_entry_is_detected() -> None:
    result = verify(chain(3)[1:])
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "entry 1 is missing (removed)" in (result.problem or "")


def test_a_truncated_tail_cannot_be_detected_without_an_external_anchor() -> None:
    # The documented limitation: a prefix of a chain is itself a valid chain.
    full = chain(10)
    truncated = verify(full[:7])
    assert truncated.ok and truncated.checked == 7
    # What an external anchor would catch: the head hash and count differ from the full chain's.
    assert (truncated.head, truncated.checked) != (verify(full).head, verify(full).checked)


def test_two_swapped_entries_are_out_of_order() -> None:
    entries = chain(10)
    entries[7], entries[8] = entries[8], entries[7]
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert (result.problem or "").startswith("entry 9 is out of order")


def test_an_entry_moved_back_in_the_chain_is_out_of_order() -> None:
    entries = chain(6)
    entries.append(entries.pop(1))
    result = verify(entries)
    assert not result.ok
    assert (result.problem or "").startswith("entry 3 is out of order")


def test_a_duplicated_entry_is_detected() -> None:
    entries = chain(4)
    entries.insert(2, entries[1])
    result = verify(entries)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, "entry 2 appears twice")


def test_a_changed_prev_hash_is_detected() -> None:
    entries = chain(5)
    entries[3] = edited(entries[3], prev_hash="sha256:" + "1" * 64)
    assert verify(entries).first_bad_seq == 4
    entries = chain(5)
    entries[3] = rehashed(entries[3], prev_hash="sha256:" + "1" * 64)
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "out of order" in (result.problem or "")


def test_a_first_entry_not_starting_at_genesis_is_refused() -> None:
    entries = chain(2)
    entries[0] = rehashed(entries[0], prev_hash="sha256:" + "2" * 64)
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "genesis" in (result.problem or "")


def test_a_renumbered_entry_is_named_by_its_original_seq() -> None:
    entries = chain(5)
    entries[2] = edited(entries[2], seq=40)
    result = verify(entries)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert (
        result.problem
        == "entry 3 was edited: its seq was changed to 40, so its hash does not match its content"
    )


def test_a_changed_stored_hash_is_detected() -> None:
    entries = chain(3)
    entries[2] = edited(entries[2], hash="sha256:" + "f" * 64)
    assert verify(entries).first_bad_seq == 3


# --- hypothesis -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
entry_inputs = st.tuples(
    st.integers(0, 10**6),  # seconds after T0
    st.text(min_size=1, max_size=10),
    st.sampled_from(["plan.approved", "plan.rejected", "role.changed", "run.state", "tool.called"]),
    st.text(min_size=1, max_size=10),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


def build(inputs: list[tuple[int, str, str, str, dict[str, Any]]]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for offset, actor, action, subject, details in inputs:
        entries.append(
            new_entry(
                entries[-1] if entries else None,
                at=T0 + timedelta(seconds=offset),
                actor=actor,
                action=action,
                subject=subject,
                details=details,
            )
        )
    return entries


FIELDS = ["seq", "at", "actor", "action", "subject", "details", "prev_hash", "hash"]


def tamper(entry: AuditEntry, field: str, salt: str) -> dict[str, Any]:
    """A change to one field that certainly differs from the current value."""
    if field == "seq":
        return {"seq": entry.seq + 1 + len(salt)} if len(salt) % 2 else {"seq": entry.seq - 1 - len(salt)}
    if field == "at":
        return {"at": entry.at + timedelta(microseconds=1 + len(salt))}
    if field == "details":
        return {"details": {**entry.details, "tampered" + salt: True}}
    if field in ("prev_hash", "hash"):
        current = getattr(entry, field)
        replacement = "sha256:" + hashlib.sha256((current + salt).encode()).hexdigest()
        return {field: replacement}
    return {field: getattr(entry, field) + "x" + salt}


@settings(max_examples=150, deadline=None)
@given(st.lists(entry_inputs, min_size=0, max_size=12))
def test_random_chains_verify(inputs: list[tuple[int, str, str, str, dict[str, Any]]]) -> None:
    entries = build(inputs)
    result = verify(entries)
    assert result.ok and result.checked == len(entries)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(entry_inputs, min_size=1, max_size=10),
    st.data(),
    st.sampled_from(FIELDS),
    st.text(max_size=3),
)
def test_any_single_edit_is_detected_and_named(
    inputs: list[tuple[int, str, str, str, dict[str, Any]]], data: st.DataObject, field: str, salt: str
) -> None:
    entries = build(inputs)
    index = data.draw(st.integers(0, len(entries) - 1))
    original = entries[index].seq
    entries[index] = edited(entries[index], **tamper(entries[index], field, salt))
    result = verify(entries)
    assert not result.ok
    assert result.first_bad_seq in (original, original + 1), result.problem
    assert f"entry {result.first_bad_seq}" in (result.problem or "")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entry_inputs, min_size=2, max_size=10),
    st.data(),
    st.sampled_from(["at", "actor", "action", "subject", "details", "prev_hash"]),
    st.text(max_size=3),
)
def test_an_edit_with_its_hash_recomputed_is_caught_at_the_next_entry(
    inputs: list[tuple[int, str, str, str, dict[str, Any]]], data: st.DataObject, field: str, salt: str
) -> None:
    entries = build(inputs)
    # Not the last entry: rewriting the newest entry with its hash needs an external anchor to catch.
    index = data.draw(st.integers(0, len(entries) - 2))
    original = entries[index].seq
    entries[index] = rehashed(entries[index], **tamper(entries[index], field, salt))
    result = verify(entries)
    assert not result.ok
    assert result.first_bad_seq in (original, original + 1), result.problem


# --- redaction --------------------------------------------------------------------------------


def test_secret_values_are_redacted_anywhere() -> None:
    details = {
        "command": "curl -H 'Bearer s3cr3t-value' https://x",
        "nested": {"env": ["A=s3cr3t-value", "B=plain"], "deeper": {"v": "s3cr3t-value"}},
        "count": 3,
        "s3cr3t-value": "as a key",
    }
    assert redact(details, ["s3cr3t-value"]) == {
        "command": "curl -H 'Bearer ***' https://x",
        "nested": {"env": ["A=***", "B=plain"], "deeper": {"v": "***"}},
        "count": 3,
        "***": "as a key",
    }


def test_short_secrets_are_ignored_and_the_longest_secret_wins() -> None:
    assert redact({"a": "on and 42"}, ["on", "42"]) == {"a": "on and 42"}
    assert redact({"a": "abcd-efgh"}, ["abcd", "abcd-efgh"]) == {"a": "***"}


def test_values_of_secret_looking_keys_are_redacted_whatever_their_type() -> None:
    details = {
        "GitHub_Token": "ghp_123",
        "db": {"Password": 12345, "user": "app", "passwd": None},
        "headers": [{"Authorization": "Bearer x"}, {"X-API-Key": "k"}],
        "apikey": {"nested": "dict"},
        "aws_secret_access_key": "x",
        "credentials": ["a", "b"],
        "ssh-private-key": "-----BEGIN",
        "plan": "p1",
    }
    assert redact(details, []) == {
        "GitHub_Token": "***",
        "db": {"Password": "***", "user": "app", "passwd": "***"},
        "headers": [{"Authorization": "***"}, {"X-API-Key": "***"}],
        "apikey": "***",
        "aws_secret_access_key": "***",
        "credentials": "***",
        "ssh-private-key": "***",
        "plan": "p1",
    }


@pytest.mark.parametrize(
    ("key", "secret"),
    [("token", True), ("ACCESS_TOKEN", True), ("api-key", True), ("plan", False), ("subject", False)],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_does_not_change_its_input() -> None:
    details = {"password": "x", "inner": {"v": "hunter22"}}
    redact(details, ["hunter22"])
    assert details == {"password": "x", "inner": {"v": "hunter22"}}


# --- signatures and the witness ---------------------------------------------------------------

SEAL = Seal(b"the key of the tests, 32 bytes or more")


def signed(inputs: list[tuple[int, str, str, str, dict[str, Any]]]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for offset, actor, action, subject, details in inputs:
        previous = entries[-1] if entries else None
        at = T0 + timedelta(seconds=offset)
        entries.append(
            new_entry(
                previous, at=at, actor=actor, action=action, subject=subject, details=details, seal=SEAL
            )
        )
    return entries


def witness_of(entries: list[AuditEntry]) -> Head | None:
    return Head.of(entries[-1], SEAL) if entries else None


def recomputed_from(entries: list[AuditEntry], index: int, **changes: Any) -> list[AuditEntry]:
    """Entry `index` changed, its hash and every later entry's hash and link recomputed: the best an
    attacker without the key can do. Their signatures stay as they were (they cannot remake them)."""
    result = list(entries[:index])
    for position, entry in enumerate(entries[index:]):
        entry = entry.model_copy(update=changes if position == 0 else {})
        if result:
            entry = entry.model_copy(update={"prev_hash": result[-1].hash})
        result.append(entry.model_copy(update={"hash": entry.computed_hash()}))
    return result


def test_a_signed_chain_with_its_witness_verifies() -> None:
    entries = signed([(i, "ana", "run.state", "r", {"i": i}) for i in range(5)])
    result = verify_with_witness(entries, SEAL, witness_of(entries))
    assert result.ok and result.checked == 5


def test_a_rewritten_chain_is_named_by_the_first_signature_that_fails() -> None:
    entries = signed([(i, "ana", "run.state", "r", {"i": i}) for i in range(6)])
    tampered = recomputed_from(entries, 2, actor="mallory")
    assert verify(tampered).ok, "unkeyed, the rewrite is consistent"
    result = verify_with_witness(tampered, SEAL, witness_of(entries))
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "entry 3 was rewritten outside opsmith" in (result.problem or "")


def test_a_removed_tail_is_reported_with_its_range() -> None:
    entries = signed([(i, "ana", "run.state", "r", {"i": i}) for i in range(8)])
    result = verify_with_witness(entries[:5], SEAL, witness_of(entries))
    assert (result.ok, result.missing, result.first_bad_seq) == (False, (6, 8), 6)
    assert "entries 6-8 are missing (removed from the tail)" in (result.problem or "")
    emptied = verify_with_witness([], SEAL, witness_of(entries))
    assert emptied.missing == (1, 8) and "the trail is empty" in (emptied.problem or "")


def test_a_missing_or_forged_witness_is_a_finding() -> None:
    entries = signed([(0, "ana", "run.state", "r", {})])
    assert "missing or unreadable" in (verify_with_witness(entries, SEAL, None).problem or "")
    forged = Head(seq=9, hash=entries[0].hash, mac="hmac-sha256:" + "0" * 64)
    assert "was altered" in (verify_with_witness(entries, SEAL, forged).problem or "")
    assert verify_with_witness([], SEAL, None).ok


def test_an_entry_signed_with_another_key_or_unsigned_is_named() -> None:
    entries = signed([(i, "ana", "run.state", "r", {}) for i in range(3)])
    entries[1] = entries[1].model_copy(update={"mac": ""})
    assert verify(entries, SEAL).first_bad_seq == 2
    assert "carries no signature" in (verify(entries, SEAL).problem or "")
    other = Seal(b"somebody else's key, 32 bytes long.")
    assert verify(signed([(0, "a", "b", "c", {})]), other).first_bad_seq == 1


MUTATIONS = ["edit", "edit_rechained", "delete", "swap", "truncate"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(entry_inputs, min_size=1, max_size=10),
    st.sampled_from(MUTATIONS),
    st.data(),
    st.sampled_from(["at", "actor", "action", "subject", "details"]),
    st.text(max_size=3),
)
def test_any_edit_deletion_reordering_or_truncation_is_reported(
    inputs: list[tuple[int, str, str, str, dict[str, Any]]],
    mutation: str,
    data: st.DataObject,
    field: str,
    salt: str,
) -> None:
    entries = signed(inputs)
    witness = witness_of(entries)
    n = len(entries)
    if mutation == "swap" and n < 2:
        mutation = "truncate"
    if mutation == "edit":
        i = data.draw(st.integers(0, n - 1))
        entries[i] = edited(entries[i], **tamper(entries[i], field, salt))
        expected: set[int] = {i + 1}
    elif mutation == "edit_rechained":
        i = data.draw(st.integers(0, n - 1))
        entries = recomputed_from(entries, i, **tamper(entries[i], field, salt))
        expected = {i + 1}
    elif mutation == "delete":
        i = data.draw(st.integers(0, n - 1))
        del entries[i]
        expected = {i + 1}
    elif mutation == "swap":
        i = data.draw(st.integers(0, n - 2))
        j = data.draw(st.integers(i + 1, n - 1))
        entries[i], entries[j] = entries[j], entries[i]
        expected = {i + 1, j + 1}  # whichever of the two comes first in the table
    else:
        keep = data.draw(st.integers(0, n - 1))
        entries = entries[:keep]
        expected = {keep + 1}
    result = verify_with_witness(entries, SEAL, witness)
    assert not result.ok, mutation
    assert result.first_bad_seq in expected, (mutation, result.problem)
    if mutation == "truncate":
        assert result.missing == (keep + 1, n)
    else:
        assert f"entry {result.first_bad_seq}" in (result.problem or "")

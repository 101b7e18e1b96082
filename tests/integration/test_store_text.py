"""Text with NUL characters on both databases: PostgreSQL's text cannot hold one, and a write that
carries one (a bug report, a tool's error, a host's stderr) must not fail there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain.tasks import Task, UnknownTaskError
from opsmith.domain.text import REPLACEMENT, without_nul
from opsmith.store import Database
from opsmith.store.audit import AuditLog
from opsmith.store.tasks import TaskRepository

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def stored(url: str, text: str) -> str:
    """What the database gives back for `text` written to a text column."""
    return text if url.startswith("sqlite") else without_nul(text)


def test_text_with_nul_is_written_and_read_back(database_url: str) -> None:
    database = Database(database_url)
    store = TaskRepository(database, AuditLog(database))
    title, error = "bug\x00 in checkout", "exit 1: \x00\x00binary stderr"
    task = Task(id="tsk_0000000000000001", type="bug_report", title=title, created_at=NOW, updated_at=NOW)
    store.add(task)
    failed = task.model_copy(update={"last_error": error})
    assert store.save(failed, expected=task.status)
    found = store.get(task.id)
    assert (found.title, found.last_error) == (stored(database_url, title), stored(database_url, error))
    with pytest.raises(UnknownTaskError):
        store.get("tsk_\x00")  # a lookup by a value with NUL finds nothing, and does not fail

    audit = AuditLog(database)
    audit.append("ana\x00", "tool.called", "plan\x00x", {"result": "out\x00put"})
    (entry,) = audit.entries()
    # Hashed as stored, on both databases: verify finds nothing edited.
    assert (entry.actor, entry.subject) == ("ana" + REPLACEMENT, "plan" + REPLACEMENT + "x")
    assert entry.details["result"] == "out\x00put"  # JSON escapes it: kept as it was on both
    assert audit.verify().ok


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_without_nul_keeps_every_other_character(text: str) -> None:
    cleaned = without_nul(text)
    assert "\x00" not in cleaned and len(cleaned) == len(text)
    assert all(c == o or (o == "\x00" and c == REPLACEMENT) for c, o in zip(cleaned, text, strict=True))

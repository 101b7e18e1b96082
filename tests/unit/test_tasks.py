"""Tasks as data: priorities ordered by severity (never by name), severity words parsed, a failed
attempt retried on a stored, backed-off, jittered time (never straight back), priority raised every
N failures, escalation levels reached by their delays past the deadline, a person's retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.tasks import (
    EscalationLevel,
    Priority,
    RetryRules,
    Task,
    TaskInputError,
    TaskRefused,
    TaskStatus,
    after_failure,
    escalated,
    escalation,
    parse_priority,
    queue_key,
    retried,
)

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RULES = RetryRules(backoff_initial=10, backoff_max=300, raise_every=2)
LEVELS = [EscalationLevel(after_minutes=0, to="on-call"), EscalationLevel(after_minutes=30, to="lead")]


def task(**values: object) -> Task:
    base: dict[str, object] = {
        "id": "tsk_1", "type": "code_fix", "title": "fix it", "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    return Task.model_validate({**base, **values})


priorities = st.sampled_from(list(Priority))


def test_priorities_order_by_severity_not_by_name() -> None:
    assert sorted(Priority, key=str) != list(Priority)  # by name: critical, emergency, high, low, normal
    assert sorted(Priority) == [
        Priority.LOW,
        Priority.NORMAL,
        Priority.HIGH,
        Priority.CRITICAL,
        Priority.EMERGENCY,
    ]
    assert Priority.LOW < Priority.EMERGENCY and Priority.CRITICAL > Priority.HIGH
    assert max(Priority) is Priority.EMERGENCY


@given(st.lists(priorities, min_size=1, max_size=30))
def test_sorting_priorities_is_sorting_their_severities(found: list[Priority]) -> None:
    assert [p.severity for p in sorted(found)] == sorted(p.severity for p in found)


@given(priorities, priorities)
def test_comparisons_agree_with_severity(a: Priority, b: Priority) -> None:
    assert (a < b) == (a.severity < b.severity) and (a >= b) == (a.severity >= b.severity)


@given(priorities, st.integers(min_value=0, max_value=10))
def test_raising_never_lowers_and_stops_at_emergency(p: Priority, levels: int) -> None:
    raised = p.raised(levels)
    assert raised >= p and raised.severity == min(p.severity + levels, 4)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("minor", Priority.LOW),
        ("Medium", Priority.NORMAL),
        (" major ", Priority.HIGH),
        ("blocker", Priority.EMERGENCY),
    ],
)
def test_severity_words_map_to_priorities(word: str, expected: Priority) -> None:
    assert parse_priority(word) is expected


@given(st.text(max_size=60))
def test_any_severity_text_parses_or_is_refused_with_a_usage_error(text: str) -> None:
    try:
        found = parse_priority(text)
    except TaskInputError as error:
        assert "severity" in error.message and error.hint and "emergency" in error.hint
    else:
        assert found in Priority


def test_the_queue_takes_the_most_severe_then_the_nearest_deadline_then_the_oldest() -> None:
    a = task(id="a", priority=Priority.HIGH, created_at=T0)
    b = task(id="b", priority=Priority.EMERGENCY, created_at=T0 + timedelta(minutes=5))
    c = task(
        id="c", priority=Priority.HIGH, deadline=T0 + timedelta(hours=1), created_at=T0 + timedelta(minutes=9)
    )
    assert [t.id for t in sorted([a, b, c], key=queue_key)] == ["b", "c", "a"]


@given(st.integers(min_value=1, max_value=30), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_a_failed_attempt_waits_within_its_backoff_bounds_never_coming_straight_back(
    attempts: int, draw: float
) -> None:
    t = task(status=TaskStatus.RUNNING, attempts=attempts, max_attempts=100, agent_id="code-fix-agent")
    after = after_failure(t, "boom", retryable=True, now=T0, rules=RULES, draw=draw)
    assert after.status is TaskStatus.QUEUED and after.agent_id is None and after.last_error == "boom"
    assert after.next_attempt_at is not None
    wait = (after.next_attempt_at - T0).total_seconds()
    base = min(RULES.backoff_max, RULES.backoff_initial * 2 ** (attempts - 1))
    assert base / 2 <= wait <= base and wait > 0
    assert not after.due(T0) and after.due(after.next_attempt_at)


def test_every_second_failure_raises_the_priority_one_level() -> None:
    t = task(status=TaskStatus.RUNNING, attempts=1, max_attempts=9, priority=Priority.NORMAL)
    first = after_failure(t, "x", retryable=True, now=T0, rules=RULES, draw=0.5)
    assert first.priority is Priority.NORMAL
    second = after_failure(
        first.model_copy(update={"attempts": 2}), "x", retryable=True, now=T0, rules=RULES, draw=0.5
    )
    assert second.priority is Priority.HIGH


def test_out_of_attempts_or_not_retryable_the_task_fails() -> None:
    last = task(status=TaskStatus.RUNNING, attempts=3, max_attempts=3)
    assert after_failure(last, "x", retryable=True, now=T0, rules=RULES, draw=0).status is TaskStatus.FAILED
    first = task(status=TaskStatus.RUNNING, attempts=1, max_attempts=3)
    failed = after_failure(first, "no run", retryable=False, now=T0, rules=RULES, draw=0)
    assert failed.status is TaskStatus.FAILED and failed.finished_at == T0 and failed.next_attempt_at is None


def test_escalation_levels_are_reached_by_their_delays_past_the_deadline() -> None:
    t = task(deadline=T0)
    assert escalation(t, LEVELS, T0 - timedelta(seconds=1)) == 0
    assert escalation(t, LEVELS, T0) == 1
    assert escalation(t, LEVELS, T0 + timedelta(minutes=29)) == 1
    assert escalation(t, LEVELS, T0 + timedelta(minutes=30)) == 2
    assert (
        escalation(t.model_copy(update={"status": TaskStatus.SUCCEEDED}), LEVELS, T0 + timedelta(days=1)) == 0
    )
    assert escalation(task(), LEVELS, T0 + timedelta(days=1)) == 0  # no deadline


def test_a_failed_task_that_escalates_is_handed_to_people_an_active_one_keeps_working() -> None:
    assert escalated(task(status=TaskStatus.FAILED), 1, T0).status is TaskStatus.ESCALATED
    kept = escalated(task(status=TaskStatus.QUEUED), 2, T0)
    assert kept.status is TaskStatus.QUEUED and kept.escalation_level == 2 and kept.escalated_at == T0


def test_a_person_retries_a_failed_task_with_more_attempts_but_not_a_running_one() -> None:
    again = retried(task(status=TaskStatus.FAILED, attempts=5, max_attempts=5), T0, extra_attempts=3)
    assert again.status is TaskStatus.QUEUED and again.max_attempts == 8 and again.due(T0)
    with pytest.raises(TaskRefused, match="running"):
        retried(task(status=TaskStatus.RUNNING), T0, extra_attempts=3)

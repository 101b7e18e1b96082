"""Retry policy: validation, exponential delays with jitter inside their bounds, when to retry."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.errors import UsageError
from opsmith.engine.errors import InvalidSetting
from opsmith.engine.retry import RetryPolicy, base_delay, delay, should_retry

NO_JITTER = RetryPolicy(attempts=5, initial_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0)


def test_defaults_are_valid() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.jitter) == (3, 0.1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attempts": 0}, "retry attempts must be a whole number >= 1, got 0"),
        ({"attempts": 2.5}, "retry attempts must be a whole number >= 1, got 2.5"),
        ({"attempts": True}, "retry attempts must be a whole number >= 1, got True"),
        ({"initial_delay": -1.0}, "retry initial_delay must be a finite number of seconds >= 0, got -1.0"),
        ({"max_delay": math.inf}, "retry max_delay must be a finite number of seconds >= 0, got inf"),
        ({"initial_delay": 5.0, "max_delay": 2.0}, "retry max_delay (2.0) is less than initial_delay (5.0)"),
        ({"multiplier": 0.5}, "retry multiplier must be a finite number >= 1, got 0.5"),
        ({"multiplier": math.nan}, "retry multiplier must be a finite number >= 1, got nan"),
        ({"jitter": 1.5}, "retry jitter must be a fraction from 0 to 1, got 1.5"),
        ({"jitter": -0.1}, "retry jitter must be a fraction from 0 to 1, got -0.1"),
    ],
)
def test_bad_policies_say_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        RetryPolicy(**fields)  # type: ignore[arg-type]
    assert caught.value.message == message
    assert caught.value.hint
    assert isinstance(caught.value, UsageError)


def test_exponential_then_capped() -> None:
    assert [base_delay(NO_JITTER, n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [delay(NO_JITTER, n, 0.5) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert base_delay(NO_JITTER, 10**6) == 10.0
    assert base_delay(RetryPolicy(multiplier=1e300, max_delay=1e308), 5) == 1e308


def test_tiny_initial_delay_does_not_overflow() -> None:
    policy = RetryPolicy(initial_delay=5e-324, multiplier=37.0, max_delay=1.0, jitter=0.0)
    assert 0.0 < base_delay(policy, 198) < 1.0
    assert base_delay(policy, 300) == 1.0


def test_zero_delay_policy() -> None:
    policy = RetryPolicy(initial_delay=0.0, max_delay=0.0)
    assert delay(policy, 4, 0.9) == 0.0


def test_jitter_is_deterministic_from_the_draw() -> None:
    policy = RetryPolicy(initial_delay=4.0, multiplier=2.0, max_delay=100.0, jitter=0.5)
    assert delay(policy, 1, 0.0) == 2.0  # 4 * (1 - 0.5)
    assert delay(policy, 1, 0.5) == 4.0
    assert delay(policy, 1, 0.75) == 5.0
    assert delay(policy, 1, 0.75) == delay(policy, 1, 0.75)


def test_jitter_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(initial_delay=10.0, max_delay=10.0, jitter=0.5)
    assert delay(policy, 3, 0.999) == 10.0
    assert delay(policy, 3, 0.0) == 5.0


@pytest.mark.parametrize("draw", [-0.1, 1.0, math.nan])
def test_draw_must_be_in_unit_interval(draw: float) -> None:
    with pytest.raises(InvalidSetting, match=r"rng_value must be in \[0, 1\)"):
        delay(NO_JITTER, 1, draw)


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(InvalidSetting, match="attempt must be a whole number >= 1"):
        base_delay(NO_JITTER, attempt)
    with pytest.raises(InvalidSetting, match="attempt must be a whole number >= 1"):
        should_retry(NO_JITTER, attempt, True)


def test_should_retry() -> None:
    policy = RetryPolicy(attempts=3)
    assert should_retry(policy, 1, True)
    assert should_retry(policy, 2, True)
    assert not should_retry(policy, 3, True)
    assert not should_retry(policy, 1, False)
    assert not should_retry(RetryPolicy(attempts=1), 1, True)


policies = st.builds(
    lambda initial, extra, multiplier, jitter, attempts: RetryPolicy(
        attempts=attempts,
        initial_delay=initial,
        max_delay=initial + extra,
        multiplier=multiplier,
        jitter=jitter,
    ),
    initial=st.floats(min_value=0.0, max_value=1e4),
    extra=st.floats(min_value=0.0, max_value=1e5),
    multiplier=st.floats(min_value=1.0, max_value=100.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempts=st.integers(min_value=1, max_value=20),
)


@given(
    policy=policies,
    attempt=st.integers(min_value=1, max_value=2000),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_stays_within_its_jitter_band_and_the_cap(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    base = base_delay(policy, attempt)
    wait = delay(policy, attempt, draw)
    slack = 1e-9 * max(1.0, base)
    assert 0.0 <= base <= policy.max_delay
    assert base * (1 - policy.jitter) - slack <= wait <= base * (1 + policy.jitter) + slack
    assert wait <= policy.max_delay


@given(policy=policies, attempt=st.integers(min_value=1, max_value=2000))
def test_base_delay_never_decreases(policy: RetryPolicy, attempt: int) -> None:
    assert base_delay(policy, attempt) <= base_delay(policy, attempt + 1)
    assert base_delay(policy, 1) == policy.initial_delay


@given(policy=policies, attempt=st.integers(min_value=1, max_value=50), retryable=st.booleans())
def test_retries_stop_after_the_last_attempt(policy: RetryPolicy, attempt: int, retryable: bool) -> None:
    assert should_retry(policy, attempt, retryable) == (retryable and attempt < policy.attempts)


def test_a_cap_one_rounding_error_above_the_initial_delay_leaves_the_first_wait_alone() -> None:
    policy = RetryPolicy(
        attempts=3, initial_delay=68.0, multiplier=1.0, max_delay=68.00000000000001, jitter=0.0
    )
    assert base_delay(policy, 1) == 68.0 and base_delay(policy, 2) == 68.0

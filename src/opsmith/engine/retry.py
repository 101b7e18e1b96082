"""Retry policy: how many attempts, and how long to wait between them (exponential, capped, jittered).

Randomness comes in as a value in [0, 1) so that delays are reproducible in tests and the
executor owns the random source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opsmith.engine.errors import InvalidSetting

__all__ = ["RetryPolicy", "base_delay", "delay", "should_retry"]


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` counts every try, the first included: 1 means never retry.

    The wait after failed attempt n is initial_delay * multiplier**(n-1), at most max_delay,
    then moved by up to ±jitter of itself (and still at most max_delay), in seconds.
    """

    attempts: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise InvalidSetting(
                f"retry attempts must be a whole number >= 1, got {self.attempts!r}",
                hint="attempts counts the first try too; use 1 for no retries",
            )
        for name in ("initial_delay", "max_delay"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise InvalidSetting(
                    f"retry {name} must be a finite number of seconds >= 0, got {value!r}",
                    hint="for example initial_delay=1, max_delay=60",
                )
        if self.max_delay < self.initial_delay:
            raise InvalidSetting(
                f"retry max_delay ({self.max_delay}) is less than initial_delay ({self.initial_delay})",
                hint="raise max_delay or lower initial_delay",
            )
        if not _finite(self.multiplier) or self.multiplier < 1:
            raise InvalidSetting(
                f"retry multiplier must be a finite number >= 1, got {self.multiplier!r}",
                hint="1 waits the same each time, 2 doubles the wait",
            )
        if not _finite(self.jitter) or not 0 <= self.jitter <= 1:
            raise InvalidSetting(
                f"retry jitter must be a fraction from 0 to 1, got {self.jitter!r}",
                hint="0.1 spreads each wait by up to 10% either way",
            )


def base_delay(policy: RetryPolicy, attempt: int) -> float:
    """The wait after failed attempt `attempt` (1-based) before jitter; never decreases with attempt."""
    _check_attempt(attempt)
    if policy.initial_delay == 0:
        return 0.0
    # Compare in logarithms: multiplier**(attempt-1) overflows floats long before attempts run out.
    growth = (attempt - 1) * math.log(policy.multiplier)
    # Strictly past the cap: logarithms of two delays one ulp apart compare equal, and the first
    # attempt's wait must stay the initial delay even when the cap is a rounding error above it.
    if growth > math.log(policy.max_delay) - math.log(policy.initial_delay):
        return policy.max_delay
    try:
        # Computed directly where it fits, so that 1, 2, 4, 8 stay exact.
        grown = policy.initial_delay * policy.multiplier ** (attempt - 1)
    except OverflowError:
        # Only a vanishingly small initial delay gets here: below the cap, but the power alone overflows.
        grown = math.exp(math.log(policy.initial_delay) + growth)
    return min(grown, policy.max_delay)


def delay(policy: RetryPolicy, attempt: int, rng_value: float) -> float:
    """Seconds to wait after failed attempt `attempt`: the base moved by jitter * (2*rng_value - 1).

    Jitter spreads retries of many runs that failed together, so they do not hit a recovering
    server at the same moment. The result lies in [base*(1-jitter), min(base*(1+jitter), max_delay)].
    """
    if not _finite(rng_value) or not 0 <= rng_value < 1:
        raise InvalidSetting(
            f"rng_value must be in [0, 1), got {rng_value!r}",
            hint="pass random.random() or an equivalent draw",
        )
    base = base_delay(policy, attempt)
    jittered = base * (1 + policy.jitter * (2 * rng_value - 1))
    return max(0.0, min(jittered, policy.max_delay))


def should_retry(policy: RetryPolicy, attempt: int, retryable: bool) -> bool:
    """Whether failed attempt `attempt` (1-based) gets another: the error allows it and tries remain.

    `retryable` comes from the error (e.g. ServerUnavailableError) and the step: a call that may
    have changed something is retried only when the step is idempotent; the caller decides that.
    """
    _check_attempt(attempt)
    return retryable and attempt < policy.attempts


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidSetting(
            f"attempt must be a whole number >= 1, got {attempt!r}",
            hint="attempts are counted from 1, the first try",
        )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

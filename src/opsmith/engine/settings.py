"""How the engine runs: parallelism, timeouts, the lease, retries. Plain values; config builds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmith.engine.errors import InvalidSetting
from opsmith.engine.retry import RetryPolicy

__all__ = ["ExecutionSettings"]


@dataclass(frozen=True)
class ExecutionSettings:
    max_parallel: int = 5
    step_timeout: float = 900.0  # seconds one attempt of one tool call may take
    gate_timeout: float = 24 * 3600.0  # seconds a validation gate waits before the run rolls back
    lease_seconds: float = 30.0  # a driver that has not renewed its lease this long is presumed dead
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=3, initial_delay=0.5, max_delay=10)
    )

    def __post_init__(self) -> None:
        if self.max_parallel < 1:
            raise InvalidSetting(
                f"max_parallel must be at least 1, got {self.max_parallel}",
                hint="use 1 to run one step at a time",
            )
        for name in ("step_timeout", "gate_timeout", "lease_seconds"):
            if not getattr(self, name) > 0:
                raise InvalidSetting(
                    f"{name} must be a positive number of seconds, got {getattr(self, name)!r}"
                )

    @property
    def heartbeat_every(self) -> float:
        # Three renewals per lease period survive one slow write; at most every second so that a
        # pause or cancel asked by another process is seen quickly.
        return min(self.lease_seconds / 3, 1.0)

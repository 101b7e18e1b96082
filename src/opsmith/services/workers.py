"""The workers of `executor: celery`: who is alive, and whether the broker answers (`/readyz`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.step_calls import WorkerInfo
from opsmith.ports import StepCallStore

PING_TIMEOUT = 1.0  # seconds: readiness must answer fast even when Redis does not


@dataclass(frozen=True)
class Distribution:
    """`executor: celery` as it stands: the broker (its URL masked) and the workers alive."""

    broker: str
    broker_up: bool
    workers: list[WorkerInfo]

    @property
    def ready(self) -> bool:
        return self.broker_up and bool(self.workers)


def live_workers(app: App) -> list[WorkerInfo]:
    """Workers that said they were alive within `celery.lost_after_seconds`."""
    calls = _calls_of(app)
    since = app.clock.now() - timedelta(seconds=app.config.celery.lost_after_seconds)
    return calls.live_workers(since)


def distribution(app: App) -> Distribution | None:
    """The broker's and the workers' state; None with `executor: local` (nothing to report)."""
    if app.broker is None:
        return None
    return Distribution(app.broker.where, app.broker.ping(PING_TIMEOUT), live_workers(app))


def _calls_of(app: App) -> StepCallStore:
    if app.step_calls is None:
        raise UsageError(
            "the executor is local: steps run in the process that drives the run, there are no workers",
            hint="set `executor: celery` and celery.broker_url in opsmith.yaml, then start `opsmith worker`",
        )
    return app.step_calls

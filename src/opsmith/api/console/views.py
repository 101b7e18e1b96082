"""Pure figures the pages show: how far a run is, about how long it has left, runs per day.

Plain values in, plain values out: the pages and the run monitor's live updates compute them the
same way, and the unit tests need no server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from opsmith.domain.graph import Node, estimate, format_duration_range
from opsmith.engine.state import RunStatus, StepState, StepStatus

__all__ = [
    "FINISHED_STEPS",
    "Bar",
    "Chart",
    "Progress",
    "StepTiming",
    "chart",
    "eta_text",
    "fleet_hosts",
    "progress",
    "remaining",
    "runs_per_day",
    "shorten",
]

FINISHED_STEPS = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.ROLLED_BACK,
        StepStatus.ROLLBACK_FAILED,
        StepStatus.CANCELLED,
    }
)
_UNDER_WAY = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ROLLING_BACK})


@dataclass(frozen=True)
class Progress:
    finished: int
    running: int
    total: int

    @property
    def position(self) -> int:
        """N of "Step N of M": the steps finished plus those running now."""
        return min(self.total, self.finished + self.running)

    @property
    def text(self) -> str:
        return f"Step {self.position} of {self.total}"

    @property
    def percent(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 100


HOST_ROWS = 200  # host rows a step's row shows; the rest are counted


def fleet_hosts(state: StepState, limit: int = HOST_ROWS) -> dict[str, Any] | None:
    """A step that fans out over hosts, as its row shows it: "done on 3 of 5 hosts, 1 failed, 1
    pending" and each host that finished (its answer's rows once it answered, else those recorded
    as hosts finished); None for a step that never fanned out."""
    answered = state.output.get("hosts") if state.output is not None else None
    if isinstance(answered, list) and all(isinstance(r, Mapping) for r in answered):
        rows: list[Mapping[str, Any]] = answered
        total = len(rows)
    elif state.fan_out is not None:
        rows, total = list(state.fan_out.rows.values()), state.fan_out.total
    else:
        return None
    done = sum(1 for r in rows if r.get("ok") is True)
    failed = len(rows) - done
    text = f"done on {done} of {total} hosts, {failed} failed"
    pending = max(total - len(rows), 0)
    if pending:
        waiting = "pending" if state.status in (StepStatus.RUNNING, StepStatus.RETRY_WAIT) else "unknown"
        text += f", {pending} {waiting}"
    shown = [
        {"host": str(r.get("host", "")), "ok": r.get("ok") is True, "why": shorten(_why(r), 160)}
        for r in rows[:limit]
    ]
    return {"text": text, "rows": shown, "more": max(len(rows) - limit, 0)}


def _why(row: Mapping[str, Any]) -> str:
    if row.get("ok") is True:
        return ""
    said = [str(row[k]) for k in ("failure", "reason") if row.get(k)]
    if not said and row.get("exit_code") is not None:
        said.append(f"exit code {row['exit_code']}")
    return ": ".join(said)


def progress(statuses: Iterable[StepStatus]) -> Progress:
    counted = Counter(statuses)
    finished = sum(n for status, n in counted.items() if status in FINISHED_STEPS)
    running = counted[StepStatus.RUNNING] + counted[StepStatus.RETRY_WAIT]
    return Progress(finished=finished, running=running, total=sum(counted.values()))


@dataclass(frozen=True)
class StepTiming:
    """One step as the ETA sees it: its place in the graph, its estimate, how far it is."""

    id: str
    depends_on: tuple[str, ...]
    estimate: tuple[float, float]
    status: StepStatus
    started_at: datetime | None = None


def remaining(steps: Sequence[StepTiming], now: datetime) -> tuple[float, float]:
    """Seconds left, (at least, at most): the critical path of what has not finished, a running
    step counted for its estimate less the time it has already taken."""
    nodes = [Node(s.id, s.depends_on, _left(s, now)) for s in steps]
    found = estimate(nodes)
    return found.minimum, found.maximum


def _left(step: StepTiming, now: datetime) -> tuple[float, float]:
    if step.status in FINISHED_STEPS:
        return (0.0, 0.0)
    low, high = step.estimate
    if step.status is StepStatus.RUNNING and step.started_at is not None:
        spent = max(0.0, (now - step.started_at).total_seconds())
        return (max(0.0, low - spent), max(0.0, high - spent))
    return (low, high)


def eta_text(status: RunStatus, left: tuple[float, float]) -> str:
    """What the monitor says about the time left; an estimate, so never to the second."""
    if status not in _UNDER_WAY:
        return ""
    if status is RunStatus.ROLLING_BACK:
        return "rolling back: the undo steps are not estimated"
    low, high = left
    if high <= 0:
        return "taking longer than estimated"
    return f"about {format_duration_range(low, high)} left"


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    width: float
    height: float

    @property
    def label(self) -> str:
        return f"{self.day:%a %d %b}: {self.count} run{'' if self.count == 1 else 's'}"


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    width: float
    height: float
    highest: int


def runs_per_day(created: Iterable[datetime], today: date, days: int = 14) -> list[tuple[date, int]]:
    """How many runs began on each of the `days` days up to `today`, oldest first (zeros too)."""
    first = today - timedelta(days=days - 1)
    counted = Counter(moment.date() for moment in created)
    return [(first + timedelta(days=n), counted[first + timedelta(days=n)]) for n in range(days)]


def chart(counts: Sequence[tuple[date, int]], *, width: float = 420.0, height: float = 120.0) -> Chart:
    """Bars for an inline SVG, bottom-aligned; an empty day keeps a sliver so its slot shows."""
    highest = max((n for _, n in counts), default=0)
    slot = width / len(counts) if counts else width
    bars = []
    for index, (day, count) in enumerate(counts):
        tall = (height - 2) * count / highest if highest else 0.0
        tall = max(tall, 1.0)
        bars.append(Bar(day, count, index * slot + 1, height - tall, max(1.0, slot - 2), tall))
    return Chart(tuple(bars), width, height, highest)


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters; a cut is marked with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"

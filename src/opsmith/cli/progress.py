"""Live progress of a run for a terminal: overall bar with ETA, a spinner line per running step."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from opsmith.domain.graph import Node, estimate, format_duration_range
from opsmith.domain.plan import Plan
from opsmith.engine.events import EventType, RunEvent

_DONE = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED}


class LiveProgress:
    """A listener for the executor; events are also printed above the bars as they happen."""

    def __init__(self, plan: Plan, console: Console) -> None:
        self._plan = plan
        self._console = console
        self._finished: set[str] = set()
        self._started_at = time.monotonic()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self._overall = self._progress.add_task("run", total=len(plan.steps), eta=self._eta())
        self._running: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, event: RunEvent) -> None:
        where = f"[{event.step_id}] " if event.step_id else ""
        self._progress.console.print(
            f"{event.at:%H:%M:%S} {event.type.value:<18} {where}{event.message}"[:300]
        )
        if event.type is EventType.STEP_STARTED and event.step_id:
            self._running[event.step_id] = self._progress.add_task(f"  {event.step_id}", total=None, eta="")
        if event.type is EventType.STEP_PROGRESS and event.step_id in self._running:
            # A step on many hosts: its spinner line becomes a second bar of hosts done.
            data = event.data
            failed = data.get("failed", 0)
            self._progress.update(
                self._running[event.step_id],
                total=data.get("total"),
                completed=data.get("completed", 0),
                eta=f"{failed} failed, {data.get('pending', 0)} pending"
                if failed
                else f"{data.get('pending', 0)} pending",
            )
        if event.type in _DONE and event.step_id:
            self._finished.add(event.step_id)
            task = self._running.pop(event.step_id, None)
            if task is not None:
                self._progress.remove_task(task)
            self._progress.update(self._overall, completed=len(self._finished), eta=self._eta())

    def _eta(self) -> str:
        """What remains along the critical path of the unfinished steps, from the plan's estimates."""
        left = [s for s in self._plan.steps if s.id not in self._finished]
        if not left:
            return ""
        ids = {s.id for s in left}
        nodes = [
            Node(
                id=s.id, depends_on=tuple(d for d in s.depends_on if d in ids), duration=s.estimated_duration
            )
            for s in left
        ]
        found = estimate(nodes)
        return f"ETA {format_duration_range(found.minimum, found.maximum)}"

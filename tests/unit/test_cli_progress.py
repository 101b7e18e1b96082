"""The terminal's live progress: a step that fans out over hosts gets a second bar of hosts done."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from opsmith.cli.progress import LiveProgress
from opsmith.engine.events import EventType, RunEvent
from tests.unit.test_engine_helpers import plan_of, step

PLAN = plan_of(step("status"), step("stop", "status"))
AT = datetime(2026, 12, 1, 10, tzinfo=UTC)


def event(kind: EventType, step_id: str, message: str = "", **data: Any) -> RunEvent:
    return RunEvent(run_id="r1", at=AT, type=kind, step_id=step_id, message=message, data=data)


def test_a_step_on_many_hosts_shows_its_hosts_done_failed_and_pending() -> None:
    out = io.StringIO()
    live = LiveProgress(PLAN, Console(file=out, width=120, force_terminal=False))
    live(event(EventType.STEP_STARTED, "stop", "Stop the service (attempt 1)"))
    live(
        event(
            EventType.STEP_PROGRESS,
            "stop",
            "7/20 hosts done, 2 failed",
            total=20,
            completed=7,
            failed=2,
            pending=13,
        )
    )
    bars = {task.description.strip(): task for task in live._progress.tasks}
    assert (bars["stop"].total, bars["stop"].completed) == (20, 7)
    assert bars["stop"].fields["eta"] == "2 failed, 13 pending"
    assert bars["run"].completed == 0  # the run's own bar counts steps, not hosts
    live(event(EventType.STEP_SUCCEEDED, "stop", "ok"))
    assert [t.description.strip() for t in live._progress.tasks] == ["run"]
    assert "7/20 hosts done, 2 failed" in out.getvalue()


def test_progress_of_a_step_not_running_is_printed_but_draws_no_bar() -> None:
    live = LiveProgress(PLAN, Console(file=io.StringIO(), width=120, force_terminal=False))
    live(
        event(
            EventType.STEP_PROGRESS,
            "stop",
            "1/2 hosts done, 0 failed",
            total=2,
            completed=1,
            failed=0,
            pending=1,
        )
    )
    assert [t.description.strip() for t in live._progress.tasks] == ["run"]

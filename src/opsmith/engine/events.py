"""Typed events of a run: stored append-only and published to whoever watches live."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    RUN_FINISHED = "run.finished"
    RUN_PAUSED = "run.paused"
    RUN_ATTENTION = "run.needs_attention"
    STEP_STARTED = "step.started"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_RETRYING = "step.retrying"
    STEP_DENIED = "step.denied"
    STEP_SKIPPED = "step.skipped"
    STEP_INTERRUPTED = "step.interrupted"
    STEP_DECIDED = "step.decided"
    STEP_PROGRESS = "step.progress"  # a step fanned out over hosts: how many are done, failed, pending
    GATE_WAITING = "gate.waiting"
    GATE_PASSED = "gate.passed"
    ROLLBACK_STARTED = "rollback.started"
    ROLLBACK_CALLING = "rollback.calling"
    ROLLBACK_ACTION = "rollback.action"
    ROLLBACK_FINISHED = "rollback.finished"
    LOG = "log"


class RunEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int = 0
    at: datetime
    type: EventType
    step_id: str | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

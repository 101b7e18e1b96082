"""Plain values the run journal port speaks in: an audit entry to chain with a run change, a lease."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AuditNote:
    """An audit entry to chain in the same transaction as the run change it describes."""

    actor: str
    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """One line of a runs list: enough to find a run, without loading its steps."""

    run_id: str
    plan_id: str
    status: str
    started_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Lease:
    """Who drives a run, until when, and what another process asked of it (pause, cancel...)."""

    owner: str | None
    expires: datetime | None
    requested: str | None

"""Agents: the handlers inside opsmith that take tasks, as data. Pure: no I/O.

An agent has a type, the task types it handles (`*`: any, as the general backup does, scored
lower than a specialist), how many tasks it holds at once, its last heartbeat, and its record:
success rate and average attempt duration. Five are built in (BUILT_IN); what each one does is in
opsmith.services.agents. An agent whose heartbeat is older than the configured timeout is taken
for gone: its tasks move to the backup agent.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import NotFoundError, OperationError

__all__ = [
    "ANY",
    "BACKUP_ID",
    "BUILT_IN",
    "Agent",
    "AgentFailed",
    "UnknownAgentError",
]

ANY = "*"


class AgentFailed(OperationError):
    """An agent could not do its task. `retryable`: the same attempt may succeed later (a store
    busy, a tracker unreachable); False when only a person can mend it (no run to analyse)."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable


class UnknownAgentError(NotFoundError):
    """An agent id that names no agent."""


class Agent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=40)
    capabilities: frozenset[str] = Field(description="task types it handles; '*': any")
    max_concurrent: int = Field(default=2, ge=1, le=1000)
    enabled: bool = True
    backup: bool = Field(default=False, description="takes the tasks of agents that went silent")
    last_heartbeat: datetime | None = None
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    busy_seconds: float = Field(default=0.0, ge=0)

    @property
    def success_rate(self) -> float:
        """Successes over attempts, counting one of each beforehand: a new agent starts at 0.5,
        and one lucky attempt does not make it perfect."""
        return (self.successes + 1) / (self.successes + self.failures + 2)

    @property
    def average_seconds(self) -> float | None:
        attempts = self.successes + self.failures
        return None if attempts == 0 else self.busy_seconds / attempts

    def capability(self, task_type: str) -> float:
        """1 for a task type it names, 0.5 for one it takes as a generalist ('*'), 0 otherwise."""
        if task_type in self.capabilities:
            return 1.0
        return 0.5 if ANY in self.capabilities else 0.0

    def alive(self, now: datetime, timeout_seconds: float) -> bool:
        return (
            self.last_heartbeat is not None and (now - self.last_heartbeat).total_seconds() <= timeout_seconds
        )


BACKUP_ID = "general-backup"

BUILT_IN: tuple[Agent, ...] = (
    Agent(
        id="deployment-agent",
        type="deployment",
        capabilities=frozenset({"deployment_failure"}),
        max_concurrent=3,
    ),
    Agent(id="issues-agent", type="issues", capabilities=frozenset({"issue"}), max_concurrent=4),
    Agent(
        id="code-fix-agent",
        type="code_fix",
        capabilities=frozenset({"code_fix", "bug_report"}),
        max_concurrent=2,
    ),
    Agent(id="monitoring-agent", type="monitoring", capabilities=frozenset({"monitoring"}), max_concurrent=4),
    Agent(id=BACKUP_ID, type="general", capabilities=frozenset({ANY}), max_concurrent=4, backup=True),
)

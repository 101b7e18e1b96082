"""Playbooks as data: which requests they serve and the capability steps they lay out."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.evidence import Condition, StepCondition
from opsmith.domain.intent import Intent


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlaybookStep(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    capability: str
    name: str
    depends_on: list[str] = Field(default_factory=list)
    args: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    rollback: str | None = Field(default=None, description="capability that undoes this step")
    rollback_args: dict[str, Any] = Field(default_factory=dict)
    rollback_idempotent: bool | None = Field(
        default=None,
        description="whether the undo may run twice safely; unset: its tool's idempotentHint says",
    )
    requires_validation: bool = False
    idempotent: bool | None = None
    description: str = ""
    duration: tuple[float, float] | None = None
    environment: str | None = Field(default=None, description="acts on this environment, not the request's")
    for_each: Literal["subject"] | None = None
    serial_after: str | None = Field(
        default=None, description="for_each: instance i also waits for this step of instance i-1"
    )
    urgent_skip: bool = Field(default=False, description="left out when the request is urgent")
    expect: list[Condition] = Field(
        default_factory=list, description="conditions on this step's own output; unmet fails the step"
    )
    when: list[StepCondition] = Field(
        default_factory=list, description="conditions on earlier steps' outputs; unmet skips this step"
    )


class Match(_Strict):
    actions: list[str]
    environments: list[str] | None = None
    urgency: list[str] | None = None
    strategy: list[str] | None = Field(default=None, description="the subject's deployment strategy")
    min_subjects: int = 0
    max_subjects: int | None = None
    words: list[str] | None = Field(
        default=None, description="the request must say one of these (a check of the logs says 'logs')"
    )
    targets: bool = Field(
        default=False,
        description="for requests about hosts of the inventory (a group or host names); the others never are",
    )
    params: list[str] = Field(
        default_factory=list, description="what the request must name, e.g. [services] for a service to stop"
    )


class Playbook(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    title: str
    precedence: int = 0
    match: Match
    skips: list[str] = Field(default_factory=list, description="what this playbook leaves out, and why")
    steps: list[PlaybookStep]
    source: str = Field(default="", exclude=True)

    def matches(self, intent: Intent, strategy: str | None) -> bool:
        m = self.match
        if intent.action not in m.actions:
            return False
        if m.environments is not None and intent.environment not in m.environments:
            return False
        if m.urgency is not None and intent.urgency not in m.urgency:
            return False
        if m.strategy is not None and strategy not in m.strategy:
            return False
        if m.words is not None and not set(m.words) & set(re.findall(r"[a-z0-9]+", intent.request.lower())):
            return False
        # A request about hosts is served by a fleet playbook only, and a fleet playbook serves nothing else.
        if bool(intent.targets.group or intent.targets.hosts) != m.targets:
            return False
        if any(not intent.params.get(name) for name in m.params):
            return False
        count = len(intent.subjects)
        return count >= m.min_subjects and (m.max_subjects is None or count <= m.max_subjects)


def choose(playbooks: list[Playbook], intent: Intent, strategy: str | None) -> Playbook | None:
    """The matching playbook with the highest precedence; ties go to the name, for determinism."""
    fitting = [p for p in playbooks if p.matches(intent, strategy)]
    return min(fitting, key=lambda p: (-p.precedence, p.name)) if fitting else None

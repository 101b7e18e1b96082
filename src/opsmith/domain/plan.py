"""A plan: the reviewed, risk-assessed dependency graph of concrete tool calls, as data."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.compliance import Requirement
from opsmith.domain.evidence import Condition, StepCondition
from opsmith.domain.extraction import Each
from opsmith.domain.intent import Intent
from opsmith.domain.risk import Risk


class PlanStatus(StrEnum):
    INCOMPLETE = "incomplete"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    server: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    # As a rollback action: whether running it twice does no more than running it once, so an undo
    # a crash interrupted may run again unasked (else a person decides).
    idempotent: bool = False


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    tool: str
    score: float
    reasons: list[str]
    # An operation the tool offers through one argument, fixed for this job (`subCommand: undo`).
    fixed: dict[str, Any] = Field(default_factory=dict)


class Mapping(BaseModel):
    """Why this tool: the winner and the runners-up, with their scores."""

    model_config = ConfigDict(frozen=True)

    capability: str
    chosen: Candidate
    runners_up: list[Candidate] = Field(default_factory=list)


class StepRetry(BaseModel):
    """A step's own retry policy, over the configured one: absent fields keep the configuration's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int | None = Field(default=None, ge=1, le=100)
    initial_delay: float | None = Field(default=None, ge=0)
    multiplier: float | None = Field(default=None, ge=1)
    max_delay: float | None = Field(default=None, ge=0)
    jitter: float | None = Field(default=None, ge=0, le=1)


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    capability: str
    server: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    risk: Risk
    risk_reasons: list[str] = Field(default_factory=list)
    compliance: list[str] = Field(default_factory=list)
    requires_validation: bool = False
    rollback: ToolCall | None = None
    targets: list[str] = Field(default_factory=list)
    optional: bool = False
    idempotent: bool = False
    changes_target: bool = False
    estimated_duration: tuple[float, float] = (0.0, 0.0)
    missing_args: list[str] = Field(default_factory=list)
    expect: list[Condition] = Field(default_factory=list)  # on its own output: unmet fails the step
    when: list[StepCondition] = Field(default_factory=list)  # on earlier outputs: unmet skips it
    description: str = ""
    mapping: Mapping | None = None
    timeout: float | None = Field(default=None, gt=0)  # seconds per attempt; None: the configuration's
    retry: StepRetry | None = None
    # How the fields `expect` and later steps read are found in this tool's output (a binding's).
    extract: dict[str, str | Each] = Field(default_factory=dict)
    # Seconds a read-only check may take to come true (pods still starting): called again until
    # its expectations hold, for a tool that cannot wait itself. None: one call decides.
    settle: float | None = Field(default=None, gt=0, le=3600)


class FiredRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    reason: str
    effect: str


class Estimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    minimum_seconds: float
    maximum_seconds: float
    text: str
    critical_path: list[str]


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    request: str
    title: str
    intent: Intent
    playbook: str
    priority: str
    risk: Risk
    requires_approval: bool
    approval_reasons: list[str] = Field(default_factory=list)
    approvals_needed: int = 0
    compliance: list[Requirement] = Field(default_factory=list)
    rollback_strategy: str
    success_criteria: list[str] = Field(default_factory=list)
    failure_handling: str
    estimated_duration: Estimate
    steps: list[Step]
    parallel_groups: list[list[str]] = Field(default_factory=list)
    context_rules: list[FiredRule] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict, description="--set values the plan was made with")
    requested_by: str = ""
    amended_by: list[str] = Field(
        default_factory=list, description="who amended it; requesters for four-eyes"
    )
    amended_from: str | None = Field(default=None, description="the closed plan this one was copied from")
    status: PlanStatus
    hash: str = ""
    created_at: datetime
    seal: str = Field(default="", description="keyed signature of id, hash, requester and status")

    @property
    def missing(self) -> dict[str, list[str]]:
        return {s.id: s.missing_args for s in self.steps if s.missing_args}

    @property
    def unmet(self) -> list[Requirement]:
        return [r for r in self.compliance if r.unmet]

    def step(self, step_id: str) -> Step:
        # The engine looks steps up by id for every change of a run, so the index is kept in the
        # instance dict, which equality and dumps ignore (like a cached_property). It remembers the
        # list it indexes: model_copy(update={"steps": ...}) carries the dict over to the copy.
        cached = self.__dict__.get("_steps_index")
        if cached is None or cached[0] is not self.steps:
            cached = (self.steps, {s.id: s for s in self.steps})
            self.__dict__["_steps_index"] = cached
        return cached[1][step_id]

    def content_hash(self) -> str:
        """sha256 over everything that would run or decide whether it may run; ids and times excluded."""
        return content_hash(self)

    def signed(self) -> dict[str, Any]:
        """What the plan's seal covers: its content (by hash), who asked for it, and its status, so
        neither an edit nor a status set back (a finished plan made `approved` again) goes unseen."""
        return signed_fields(self.id, self.hash, self.requested_by, self.status, self.amended_by)

    @property
    def requesters(self) -> set[str]:
        """Who asked for this version of the plan: none of them may approve it under four-eyes."""
        return {self.requested_by, *self.amended_by}


def signed_fields(
    plan_id: str, plan_hash: str, requested_by: str, status: PlanStatus, amended_by: list[str]
) -> dict[str, Any]:
    return {
        "id": plan_id,
        "hash": plan_hash,
        "requested_by": requested_by,
        "status": PlanStatus(status).value,
        "amended_by": list(amended_by),
    }


def content_hash(plan: Plan) -> str:
    body: dict[str, Any] = {
        "request": plan.request,
        "risk": plan.risk,
        "requires_approval": plan.requires_approval,
        "approvals_needed": plan.approvals_needed,
        "compliance": [r.model_dump(mode="json") for r in plan.compliance],
        "steps": [
            s.model_dump(
                mode="json",
                include={
                    "id",
                    "server",
                    "tool",
                    "args",
                    "depends_on",
                    "risk",
                    "compliance",
                    "requires_validation",
                    "rollback",
                    "targets",
                    "optional",
                    "idempotent",
                },
            )
            for s in plan.steps
        ],
    }
    for step, dumped in zip(plan.steps, body["steps"], strict=True):
        # Only when present, so that plans made before conditions existed keep their hash.
        if step.expect:
            dumped["expect"] = [c.model_dump(mode="json") for c in step.expect]
        if step.when:
            dumped["when"] = [c.model_dump(mode="json") for c in step.when]
        if step.timeout is not None:
            dumped["timeout"] = step.timeout
        if step.settle is not None:
            dumped["settle"] = step.settle
        if step.extract:
            dumped["extract"] = {
                k: v if isinstance(v, str) else v.model_dump(mode="json") for k, v in step.extract.items()
            }
        if step.retry is not None:
            dumped["retry"] = step.retry.model_dump(mode="json", exclude_none=True)
        if dumped["rollback"] is not None and not dumped["rollback"]["idempotent"]:
            del dumped["rollback"]["idempotent"]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

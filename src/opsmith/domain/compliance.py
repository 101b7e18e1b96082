"""Compliance requirements per environment, and what satisfies each."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.evidence import Condition

Kind = Literal["evidence", "approval", "plan"]


class RequirementSpec(BaseModel):
    """A requirement as policy states it: satisfied by a step's output, an approval, or the plan."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    kind: Kind
    capabilities: list[str] = Field(default_factory=list, description="whose output can prove it")
    applies_to: Literal["code", "change"] = Field(
        default="change",
        description="code: plans that ship newly built code; change: plans that change the target",
    )


REQUIREMENTS: dict[str, RequirementSpec] = {
    r.name: r
    for r in [
        RequirementSpec(
            name="quality_gate_passed",
            applies_to="code",
            description="the code-quality gate passed for the code being shipped",
            kind="evidence",
            capabilities=["quality_scan"],
        ),
        RequirementSpec(
            name="security_scan_passed",
            applies_to="code",
            description="no HIGH or CRITICAL vulnerability in the code being shipped",
            kind="evidence",
            capabilities=["security_scan"],
        ),
        RequirementSpec(
            name="tests_passed",
            applies_to="code",
            description="the automated tests passed for the build being shipped",
            kind="evidence",
            capabilities=["test"],
        ),
        RequirementSpec(
            name="backup_verified",
            description="the running state was backed up before it is changed",
            kind="evidence",
            # On hosts: the state of every host read before the change (what its undo restores).
            capabilities=["backup", "host_service_status", "host_process_check"],
        ),
        RequirementSpec(
            name="monitoring_enabled",
            description="the new version is watched after the change (logs checked for errors)",
            kind="evidence",
            capabilities=["check_logs", "verify_pods", "host_service_status", "host_wait_healthy"],
        ),
        RequirementSpec(
            name="approval_required",
            description="an authorised person approved exactly this plan",
            kind="approval",
        ),
        RequirementSpec(
            name="rollback_plan_ready",
            description="every step that changes the environment can be undone",
            kind="plan",
        ),
    ]
}

DEFAULT_BY_ENVIRONMENT: dict[str, list[str]] = {
    "production": [
        "quality_gate_passed",
        "security_scan_passed",
        "approval_required",
        "backup_verified",
        "rollback_plan_ready",
        "monitoring_enabled",
    ],
    "staging": ["quality_gate_passed", "tests_passed"],
    "development": ["tests_passed"],
}


class EvidenceRef(BaseModel):
    """Which step's output proves a requirement, and the conditions that must all hold on it."""

    model_config = ConfigDict(frozen=True)

    step: str
    conditions: list[Condition] = Field(default_factory=list, description="empty: the step must succeed")

    def describe(self) -> str:
        if not self.conditions:
            return f"step {self.step} succeeds"
        return f"step {self.step}: " + " and ".join(c.describe() for c in self.conditions)


class Requirement(BaseModel):
    """A requirement as attached to one plan."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    kind: Kind
    evidence: EvidenceRef | None = None
    guards: list[str] = Field(default_factory=list, description="steps that may not start before it holds")
    met: bool | None = Field(default=None, description="None: decided at run time (evidence, approval)")
    reason: str = ""

    @property
    def unmet(self) -> bool:
        return self.met is False

"""Evidence gates: a guarded step starts only when its evidence steps' outputs prove the requirements."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.compliance import EvidenceRef, Requirement
from opsmith.domain.errors import OperationError
from opsmith.domain.evidence import Condition
from opsmith.engine.errors import EvidenceUnmet, UnknownStep
from opsmith.engine.evidence_gate import require_evidence, unmet_before
from tests.unit.test_engine_helpers import plan_of, step

QUALITY = Requirement(
    name="quality_gate_passed",
    description="the code-quality gate passed",
    kind="evidence",
    evidence=EvidenceRef(
        step="quality_scan", conditions=[Condition(path="quality_gate.status", op="==", value="PASSED")]
    ),
    guards=["deploy"],
)
SECURITY = Requirement(
    name="security_scan_passed",
    description="no HIGH or CRITICAL vulnerability",
    kind="evidence",
    evidence=EvidenceRef(
        step="security_scan",
        conditions=[
            Condition(path="vulnerabilities.critical", op="==", value=0),
            Condition(path="vulnerabilities.high", op="<=", value=0),
        ],
    ),
    guards=["deploy"],
)
BACKUP = Requirement(
    name="backup_verified",
    description="backed up before the change",
    kind="evidence",
    evidence=EvidenceRef(step="backup"),
    guards=["deploy", "migrate"],
)
APPROVAL = Requirement(name="approval_required", description="approved", kind="approval", guards=["deploy"])

PLAN = plan_of(
    step("quality_scan"),
    step("security_scan"),
    step("backup"),
    step("migrate", "backup"),
    step("deploy", "quality_scan", "security_scan", "backup"),
    compliance=[QUALITY, SECURITY, BACKUP, APPROVAL],
)

PASSING: dict[str, dict[str, Any]] = {
    "quality_scan": {"quality_gate": {"status": "PASSED"}},
    "security_scan": {"vulnerabilities": {"critical": 0, "high": 0, "medium": 4}},
    "backup": {},
}


def test_all_proven() -> None:
    assert unmet_before(PLAN, "deploy", PASSING) == []
    require_evidence(PLAN, "deploy", PASSING)


def test_failed_condition_names_requirement_step_condition_and_value() -> None:
    outputs = {**PASSING, "quality_scan": {"quality_gate": {"status": "FAILED"}}}
    assert unmet_before(PLAN, "deploy", outputs) == [
        (QUALITY, "quality_gate_passed: step quality_scan: quality_gate.status == 'PASSED' but was 'FAILED'")
    ]


def test_every_failing_condition_is_listed() -> None:
    outputs = {**PASSING, "security_scan": {"vulnerabilities": {"critical": 1, "high": 2}}}
    [(requirement, reason)] = unmet_before(PLAN, "deploy", outputs)
    assert requirement is SECURITY
    assert reason == (
        "security_scan_passed: step security_scan: vulnerabilities.critical == 0 but was 1 "
        "and vulnerabilities.high <= 0 but was 2"
    )


def test_missing_value_and_unlike_types() -> None:
    outputs = {
        **PASSING,
        "quality_scan": {"status": "PASSED"},
        "security_scan": {"vulnerabilities": {"critical": "none", "high": 0}},
    }
    assert [reason for _, reason in unmet_before(PLAN, "deploy", outputs)] == [
        "quality_gate_passed: step quality_scan: quality_gate.status == 'PASSED' but was missing",
        "security_scan_passed: step security_scan: vulnerabilities.critical == 0 but was 'none'",
    ]


def test_evidence_step_that_has_not_succeeded() -> None:
    outputs = {k: v for k, v in PASSING.items() if k != "backup"}
    assert unmet_before(PLAN, "deploy", outputs) == [
        (BACKUP, "backup_verified: step backup has not succeeded (needed: step backup succeeds)")
    ]
    outputs = {k: v for k, v in PASSING.items() if k != "quality_scan"}
    [(_, reason)] = unmet_before(PLAN, "deploy", outputs)
    assert reason == (
        "quality_gate_passed: step quality_scan has not succeeded "
        "(needed: step quality_scan: quality_gate.status == 'PASSED')"
    )


def test_only_requirements_guarding_the_step() -> None:
    assert [r.name for r, _ in unmet_before(PLAN, "migrate", {})] == ["backup_verified"]
    assert unmet_before(PLAN, "quality_scan", {}) == []


def test_approval_requirements_are_not_evidence() -> None:
    assert all(r.kind == "evidence" for r, _ in unmet_before(PLAN, "deploy", {}))


def test_requirement_no_step_can_prove_blocks() -> None:
    orphan = Requirement(
        name="monitoring_enabled",
        description="watched",
        kind="evidence",
        guards=["deploy"],
        met=False,
        reason="no check_logs or verify_pods tool",
    )
    plan = plan_of(step("deploy"), compliance=[orphan])
    assert unmet_before(plan, "deploy", {}) == [
        (orphan, "monitoring_enabled: no step of the plan proves it (no check_logs or verify_pods tool)")
    ]


def test_exists_and_truthy_conditions() -> None:
    watched = Requirement(
        name="monitoring_enabled",
        description="watched",
        kind="evidence",
        evidence=EvidenceRef(
            step="check_logs",
            conditions=[Condition(path="errors", op="exists"), Condition(path="healthy", op="truthy")],
        ),
        guards=["promote"],
    )
    plan = plan_of(step("check_logs"), step("promote", "check_logs"), compliance=[watched])
    assert unmet_before(plan, "promote", {"check_logs": {"errors": 0, "healthy": True}}) == []
    [(_, reason)] = unmet_before(plan, "promote", {"check_logs": {"errors": None, "healthy": 0}})
    assert (
        reason
        == "monitoring_enabled: step check_logs: errors exists but was None and healthy truthy but was 0"
    )


def test_require_evidence_raises_with_every_reason() -> None:
    with pytest.raises(EvidenceUnmet) as caught:
        require_evidence(PLAN, "deploy", {"backup": {}})
    message = caught.value.message
    assert message.startswith(
        "step deploy may not start: quality_gate_passed: step quality_scan has not succeeded"
    )
    assert "; security_scan_passed: step security_scan has not succeeded" in message
    assert "compliance is not skipped" in (caught.value.hint or "")
    assert isinstance(caught.value, OperationError)


def test_unknown_step() -> None:
    with pytest.raises(UnknownStep, match="plan plan-1 has no step 'deploi'"):
        unmet_before(PLAN, "deploi", PASSING)

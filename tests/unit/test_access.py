"""RBAC decisions and approvals pinned to a plan's hash, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsmith.domain.approval import Approval, ApprovalError, ApprovalState, check_approve, seal_plan
from opsmith.domain.approval import tally as tally_with
from opsmith.domain.identity import DEFAULT_ROLES, Action, Identity, Permission, decide
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.risk import Risk
from opsmith.domain.seal import Seal
from tests.unit.test_engine_helpers import plan_to_approve

NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)
SEAL = Seal(b"k" * 32)


def tally(p: Plan, approvals: list[Approval], now: datetime, **options: bool) -> ApprovalState:
    return tally_with(p, approvals, now, SEAL, **options)


def plan(risk: Risk = Risk.HIGH, needed: int = 1, status: PlanStatus = PlanStatus.PENDING_APPROVAL) -> Plan:
    made = plan_to_approve(risk=risk, needed=needed, status=status, created_at=NOW, requested_by="bob")
    return seal_plan(made, SEAL)


def who(user: str, role: str) -> Identity:
    return Identity(user=user, role=role, source="config")


def approval(
    p: Plan, user: str, *, at: datetime = NOW, hours: float = 24, hash_: str | None = None
) -> Approval:
    return Approval(
        plan_id=p.id,
        plan_hash=hash_ or p.hash,
        approver=user,
        role="approver",
        at=at,
        expires_at=at + timedelta(hours=hours),
    ).sealed_with(SEAL)


@pytest.mark.parametrize(
    ("role", "action", "environment", "risk", "tool", "allowed"),
    [
        ("viewer", Action.PLAN, None, None, None, False),
        ("operator", Action.EXECUTE, "staging", Risk.MEDIUM, "kubernetes/apply_deployment", True),
        ("operator", Action.EXECUTE, "production", Risk.MEDIUM, None, False),
        ("operator", Action.EXECUTE, "staging", Risk.HIGH, None, False),
        ("deployer", Action.APPROVE, "production", Risk.HIGH, None, False),
        ("approver", Action.APPROVE, "production", Risk.CRITICAL, None, True),
        ("admin", Action.ADMIN, None, None, None, True),
    ],
)
def test_role_decisions(
    role: str, action: Action, environment: str | None, risk: Risk | None, tool: str | None, allowed: bool
) -> None:
    decision = decide(
        who("u", role), DEFAULT_ROLES[role], action, environment=environment, risk=risk, tool=tool
    )
    assert decision.allowed is allowed, decision.reason


def test_tool_globs() -> None:
    reader = Permission(actions=[Action.EXECUTE], max_risk=Risk.CRITICAL, tools=["*/get_*", "kubernetes/*"])
    assert decide(who("u", "r"), reader, Action.EXECUTE, tool="jenkins/get_build_status").allowed
    assert decide(who("u", "r"), reader, Action.EXECUTE, tool="kubernetes/delete_deployment").allowed
    denied = decide(who("u", "r"), reader, Action.EXECUTE, tool="jenkins/trigger_build")
    assert not denied.allowed and denied.reason == "u (r) may not call jenkins/trigger_build"


def test_an_approval_counts_only_for_the_hash_it_was_given_for() -> None:
    p = plan()
    assert tally(p, [approval(p, "alice")], NOW).approved
    stale = tally(p, [approval(p, "alice", hash_="sha256:old")], NOW)
    assert not stale.approved and stale.void[0][1] == "given for a different version of the plan"


def test_approvals_expire_and_count_once_per_person() -> None:
    p = plan(needed=2)
    late = NOW + timedelta(hours=25)
    assert not tally(p, [approval(p, "alice")], late).valid
    twice = tally(p, [approval(p, "alice"), approval(p, "alice")], NOW)
    assert len(twice.valid) == 1 and not twice.approved


def test_four_eyes_refuses_the_requester() -> None:
    p = plan(Risk.CRITICAL, needed=2)
    with pytest.raises(ApprovalError, match="four-eyes"):
        check_approve(p, who("bob", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL)
    assert check_approve(p, who("alice", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL).allowed
    with pytest.raises(ApprovalError, match="already approved"):
        check_approve(
            p, who("alice", "approver"), DEFAULT_ROLES["approver"], [approval(p, "alice")], NOW, SEAL
        )


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"status": PlanStatus.INCOMPLETE}, "incomplete"),
        ({"status": PlanStatus.REJECTED}, "is rejected"),
        ({"risk": Risk.LOW}, "changed after it was made"),
    ],
)
def test_what_cannot_be_approved(changed: dict[str, object], message: str) -> None:
    p = plan().model_copy(update=changed)
    if "status" in changed:
        p = seal_plan(p, SEAL)  # a status opsmith set
    with pytest.raises(ApprovalError, match=message):
        check_approve(p, who("alice", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL)


def test_a_role_without_approve_is_refused() -> None:
    with pytest.raises(ApprovalError, match="may not approve"):
        check_approve(plan(), who("dave", "deployer"), DEFAULT_ROLES["deployer"], [], NOW, SEAL)


def test_an_approval_not_signed_with_the_key_does_not_count() -> None:
    p = plan()
    given = approval(p, "alice")
    forged = given.model_copy(update={"seal": ""})
    other_key = given.model_copy(update={"seal": ""}).sealed_with(Seal(b"x" * 32))
    # Moved to another version of the plan: what the signature covers changed.
    moved = given.model_copy(update={"plan_hash": "sha256:" + "0" * 64})
    for bad in (forged, other_key, moved):
        state = tally(p.model_copy(update={"hash": bad.plan_hash}) if bad is moved else p, [bad], NOW)
        assert not state.approved and "signature does not verify" in state.void[0][1]


def test_a_plan_changed_outside_opsmith_cannot_be_approved() -> None:
    # Content and hash rewritten together, as someone with the database but not the key would.
    p = plan()
    edited = p.model_copy(update={"requires_approval": False})
    edited = edited.model_copy(update={"hash": edited.content_hash()})
    with pytest.raises(ApprovalError, match="changed outside opsmith"):
        check_approve(edited, who("alice", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL)
    # A status set back (a finished plan made pending again) breaks the signature as well.
    revived = p.model_copy(update={"status": PlanStatus.SUCCEEDED})
    revived = seal_plan(revived, SEAL).model_copy(update={"status": PlanStatus.PENDING_APPROVAL})
    with pytest.raises(ApprovalError, match="changed outside opsmith"):
        check_approve(revived, who("alice", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL)


def test_an_amender_counts_as_a_requester_under_four_eyes() -> None:
    p = seal_plan(plan(Risk.CRITICAL, needed=2).model_copy(update={"amended_by": ["carol"]}), SEAL)
    with pytest.raises(ApprovalError, match="carol amended plan"):
        check_approve(p, who("carol", "approver"), DEFAULT_ROLES["approver"], [], NOW, SEAL)
    state = tally(p, [approval(p, "carol"), approval(p, "alice")], NOW)
    assert state.approvers == ["alice"] and "four-eyes" in state.void[0][1]


def test_expired_approvals_still_cover_a_run_that_goes_on() -> None:
    p = plan()
    late = NOW + timedelta(hours=30)
    assert not tally(p, [approval(p, "alice")], late).approved
    assert tally(p, [approval(p, "alice")], late, expired_count=True).approved


def test_as_is_only_for_admins_and_only_when_allowed() -> None:
    from opsmith.config import parse_config
    from opsmith.domain.errors import UsageError
    from opsmith.services.identity import resolve_identity

    config = parse_config(
        "rbac: {allow_as: true, users: {ada: admin, bob: deployer, alice: approver}}\n", source="t"
    )
    assert resolve_identity(config, "ada", "alice", {}).user == "alice"
    for os_user in ("bob", "stranger"):
        with pytest.raises(UsageError, match="--as is for admins"):
            resolve_identity(config, os_user, "alice", {})
    # A role an admin stored counts, for the account's own role as for the one acted as.
    assert resolve_identity(config, "bob", "alice", {"bob": "admin"}).role == "approver"
    closed = parse_config("rbac: {users: {ada: admin}}\n", source="t")
    with pytest.raises(UsageError, match="not allowed"):
        resolve_identity(closed, "ada", "ada", {})

"""The re-plan decisions: the plan changed by what the failure taught (pure), and the service's
choices over fakes: which deliveries are refused with nothing written, which are recorded, when a
push gets no plan and why; an accepted push recorded and settled when handled, and what a stopped
server left handled at the next start."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.approval_rule import ApprovalRule
from opsmith.domain.compliance import EvidenceRef, Requirement
from opsmith.domain.errors import NotFoundError, PlanError
from opsmith.domain.evidence import Condition
from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.push import (
    CauseMatch,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryReplayed,
    FileChanges,
    MalformedPayload,
    Push,
    PushCommit,
    RootCause,
    SignatureMismatch,
    UnwatchedRepository,
    Verdict,
    parse_push,
    scan_record,
    scan_reuse,
    signature_of,
)
from opsmith.domain.replan import Lessons, plan_difference, relearned
from opsmith.domain.risk import Risk
from opsmith.engine.state import RunState, RunStatus, StepState, StepStatus
from opsmith.services.replan import (
    ABANDONED_AFTER,
    HANDLING,
    _push_of,
    accept_github,
    delivery_status,
    handle_delivery,
    receive_github,
    recover_deliveries,
    replan_after_push,
)
from tests.fakes import FakeTools, FakeWebhookStore, FakeWorld, fake_app

BEFORE, AFTER = "a" * 40, "b" * 40
T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
SECRET = "unit-secret"
CAUSE = RootCause(
    run_id="run-1",
    plan_id="plan-1",
    explained=True,
    error_type="CrashLoopBackOff",
    root_cause="the image lacks config/production.json, which the start command requires",
    file="config/production.json",
    dockerfile="COPY config/ ./config/",
)
GATE = Condition(path="quality_gate.status", op="==", value="PASSED")


def step(step_id: str, *deps: str, capability: str | None = None, **extra: Any) -> Step:
    return Step(
        id=step_id, name=step_id, capability=capability or step_id, server="ci", tool=f"do_{step_id}",
        depends_on=list(deps), risk=extra.pop("risk", Risk.LOW), **extra,
    )  # fmt: skip


def production_plan(plan_id: str = "plan-1", status: PlanStatus = PlanStatus.ROLLED_BACK) -> Plan:
    steps = [
        step("build", args={"branch": "main", "parameters": {"environment": "production"}}),
        step("quality_scan", "build"),
        step("push_image", "quality_scan"),
        step("verify_image", "push_image", args={"image": "${steps.push_image.image}"}),
        step("deploy", "verify_image", risk=Risk.MEDIUM, changes_target=True),
    ]
    gate = Requirement(
        name="quality_gate_passed", description="gate", kind="evidence",
        evidence=EvidenceRef(step="quality_scan", conditions=[GATE]), guards=["deploy"],
    )  # fmt: skip
    request = "Deploy my-application to production"
    return Plan(
        id=plan_id, request=request, title="Deploy my-application to production",
        intent=Intent(
            request=request, action="deploy", subjects=["my-application"], environment="production"
        ),
        playbook="production_deployment", priority="HIGH", risk=Risk.MEDIUM, requires_approval=True,
        approval_reasons=["production requires approval"], approvals_needed=1, compliance=[gate],
        rollback_strategy="", failure_handling="", steps=steps, status=status, created_at=T0,
        estimated_duration=Estimate(minimum_seconds=1, maximum_seconds=2, text="", critical_path=[]),
    )  # fmt: skip


def push(*, added: tuple[str, ...] = ("config/production.json",), modified: tuple[str, ...] = ()) -> Push:
    commit = PushCommit(id=AFTER, message="fix", added=added, modified=modified)
    return Push(
        repository="org/my-application", ref="refs/heads/main", before=BEFORE, after=AFTER, commits=(commit,)
    )


SCAN_OUTPUT = {
    "analysis_id": 3,
    "commit_sha": BEFORE,
    "files_analyzed": ["src/app.js"],
    "scope": ["*.js", "package.json"],
    "quality_gate": {"status": "PASSED"},
}
ACCEPTS = {
    "build": frozenset({"branch", "commit", "parameters"}),
    "verify_image": frozenset({"image", "require_files", "fail_on_missing"}),
}


def lessons(
    the_push: Push, *, output: dict[str, Any] | None = None, verdict: Verdict = Verdict.ADDRESSED
) -> Lessons:
    scan = scan_record("quality_scan", "quality_scan", "run-1", "ci/do_quality_scan", output or SCAN_OUTPUT)
    return Lessons(
        failed_plan_id="plan-1",
        failed_run_id="run-1",
        push=the_push,
        cause=CAUSE,
        match=CauseMatch(verdict=verdict, reasons=("config/production.json added",)),
        scans=(scan_reuse(scan, the_push),),
        outputs={"quality_scan": output or SCAN_OUTPUT},
    )


# -- the plan, relearned ---------------------------------------------------------------------------


def test_the_replan_builds_the_pushed_commit_reuses_the_unchanged_scan_and_checks_the_image() -> None:
    old = production_plan()
    new = relearned(old, lessons(push()), accepts=ACCEPTS, rule=ApprovalRule())
    steps = {s.id: s for s in new.steps}
    assert steps["build"].args["commit"] == AFTER
    assert steps["build"].args["parameters"] == {
        "environment": "production",
        "incremental": True,
        "since": BEFORE,
    }
    assert "quality_scan" not in steps and steps["push_image"].depends_on == ["build"]
    assert steps["verify_image"].args["require_files"] == ["config/production.json"]
    assert steps["verify_image"].args["fail_on_missing"] is True
    (gate,) = new.compliance
    assert gate.kind == "plan" and gate.met is True and "quality gate PASSED; analysis 3" in gate.reason
    assert "run run-1, step quality_scan" in gate.reason
    assert new.skipped[-1].startswith("quality_scan: skipped")
    assert new.status is PlanStatus.PENDING_APPROVAL and new.approvals_needed == 1
    assert new.risk is Risk.MEDIUM and new.hash == new.content_hash() and new.hash != old.hash
    (rule,) = new.context_rules
    assert (
        rule.rule == "replan-after-push"
        and "risk re-assessed" in rule.reason
        and "stays MEDIUM" in rule.reason
    )
    assert new.parallel_groups == [["build"], ["push_image"], ["verify_image"], ["deploy"]]


def test_a_scan_whose_code_changed_runs_again_and_the_plan_says_why() -> None:
    new = relearned(
        production_plan(), lessons(push(added=("src/new.js",))), accepts=ACCEPTS, rule=ApprovalRule()
    )
    assert "quality_scan" in {s.id for s in new.steps}
    assert any("quality_scan runs again" in w and "src/new.js" in w for w in new.warnings)
    assert new.compliance[0].kind == "evidence"


def test_a_recorded_result_that_no_longer_meets_the_requirement_is_not_reused() -> None:
    failing = {**SCAN_OUTPUT, "quality_gate": {"status": "FAILED"}}
    new = relearned(production_plan(), lessons(push(), output=failing), accepts=ACCEPTS, rule=ApprovalRule())
    assert "quality_scan" in {s.id for s in new.steps}
    assert any("does not meet quality_gate_passed" in w for w in new.warnings)


def test_a_push_that_does_not_address_the_cause_raises_the_risk_and_the_approvals_follow() -> None:
    rule = ApprovalRule(environments=(), min_risk=Risk.HIGH)
    old = production_plan().model_copy(update={"approvals_needed": 0, "requires_approval": False})
    new = relearned(old, lessons(push(), verdict=Verdict.NOT_ADDRESSED), accepts=ACCEPTS, rule=rule)
    assert new.risk is Risk.HIGH and new.requires_approval and new.status is PlanStatus.PENDING_APPROVAL
    assert "risk HIGH >= HIGH" in new.approval_reasons
    assert "does not address" in new.context_rules[-1].reason


def test_tools_that_take_no_commit_or_files_are_left_as_they_are_and_said() -> None:
    new = relearned(production_plan(), lessons(push()), accepts={}, rule=ApprovalRule())
    steps = {s.id: s for s in new.steps}
    assert "commit" not in steps["build"].args and "require_files" not in steps["verify_image"].args
    assert any("takes no commit" in w for w in new.warnings)
    assert any("cannot require files" in w for w in new.warnings)


def test_the_difference_names_the_steps_removed_and_changed() -> None:
    old = production_plan()
    new = relearned(old, lessons(push()), accepts=ACCEPTS, rule=ApprovalRule())
    found = plan_difference(old, new)
    assert found.removed == ["quality_scan"] and found.added == []
    changed = {c.step: c for c in found.changed}
    assert changed["build"].changed == ["args"] and any("commit" in d for d in changed["build"].details)
    assert changed["push_image"].changed == ["depends_on"]
    assert "removed quality_scan" in found.summary and found.compliance
    assert plan_difference(old, old).summary == "the same steps"


# -- the service, over fakes -----------------------------------------------------------------------

CONFIG = """
applications:
  my-application: {}
analysis: {fetch: false}
rbac:
  users: {github-webhook: deployer, vic: viewer}
webhooks:
  github:
    secret: ${GITHUB_WEBHOOK_SECRET}
    repositories:
      org/my-application: {application: my-application, branches: [main]}
"""


def world() -> tuple[FakeWorld, FakeWebhookStore]:
    found = fake_app(CONFIG, FakeTools(specs=[]))
    store = FakeWebhookStore()
    found.app = replace(found.app, environ={"GITHUB_WEBHOOK_SECRET": SECRET}, webhooks=store)
    return found, store


def failed_run(w: FakeWorld, error: str) -> None:
    plan = production_plan()
    w.plans.save(plan)
    steps = {
        s.id: StepState(step_id=s.id, status=StepStatus.SUCCEEDED, completed_seq=n, output={})
        for n, s in enumerate(plan.steps)
    }
    steps["quality_scan"] = steps["quality_scan"].model_copy(update={"output": SCAN_OUTPUT})
    steps["deploy"] = StepState(step_id="deploy", status=StepStatus.FAILED, attempts=1, error=error)
    w.journal.runs["run-1"] = RunState(
        run_id="run-1",
        plan_id=plan.id,
        plan_hash=plan.hash,
        status=RunStatus.ROLLED_BACK,
        steps=steps,
        next_seq=len(steps),
    )


def body_of(the_push: Push, **over: Any) -> bytes:
    event = {
        "ref": the_push.ref, "before": the_push.before, "after": the_push.after,
        "repository": {"full_name": the_push.repository},
        "commits": [c.model_dump(mode="json") for c in the_push.commits], **over,
    }  # fmt: skip
    return json.dumps(event).encode()


def deliver(w: FakeWorld, body: bytes, *, delivery: str = "d-1", signature: str | None = None) -> Any:
    sign = signature_of(SECRET, body) if signature is None else signature
    return asyncio.run(receive_github(w.app, event="push", delivery=delivery, signature=sign, body=body))


CRASH = "rollout failed: CrashLoopBackOff: Error: Cannot find module './config/production.json'"


def test_a_bad_signature_a_bad_body_and_an_unwatched_repository_write_nothing() -> None:
    w, store = world()
    body = body_of(push())
    with pytest.raises(SignatureMismatch):
        deliver(w, body, signature=signature_of("wrong", body))
    with pytest.raises(MalformedPayload, match="not JSON"):
        deliver(w, b"{nope")
    with pytest.raises(UnwatchedRepository, match="org/other"):
        deliver(w, body_of(push(), repository={"full_name": "org/other"}))
    assert store.rows == {} and w.audit.entries() == []


def test_a_push_with_nothing_failed_before_it_is_recorded_and_a_replay_refused() -> None:
    w, store = world()
    answer = deliver(w, body_of(push()))
    assert answer.outcome is DeliveryOutcome.NO_FAILED_RUN and "did not fail" in answer.detail
    assert store.rows["d-1"].outcome is DeliveryOutcome.NO_FAILED_RUN
    with pytest.raises(DeliveryReplayed, match="accepted before"):
        deliver(w, body_of(push()))


def test_a_push_to_another_branch_is_recorded_as_ignored() -> None:
    w, store = world()
    answer = deliver(w, body_of(push(), ref="refs/heads/feature"))
    assert answer.outcome is DeliveryOutcome.IGNORED and "feature is not watched" in answer.detail
    assert store.rows["d-1"].outcome is DeliveryOutcome.IGNORED


def test_a_push_that_does_not_address_the_cause_is_recorded_and_makes_no_plan() -> None:
    w, store = world()
    failed_run(w, CRASH)
    answer = deliver(w, body_of(push(added=(), modified=("README.md",))))
    assert answer.outcome is DeliveryOutcome.NOT_ADDRESSED
    assert "does not address why run run-1 failed" in answer.detail and "README.md modified" in answer.detail
    assert list(w.plans.plans) == ["plan-1"], "no plan was made"
    assert store.rows["d-1"].outcome is DeliveryOutcome.NOT_ADDRESSED
    assert [e.action for e in w.audit.entries()] == ["webhook.push"]


def test_a_failure_while_acting_is_recorded_and_the_same_delivery_may_come_again() -> None:
    w, store = world()
    failed_run(w, CRASH)
    # The planner finds no tool for the plan's capabilities in an empty catalog: the act fails.
    with pytest.raises(PlanError, match="no tool for"):
        deliver(w, body_of(push()))
    assert store.rows["d-1"].outcome is DeliveryOutcome.FAILED and store.rows["d-1"].detail
    assert "webhook.failed" in [e.action for e in w.audit.entries()]
    with pytest.raises(PlanError):
        deliver(w, body_of(push()))  # claimed again, not refused as a replay


def test_an_unexplained_failure_gets_no_plan_by_default() -> None:
    w, _ = world()
    failed_run(w, "something nobody has a rule for")
    found = asyncio.run(
        replan_after_push(w.app, push(), application="my-application", environment="production")
    )
    assert found.outcome is DeliveryOutcome.NOT_ADDRESSED and "not explained" in found.detail


def test_file_changes_are_described_shortly() -> None:
    many = FileChanges(added=tuple(f"f{i}" for i in range(9)))
    assert many.describe().endswith("and 3 more")


def test_an_accepted_push_is_recorded_held_and_settled_only_when_handled() -> None:
    w, store = world()
    body = body_of(push())
    accepted = accept_github(
        w.app, event="push", delivery="d-9", signature=signature_of(SECRET, body), body=body
    )
    assert accepted.outcome is DeliveryOutcome.RECEIVED and accepted.as_json()["status"].endswith("/d-9")
    held = store.rows["d-9"]
    assert held.outcome is DeliveryOutcome.RECEIVED and held.detail.startswith(HANDLING)
    assert held.push is not None and held.push["commits"][0]["added"] == ["config/production.json"]
    assert w.audit.entries() == [] and store.unhandled() == [held]
    with pytest.raises(DeliveryReplayed):  # recorded is accepted: the same id is a replay already
        accept_github(w.app, event="push", delivery="d-9", signature=signature_of(SECRET, body), body=body)

    done = asyncio.run(handle_delivery(w.app, "d-9"))
    assert done.outcome is DeliveryOutcome.NO_FAILED_RUN
    assert store.rows["d-9"].outcome is DeliveryOutcome.NO_FAILED_RUN and store.unhandled() == []
    assert [e.action for e in w.audit.entries()] == ["webhook.push"]
    status = delivery_status(w.app, "d-9")
    assert (
        status["outcome"] == "no_failed_run" and "commits" not in status["push"] and status["replan"] is None
    )
    with pytest.raises(NotFoundError, match="no webhook delivery"):
        delivery_status(w.app, "nope")


def test_recovery_handles_what_a_gone_process_left_and_leaves_a_live_ones() -> None:
    w, store = world()
    host, now = socket.gethostname(), w.clock.now()
    held = {
        "gone": (f"{host}:999999999:dead", now),  # this host, no such process
        "live": (f"{host}:1:alive", now - timedelta(hours=1)),  # this host, a live process
        "old": ("", now),  # recorded by an opsmith that named no handler
        "away": ("elsewhere:4242:x", now - timedelta(minutes=1)),  # another host: perhaps alive
        "stale": ("elsewhere:4242:y", now - ABANDONED_AFTER - timedelta(seconds=1)),  # too long
    }
    for delivery, (holder, at) in held.items():
        record = DeliveryRecord(
            delivery_id=delivery,
            event="push",
            repository="org/my-application",
            received_at=at,
            detail=f"{HANDLING}{holder}" if holder else "",
            # As an opsmith that kept no commits recorded it: their net effect is enough.
            push={"ref": "refs/heads/main", "before": BEFORE, "after": AFTER, "added": ["x"]},
        )
        assert store.claim(record)
    done = asyncio.run(recover_deliveries(w.app))
    assert sorted(d.delivery_id or "" for d in done) == ["gone", "old", "stale"]
    assert {store.rows[d].outcome for d in ("live", "away")} == {DeliveryOutcome.RECEIVED}  # left to them
    assert {store.rows[d].outcome for d in ("gone", "old", "stale")} == {DeliveryOutcome.NO_FAILED_RUN}
    assert asyncio.run(recover_deliveries(w.app)) == []  # settled ones are not handled twice


def test_a_recorded_push_that_cannot_be_read_is_settled_failed() -> None:
    w, store = world()
    bad = DeliveryRecord(
        delivery_id="d-x", event="push", repository="org/my-application", received_at=T0, push={"ref": 1}
    )
    store.claim(bad)
    with pytest.raises(MalformedPayload, match="cannot be read"):
        asyncio.run(handle_delivery(w.app, "d-x"))
    assert store.rows["d-x"].outcome is DeliveryOutcome.FAILED


_PATHS = st.lists(
    st.sampled_from(["Dockerfile", "config/production.json", "src/app.js", "README.md"]), max_size=3
)


@settings(max_examples=60)
@given(
    commits=st.lists(
        st.builds(
            lambda n, message, added, modified, removed: {
                "id": f"{n:040x}",
                "message": message,
                "added": added,
                "modified": modified,
                "removed": removed,
            },
            st.integers(min_value=0, max_value=2**160 - 1),
            st.text(max_size=40),
            _PATHS,
            _PATHS,
            _PATHS,
        ),
        max_size=4,
    ),
    pusher=st.text(max_size=20),
)
def test_a_recorded_push_reads_back_as_the_push_that_came(commits: list[dict[str, Any]], pusher: str) -> None:
    w, store = world()
    event = {
        "ref": "refs/heads/main", "before": BEFORE, "after": AFTER, "commits": commits,
        "repository": {"full_name": "org/my-application"}, "pusher": {"name": pusher},
    }  # fmt: skip
    body = json.dumps(event).encode()
    accept_github(w.app, event="push", delivery="d-p", signature=signature_of(SECRET, body), body=body)
    again = _push_of(store.rows["d-p"])
    came = parse_push(body)
    assert again == came and again.changes == came.changes and again.head_message == came.head_message

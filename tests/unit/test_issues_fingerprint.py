"""The failure fingerprint and the issue texts, as pure values: a fingerprint stays the same across
runs of the same failure whatever changes from run to run (timestamps, pod name suffixes, run ids,
numbers), and differs when the failure does; an occurrence goes to the right issue; the markdown
cites its evidence and cannot be broken or made to mention people by a log line."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.issues import (
    Issue,
    IssueState,
    Placement,
    Recurrence,
    SyncState,
    UpdateKind,
    error_kind,
    fingerprint,
    occurrence_of,
    place,
    record,
    withdrawn,
)
from opsmith.domain.root_cause import Analysis, EvidenceLine, FailedStep
from opsmith.domain.root_cause_rules import Fix

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
K8S = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes draws pod name suffixes from

stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.isoformat(timespec="milliseconds") + "Z"
)
pods = st.tuples(st.text(K8S, min_size=8, max_size=10), st.text(K8S, min_size=5, max_size=5)).map(
    lambda parts: f"my-application-{parts[0]}-{parts[1]}"
)
runs = st.tuples(
    st.integers(1_600_000_000, 1_900_000_000), st.text("0123456789abcdef", min_size=6, max_size=6)
)
run_ids = runs.map(lambda parts: f"run_{parts[0]}_{parts[1]}")
noise = st.tuples(stamps, pods, run_ids, st.integers(0, 10**6), st.uuids())


def message(parts: tuple[str, str, str, int, object]) -> str:
    stamp, pod, run, number, uuid = parts
    return f"{stamp} pod {pod} of {run} crashed: exit code {number}, request {uuid}, back-off restarting"


@given(noise, noise)
@settings(max_examples=200, deadline=None)
def test_the_same_failure_has_the_same_fingerprint_whatever_its_noise(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    first, second = error_kind(message(a)), error_kind(message(b))
    assert first == second
    assert "my-application" in first and "crashed" in first
    assert fingerprint("shop", "production", "k8s/apply", f"error:{first}") == fingerprint(
        "Shop", " production", "k8s/apply", f"error:{second}"
    )


@given(noise)
@settings(max_examples=50, deadline=None)
def test_a_different_failure_has_a_different_fingerprint(parts: tuple) -> None:  # type: ignore[type-arg]
    crash = error_kind(message(parts))
    refused = error_kind(message(parts).replace("crashed", "connection refused"))
    assert crash != refused
    base = fingerprint("shop", "production", "k8s/apply", "rule:crash-loop").value
    others = {
        fingerprint("shop", "production", "k8s/apply", "rule:image-pull").value,
        fingerprint("cart", "production", "k8s/apply", "rule:crash-loop").value,
        fingerprint("shop", "staging", "k8s/apply", "rule:crash-loop").value,
        fingerprint("shop", "production", "jenkins/build", "rule:crash-loop").value,
        fingerprint("shop", "production", "k8s/apply", f"error:{crash}").value,
    }
    assert base not in others and len(others) == 5


@given(st.text(max_size=5000))
@settings(max_examples=300, deadline=None)
def test_any_error_text_gives_a_short_one_line_kind(text: str) -> None:
    found = error_kind(text)
    assert found and len(found) <= 120 and "\n" not in found
    assert error_kind(text) == found


def test_words_are_kept_and_only_generated_suffixes_go() -> None:
    # "error" and "fails" are words (vowels): Kubernetes never draws them for a suffix.
    assert error_kind("worker-error: build-fails") == "worker-error: build-fails"
    assert error_kind("web-7d9f8c6b5d-x2k4p: OOMKilled") == "web-<pod>: oomkilled"
    assert error_kind("") == "unknown" and error_kind(None) == "unknown"


def issue(state: IssueState) -> Issue:
    return Issue(
        id=7, fingerprint="fp_x", subject="shop", environment="production", tool="k8s/apply", cause="rule:x",
        title="t", body="b", labels=["opsmith"], state=state, occurrences=2, run_ids=["r1", "r2"],
        sync=SyncState.SYNCED, created_at=T0, updated_at=T0,
    )  # fmt: skip


def test_where_an_occurrence_goes() -> None:
    assert place(None, Recurrence.REOPEN) is Placement.NEW
    assert place(issue(IssueState.OPEN), Recurrence.NEW) is Placement.COMMENT
    assert place(issue(IssueState.CLOSED), Recurrence.REOPEN) is Placement.REOPEN
    assert place(issue(IssueState.CLOSED), Recurrence.NEW) is Placement.NEW


def analysis(*, explained: bool = True, evidence: list[EvidenceLine] | None = None) -> Analysis:
    line = EvidenceLine(
        text="Error: Cannot find module './config/production.json' @oncall ```", line=3, kind="log",
        step="check_logs", server="kubernetes", tool="get_pod_logs",
    )  # fmt: skip
    return Analysis(
        run_id="run-1", plan_id="plan-1", status="rolled_back",
        failed_step=FailedStep(id="deploy", title="Deploy", server="kubernetes", tool="apply_deployment",
                               error="rollout failed at 10:00:01"),
        explained=explained, error_type="CrashLoopBackOff" if explained else None,
        root_cause="The image lacks config/production.json (ping @team)",
        fix=Fix(summary="Add the file", file="config/production.json", dockerfile="COPY config/ ./config/"),
        confidence="high", evidence=evidence if evidence is not None else [line], findings=[], components=[],
        lines_read=3, artifacts_read=1, truncated=False,
    )  # fmt: skip


def test_the_body_cites_each_line_and_keeps_log_text_inert() -> None:
    found = occurrence_of(
        analysis(explained=False), subject="shop", environment="production", labels=["opsmith", "opsmith"],
        link="https://ops.example.com/runs/run-1", at=T0,
    )  # fmt: skip
    body = found.body
    assert "[run-1](https://ops.example.com/runs/run-1)" in body
    assert "### Root cause" in body and "### Fix" in body and "COPY config/ ./config/" in body
    assert "step check_logs, kubernetes/get_pod_logs, log line 3 (recorded)" in body
    # The line's own backticks cannot close its block early, and inside it a mention is inert;
    # outside code blocks nobody is mentioned either.
    assert "````text\nError: Cannot find module './config/production.json' @oncall ```\n````" in body
    assert "@team" not in body and "@\u2060team" in body
    assert found.labels == ["opsmith"]
    assert found.fingerprint.cause == "error:rollout failed at <time>"
    assert found.title == "shop failed in production: unexplained failure at step deploy"


def test_a_repeat_comments_and_a_closed_issue_reopens_or_gives_way() -> None:
    found = occurrence_of(analysis(), subject="shop", environment="production", labels=[], link=None, at=T0)
    first = record(None, found, Recurrence.REOPEN, SyncState.PENDING)
    assert first.kind is UpdateKind.OPEN and first.issue.id == 0 and first.issue.next_attempt_at == T0
    opened = first.issue.model_copy(update={"id": 1})
    again = found.model_copy(update={"run_id": "run-2"})
    repeat = record(opened, again, Recurrence.REOPEN, SyncState.PENDING)
    assert repeat.kind is UpdateKind.COMMENT and repeat.issue.occurrences == 2
    assert repeat.body.startswith("**The failure happened again** (occurrence 2)")
    closed = withdrawn(repeat.issue, ["run-2"], T0)
    assert closed.state is IssueState.CLOSED and closed.run_ids == ["run-1"] and closed.occurrences == 1
    reopened = record(closed, again, Recurrence.REOPEN, SyncState.PENDING)
    assert reopened.kind is UpdateKind.REOPEN and reopened.issue.state is IssueState.OPEN
    fresh = record(closed, again, Recurrence.NEW, SyncState.PENDING)
    assert fresh.kind is UpdateKind.OPEN and fresh.issue.id == 0 and fresh.issue.run_ids == ["run-2"]


def test_a_long_evidence_list_is_cut_to_a_size_github_takes() -> None:
    line = EvidenceLine(text="x" * 1900, line=1, kind="log")
    found = occurrence_of(
        analysis(evidence=[line] * 200), subject="s", environment=None, labels=[], link=None, at=T0
    )
    assert len(found.body) <= 60_000 and "more line(s)" in found.body

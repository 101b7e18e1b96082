"""The push domain: the signature, the payload read, the net file changes, the match with the root
cause and the reuse of a scan; each over plain values, the parsers over anything hypothesis makes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.push import (
    FileChanges,
    MalformedPayload,
    Push,
    PushCommit,
    RootCause,
    SignatureMismatch,
    Verdict,
    check_delivery_id,
    match_cause,
    net_changes,
    parse_push,
    scan_record,
    scan_reuse,
    signature_of,
    verify_signature,
)

BEFORE, AFTER = "a" * 40, "b" * 40
MISSING = RootCause(
    run_id="run-1",
    plan_id="plan-1",
    explained=True,
    error_type="CrashLoopBackOff",
    rule="missing-module-in-folder",
    root_cause="the image lacks config/production.json, which the start command requires",
    file="config/production.json",
    dockerfile="COPY config/ ./config/",
)


def push_of(*commits: PushCommit, before: str = BEFORE) -> Push:
    return Push(repository="org/app", ref="refs/heads/main", before=before, after=AFTER, commits=commits)


def commit(
    added: tuple[str, ...] = (), modified: tuple[str, ...] = (), removed: tuple[str, ...] = ()
) -> PushCommit:
    return PushCommit(id=AFTER, added=added, modified=modified, removed=removed)


# -- the signature ---------------------------------------------------------------------------------


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=500))
def test_the_signature_of_a_body_verifies_and_any_other_body_does_not(secret: str, body: bytes) -> None:
    verify_signature(secret, body, signature_of(secret, body))
    with pytest.raises(SignatureMismatch, match="does not match"):
        verify_signature(secret, body + b"x", signature_of(secret, body))
    with pytest.raises(SignatureMismatch, match="does not match"):
        verify_signature(secret + "x", body, signature_of(secret, body))


@given(header=st.one_of(st.none(), st.text(max_size=80)))
def test_a_header_that_is_not_sha256_and_64_hex_digits_is_refused_without_the_expected_digest(
    header: str | None,
) -> None:
    body = b'{"zen": "x"}'
    expected = signature_of("secret", body)
    if header == expected:
        return
    with pytest.raises(SignatureMismatch) as refused:
        verify_signature("secret", body, header)
    assert expected[7:] not in refused.value.message and "secret" not in refused.value.message.split(":")[0]


def test_an_uppercase_digest_of_the_right_body_verifies() -> None:
    body = b"{}"
    verify_signature("s", body, "sha256=" + signature_of("s", body)[7:].upper())


@given(st.one_of(st.none(), st.text(max_size=200)))
def test_a_delivery_id_is_checked_and_never_crashes(value: str | None) -> None:
    try:
        assert check_delivery_id(value) == value
    except MalformedPayload as refused:
        assert "X-GitHub-Delivery" in refused.message


# -- the payload -----------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_any_bytes_are_a_push_or_one_malformed_payload_error(body: bytes) -> None:
    try:
        parse_push(body)
    except MalformedPayload as refused:
        assert refused.hint


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {"ref": JSONISH, "before": JSONISH, "after": JSONISH, "repository": JSONISH, "commits": JSONISH}
    )
)
def test_any_json_object_is_a_push_or_names_the_field_that_is_wrong(event: dict[str, Any]) -> None:
    try:
        parse_push(json.dumps(event).encode())
    except MalformedPayload as refused:
        assert "is missing or not" in refused.message or "more than" in refused.message


def test_a_push_event_is_read_with_its_branch_commits_and_files() -> None:
    event = {
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "repository": {"full_name": "org/app"},
        "pusher": {"name": "dev"},
        "commits": [
            {"id": AFTER, "message": "fix: add config\n\nbody", "author": {"email": "dev@example.com"},
             "added": ["./config/production.json"], "modified": ["Dockerfile"], "removed": []},
        ],
    }  # fmt: skip
    push = parse_push(json.dumps(event).encode())
    assert push.branch == "main" and push.repository == "org/app" and push.pusher == "dev"
    assert push.head_message == "fix: add config" and push.commits[0].author == "dev@example.com"
    assert push.changes == FileChanges(added=("config/production.json",), modified=("Dockerfile",))
    assert not push.deletes_branch
    tag = push.model_copy(update={"ref": "refs/tags/v1"})
    assert tag.branch is None


PATHS = st.sampled_from(["a.js", "b.js", "config/x.json", "Dockerfile"])


@given(
    st.lists(
        st.tuples(st.lists(PATHS, max_size=2), st.lists(PATHS, max_size=2), st.lists(PATHS, max_size=2)),
        max_size=5,
    )
)
def test_net_changes_list_each_path_once_and_are_those_of_the_last_commit_for_one_commit(
    changes: list[tuple[list[str], list[str], list[str]]],
) -> None:
    commits = [commit(tuple(a), tuple(m), tuple(r)) for a, m, r in changes]
    net = net_changes(commits)
    listed = [*net.added, *net.modified, *net.removed]
    assert len(listed) == len(set(listed))
    touched = {p for a, m, r in changes for p in (*a, *m, *r)}
    assert set(listed) <= touched


def test_added_then_removed_is_nothing_and_removed_then_added_is_modified() -> None:
    assert net_changes([commit(added=("x",)), commit(removed=("x",))]) == FileChanges()
    assert net_changes([commit(removed=("x",)), commit(added=("x",))]) == FileChanges(modified=("x",))
    assert net_changes([commit(added=("x",)), commit(modified=("x",))]) == FileChanges(added=("x",))


# -- the root cause --------------------------------------------------------------------------------


def test_adding_the_missing_file_addresses_the_cause_and_a_changed_dockerfile_is_said() -> None:
    found = match_cause(MISSING, FileChanges(added=("config/production.json",), modified=("Dockerfile",)))
    assert found.verdict is Verdict.ADDRESSED
    assert found.matched == ("config/production.json", "Dockerfile")
    assert "config/production.json added" in found.reasons[0] and "COPY config/" in found.reasons[1]


def test_the_file_alone_addresses_it_and_says_the_image_check_decides_about_the_dockerfile() -> None:
    found = match_cause(MISSING, FileChanges(added=("config/production.json",)))
    assert found.verdict is Verdict.ADDRESSED and "image check" in found.reasons[1]


def test_only_the_dockerfile_plausibly_addresses_it() -> None:
    found = match_cause(MISSING, FileChanges(modified=("deploy/Dockerfile.prod",)))
    assert found.verdict is Verdict.ADDRESSED and found.matched == ("deploy/Dockerfile.prod",)


def test_an_unrelated_push_or_one_removing_the_file_does_not_address_it() -> None:
    unrelated = match_cause(MISSING, FileChanges(modified=("src/app.js", "README.md")))
    assert unrelated.verdict is Verdict.NOT_ADDRESSED
    assert "src/app.js modified" in unrelated.reasons[0] and "config/production.json" in unrelated.reasons[0]
    removed = match_cause(MISSING, FileChanges(removed=("config/production.json",), modified=("Dockerfile",)))
    assert removed.verdict is Verdict.NOT_ADDRESSED and "removes" in removed.reasons[0]


def test_a_cause_that_names_no_file_or_an_unexplained_failure_cannot_be_matched() -> None:
    gate = MISSING.model_copy(update={"file": None, "dockerfile": None, "error_type": "QualityGateFailed"})
    assert match_cause(gate, FileChanges(added=("x",))).verdict is Verdict.UNDETERMINED
    unknown = MISSING.model_copy(update={"explained": False})
    found = match_cause(unknown, FileChanges(added=("config/production.json",)))
    assert found.verdict is Verdict.UNDETERMINED and "not explained" in found.reasons[0]


# -- the scans -------------------------------------------------------------------------------------

QUALITY = {
    "analysis_id": 7,
    "commit_sha": BEFORE,
    "files_analyzed": ["src/app.js", "src/routes.js"],
    "scope": ["*.js", "package.json"],
    "quality_gate": {"status": "PASSED"},
}


def quality(**changes: Any) -> Any:
    return scan_record(
        "quality_scan", "quality_scan", "run-1", "sonarqube/analyze_project", {**QUALITY, **changes}
    )


def test_a_scan_of_the_commit_the_push_starts_from_is_reused_when_nothing_it_reads_changed() -> None:
    reuse = scan_reuse(
        quality(), push_of(commit(added=("config/production.json",), modified=("Dockerfile",)))
    )
    assert reuse.reusable and "2 file(s) at aaaaaaa" in reuse.reason
    assert reuse.scan.summary == "quality gate PASSED; analysis 7"
    assert reuse.scan.citation == "run run-1, step quality_scan (sonarqube/analyze_project), recorded output"


def test_a_scan_runs_again_when_the_push_changes_or_adds_what_it_reads() -> None:
    assert not scan_reuse(quality(), push_of(commit(modified=("src/app.js",)))).reusable
    added = scan_reuse(quality(), push_of(commit(added=("src/new.js",))))
    assert not added.reusable and "src/new.js" in added.reason
    assert not scan_reuse(quality(), push_of(commit(modified=("package.json",)))).reusable


def test_a_scan_of_another_commit_or_without_a_commit_or_files_is_not_reused() -> None:
    other = scan_reuse(quality(commit_sha="c" * 40), push_of(commit(added=("x.md",))))
    assert not other.reusable and "not known" in other.reason
    assert not scan_reuse(quality(commit_sha=None), push_of()).reusable
    blind = scan_reuse(quality(files_analyzed=None, scope=None), push_of(commit(modified=("x",))))
    assert not blind.reusable and "which files" in blind.reason


def test_without_a_scope_an_added_file_means_scanning_again() -> None:
    unscoped = quality(scope=None)
    assert scan_reuse(unscoped, push_of(commit(modified=("README.md",)))).reusable
    assert not scan_reuse(unscoped, push_of(commit(added=("README.md",)))).reusable

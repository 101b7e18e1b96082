"""Issues for failures over fakes: a failed production run opens one issue, a repeat comments on
it (once per run), a close on GitHub is found before the repeat is mirrored and then reopens the
issue or gives way to a new one, GitHub down keeps it pending with the reason and a later sync
mirrors it, a refusal is not retried until asked, and no secret reaches any text."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from opsmith.domain.errors import UsageError
from opsmith.domain.identity import Identity
from opsmith.domain.intent import Intent
from opsmith.domain.issues import IssueState, SyncState, TrackerRefused, TrackerUnavailable, UnknownIssueError
from opsmith.domain.plan import Plan
from opsmith.engine.state import RunState, RunStatus
from opsmith.services.access import AccessRefused
from opsmith.services.issues import (
    after_run,
    close_issue,
    get_issue,
    issue_for_run,
    list_issues,
    record_failure,
    sync_issues,
)
from tests.fakes import FakeIssueStore, FakeIssueTracker, FakeTools, FakeWorld, fake_app
from tests.unit.test_explain import CANARY, the_plan, the_run

GITHUB_TOKEN = "ghp_canaryTokenValue0123456789"
CRASH = "rollout failed: CrashLoopBackOff: Error: Cannot find module './config/production.json'"
CONFIG = """
mcpServers:
  kubernetes: {command: "unused-in-unit-tests", env: {API_TOKEN: "${K8S_TOKEN}"}}
rbac:
  users: {ada: admin, vic: viewer}
api: {public_url: "https://opsmith.example.com"}
issues:
  environments: [production]
  labels: [opsmith, incident]
  on_recurrence: RECURRENCE
  backoff_initial: 10
  backoff_max: 60
"""
GITHUB = """  github: {repo: acme/shop, token: "${GITHUB_TOKEN}", base_url: "http://127.0.0.1:9"}
"""
ADMIN = Identity(user="ada", role="admin", source="config")
VIEWER = Identity(user="vic", role="viewer", source="config")


def world(
    *, recurrence: str = "reopen", github: bool = True, failures: list[Exception | None] | None = None
) -> tuple[FakeWorld, FakeIssueStore, FakeIssueTracker]:
    text = CONFIG.replace("RECURRENCE", recurrence) + (GITHUB if github else "")
    found = fake_app(text, FakeTools(specs=[]))
    store, tracker = FakeIssueStore(), FakeIssueTracker(failures or [])
    environ = {"K8S_TOKEN": CANARY, "GITHUB_TOKEN": GITHUB_TOKEN}
    found.app = replace(found.app, issues=store, issue_tracker=tracker if github else None, environ=environ)
    return found, store, tracker


def production(plan: Plan) -> Plan:
    intent = Intent(request="deploy", action="deploy", environment="production", subjects=["my-application"])
    return plan.model_copy(update={"intent": intent})


def failed(run_id: str, error: str = CRASH) -> RunState:
    return the_run(error).model_copy(update={"run_id": run_id})


def settle(w: FakeWorld, run_id: str, error: str = CRASH) -> object:
    return after_run(w.app, production(the_plan()), failed(run_id, error))


def test_a_first_failure_opens_one_issue_on_github_with_labels_cause_fix_and_link() -> None:
    w, store, tracker = world()
    issue = settle(w, "run-1")
    assert issue is not None
    (call,) = tracker.calls
    assert call[0] == "open" and call[2] == ("opsmith", "incident")
    assert call[1].startswith("my-application failed in production: CrashLoopBackOff at step deploy")
    body = tracker.texts[1][0]
    assert "config/production.json" in body and "### Fix" in body and "### Evidence" in body
    assert "https://opsmith.example.com/runs/run-1" in body
    shown = store.get(1)
    assert shown.sync is SyncState.SYNCED and shown.external is not None and shown.external.number == 1
    assert shown.state is IssueState.OPEN and shown.run_ids == ["run-1"]
    assert issue_for_run(w.app, "run-1") == shown and issue_for_run(w.app, "run-9") is None


def test_a_repeat_comments_once_per_run_instead_of_opening_another() -> None:
    w, _store, tracker = world()
    settle(w, "run-1")
    settle(w, "run-2")
    settle(w, "run-2")  # settled twice (a resume): recorded and commented once
    assert [c[0] for c in tracker.calls] == ["open", "state", "comment"]
    comment = tracker.texts[1][1]
    assert "(occurrence 2)" in comment and "run-2" in comment and "production.json" in comment
    (issue,) = list_issues(w.app)
    assert issue.occurrences == 2 and issue.run_ids == ["run-1", "run-2"] and issue.sync is SyncState.SYNCED


def test_another_failure_opens_another_issue() -> None:
    w, _store, tracker = world()
    settle(w, "run-1")
    settle(w, "run-2", "connection refused to db:5432 after 30 s")
    assert [c[0] for c in tracker.calls] == ["open", "open"]
    assert len(list_issues(w.app, state=IssueState.OPEN)) == 2


def test_a_recurrence_after_a_close_on_github_reopens_the_issue() -> None:
    w, _store, tracker = world(recurrence="reopen")
    settle(w, "run-1")
    tracker.states[1] = IssueState.CLOSED  # someone closed it on GitHub
    settle(w, "run-2")
    assert [c[:2] for c in tracker.calls] == [
        ("open", tracker.calls[0][1]),
        ("state", 1),
        ("reopen", 1),
        ("comment", 1),
    ]
    assert tracker.states[1] is IssueState.OPEN and "Reopened" in tracker.texts[1][1]
    (issue,) = list_issues(w.app)
    assert issue.state is IssueState.OPEN and issue.occurrences == 2 and issue.sync is SyncState.SYNCED


def test_a_recurrence_after_a_close_on_github_opens_a_new_issue_when_set_so() -> None:
    w, store, tracker = world(recurrence="new")
    settle(w, "run-1")
    tracker.states[1] = IssueState.CLOSED
    settle(w, "run-2")
    assert [c[0] for c in tracker.calls] == ["open", "state", "open"]
    old, new = store.get(1), store.get(2)
    assert old.state is IssueState.CLOSED and old.run_ids == ["run-1"]
    assert new.state is IssueState.OPEN and new.run_ids == ["run-2"] and new.external is not None
    assert new.external.number == 2 and new.fingerprint == old.fingerprint
    assert issue_for_run(w.app, "run-2") == new


def test_github_down_keeps_it_pending_with_the_reason_and_a_later_sync_mirrors_it() -> None:
    down = TrackerUnavailable("cannot open an issue: GitHub could not be reached (ConnectError)")
    w, store, tracker = world(failures=[down])
    settle(w, "run-1")
    pending = store.get(1)
    assert pending.sync is SyncState.PENDING and "could not be reached" in (pending.last_error or "")
    assert pending.next_attempt_at is not None and pending.next_attempt_at > w.clock.now()
    assert asyncio.run(sync_issues(w.app)) == []  # not due yet: no retry straight back
    w.clock.advance(61)
    (done,) = asyncio.run(sync_issues(w.app))
    assert done.sync is SyncState.SYNCED and done.last_error is None and done.external is not None
    assert [c[0] for c in tracker.calls] == ["open", "open"]


def test_a_repeat_while_github_is_down_is_mirrored_in_order_afterwards() -> None:
    down = TrackerUnavailable("GitHub answered 502")
    w, store, tracker = world(failures=[None, down])
    settle(w, "run-1")
    settle(w, "run-2")  # the state read fails
    assert store.get(1).sync is SyncState.PENDING
    w.clock.advance(61)
    asyncio.run(sync_issues(w.app))
    assert [c[0] for c in tracker.calls] == ["open", "state", "state", "comment"]
    assert store.get(1).sync is SyncState.SYNCED


def test_a_refusal_is_failed_with_its_reason_and_retried_only_when_asked() -> None:
    refused = TrackerRefused("cannot open an issue: GitHub answered 401 (Bad credentials)", status=401)
    w, store, tracker = world(failures=[refused])
    settle(w, "run-1")
    issue = store.get(1)
    assert issue.sync is SyncState.FAILED and issue.next_attempt_at is None
    assert "401" in (issue.last_error or "")
    w.clock.advance(10_000)
    assert asyncio.run(sync_issues(w.app)) == []
    (done,) = asyncio.run(sync_issues(w.app, include_failed=True))
    assert done.sync is SyncState.SYNCED and len(tracker.calls) == 2


def test_no_secret_reaches_github_or_the_tracker() -> None:
    w, _store, tracker = world()
    settle(w, "run-1", f"{CRASH}; login with {CANARY} and {GITHUB_TOKEN} refused")
    settle(w, "run-2", f"{CRASH}; login with {CANARY} and {GITHUB_TOKEN} refused")
    texts = json.dumps([tracker.calls, tracker.texts]) + get_issue(w.app, 1).model_dump_json()
    assert CANARY not in texts and GITHUB_TOKEN not in texts
    assert "***" in texts


def test_only_failures_in_the_configured_environments_file_issues() -> None:
    w, _store, tracker = world()
    staging = the_plan().model_copy(
        update={"intent": Intent(request="deploy", action="deploy", environment="staging")}
    )
    assert record_failure(w.app, staging, failed("run-1")) is None
    ok = failed("run-2").model_copy(update={"status": RunStatus.SUCCEEDED})
    assert record_failure(w.app, production(the_plan()), ok) is None
    assert tracker.calls == [] and list_issues(w.app) == []


def test_without_github_the_built_in_tracker_keeps_it_and_a_local_close_counts() -> None:
    w, store, _tracker = world(recurrence="new", github=False)
    settle(w, "run-1")
    assert store.get(1).sync is SyncState.LOCAL
    with pytest.raises(AccessRefused):
        close_issue(w.app, VIEWER, 1)
    closed = close_issue(w.app, ADMIN, 1)
    assert closed.state is IssueState.CLOSED and w.audit.chain[-1].action == "issue.closed"
    settle(w, "run-2")
    assert store.get(2).run_ids == ["run-2"] and store.get(1).state is IssueState.CLOSED
    assert asyncio.run(sync_issues(w.app)) == []
    with pytest.raises(UnknownIssueError):
        get_issue(w.app, 99)


def test_an_issue_on_github_is_closed_there_not_here() -> None:
    w, _store, _tracker = world()
    settle(w, "run-1")
    with pytest.raises(UsageError, match="close it there"):
        close_issue(w.app, ADMIN, 1)


def test_a_mirror_begun_inside_a_running_loop_is_awaited_by_drain() -> None:
    from opsmith.services.issues import drain

    w, store, tracker = world()

    async def inside() -> None:
        settle(w, "run-1")
        assert store.get(1).sync is SyncState.PENDING  # recorded first, mirrored after
        await drain(timeout=5)

    asyncio.run(inside())
    assert store.get(1).sync is SyncState.SYNCED and [c[0] for c in tracker.calls] == ["open"]
    assert w.clock.now() - store.get(1).created_at < timedelta(seconds=1)


def test_the_api_lists_a_page_and_shows_one_issue_to_any_caller() -> None:
    from starlette.testclient import TestClient

    from opsmith.api.app import create_api
    from opsmith.services.hosting import Host
    from opsmith.services.tokens import create_token
    from tests.fakes import FakeServerHost

    w, _store, _tracker = world()
    settle(w, "run-1")
    settle(w, "run-2", "connection refused to db:5432")
    _, token = create_token(w.app, ADMIN, "vic", "viewer", via="test")
    host = Host(app=w.app, servers=FakeServerHost(w.tools), owner=ADMIN)
    with TestClient(create_api(host, duties=False)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/issues?state=open&limit=1", headers=headers)
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert len(page["items"]) == 1 and page["next_offset"] == 1 and "body" not in page["items"][0]
        rest = client.get("/api/v1/issues?offset=1&limit=1", headers=headers).json()
        assert {page["items"][0]["id"], rest["items"][0]["id"]} == {1, 2}
        shown = client.get("/api/v1/issues/1", headers=headers)
        assert shown.status_code == 200 and shown.json()["updates"][0]["kind"] == "open"
        assert "production.json" in shown.json()["body"]
        assert client.get("/api/v1/issues/7", headers=headers).status_code == 404
        assert client.get(f"/api/v1/issues/{2**64}", headers=headers).status_code in (400, 422)
        assert client.get("/api/v1/issues?state=shut", headers=headers).status_code in (400, 422)
        assert client.get("/api/v1/issues").status_code == 401

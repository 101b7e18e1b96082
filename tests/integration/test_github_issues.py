"""Issues for failures through the real built-in tracker (SQLite) and the real GitHub adapter, against
a small GitHub stand-in on loopback that implements only the four endpoints used and records every
request. The exact requests are checked (method, path, headers with the token, JSON body, labels,
redaction); a repeat comments; a close on GitHub then a recurrence reopens or opens anew, per
`on_recurrence`; GitHub refusing connections and then answering 500 keeps the issue pending with the
reason until it comes back; a 401 marks it failed with a clear reason and is not retried."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsmith.bootstrap import App, bootstrap
from opsmith.cli.app import app as cli_app
from opsmith.domain.intent import Intent
from opsmith.domain.issues import IssueState, SyncState, UnknownIssueError
from opsmith.services.incidents import after_settle
from opsmith.services.issues import issue_for_run, sync_issues
from opsmith.tools.issues.github import API_VERSION
from tests.conftest import OS_USER
from tests.fakes import FakeClock
from tests.unit.test_explain import CANARY, the_plan, the_run

pytestmark = pytest.mark.integration

TOKEN = "ghp_standInToken_5b8e1c0d9a"
CRASH = "rollout failed: CrashLoopBackOff: Error: Cannot find module './config/production.json'"
REPO = "/repos/acme/shop"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GithubStandIn:
    """Issues of one repository, in memory; `answers` are statuses to give the next requests."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    answers: list[int] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_PATCH(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                stand_in.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                status, answer = stand_in.handle(self.command, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.answers:
            status = self.answers.pop(0)
            said = {401: "Bad credentials", 500: "Server Error"}.get(status, "no")
            return status, {"message": said, "documentation_url": "https://docs.github.com/rest"}
        parts = path.removeprefix(REPO).strip("/").split("/")
        if method == "POST" and parts == ["issues"]:
            number = len(self.issues) + 1
            self.issues[number] = {"number": number, "state": "open", **body, "comments": []}
            return 201, {"number": number, "html_url": f"https://github.test/acme/shop/issues/{number}"}
        number = int(parts[1])
        issue = self.issues[number]
        if method == "POST" and parts[2:] == ["comments"]:
            issue["comments"].append(body["body"])
            return 201, {"id": len(issue["comments"])}
        if method == "PATCH":
            issue["state"] = body["state"]
        return 200, {"number": number, "state": issue["state"]}

    def requests(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def github() -> Iterator[GithubStandIn]:
    stand_in = GithubStandIn(free_port())
    stand_in.start()
    yield stand_in
    stand_in.stop()


def write_project(tmp_path: Path, github: GithubStandIn, recurrence: str = "reopen") -> Path:
    (tmp_path / "opsmith.yaml").write_text(
        f"""
state_dir: {tmp_path / ".opsmith"}
mcpServers:
  kubernetes: {{command: "unused-here", env: {{API_TOKEN: "${{K8S_TOKEN}}"}}}}
rbac:
  allow_as: true
  users: {{{OS_USER}: admin, vic: viewer}}
api: {{public_url: "https://opsmith.example.com"}}
issues:
  environments: [production]
  labels: [opsmith, incident]
  on_recurrence: {recurrence}
  backoff_initial: 30
  backoff_max: 600
  github: {{repo: acme/shop, token: "${{GITHUB_TOKEN}}", base_url: "{github.url}", timeout: 3}}
"""
    )
    return tmp_path


ENVIRON = {"GITHUB_TOKEN": TOKEN, "K8S_TOKEN": CANARY}


def open_app(project: Path, clock: FakeClock | None = None) -> App:
    app = bootstrap(project / "opsmith.yaml", ENVIRON)
    return app if clock is None else replace(app, clock=clock)


def settle(app: App, run_id: str, error: str = CRASH) -> None:
    intent = Intent(request="deploy", action="deploy", environment="production", subjects=["my-application"])
    plan = the_plan().model_copy(update={"intent": intent})
    after_settle(app, plan, the_run(error).model_copy(update={"run_id": run_id}))


def test_the_exact_requests_open_then_comment_with_the_token_labels_and_no_secret(
    tmp_path: Path, github: GithubStandIn
) -> None:
    app = open_app(write_project(tmp_path, github))
    settle(app, "run-1", f"{CRASH} (login {CANARY} refused)")
    opened = github.seen[0]
    assert (opened.method, opened.path) == ("POST", f"{REPO}/issues")
    assert opened.headers["Authorization"] == f"Bearer {TOKEN}"
    assert opened.headers["Accept"] == "application/vnd.github+json"
    assert opened.headers["X-GitHub-Api-Version"] == API_VERSION == "2022-11-28"
    assert opened.headers["Content-Type"] == "application/json"
    assert sorted(opened.body) == ["body", "labels", "title"] and opened.body["labels"] == [
        "opsmith",
        "incident",
    ]
    assert opened.body["title"] == "my-application failed in production: CrashLoopBackOff at step deploy"
    text = opened.body["body"]
    assert "config/production.json" in text and "https://opsmith.example.com/runs/run-1" in text
    assert CANARY not in text and TOKEN not in text and "***" in text

    settle(app, "run-2")
    settle(app, "run-2")  # settled again: nothing more is sent
    assert github.requests() == [
        ("POST", f"{REPO}/issues"),
        ("GET", f"{REPO}/issues/1"),
        ("POST", f"{REPO}/issues/1/comments"),
    ]
    comment = github.seen[2].body
    assert list(comment) == ["body"] and "(occurrence 2)" in comment["body"] and "run-2" in comment["body"]
    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in github.seen)
    issue = issue_for_run(app, "run-2")
    assert issue is not None and issue.external is not None
    assert (issue.id, issue.occurrences, issue.sync, issue.external.number) == (1, 2, SyncState.SYNCED, 1)
    assert issue.external.url == "https://github.test/acme/shop/issues/1"


@pytest.mark.parametrize("recurrence", ["reopen", "new"])
def test_a_recurrence_after_a_close_on_github(tmp_path: Path, github: GithubStandIn, recurrence: str) -> None:
    app = open_app(write_project(tmp_path, github, recurrence))
    settle(app, "run-1")
    github.issues[1]["state"] = "closed"  # closed by a person, on GitHub
    settle(app, "run-2")
    after_open = github.requests()[1:]
    if recurrence == "reopen":
        assert after_open == [
            ("GET", f"{REPO}/issues/1"),
            ("PATCH", f"{REPO}/issues/1"),
            ("POST", f"{REPO}/issues/1/comments"),
        ]
        assert github.seen[2].body == {"state": "open"} and github.issues[1]["state"] == "open"
        assert "Reopened" in github.issues[1]["comments"][0]
        issue = issue_for_run(app, "run-2")
        assert issue is not None and (issue.id, issue.state, issue.occurrences) == (1, IssueState.OPEN, 2)
    else:
        assert after_open == [("GET", f"{REPO}/issues/1"), ("POST", f"{REPO}/issues")]
        assert github.issues[1]["state"] == "closed" and len(github.issues) == 2
        issue = issue_for_run(app, "run-2")
        assert issue is not None and issue.external is not None
        assert (issue.id, issue.external.number, issue.run_ids) == (2, 2, ["run-2"])
        assert app.issues is not None and app.issues.get(1).state is IssueState.CLOSED


def test_github_down_then_failing_keeps_it_pending_with_the_reason_until_it_comes_back(
    tmp_path: Path,
) -> None:
    github = GithubStandIn(free_port())  # not started: connections are refused
    clock = FakeClock()
    app = open_app(write_project(tmp_path, github), clock)
    settle(app, "run-1")
    issue = issue_for_run(app, "run-1")
    assert issue is not None and issue.sync is SyncState.PENDING and issue.external is None
    assert "could not be reached" in (issue.last_error or "") and issue.next_attempt_at is not None
    assert issue.next_attempt_at > clock.now()
    github.answers = [500]
    github.start()
    try:
        assert asyncio.run(sync_issues(app)) == []  # not due yet
        clock.advance(601)
        (again,) = asyncio.run(sync_issues(app))
        assert again.sync is SyncState.PENDING and "answered 500 (Server Error)" in (again.last_error or "")
        assert again.sync_attempts == 2
        clock.advance(601)
        (done,) = asyncio.run(sync_issues(app))
        assert done.sync is SyncState.SYNCED and done.last_error is None and done.external is not None
        assert github.requests() == [("POST", f"{REPO}/issues")] * 2 and len(github.issues) == 1
        # The same, as the CLI shows it.
        runner, config = CliRunner(), ["--config", str(tmp_path / "opsmith.yaml")]
        listed = runner.invoke(cli_app, [*config, "tracker", "list", "--json"], env=ENVIRON)
        assert listed.exit_code == 0, listed.output
        ((row,),) = [json.loads(listed.stdout)]
        assert (row["id"], row["state"], row["sync"], row["external"]["number"]) == (1, "open", "synced", 1)
        shown = runner.invoke(cli_app, [*config, "tracker", "show", "1", "--json"], env=ENVIRON)
        assert shown.exit_code == 0 and "production.json" in json.loads(shown.stdout)["body"]
        missing = runner.invoke(cli_app, [*config, "tracker", "show", "9"], env=ENVIRON)
        assert isinstance(missing.exception, UnknownIssueError)  # exit 2 through `main`
    finally:
        github.stop()


def test_a_401_fails_it_with_a_clear_reason_and_it_is_not_retried(
    tmp_path: Path, github: GithubStandIn
) -> None:
    clock = FakeClock()
    app = open_app(write_project(tmp_path, github), clock)
    github.answers = [401]
    settle(app, "run-1")
    issue = issue_for_run(app, "run-1")
    assert issue is not None and issue.sync is SyncState.FAILED and issue.next_attempt_at is None
    reason = issue.last_error or ""
    assert "answered 401 (Bad credentials)" in reason and "GITHUB_TOKEN" in reason and TOKEN not in reason
    clock.advance(7 * 24 * 3600)
    assert asyncio.run(sync_issues(app)) == [] and len(github.seen) == 1
    runner, config = CliRunner(), ["--config", str(tmp_path / "opsmith.yaml")]
    synced = runner.invoke(cli_app, [*config, "tracker", "sync", "--failed", "--json"], env=ENVIRON)
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)[0]["sync"] == "synced" and len(github.seen) == 2

"""The web console of a real `opsmith serve` over the sandbox MCP servers, in Debian's Chromium.

People log in with their tokens, plan from the request box, approve from the plan page, run, and
watch the run monitor follow the run live. Every page must load and work without one browser
console error: a test that expects a refused call (a 409 it provokes) names that one status.

The sandbox's `scale_deployment` is held until a file exists, so a test decides when the scale
step ends and sees the monitor's "Step N of M" move, without sleeping or racing a timer.

The tests share one sandbox world and run in order: the failing deploy comes before the one that
commits my-application's fix.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunStatus, new_run, with_run_status
from opsmith.store.runs import new_owner
from tests.conftest import PYTHON, stores_of
from tests.integration.test_approval_cli import CONFIG
from tests.served import Served, issue_tokens, serving

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000  # the longest any one browser wait may take
SCALE = "Scale my-application in production to 3 replicas"
DEPLOY = "Deploy the code to Kubernetes production"

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file does not exist, every scale_deployment call waits."""
    return tmp_path_factory.mktemp("gate") / "scale-may-finish"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path, gate: Path) -> Path:
    root = tmp_path_factory.mktemp("console")
    state = root / "state"
    shutil.copytree(seeded_template, state)
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        hold = f", --hold, 'scale_deployment={gate}'" if name == "kubernetes" else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state}',"
            f" --latency-ms, '0'{hold}]}}"
        )
    servers = "\n".join(lines)
    (root / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{servers}\n")
    return root


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with serving(project, need_token=True) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    people = {"alice": "approver", "carol": "approver", "bob": "deployer", "vic": "viewer"}
    return issue_tokens(served, people, "browser")


@dataclass
class Console:
    """One person's browser: its own context (cookies), one page, and what its console said."""

    context: BrowserContext
    page: Page
    url: str
    errors: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)

    def go(self, path: str) -> Page:
        self.page.goto(self.url + path)
        return self.page

    def unexpected(self) -> list[str]:
        refused = {f"status of {status} " for status in self.allowed}
        return [e for e in self.errors if not any(r in e for r in refused)]


@contextmanager
def console(browser: Browser, served: Served, token: str | None) -> Iterator[Console]:
    """A logged-in console (through the login form); fails if the page logged any error."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    person = Console(context, page, served.url)
    page.on("console", lambda m: person.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: person.errors.append(f"uncaught: {e}"))
    try:
        if token is not None:
            log_in(person, token)
        yield person
    finally:
        context.close()
    assert not person.unexpected(), person.errors


def log_in(person: Console, token: str) -> None:
    page = person.go("/")
    expect(page).to_have_url(person.url + "/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(person.url + "/")


def api(served: Served, token: str, method: str, path: str, **body: Any) -> httpx.Response:
    with served.client(token) as client:
        return client.request(method, path, json=body if method != "GET" else None)


def made_plan(served: Served, token: str, request: str, **values: Any) -> dict[str, Any]:
    answer = api(served, token, "POST", "/api/v1/plans", request=request, set=values)
    assert answer.status_code == 201, answer.text
    plan: dict[str, Any] = answer.json()
    return plan


def shown_seqs(page: Page) -> list[int]:
    found = page.locator("#log li").evaluate_all("(lines) => lines.map((line) => Number(line.dataset.seq))")
    return [int(seq) for seq in found]


def shot(page: Page, into: Path, name: str) -> None:
    """A screenshot into `into` (the `shots` fixture: docs/screenshots only when asked)."""
    page.screenshot(path=str(into / name))


# -- the scenarios --------------------------------------------------------------------------------


def test_login_refuses_a_wrong_token_without_echoing_it(browser: Browser, served: Served) -> None:
    with console(browser, served, None) as stranger:
        stranger.allowed = {401}
        page = stranger.go("/login")
        secret = "not-a-real-secret-" + "x" * 25
        typed = f"osm_{'0' * 12}_{secret}"
        page.get_by_label("Token").fill(typed)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("unknown")
        assert secret not in page.content()
        assert stranger.context.cookies() == []
        # Pages and the API alike refuse a browser that is not logged in.
        stranger.go("/runs")
        expect(page).to_have_url(served.url + "/login?next=/runs")


def test_a_request_is_planned_approved_by_another_person_run_and_followed_to_success(
    browser: Browser, served: Served, tokens: dict[str, str], gate: Path, shots: Path
) -> None:
    with console(browser, served, tokens["bob"]) as bob, console(browser, served, tokens["alice"]) as alice:
        page = bob.page
        page.get_by_label("Request").fill(SCALE)
        page.get_by_role("button", name="Send").click()
        expect(page).to_have_url(re.compile(re.escape(served.url) + r"/plans/plan_\w+$"))
        plan_path = page.url.removeprefix(served.url)
        plan = api(served, tokens["bob"], "GET", "/api/v1" + plan_path).json()
        assert plan["request"] == SCALE and plan["status"] == "pending_approval"
        nodes = page.locator("svg.dag g.node")
        expect(nodes).to_have_count(len(plan["steps"]))
        expect(page.locator("svg.dag path.edge")).to_have_count(
            sum(len(s["depends_on"]) for s in plan["steps"])
        )
        for step in plan["steps"]:
            node = page.locator(f'svg.dag g.node[data-step="{step["id"]}"]')
            expect(node.locator(".pill")).to_have_class(re.compile(f"risk-{step['risk'].lower()}"))
        expect(page.locator("#approval-state")).to_contain_text("0 of 1 approval")
        # The requester may cancel their plan, but neither approve it nor run it unapproved.
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.get_by_role("button", name="Run")).to_have_count(0)
        expect(page.get_by_role("button", name="Cancel plan")).to_be_visible()

        approver = alice.go(plan_path)
        expect(approver.locator("#approval-state")).to_contain_text("0 of 1 approval")
        approver.get_by_role("button", name="Approve").click()
        expect(approver.locator("#approval-state")).to_contain_text("1 of 1 approval")
        expect(approver.locator(".heading .status")).to_have_text("approved")
        expect(approver.get_by_role("button", name="Approve")).to_have_count(0)

        page.reload()
        expect(page.get_by_role("button", name="Run")).to_be_visible()
        shot(page, shots, "plan.png")
        page.get_by_role("button", name="Run").click()
        expect(page).to_have_url(re.compile(re.escape(served.url) + r"/runs/run_\w+$"))
        step_text = page.locator("#step-text")
        # Held in its third step (scale_deployment waits for the gate file): the monitor says so.
        expect(step_text).to_have_text(f"Step 3 of {len(plan['steps'])}")
        expect(page.locator('#steps tr[data-step="scale"] .st')).to_have_text("running")
        expect(page.locator("#eta")).to_contain_text("about")
        expect(page.locator("#log")).to_contain_text("step.started")
        shot(page, shots, "run-monitor.png")
        gate.touch()
        expect(step_text).to_have_text(f"Step {len(plan['steps'])} of {len(plan['steps'])}")
        expect(page.locator("#run-status")).to_have_text("succeeded")
        expect(page.locator("#live-state")).to_have_text("finished")
        expect(page.locator("#log li.ev-run-finished")).to_have_count(1)
        for step in plan["steps"]:
            expect(page.locator(f'#steps tr[data-step="{step["id"]}"] .st')).to_have_text("succeeded")
        seqs = [
            int(s) for s in page.locator("#log li").evaluate_all("(lines) => lines.map(l => l.dataset.seq)")
        ]
        assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"


def test_a_viewer_may_not_plan_is_offered_no_approval_and_the_api_refuses_theirs(
    browser: Browser, served: Served, tokens: dict[str, str]
) -> None:
    plan = made_plan(served, tokens["bob"], SCALE, replicas=2)
    with console(browser, served, tokens["vic"]) as vic:
        vic.allowed = {403}  # the plan the viewer asks for, refused by the API
        page = vic.page
        page.get_by_label("Request").fill(SCALE)
        page.get_by_role("button", name="Send").click()
        refusal = page.locator("#request-problem")
        expect(refusal.locator(".detail")).to_contain_text("vic (viewer) may not plan")
        expect(refusal.locator(".hint")).not_to_be_empty()
        expect(page).to_have_url(served.url + "/")
        page = vic.go(f"/plans/{plan['id']}")
        expect(page.locator("svg.dag g.node")).to_have_count(len(plan["steps"]))
        expect(page.locator("#approval-state")).to_contain_text("0 of 1 approval")
        expect(page.locator("button[data-action]")).to_have_count(0)
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(served.url + "/login")
        assert vic.context.cookies() == [], "both cookies cleared"
    refused = api(served, tokens["vic"], "POST", f"/api/v1/plans/{plan['id']}/approve", hash=plan["hash"])
    assert refused.status_code == 403, refused.text
    assert "vic (viewer) may not approve" in refused.json()["detail"]


def test_a_failing_deploy_shows_its_rollback_and_its_root_cause_in_the_monitor(
    browser: Browser, served: Served, tokens: dict[str, str]
) -> None:
    # The sandbox's crash-loop story: my-application's head needs config/production.json, which
    # its image lacks, so the production rollout crash-loops and is rolled back.
    plan = made_plan(served, tokens["bob"], DEPLOY)
    approved = api(served, tokens["alice"], "POST", f"/api/v1/plans/{plan['id']}/approve", hash=plan["hash"])
    assert approved.status_code == 200, approved.text
    with console(browser, served, tokens["bob"]) as bob:
        page = bob.go(f"/plans/{plan['id']}")
        page.get_by_role("button", name="Run").click()
        expect(page).to_have_url(re.compile(re.escape(served.url) + r"/runs/run_\w+$"))
        expect(page.locator("#run-status")).to_have_text("rolled back")
        rollback = page.locator("#rollback")
        expect(rollback).to_be_visible()
        expect(rollback.locator('li[data-undo="deploy"]')).to_contain_text("kubernetes/rollback_deployment")
        expect(rollback.locator('li[data-undo="deploy"] .status')).to_have_text("done")
        expect(page.locator('#steps tr[data-step="deploy"] .st')).to_have_text("failed")
        expect(page.locator('#steps tr[data-step="deploy"] .undo')).to_have_text("done")
        expect(page.locator('#steps tr[data-step="verify_pods"] .st')).to_have_text("pending")
        expect(page.locator("#failure")).to_contain_text("CrashLoopBackOff")
        expect(page.locator("#log")).to_contain_text("rollback.finished")
        expect(page.locator("#live-state")).to_have_text("finished")
        # Failed while followed: the monitor fetches its explanation (what the run recorded).
        expect(page.locator("#analysis-file")).to_have_text("config/production.json")
    run_id = page.url.rsplit("/", 1)[-1]
    report = api(served, tokens["bob"], "GET", f"/api/v1/runs/{run_id}").json()
    assert report["status"] == "rolled_back"
    explained_from_the_keyboard(browser, served, tokens, run_id)


def explained_from_the_keyboard(
    browser: Browser, served: Served, tokens: dict[str, str], run_id: str
) -> None:
    """A viewer opens the failed run's monitor: it explains the failure, and reads the logs again."""
    with console(browser, served, tokens["vic"]) as vic:
        page = vic.go(f"/runs/{run_id}")
        analysis = page.locator("#analysis")
        expect(analysis.locator("#analysis-error-type")).to_have_text("CrashLoopBackOff")
        expect(analysis.locator("#analysis-cause")).to_contain_text("lacks config/production.json")
        expect(analysis.locator("#analysis-dockerfile")).to_have_text("COPY config/ ./config/")
        expect(analysis.locator("#analysis-confidence")).to_contain_text("high")
        cited = analysis.locator("#analysis-evidence tbody tr").first
        expect(cited).to_contain_text("kubernetes/")
        expect(cited).to_contain_text("(recorded)")
        expect(cited).to_contain_text("Cannot find module")
        # From the explanation's heading, the next stop of the keyboard is its one button.
        page.locator("#analysis-title").focus()
        page.keyboard.press("Tab")
        again = page.get_by_role("button", name="Read logs again")
        expect(again).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#analysis-read")).to_contain_text("with the logs and state read now")
        expect(page.locator("#analysis-title")).to_be_focused()
        expect(page.locator("#analysis-file")).to_have_text("config/production.json")
        expect(page.locator("#analysis-problem")).to_be_hidden()


def approved(served: Served, tokens: dict[str, str], request: str) -> dict[str, Any]:
    """A plan of bob's, approved by as many approvers as it needs (a recent failure asks for two)."""
    plan = made_plan(served, tokens["bob"], request)
    for approver in ("alice", "carol"):
        if plan["status"] != "pending_approval":
            break
        path = f"/api/v1/plans/{plan['id']}/approve"
        answer = api(served, tokens[approver], "POST", path, hash=plan["hash"])
        assert answer.status_code == 200, answer.text
        plan = {**plan, "status": answer.json()["status"]}
    assert plan["status"] == "approved", plan
    return plan


def test_a_deploy_at_its_validation_gate_is_continued_from_the_monitor_by_a_deployer_only(
    browser: Browser, served: Served, tokens: dict[str, str], project: Path
) -> None:
    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World

    # After the failing deploy above: with the fix committed, the rollout is healthy and the run
    # stops at its gate(s) (a recent failure in production adds a staging one before).
    World(project / "state").commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config",
    )
    plan = approved(served, tokens, DEPLOY)
    started = api(served, tokens["bob"], "POST", f"/api/v1/plans/{plan['id']}/runs")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    gates = sum(1 for step in plan["steps"] if step["requires_validation"])
    assert gates >= 1, "the deploy playbook validates its rollout"
    with console(browser, served, tokens["vic"]) as vic, console(browser, served, tokens["bob"]) as bob:
        bob.allowed = {403}  # the forged click below, refused by the API
        watcher = vic.go(f"/runs/{run_id}")
        page = bob.go(f"/runs/{run_id}")
        waits = page.locator("#log li.ev-gate-waiting")
        expect(waits.first).to_be_visible(timeout=60_000)
        expect(watcher.locator("#run-status")).to_have_text("awaiting validation")
        expect(watcher.get_by_role("button", name="Continue")).to_have_count(0)
        expect(watcher.locator("#run-actions")).to_be_hidden()
        keep_on = page.get_by_role("button", name="Continue")
        problem = page.locator("#run-problem")
        asked: list[str] = []
        sent: list[str] = []
        page.on("request", lambda request: sent.append(request.url))

        # A click the API refuses (its CSRF header altered on the way) says why, and may be retried.
        def forged(route: Route) -> None:
            route.continue_(headers={**route.request.headers, "x-csrf-token": "forged"})

        page.route("**/api/v1/runs/*/continue", forged)
        keep_on.click()
        expect(problem.locator(".detail")).to_contain_text("without the console's CSRF token")
        expect(problem.locator(".hint")).to_contain_text("reload the console page")
        expect(keep_on).to_be_enabled()
        page.unroute("**/api/v1/runs/*/continue", forged)

        ended = page.locator('#run-status .status[data-status="succeeded"]')
        for passed in range(gates):
            expect(waits).to_have_count(passed + 1)
            expect(page.locator("#run-status")).to_have_text("awaiting validation")
            expect(page.get_by_role("button", name="Roll back")).to_be_visible()
            expect(page.get_by_role("button", name="Pause")).to_have_count(0)
            if passed == 0:
                # Roll back asks first; dismissed, nothing is sent (the run ends succeeded below,
                # and no request for a rollback ever left the page).
                page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
                page.get_by_role("button", name="Roll back").click()
                assert asked and "Roll back this run?" in asked[0], asked
            keep_on.click()
            expect(problem).to_be_hidden()
            # On to the next gate, or to the end.
            expect(ended.or_(waits.nth(passed + 1))).to_be_visible(timeout=60_000)
            if ended.is_visible():
                break
        expect(ended).to_be_visible()
        expect(page.locator("#live-state")).to_have_text("finished")
        expect(page.locator("#run-actions")).to_be_hidden()
        expect(watcher.locator("#run-status")).to_have_text("succeeded")
    assert not [url for url in sent if url.endswith("/rollback")], sent
    report = api(served, tokens["bob"], "GET", f"/api/v1/runs/{run_id}").json()
    assert report["status"] == "succeeded", report
    assert all(step["status"] == "succeeded" for step in report["steps"]), report["steps"]


def test_an_approval_of_a_plan_amended_meanwhile_is_refused_on_the_page(
    browser: Browser, served: Served, tokens: dict[str, str]
) -> None:
    plan = made_plan(served, tokens["bob"], SCALE, replicas=3)
    with console(browser, served, tokens["alice"]) as alice:
        alice.allowed = {409}  # the refusal this test provokes
        page = alice.go(f"/plans/{plan['id']}")
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_be_visible()
        amended = api(served, tokens["bob"], "POST", f"/api/v1/plans/{plan['id']}/amend", set={"replicas": 4})
        assert amended.status_code == 200, amended.text
        assert amended.json()["hash"] != plan["hash"]
        approve.click()
        problem = page.locator("#action-problem")
        expect(problem).to_be_visible()
        expect(problem.locator(".detail")).to_contain_text("not the plan you reviewed")
        expect(problem.locator(".hint")).to_contain_text("review the plan as it is now")
        expect(approve).to_be_enabled()
        assert any("status of 409" in e for e in alice.errors), "the refusal came from the API"
    tally = api(served, tokens["alice"], "GET", f"/api/v1/plans/{plan['id']}/approvals").json()
    assert tally["status"] == "pending_approval" and tally["approvers"] == [] and not tally["approved"]


EVENTS = 20_000
BATCH = 1_000
# Records the longest main-thread task the page ran (Chromium's Long Tasks API), for the report.
LONGEST_TASK = """
window.__longestTask = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longestTask = Math.max(window.__longestTask, entry.duration);
  }
}).observe({ type: "longtask", buffered: true });
"""


def test_the_monitor_follows_twenty_thousand_events_with_a_bounded_log(
    browser: Browser,
    served: Served,
    tokens: dict[str, str],
    project: Path,
    record_property: Any,
) -> None:
    # A run written straight to the journal, as a driver in another process would write it: the
    # server's hub streams whatever is committed, so this is the monitor's real path at volume.
    plan = made_plan(served, tokens["bob"], "Scale my-application in staging to 2 replicas")
    plans, runs = stores_of(project)
    run_id = f"run_console_volume_{os.getpid()}"
    state = with_run_status(new_run(plans.get(plan["id"]), run_id=run_id), RunStatus.RUNNING)
    owner = new_owner()  # this test process: alive, so nobody takes the run over

    def event(kind: EventType, message: str) -> RunEvent:
        return RunEvent(run_id=run_id, at=datetime.now(UTC), type=kind, message=message)

    opened = [event(EventType.RUN_STARTED, "4 steps")]
    runs.commit(state, owner=owner, events=opened, started_by="bob", lease_seconds=600)
    try:
        with console(browser, served, tokens["vic"]) as vic:
            vic.page.add_init_script(LONGEST_TASK)
            page = vic.go(f"/runs/{run_id}")
            expect(page.locator("#log li")).to_have_count(1)
            started = time.monotonic()
            for first in range(1, EVENTS + 1, BATCH):
                lines = [event(EventType.LOG, f"line {n} of {EVENTS}") for n in range(first, first + BATCH)]
                runs.commit(state, owner=owner, events=lines, lease_seconds=600)
            last = EVENTS + 1
            expect(page.locator(f'#log li[data-seq="{last}"]')).to_contain_text(f"line {EVENTS} of {EVENTS}")
            followed = time.monotonic() - started
            shown = shown_seqs(page)
            assert len(shown) <= 500, len(shown)
            assert shown == list(range(last - len(shown) + 1, last + 1)), "the newest lines, in order, once"

            page.get_by_role("button", name="Show earlier").click()
            expect(page.locator("#log li")).to_have_count(len(shown) + 200)
            assert shown_seqs(page)[0] == shown[0] - 200

            ended = with_run_status(state, RunStatus.CANCELLED)
            finished = [event(EventType.RUN_FINISHED, "cancelled")]
            runs.commit(ended, owner=owner, events=finished, lease_seconds=600)
            state = ended
            expect(page.locator("#run-status")).to_have_text("cancelled")
            expect(page.locator("#live-state")).to_have_text("finished")
            longest = float(page.evaluate("window.__longestTask"))
    finally:
        if state.status is RunStatus.RUNNING:  # never left for the server to take over and drive
            runs.commit(with_run_status(state, RunStatus.CANCELLED), owner=owner, lease_seconds=600)
    record_property("followed_seconds", round(followed, 2))
    record_property("longest_task_ms", round(longest))
    print(f"{EVENTS} events followed in {followed:.2f} s; longest main-thread task {longest:.0f} ms")

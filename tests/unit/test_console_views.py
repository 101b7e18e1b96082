"""The console's pure parts (the graph's layout, run progress and ETA, runs per day) and what a
plan page and a run monitor offer to whom (`services.access.plan_actions` and `run_actions`,
through the fakes)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from opsmith.api.app import create_api
from opsmith.api.console.layout import Placed, Sizes, layout
from opsmith.api.console.views import (
    StepTiming,
    chart,
    eta_text,
    progress,
    remaining,
    runs_per_day,
    shorten,
)
from opsmith.domain.graph import Node, parallel_groups
from opsmith.domain.identity import Identity
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.engine.state import FINAL_RUN_STATUSES, RunState, RunStatus, StepStatus, new_run
from opsmith.services.access import plan_actions, run_actions, run_decisions
from opsmith.services.approvals import approve, cancel
from opsmith.services.hosting import Host
from opsmith.services.planning import make_plan
from opsmith.services.tokens import create_token
from tests.fakes import FakeServerHost, FakeTools, FakeWorld, fake_app
from tests.unit.test_services import CONFIG, SCALE, SPECS, answers

# The deploy of seed 001: one chain, two parallel pairs.
DEPLOY = [
    Node("build"),
    Node("test", ("build",)),
    Node("quality", ("test",)),
    Node("security", ("test",)),
    Node("push", ("quality", "security")),
    Node("deploy", ("push",)),
    Node("pods", ("deploy",)),
    Node("logs", ("deploy",)),
    Node("service", ("pods", "logs")),
]


# -- the graph's layout ---------------------------------------------------------------------------


def overlap(a: Placed, b: Placed) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


def test_every_dependency_is_drawn_and_parallel_steps_share_a_row() -> None:
    drawn = layout(DEPLOY)
    assert {(link.source, link.target) for link in drawn.links} == {
        (dep, node.id) for node in DEPLOY for dep in node.depends_on
    }
    assert drawn.box("quality").y == drawn.box("security").y
    assert drawn.box("pods").y == drawn.box("logs").y
    assert drawn.box("quality").x != drawn.box("security").x
    rows = sorted({box.y for box in drawn.boxes})
    assert len(rows) == len(parallel_groups(DEPLOY)) == 7
    assert [drawn.box(step).level for step in ("build", "test", "push", "service")] == [0, 1, 3, 6]


def test_an_arrow_leaves_the_bottom_of_a_step_and_enters_the_top_of_the_one_that_waits() -> None:
    drawn = layout([Node("a"), Node("b", ("a",))])
    (link,) = drawn.links
    a, b = drawn.box("a"), drawn.box("b")
    assert link.path.startswith(f"M{a.center_x:g} {a.bottom:g} ")
    assert link.path.endswith(f" {b.center_x:g} {b.y:g}")


def test_the_picture_is_as_wide_as_its_widest_row_and_rows_are_centred() -> None:
    size = Sizes(box_width=100, box_height=40, gap_x=10, gap_y=20, margin=5)
    drawn = layout([Node("a"), Node("b", ("a",)), Node("c", ("a",)), Node("d", ("a",))], size)
    assert drawn.width == 2 * 5 + 3 * 100 + 2 * 10
    assert drawn.height == 2 * 5 + 2 * 40 + 20
    assert drawn.box("a").center_x == drawn.width / 2
    assert drawn.box("c").center_x == drawn.width / 2


def test_an_empty_plan_draws_nothing() -> None:
    drawn = layout([])
    assert drawn.boxes == () and drawn.links == ()


def test_a_row_is_ordered_by_where_its_parents_are() -> None:
    # y waits for the right-hand parent, x for the left one: they are placed to match, not by input.
    nodes = [Node("left"), Node("right"), Node("y", ("right",)), Node("x", ("left",))]
    drawn = layout(nodes)
    assert drawn.box("x").x < drawn.box("y").x


@st.composite
def dags(draw: st.DrawFn, max_size: int = 14) -> list[Node]:
    """A DAG: node i depends only on nodes before it; then the input order is shuffled."""
    size = draw(st.integers(0, max_size))
    nodes = []
    for index in range(size):
        deps = draw(st.lists(st.integers(0, index - 1), unique=True, max_size=4)) if index else []
        nodes.append(Node(f"s{index}", tuple(f"s{d}" for d in deps)))
    return draw(st.permutations(nodes))


@settings(max_examples=200, deadline=None)
@given(dags())
def test_boxes_never_overlap_and_every_dependency_has_its_arrow(nodes: list[Node]) -> None:
    drawn = layout(nodes)
    assert {b.id for b in drawn.boxes} == {n.id for n in nodes}
    for a, b in combinations(drawn.boxes, 2):
        assert not overlap(a, b), (a, b)
    assert sorted((link.source, link.target) for link in drawn.links) == sorted(
        (dep, node.id) for node in nodes for dep in node.depends_on
    )
    for box in drawn.boxes:
        assert box.x >= 0 and box.x + box.width <= drawn.width
        assert box.y >= 0 and box.bottom <= drawn.height
    by_id = {n.id: n for n in nodes}
    for link in drawn.links:
        # An arrow always points down: a step sits below everything it waits for.
        assert drawn.box(link.source).bottom < drawn.box(link.target).y, by_id[link.target]
    for level, group in enumerate(parallel_groups(nodes)):
        assert {drawn.box(step).level for step in group} == {level}
        assert len({drawn.box(step).y for step in group}) == 1


# -- run progress and the ETA ---------------------------------------------------------------------


def test_step_n_of_m_counts_finished_steps_and_the_running_ones() -> None:
    s = StepStatus
    counted = progress([s.SUCCEEDED, s.FAILED, s.RUNNING, s.RETRY_WAIT, s.PENDING, s.PENDING])
    assert counted.text == "Step 4 of 6" and counted.percent == 33
    assert progress([]).text == "Step 0 of 0" and progress([]).percent == 100
    assert progress([s.ROLLED_BACK, s.SKIPPED, s.CANCELLED]).text == "Step 3 of 3"


NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_the_eta_is_the_critical_path_of_what_is_left_less_the_time_already_spent() -> None:
    steps = [
        StepTiming("build", (), (60.0, 120.0), StepStatus.SUCCEEDED),
        StepTiming("deploy", ("build",), (120.0, 300.0), StepStatus.RUNNING, NOW - timedelta(seconds=100)),
        StepTiming("pods", ("deploy",), (10.0, 60.0), StepStatus.PENDING),
        StepTiming("logs", ("deploy",), (60.0, 120.0), StepStatus.PENDING),
    ]
    assert remaining(steps, NOW) == (20.0 + 60.0, 200.0 + 120.0)
    assert eta_text(RunStatus.RUNNING, remaining(steps, NOW)) == "about 1-6 min left"


def test_a_step_past_its_estimate_counts_for_nothing_and_the_monitor_says_so() -> None:
    late = [StepTiming("deploy", (), (10.0, 30.0), StepStatus.RUNNING, NOW - timedelta(minutes=5))]
    assert remaining(late, NOW) == (0.0, 0.0)
    assert eta_text(RunStatus.RUNNING, (0.0, 0.0)) == "taking longer than estimated"


def test_a_finished_or_stopped_run_has_no_eta() -> None:
    for status in (RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK, RunStatus.PAUSED, RunStatus.FAILED):
        assert eta_text(status, (10.0, 20.0)) == ""
    assert "rolling back" in eta_text(RunStatus.ROLLING_BACK, (10.0, 20.0))
    assert eta_text(RunStatus.PENDING, (10.0, 20.0)) == "about < 1 min left"


# -- the dashboard's chart ------------------------------------------------------------------------


def test_runs_per_day_counts_the_last_fourteen_days_with_empty_days_too() -> None:
    today = date(2026, 12, 14)
    created = [
        datetime(2026, 12, 14, 9, tzinfo=UTC),
        datetime(2026, 12, 14, 23, tzinfo=UTC),
        datetime(2026, 12, 1, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),  # fifteen days ago: outside the window
    ]
    counts = runs_per_day(created, today)
    assert len(counts) == 14 and counts[0] == (date(2026, 12, 1), 1) and counts[-1] == (today, 2)
    assert sum(n for _, n in counts) == 3


def test_the_chart_scales_the_busiest_day_to_full_height_and_keeps_empty_slots() -> None:
    drawn = chart(
        [(date(2026, 12, 1), 0), (date(2026, 12, 2), 4), (date(2026, 12, 3), 2)], width=300, height=100
    )
    empty, busiest, half = drawn.bars
    assert busiest.height == 98 and busiest.y == 2 and half.height == 49
    assert empty.height == 1 and empty.count == 0
    assert [b.x for b in drawn.bars] == [1, 101, 201]
    assert busiest.label == "Wed 02 Dec: 4 runs" and half.label.endswith("2 runs")
    assert chart([]).bars == ()


def test_shorten_marks_a_cut() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcdef", 4) == "abc…"


# -- what a plan page offers, decided by the access service ---------------------------------------


def who(user: str, role: str) -> Identity:
    return Identity(user=user, role=role, source="token")


def world_with(extra: str = "") -> FakeWorld:
    return fake_app(CONFIG + extra, FakeTools(specs=list(SPECS), answers=answers()))


def planned(world: FakeWorld, user: str = "bob", role: str = "deployer", request: str = SCALE) -> Plan:
    made = asyncio.run(make_plan(world.app, who(user, role), request, {}))
    return stored(world, made.id)


def stored(world: FakeWorld, plan_id: str) -> Plan:
    # As a page reads it: signed by the store (a plan a service returns may not carry its new seal).
    return world.plans.get(plan_id)


NONE = {"approve": False, "reject": False, "run": False, "cancel": False}


def test_a_pending_plan_offers_approval_to_approvers_only_and_cancel_to_its_requester() -> None:
    world = world_with()
    plan = planned(world)
    assert plan.status is PlanStatus.PENDING_APPROVAL
    app = world.app
    assert plan_actions(app, who("alice", "approver"), plan) == {
        "approve": True,
        "reject": True,
        "run": False,
        "cancel": True,
    }
    assert plan_actions(app, who("bob", "deployer"), plan) == {**NONE, "cancel": True}
    assert plan_actions(app, who("vic", "viewer"), plan) == NONE
    # An operator may neither touch production nor cancel someone else's plan there.
    assert plan_actions(app, who("olga", "operator"), plan) == NONE


def test_an_approved_plan_offers_run_to_those_who_may_execute_it() -> None:
    world = world_with()
    plan = stored(world, approve(world.app, who("alice", "approver"), planned(world).id, "ok")[0].id)
    assert plan.status is PlanStatus.APPROVED
    assert plan_actions(world.app, who("bob", "deployer"), plan) == {**NONE, "run": True, "cancel": True}
    assert plan_actions(world.app, who("alice", "approver"), plan) == {**NONE, "cancel": True}
    assert plan_actions(world.app, who("ada", "admin"), plan) == {**NONE, "run": True, "cancel": True}


def test_a_requester_is_never_offered_their_own_plan_to_approve() -> None:
    world = world_with()
    plan = planned(world, "ada", "admin")
    assert plan_actions(world.app, who("ada", "admin"), plan) == {**NONE, "cancel": True}
    assert plan_actions(world.app, who("alice", "approver"), plan)["approve"]


def test_under_four_eyes_one_approver_is_not_offered_a_second_approval() -> None:
    world = world_with("policy: {approval: {four_eyes_risk: HIGH}}\n")
    plan = planned(world)
    assert plan.approvals_needed == 2
    _, tally = approve(world.app, who("alice", "approver"), plan.id, "one")
    plan = stored(world, plan.id)
    assert plan.status is PlanStatus.PENDING_APPROVAL and len(tally.valid) == 1
    assert plan_actions(world.app, who("alice", "approver"), plan) == {
        "approve": False,
        "reject": True,
        "run": False,
        "cancel": True,
    }
    assert plan_actions(world.app, who("carol", "approver"), plan)["approve"]


def test_a_closed_plan_offers_nothing() -> None:
    world = world_with()
    plan = stored(world, cancel(world.app, who("bob", "deployer"), planned(world).id).id)
    for person in (who("bob", "deployer"), who("alice", "approver"), who("ada", "admin")):
        assert plan_actions(world.app, person, plan) == NONE


@pytest.mark.parametrize("status", [PlanStatus.RUNNING, PlanStatus.SUCCEEDED, PlanStatus.ROLLED_BACK])
def test_a_running_or_finished_plan_cannot_be_cancelled_from_its_page(status: PlanStatus) -> None:
    world = world_with()
    plan = planned(world).model_copy(update={"status": status})
    assert plan_actions(world.app, who("ada", "admin"), plan) == NONE


# -- what a run monitor offers, decided by the access service -------------------------------------


RUN_NONE = {"continue": False, "pause": False, "resume": False, "cancel": False, "rollback": False}


def run_of(plan: Plan, status: RunStatus, run_id: str = "run_console_test") -> RunState:
    # Any status, as a page may find it in the journal: the access service only reads it.
    return new_run(plan, run_id=run_id).model_copy(update={"status": status})


def test_a_viewer_is_offered_no_run_control_whatever_the_run_does() -> None:
    world = world_with()
    plan = planned(world)
    for status in RunStatus:
        assert run_actions(world.app, who("vic", "viewer"), plan, run_of(plan, status)) == RUN_NONE


def test_a_run_at_its_gate_offers_continue_and_rollback_to_a_deployer() -> None:
    world = world_with()
    plan = planned(world)
    gate = run_of(plan, RunStatus.AWAITING_VALIDATION)
    stop = {"cancel": True, "rollback": True}
    bob = who("bob", "deployer")
    assert run_actions(world.app, bob, plan, gate) == {**RUN_NONE, "continue": True, **stop}
    # An approver may stop a production run but not drive it on; an operator may not touch production.
    assert run_actions(world.app, who("alice", "approver"), plan, gate) == {**RUN_NONE, **stop}
    assert run_actions(world.app, who("olga", "operator"), plan, gate) == RUN_NONE


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (RunStatus.PENDING, {"pause"}),
        (RunStatus.RUNNING, {"pause"}),
        (RunStatus.PAUSED, {"resume"}),
        (RunStatus.NEEDS_ATTENTION, {"resume"}),
        (RunStatus.ROLLING_BACK, set()),
    ],
)
def test_a_run_under_way_offers_what_its_status_allows(status: RunStatus, offered: set[str]) -> None:
    world = world_with()
    plan = planned(world)
    found = run_actions(world.app, who("ada", "admin"), plan, run_of(plan, status))
    assert found == {**RUN_NONE, **dict.fromkeys(offered, True), "cancel": True, "rollback": True}


def test_a_step_interrupted_mid_call_is_offered_for_a_choice_to_those_who_may_resume_only() -> None:
    world = world_with()
    plan = planned(world)
    first = plan.steps[0].id
    base = run_of(plan, RunStatus.NEEDS_ATTENTION)
    interrupted = base.model_copy(
        update={
            "steps": {
                **base.steps,
                first: base.steps[first].model_copy(update={"status": StepStatus.RUNNING}),
            }
        }
    )
    assert run_decisions(world.app, who("ada", "admin"), plan, interrupted) == [first]
    assert run_decisions(world.app, who("bob", "deployer"), plan, interrupted) == [first]
    assert run_decisions(world.app, who("alice", "approver"), plan, interrupted) == []  # may stop, not drive
    assert run_decisions(world.app, who("vic", "viewer"), plan, interrupted) == []
    assert run_decisions(world.app, who("ada", "admin"), plan, base) == []  # nothing was interrupted
    paused = interrupted.model_copy(update={"status": RunStatus.PAUSED})
    assert (
        run_decisions(world.app, who("ada", "admin"), plan, paused) == []
    )  # only a run that needs attention


def test_a_finished_run_offers_nothing() -> None:
    world = world_with()
    plan = planned(world)
    for status in FINAL_RUN_STATUSES:
        for person in (who("bob", "deployer"), who("ada", "admin")):
            assert run_actions(world.app, person, plan, run_of(plan, status)) == RUN_NONE


# -- the login and the pages, in process over the fakes -------------------------------------------


@pytest.fixture
def site() -> Iterator[tuple[TestClient, FakeWorld]]:
    world = world_with()
    host = Host(app=world.app, servers=FakeServerHost(world.tools), owner=who("ada", "admin"))
    with TestClient(create_api(host, duties=False), follow_redirects=False) as client:
        yield client, world


def token_for(world: FakeWorld, user: str, role: str) -> str:
    _, text = create_token(world.app, who("ada", "admin"), user, role, via="test")
    return text


def cookie_headers(answer: Any) -> dict[str, str]:
    return {line.split("=", 1)[0]: line for line in answer.headers.get_list("set-cookie")}


def test_a_page_without_a_session_sends_the_browser_to_login_and_counts_for_nothing(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, _ = site
    answer = client.get("/runs?status=failed")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/runs%3Fstatus%3Dfailed"
    assert client.app.state.gate.failures == {}  # type: ignore[attr-defined]
    assert client.get("/login?next=//elsewhere.example").text.count('value="/"') == 1


def test_login_sets_an_http_only_strict_session_and_a_readable_csrf_cookie(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = site
    token = token_for(world, "bob", "deployer")
    answer = client.post("/login", data={"token": token, "next": "/runs"})
    assert answer.status_code == 303 and answer.headers["location"] == "/runs"
    cookies = cookie_headers(answer)
    session, csrf = cookies["opsmith_session"].lower(), cookies["opsmith_csrf"].lower()
    assert "httponly" in session and "samesite=strict" in session and "path=/" in session
    assert "secure" not in session, "plain http: a Secure cookie would never come back"
    assert "httponly" not in csrf and "samesite=strict" in csrf
    page = client.get("/")
    assert page.status_code == 200 and "bob" in page.text
    assert token not in page.text and token.split("_", 2)[2] not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_over_https_the_cookies_are_secure(site: tuple[TestClient, FakeWorld]) -> None:
    client, world = site
    answer = client.post("https://testserver/login", data={"token": token_for(world, "bob", "deployer")})
    assert all("secure" in line.lower() for line in cookie_headers(answer).values())


def test_failed_logins_show_why_never_the_token_and_are_throttled_like_the_api(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = site
    guess = f"osm_{'1' * 12}_{'g' * 43}"
    for _ in range(world.app.config.api.auth_failures):
        answer = client.post("/login", data={"token": guess})
        assert answer.status_code == 401 and "unknown" in answer.text
        assert guess not in answer.text and "g" * 43 not in answer.text
        assert "set-cookie" not in answer.headers
    throttled = client.post("/login", data={"token": token_for(world, "bob", "deployer")})
    assert throttled.status_code == 429 and "too many failed attempts" in throttled.text
    assert client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {guess}"}).status_code == 429


def test_a_login_form_posted_from_another_site_is_refused(site: tuple[TestClient, FakeWorld]) -> None:
    client, world = site
    answer = client.post(
        "/login",
        data={"token": token_for(world, "bob", "deployer")},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_logout_needs_the_csrf_header_and_then_clears_both_cookies(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = site
    client.post("/login", data={"token": token_for(world, "bob", "deployer")})
    assert client.post("/logout").status_code == 403
    csrf = client.cookies["opsmith_csrf"]
    answer = client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    cleared = cookie_headers(answer)
    assert {"opsmith_session", "opsmith_csrf"} <= set(cleared)
    assert all("max-age=0" in line.lower() for line in cleared.values())


def test_the_plan_page_draws_the_graph_and_offers_only_what_the_service_allows(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = site
    plan = planned(world)
    client.post("/login", data={"token": token_for(world, "vic", "viewer")})
    page = client.get(f"/plans/{plan.id}").text
    assert page.count('class="node"') == len(plan.steps)
    assert page.count('class="edge"') == sum(len(s.depends_on) for s in plan.steps)
    assert 'data-action="' not in page and "0 of 1 approval" in page
    client.post("/login", data={"token": token_for(world, "alice", "approver")})
    page = client.get(f"/plans/{plan.id}").text
    assert 'data-action="approve"' in page and 'data-action="run"' not in page
    assert f'data-plan-hash="{plan.hash}"' in page
    missing = client.get("/plans/plan_that_is_not_there")
    assert missing.status_code == 404 and "plan_that_is_not_there" in missing.text


def shown_controls(page: str) -> dict[str, bool]:
    """The run monitor's control buttons, each with whether it is shown (not hidden)."""
    found = re.findall(r'(<button [^>]*data-run-action="(\w+)"[^>]*>)', page)
    assert len(found) == len(RUN_NONE), "every control is in the page, for the script"
    return {name: " hidden" not in tag for tag, name in found}


def test_the_run_monitor_and_its_progress_offer_only_what_the_service_allows(
    site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = site
    plan = planned(world)
    gate = run_of(plan, RunStatus.AWAITING_VALIDATION, "run_console_gate")
    world.journal.commit(gate, owner="test", started_by="bob")
    client.post("/login", data={"token": token_for(world, "vic", "viewer")})
    page = client.get(f"/runs/{gate.run_id}").text
    assert shown_controls(page) == RUN_NONE and '<div class="actions" id="run-actions" hidden>' in page
    assert client.get(f"/runs/{gate.run_id}/progress").json()["actions"] == RUN_NONE
    client.post("/login", data={"token": token_for(world, "bob", "deployer")})
    page = client.get(f"/runs/{gate.run_id}").text
    at_gate = {**RUN_NONE, "continue": True, "cancel": True, "rollback": True}
    assert shown_controls(page) == at_gate and '<div class="actions" id="run-actions">' in page
    assert client.get(f"/runs/{gate.run_id}/progress").json()["actions"] == at_gate


# -- the run monitor's explanation of a failed run (services.explain.explain_run) ---------------


@pytest.fixture
def failed_site() -> Iterator[tuple[TestClient, FakeWorld]]:
    """The console over test_explain's world: a production deploy whose rollout crash-loops."""
    from tests.unit.test_explain import CRASH, world

    found = world(CRASH)
    host = Host(app=found.app, servers=FakeServerHost(found.tools), owner=who("ada", "admin"))
    with TestClient(create_api(host, duties=False), follow_redirects=False) as client:
        client.post("/login", data={"token": token_for(found, "vic", "viewer")})
        yield client, found


def failed_run(world: FakeWorld, error: str) -> str:
    from tests.unit.test_explain import store, the_run

    store(world, the_run(error))
    return "run-1"


def analysis_of(page: str) -> str:
    found = re.search(r'<section class="card analysis" id="analysis".*?</section>', page, re.S)
    assert found, "the monitor shows the explanation"
    return found.group(0)


def cited_rows(section: str) -> list[tuple[str, str, str, str]]:
    """The evidence table: (step, tool, line, text) per row, as shown."""
    rows = re.findall(
        r'<tr data-step="([^"]*)" data-line="(\d+)"[^>]*>\s*<td>.*?</td>\s*<td>(?:<code>([^<]*)</code>)?</td>'
        r'.*?<code class="evidence-text">([^<]*)</code>',
        section,
        re.S,
    )
    return [(step, tool, line, text) for step, line, tool, text in rows]


def test_the_monitor_of_a_failed_run_shows_the_cause_the_fix_and_the_cited_line_without_calling_tools(
    failed_site: tuple[TestClient, FakeWorld],
) -> None:
    from tests.unit.test_explain import CANARY

    client, world = failed_site
    missing = "Error: Cannot find module './config/production.json'"
    run_id = failed_run(world, f"rollout failed: CrashLoopBackOff token={CANARY}\n{missing}")
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    section = analysis_of(page.text)
    assert "Deploy to production <code>deploy</code>" in section and "kubernetes/apply_deployment" in section
    assert '<dd id="analysis-error-type"><code>CrashLoopBackOff</code></dd>' in section
    assert "the image lacks config/production.json, which the start command requires" in section
    assert '<code id="analysis-file">config/production.json</code>' in section
    assert '<code id="analysis-dockerfile">COPY config/ ./config/</code>' in section
    assert "confidence: high" in section
    shown = missing.replace("'", "&#39;")
    assert ("deploy", "kubernetes/apply_deployment", "2", shown) in cited_rows(section)
    assert "(recorded)" in section and "(read now)" not in section
    assert world.tools.calls == [], "the page reads what the run recorded; it calls no tool"
    assert CANARY not in section
    assert "data-analysis-fetch" in section, "reading the logs again is offered"


def test_an_unexplained_failure_says_no_rule_matched_and_shows_the_lines_read_escaped(
    failed_site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = failed_site
    run_id = failed_run(world, "the tool said: <script>odd()</script> happened")
    section = analysis_of(client.get(f"/runs/{run_id}").text)
    assert 'data-explained="false"' in section and "No rule matched the" in section
    assert "confidence:" not in section and 'id="analysis-fix"' not in section
    assert "Evidence read" in section
    escaped = "the tool said: &lt;script&gt;odd()&lt;/script&gt; happened"
    assert cited_rows(section)[0] == ("deploy", "kubernetes/apply_deployment", "1", escaped)
    assert "<script>odd()" not in section


def test_reading_the_logs_again_needs_the_csrf_token_and_cites_what_the_tool_says_now(
    failed_site: tuple[TestClient, FakeWorld],
) -> None:
    client, world = failed_site
    run_id = failed_run(world, "rollout failed: 0/1 new pods ready, CrashLoopBackOff")
    refused = client.post(f"/runs/{run_id}/analysis")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    forged = client.post(f"/runs/{run_id}/analysis", headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403 and world.tools.calls == []

    answer = client.post(f"/runs/{run_id}/analysis", headers={"X-CSRF-Token": client.cookies["opsmith_csrf"]})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    section = analysis_of(answer.text)
    assert '<code id="analysis-file">config/production.json</code>' in section
    cited = cited_rows(section)
    missing = "Error: Cannot find module &#39;./config/production.json&#39;"
    assert cited[0] == ("check_logs", "kubernetes/get_pod_logs", "5", missing)
    assert "(read now)" in section and "with the logs and state read now" in section
    assert [call[:2] for call in world.tools.calls] == [("kubernetes", "get_pod_logs")]
    called = [e for e in world.audit.chain if e.action == "tool.called"]
    assert [(e.actor, e.details["via"]) for e in called] == [("vic", "explain")], "checked and audited"


def test_a_run_that_did_not_fail_shows_no_explanation_and_an_unknown_one_is_not_found(
    failed_site: tuple[TestClient, FakeWorld],
) -> None:
    from tests.unit.test_explain import store, the_run

    client, world = failed_site
    running = the_run("", status=RunStatus.RUNNING)
    deploy = running.steps["deploy"].model_copy(update={"status": StepStatus.RUNNING, "error": None})
    store(world, running.model_copy(update={"steps": {**running.steps, "deploy": deploy}}))
    page = client.get("/runs/run-1")
    assert page.status_code == 200 and 'id="analysis"' not in page.text
    assert '<div id="analysis-slot" data-loaded="false">' in page.text, "the script fills it if it fails"
    assert client.get("/runs/run-1/analysis").status_code == 204
    assert client.get("/runs/run-that-is-not-there/analysis").status_code == 404
    assert client.get("/runs/run-that-is-not-there").status_code == 404


def test_a_broken_rule_file_is_shown_in_the_explanations_place_and_the_monitor_still_shows(
    failed_site: tuple[TestClient, FakeWorld], tmp_path: Any
) -> None:
    from dataclasses import replace

    client, world = failed_site
    (tmp_path / "mine.yaml").write_text("rules: [{id: Bad}]\n")
    analysis = world.app.config.analysis.model_copy(update={"rule_dirs": [tmp_path]})
    world.app = replace(world.app, config=world.app.config.model_copy(update={"analysis": analysis}))
    client.app.state.host = replace(client.app.state.host, app=world.app)  # type: ignore[attr-defined]
    run_id = failed_run(world, "rollout failed: CrashLoopBackOff")
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200 and 'id="steps"' in page.text
    section = analysis_of(page.text)
    assert "mine.yaml" in section and 'role="alert"' in section and "analysis-file" not in section

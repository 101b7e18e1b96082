"""The REST API of a real `opsmith serve` over the sandbox MCP servers, driven over real HTTP.

One server serves the whole module (starting four MCP servers costs seconds); each test makes the
plans it needs, so tests do not depend on one another's order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OS_USER, sandbox_servers
from tests.integration.test_approval_cli import CONFIG
from tests.integration.test_cli import OPSMITH
from tests.served import Served, issue_tokens, serving, wait_for

pytestmark = pytest.mark.integration

FINAL = {"succeeded", "failed", "rolled_back", "cancelled", "needs_attention"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Path:
    root = tmp_path_factory.mktemp("api")
    state = root / "state"
    shutil.copytree(seeded_template, state)
    # Few failures a minute: the throttling test reaches the limit quickly; the few other tests
    # that fail on purpose stay below it.
    settings = "api: {auth_failures: 8, auth_window_seconds: 60, sweep_seconds: 1, takeover_seconds: 1}"
    (root / "opsmith.yaml").write_text(f"{CONFIG}\n{settings}\nmcpServers:\n{sandbox_servers(state)}\n")
    return root


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with serving(project, need_token=True) as server:  # the first start prints an admin token
        yield server


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    """A token per configured user, made by the admin through the API."""
    people = {"alice": "approver", "carol": "approver", "bob": "deployer", "vic": "viewer"}
    return issue_tokens(served, people, "test")


def client(served: Served, tokens: dict[str, str], user: str) -> httpx.Client:
    return served.client(tokens[user])


def problem_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"] and body["type"].startswith("urn:opsmith:problem:")
    return body


def plan(served: Served, tokens: dict[str, str], user: str, request: str, **values: Any) -> dict[str, Any]:
    with client(served, tokens, user) as c:
        answer = c.post("/api/v1/plans", json={"request": request, "set": values})
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def run_to_end(served: Served, tokens: dict[str, str], user: str, plan_id: str) -> dict[str, Any]:
    with client(served, tokens, user) as c:
        started = c.post(f"/api/v1/plans/{plan_id}/runs")
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        def ended() -> dict[str, Any] | None:
            state: dict[str, Any] = c.get(f"/api/v1/runs/{run_id}").json()
            return state if state["status"] in FINAL | {"awaiting_validation"} else None

        found = wait_for(ended, timeout=120)
    assert isinstance(found, dict)
    return found


def test_the_first_start_prints_an_admin_token_once(served: Served, project: Path) -> None:
    with served.client(served.token) as admin:
        me = admin.get("/api/v1/whoami").json()
        assert me["user"] == OS_USER and me["role"] == "admin" and me["source"] == "token"
        listed = admin.get("/api/v1/tokens").json()
    assert served.token is not None
    secret = served.token.split("_", 2)[2]  # the secret itself may hold "_"
    assert all(secret not in json.dumps(t) for t in listed), "a listing shows no secret"
    # A second server on the same database finds a token and prints none.
    with serving(project) as second:
        assert second.token is None
        assert not any("osm_" in line for line in second.lines)


def test_requests_without_a_valid_token_are_refused_as_problems(served: Served) -> None:
    with served.client() as anonymous:
        body = problem_of(anonymous.get("/api/v1/plans"), 401)
        assert "token" in body["detail"]
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").status_code == 200
    with served.client("not-a-token") as wrong:
        problem_of(wrong.get("/api/v1/plans"), 401)


def test_a_viewer_reads_but_cannot_plan_approve_or_call_a_changing_tool(
    served: Served, tokens: dict[str, str]
) -> None:
    made = plan(served, tokens, "bob", "Scale my-application in production", replicas=3)
    assert made["status"] == "pending_approval"
    with client(served, tokens, "vic") as viewer:
        assert viewer.get(f"/api/v1/plans/{made['id']}").json()["hash"] == made["hash"]
        refused = problem_of(viewer.post("/api/v1/plans", json={"request": "Rollback production"}), 403)
        assert "vic (viewer) may not plan" in refused["detail"]
        refused = problem_of(
            viewer.post(f"/api/v1/plans/{made['id']}/approve", json={"hash": made["hash"]}), 403
        )
        assert "may not approve" in refused["detail"]
        call = viewer.post(
            "/api/v1/tools/kubernetes/scale_deployment/call",
            json={"arguments": {"name": "my-application", "namespace": "production", "replicas": 9}},
        )
        problem_of(call, 403)
    with client(served, tokens, "alice") as approver:
        trail = approver.get("/api/v1/audit", params={"subject": made["id"]}).json()
    assert ("vic", "plan.approval_refused") in [(e["actor"], e["action"]) for e in trail]


def test_an_approval_is_pinned_to_the_hash_the_approver_reviewed(
    served: Served, tokens: dict[str, str]
) -> None:
    made = plan(served, tokens, "bob", "Scale my-application in production", replicas=3)
    with client(served, tokens, "bob") as deployer:
        amended = deployer.post(f"/api/v1/plans/{made['id']}/amend", json={"set": {"replicas": 4}})
        assert amended.status_code == 200, amended.text
        assert amended.json()["hash"] != made["hash"]
    with client(served, tokens, "alice") as approver:
        stale = approver.post(f"/api/v1/plans/{made['id']}/approve", json={"hash": made["hash"]})
        body = problem_of(stale, 409)
        assert "not the plan you reviewed" in body["detail"]
        fresh = approver.post(f"/api/v1/plans/{made['id']}/approve", json={"hash": amended.json()["hash"]})
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["status"] == "approved" and fresh.json()["approvers"] == ["alice"]


def test_a_plan_approved_and_run_through_the_api_succeeds_and_its_events_stream(
    served: Served, tokens: dict[str, str]
) -> None:
    made = plan(served, tokens, "bob", "Scale my-application in production", replicas=2)
    with client(served, tokens, "bob") as deployer:
        early = deployer.post(f"/api/v1/plans/{made['id']}/runs")
        assert "not approved" in problem_of(early, 409)["detail"]
    with client(served, tokens, "alice") as approver:
        assert approver.post(f"/api/v1/plans/{made['id']}/approve", json={"hash": made["hash"]}).is_success
    ended = run_to_end(served, tokens, "bob", made["id"])
    assert ended["status"] == "succeeded", ended
    with (
        client(served, tokens, "vic") as viewer,
        viewer.stream(
            "GET", f"/api/v1/runs/{ended['run_id']}/events", headers={"Accept": "text/event-stream"}
        ) as stream,
    ):
        seqs, types = [], []
        for line in stream.iter_lines():
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
            elif line.startswith("event: "):
                types.append(line[7:])
                if line == "event: run.finished":
                    break
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"
    assert types[0] == "run.started" and types[-1] == "run.finished"
    with client(served, tokens, "vic") as viewer:
        page = viewer.get(f"/api/v1/runs/{ended['run_id']}/events", params={"after": 2, "limit": 3}).json()
        assert [e["seq"] for e in page["items"]] == [3, 4, 5] and page["next_after"] == 5
        step = next(s for s in ended["steps"] if s["output"])
        pieces, offset = [], 0
        while offset is not None:
            part = viewer.get(
                f"/api/v1/runs/{ended['run_id']}/steps/{step['step_id']}/output",
                params={"offset": offset, "limit": 100},
            ).json()
            pieces.append(part["text"])
            offset = part["next_offset"]
    assert json.loads("".join(pieces)) == step["output"], "the pages put together are the output"


def test_a_run_started_by_the_cli_in_another_terminal_is_seen_live(
    served: Served, tokens: dict[str, str], project: Path
) -> None:
    made = plan(served, tokens, "bob", "Scale my-application in staging", replicas=2)
    assert made["status"] == "approved", "staging at this risk needs no approval"
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def follow() -> None:
        runs: list[dict[str, Any]] = []

        def started() -> bool:
            with client(served, tokens, "vic") as viewer:
                runs[:] = [
                    r for r in viewer.get("/api/v1/runs").json()["items"] if r["plan_id"] == made["id"]
                ]
            return bool(runs)

        ready.set()
        wait_for(started, timeout=60)
        with (
            client(served, tokens, "vic") as viewer,
            viewer.stream(
                "GET", f"/api/v1/runs/{runs[0]['run_id']}/events", headers={"Accept": "text/event-stream"}
            ) as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["type"] == "run.finished":
                        return

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    ready.wait(10)
    result = subprocess.run(
        [OPSMITH, "--as", "bob", "run", made["id"], "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    watcher.join(timeout=60)
    assert not watcher.is_alive(), "the watcher never saw the run finish"
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "run.finished"


def test_bad_input_gets_one_problem_naming_what_was_wrong(served: Served, tokens: dict[str, str]) -> None:
    with client(served, tokens, "bob") as deployer:
        body = problem_of(deployer.post("/api/v1/plans", json={"text": "Deploy"}), 422)
        assert "request" in body["detail"]
        body = problem_of(deployer.get("/api/v1/plans/plan_nope"), 404)
        assert "plan_nope" in body["detail"]
        problem_of(deployer.get("/api/v1/runs/run_nope"), 404)
        problem_of(deployer.get("/api/v1/plans", params={"status": "bogus"}), 422)
        problem_of(deployer.get("/api/v1/plans", params={"limit": 0}), 422)
        body = problem_of(deployer.post("/api/v1/plans", json={"request": "Deploy", "set": {"a b": 1}}), 422)
        assert "'a b'" in body["detail"]


def test_metrics_report_runs_approvals_tool_calls_and_servers(served: Served, tokens: dict[str, str]) -> None:
    with client(served, tokens, "vic") as viewer:
        text = viewer.get("/metrics").text
    assert 'opsmith_runs{status="succeeded"}' in text
    assert "opsmith_approvals_waiting" in text
    assert 'opsmith_server_up{server="kubernetes"} 1.0' in text
    with served.client() as anonymous:
        problem_of(anonymous.get("/metrics"), 401)


def test_a_websocket_watcher_that_drops_and_reconnects_misses_nothing(
    served: Served, tokens: dict[str, str]
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    made = plan(served, tokens, "bob", "Scale my-application in staging", replicas=3)
    ended = run_to_end(served, tokens, "bob", made["id"])
    path = f"/api/v1/runs/{ended['run_id']}/events"
    auth = {"Authorization": f"Bearer {tokens['vic']}"}
    seqs: list[int] = []
    with connect(served.ws_url(path + "?after=0"), additional_headers=auth, open_timeout=10) as socket:
        for _ in range(3):
            seqs.append(json.loads(socket.recv(timeout=10))["seq"])
    # The connection is gone; the watcher comes back with the last number it saw.
    with connect(
        served.ws_url(f"{path}?after={seqs[-1]}"), additional_headers=auth, open_timeout=10
    ) as socket:
        while True:
            event = json.loads(socket.recv(timeout=10))
            seqs.append(event["seq"])
            if event["type"] == "run.finished":
                break
    assert seqs == list(range(1, len(seqs) + 1))
    with pytest.raises(InvalidStatus), connect(served.ws_url(path), open_timeout=10):
        pass


def approved_by_api(served: Served, tokens: dict[str, str], request: str) -> dict[str, Any]:
    made = plan(served, tokens, "bob", request)
    for approver in ("alice", "carol"):
        if made["status"] != "pending_approval":
            break
        with client(served, tokens, approver) as c:
            answer = c.post(f"/api/v1/plans/{made['id']}/approve", json={"hash": made["hash"]})
        assert answer.is_success, answer.text
        made = {**made, "status": answer.json()["status"]}
    assert made["status"] == "approved", made
    return made


@pytest.mark.timeout(300)
def test_a_run_at_its_validation_gate_is_continued_or_rolled_back_through_the_api(
    served: Served, tokens: dict[str, str], project: Path
) -> None:
    from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
    from opsmith.sandbox.world import World

    World(project / "state").commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: add the production config",
    )
    made = approved_by_api(served, tokens, "Deploy the code to Kubernetes production")
    waiting = run_to_end(served, tokens, "bob", made["id"])
    assert waiting["status"] == "awaiting_validation", waiting
    run_id = waiting["run_id"]
    with client(served, tokens, "vic") as viewer:
        problem_of(viewer.post(f"/api/v1/runs/{run_id}/continue"), 403)
    with client(served, tokens, "bob") as deployer:
        assert deployer.post(f"/api/v1/runs/{run_id}/continue").status_code == 202

        def done() -> dict[str, Any] | None:
            state: dict[str, Any] = deployer.get(f"/api/v1/runs/{run_id}").json()
            return state if state["status"] in FINAL else None

        ended = wait_for(done, timeout=120)
        assert isinstance(ended, dict) and ended["status"] == "succeeded", ended
        problem_of(deployer.post(f"/api/v1/runs/{run_id}/continue"), 409)

    again = approved_by_api(served, tokens, "Deploy the code to Kubernetes production")
    gate = run_to_end(served, tokens, "bob", again["id"])
    assert gate["status"] == "awaiting_validation", gate
    with client(served, tokens, "bob") as deployer:
        answer = deployer.post(f"/api/v1/runs/{gate['run_id']}/rollback")
        assert answer.status_code == 202, answer.text

        def undone() -> dict[str, Any] | None:
            state: dict[str, Any] = deployer.get(f"/api/v1/runs/{gate['run_id']}").json()
            return state if state["status"] in FINAL else None

        rolled = wait_for(undone, timeout=120)
    assert isinstance(rolled, dict) and rolled["status"] == "rolled_back", rolled
    assert any(s["undo"] for s in rolled["steps"]), "the undo of what ran is reported"


def test_repeated_authentication_failures_are_refused_for_a_while(
    served: Served, tokens: dict[str, str]
) -> None:
    # Last in the module: after it this client address is refused for the window. Earlier tests
    # failed on purpose a few times within it already, so fewer than 8 may be left.
    with served.client("osm_000000000000_" + "x" * 43) as wrong:
        statuses = [wrong.get("/api/v1/plans").status_code for _ in range(9)]
    refused = statuses.count(401)
    assert 0 < refused <= 8 and statuses == [401] * refused + [429] * (9 - refused)
    with served.client(tokens["vic"]) as viewer:
        throttled = viewer.get("/api/v1/plans")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1


def test_a_forwarded_address_does_not_escape_the_throttle(served: Served) -> None:
    # Runs after the throttling test: this address is refused; a header naming another is ignored.
    with served.client("osm_000000000000_" + "y" * 43) as wrong:
        answer = wrong.get("/api/v1/plans", headers={"X-Forwarded-For": "203.0.113.7"})
    assert answer.status_code == 429

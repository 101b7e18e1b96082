"""The explain service over fakes: it reads what the run recorded and what the plan's read-only steps
say now, through the checked and audited call path, cites every line, and shows no secret."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.errors import NotFoundError
from opsmith.domain.identity import Identity
from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus, Step
from opsmith.domain.risk import Risk
from opsmith.engine.reflection import reflect
from opsmith.engine.state import FanOut, RunState, RunStatus, StepState, StepStatus
from opsmith.services.explain import RunNotFailed, explain_run
from tests.fakes import FakeTools, FakeWorld, fake_app

CANARY = "s3cr3t-canary-9d1f"
CONFIG = """
mcpServers:
  kubernetes: {command: "unused-in-unit-tests", env: {API_TOKEN: "${K8S_TOKEN}"}}
rbac:
  users: {vic: viewer, bob: deployer}
"""
T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)
CRASH = [
    "> node server.js",
    "Failed to load configuration file",
    "Error: Cannot find module './config/production.json'",
]

SPECS = [
    ToolSpec(
        server="kubernetes", name="apply_deployment", hints=ToolHints(read_only=False, destructive=True)
    ),
    ToolSpec(server="kubernetes", name="get_pod_logs", hints=ToolHints(read_only=True)),
    ToolSpec(server="kubernetes", name="get_pods", hints=ToolHints(read_only=True)),
]


def step(step_id: str, name: str, tool: str, *, after: list[str], args: dict[str, Any] | None = None) -> Step:
    return Step(
        id=step_id, name=name, capability=step_id, server="kubernetes", tool=tool, risk=Risk.LOW,
        depends_on=after, args=args or {},
    )  # fmt: skip


def the_plan() -> Plan:
    steps = [
        step("build", "Build my-application", "apply_deployment", after=[]),
        step("deploy", "Deploy to production", "apply_deployment", after=["build"], args={"image": "a:1"}),
        step(
            "check_logs", "Check application logs", "get_pod_logs", after=["deploy"],
            args={"namespace": "production", "label_selector": "app=my-application", "wait_seconds": 60},
        ),
        step("verify", "Verify pods", "get_pods", after=["deploy"], args={"image": "${steps.deploy.image}"}),
    ]  # fmt: skip
    return Plan(
        id="plan-1", request="deploy", title="Deploy", intent=Intent(request="deploy", action="deploy"),
        playbook="x", priority="HIGH", risk=Risk.HIGH, requires_approval=False, rollback_strategy="",
        failure_handling="", steps=steps, status=PlanStatus.ROLLED_BACK, created_at=T0,
        estimated_duration=Estimate(minimum_seconds=1, maximum_seconds=2, text="", critical_path=[]),
    )  # fmt: skip


def the_run(error: str, status: RunStatus = RunStatus.ROLLED_BACK) -> RunState:
    return RunState(
        run_id="run-1",
        plan_id="plan-1",
        plan_hash="h",
        status=status,
        next_seq=1,
        steps={
            "build": StepState(
                step_id="build", status=StepStatus.SUCCEEDED, completed_seq=0, output={"token": CANARY}
            ),
            "deploy": StepState(
                step_id="deploy",
                status=StepStatus.FAILED,
                attempts=1,
                started_at=T0,
                finished_at=T0 + timedelta(seconds=5),
                error=error,
            ),
            "check_logs": StepState(step_id="check_logs"),
            "verify": StepState(step_id="verify"),
        },
    )


def world(logs: list[str], status: str = "CrashLoopBackOff") -> FakeWorld:
    def pod_logs(_: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"pods": [{"pod": "my-application-x", "status": status, "lines": logs}]}

    found = fake_app(CONFIG, FakeTools(specs=list(SPECS), answers={"get_pod_logs": pod_logs}))
    # The environment the server's ${K8S_TOKEN} resolves from: its value is a secret.
    found.app = replace(found.app, environ={"K8S_TOKEN": CANARY})
    found.plans.save(the_plan())
    return found


def store(w: FakeWorld, run: RunState) -> None:
    w.journal.runs[run.run_id] = run


VIEWER = Identity(user="vic", role="viewer", source="config")


def explain(w: FakeWorld, **options: Any) -> Any:
    return asyncio.run(explain_run(w.app, VIEWER, "run-1", **options))


def test_a_viewer_gets_the_cause_with_the_fetched_log_line_cited_and_the_call_audited() -> None:
    w = world(CRASH)
    store(w, the_run("rollout failed: 0/1 new pods ready, CrashLoopBackOff"))

    found = explain(w)

    assert found.explained and found.error_type == "CrashLoopBackOff" and found.confidence == "high"
    assert found.fix.file == "config/production.json" and found.fix.dockerfile == "COPY config/ ./config/"
    cause = found.findings[0]
    assert cause.rule == "missing-module-in-folder"
    assert (cause.cited.step, cause.cited.tool, cause.cited.line, cause.cited.fetched) == (
        "check_logs", "get_pod_logs", 5, True,
    )  # fmt: skip
    assert found.failed_step.id == "deploy"
    assert [(c.title, c.outcome) for c in found.components] == [
        ("Build my-application", "passed"),
        ("Deploy to production", "failed"),
        ("Check application logs", "not run"),
        ("Verify pods", "not run"),
    ]
    # Only the read-only step that needs no other step's output was asked, without its wait.
    assert w.tools.calls == [
        ("kubernetes", "get_pod_logs", {"namespace": "production", "label_selector": "app=my-application",
                                        "wait_seconds": 0}),
    ]  # fmt: skip
    called = [e for e in w.audit.chain if e.action == "tool.called"]
    assert [(e.actor, e.details["via"]) for e in called] == [("vic", "explain")]


def test_without_fetching_it_reads_only_what_the_run_recorded() -> None:
    w = world(CRASH)
    store(w, the_run("CrashLoopBackOff: Error: Cannot find module './config/production.json'"))
    found = explain(w, fetch=False)
    assert w.tools.calls == [] and found.explained
    assert all(not line.fetched and line.step == "deploy" for line in found.evidence)


def test_an_unknown_failure_says_so_and_shows_what_it_read() -> None:
    w = world(["> node server.js", "listening"], status="Running")
    store(w, the_run("the tool said: something odd happened"))
    found = explain(w)
    assert not found.explained and found.confidence is None and found.fix is None
    assert found.root_cause.startswith("no rule matched")
    texts = [line.text for line in found.evidence]
    assert texts[0] == "the tool said: something odd happened" and "listening" in texts


def test_no_secret_reaches_the_explanation() -> None:
    w = world(
        [*CRASH, f"connecting with password={CANARY}", f"GET https://admin:{CANARY}@db/ Bearer abcdef123"]
    )
    store(w, the_run(f"CrashLoopBackOff; env API_TOKEN={CANARY} token: hunter22 {CANARY}"))
    text = json.dumps(explain(w).model_dump(mode="json"))
    assert CANARY not in text and "hunter22" not in text and "abcdef123" not in text
    found = explain(w, fetch=False)
    assert CANARY not in json.dumps(found.model_dump(mode="json"))


def test_a_fleet_step_cites_each_failed_hosts_stderr_and_exit_code() -> None:
    w = world([])
    reason = "start of service nginx failed with exit code 1 (its manager's message is on stderr)"
    stderr = "Job for nginx.service failed because the control process exited with error code."
    rows = {
        "web1": {"host": "web1", "ok": True, "exit_code": 0, "stderr": ""},
        "web2": {"host": "web2", "ok": False, "exit_code": 1, "reason": reason, "stderr": stderr},
    }
    run = the_run("1 of 2 hosts failed: web2")
    failed = run.steps["deploy"].model_copy(update={"fan_out": FanOut(total=2, rows=rows)})
    store(w, run.model_copy(update={"steps": {**run.steps, "deploy": failed}}))
    found = explain(w, fetch=False)
    assert (
        found.error_type == "ServiceFailedToStart"
        and found.root_cause == "service nginx failed to start on the host"
    )
    assert found.failed_step.exit_codes == [1]
    assert {(e.host, e.kind) for e in found.evidence} >= {("web2", "error"), ("web2", "stderr")}
    assert all(e.host != "web1" for e in found.evidence)


def test_a_run_that_did_not_fail_and_an_unknown_run_are_refused() -> None:
    w = world(CRASH)
    ok = the_run("x", status=RunStatus.SUCCEEDED)
    store(w, ok.model_copy(update={"steps": {**ok.steps, "deploy": StepState(step_id="deploy")}}))
    with pytest.raises(RunNotFailed, match="did not fail") as caught:
        explain(w)
    assert caught.value.exit_code == 2 and "opsmith status run-1" in (caught.value.hint or "")
    with pytest.raises(NotFoundError):
        asyncio.run(explain_run(w.app, VIEWER, "run-nope"))


def test_a_users_rule_replaces_the_bundled_one(tmp_path: Any) -> None:
    (tmp_path / "mine.yaml").write_text(
        "rules:\n  - id: crash-loop-backoff\n    kind: symptom\n    error_type: OurCrashLoop\n"
        "    pattern: CrashLoopBackOff\n    root_cause: ours\n    fix: {summary: call the on-call}\n"
        "    confidence: low\n"
    )
    w = world([])
    analysis = w.app.config.analysis.model_copy(update={"rule_dirs": [tmp_path]})
    w.app = replace(w.app, config=w.app.config.model_copy(update={"analysis": analysis}))
    store(w, the_run("CrashLoopBackOff"))
    found = explain(w, fetch=False)
    assert found.error_type == "OurCrashLoop" and found.root_cause == "ours" and found.confidence == "low"


def test_the_reflection_suggests_the_rule_librarys_fix() -> None:
    found = reflect(
        the_plan(), the_run("CrashLoopBackOff: Error: Cannot find module './config/production.json'")
    )
    assert found.suggestions[0].startswith("the image lacks config/production.json")
    assert "'COPY config/ ./config/' in the Dockerfile" in found.suggestions[0]
    assert "step deploy" in found.suggestions[0], "it says which line it rests on"


def test_the_api_answers_the_same_json_as_the_service_and_maps_its_refusals() -> None:
    from starlette.testclient import TestClient

    from opsmith.api.app import create_api
    from opsmith.services.hosting import Host
    from opsmith.services.tokens import create_token
    from tests.fakes import FakeServerHost

    w = world(CRASH)
    store(w, the_run("rollout failed: CrashLoopBackOff"))
    admin = Identity(user="ada", role="admin", source="token")
    _, token = create_token(w.app, admin, "vic", "viewer", via="test")
    host = Host(app=w.app, servers=FakeServerHost(w.tools), owner=admin)
    with TestClient(create_api(host, duties=False)) as site:
        headers = {"Authorization": f"Bearer {token}"}
        answer = site.get("/api/v1/runs/run-1/explanation", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == explain(w).model_dump(mode="json")
        assert site.get("/api/v1/runs/run-nope/explanation", headers=headers).status_code == 404
        ok = the_run("x", status=RunStatus.SUCCEEDED)
        store(w, ok.model_copy(update={"steps": {**ok.steps, "deploy": StepState(step_id="deploy")}}))
        refused = site.get("/api/v1/runs/run-1/explanation", headers=headers)
        assert refused.status_code == 409 and "did not fail" in refused.json()["detail"]

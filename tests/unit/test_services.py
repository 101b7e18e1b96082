"""The use cases, driven through in-memory fakes of every port: permissions, audit entries, the
recorded catalog, the checks before a run. No server, no database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.identity import Identity
from opsmith.domain.plan import PlanStatus
from opsmith.engine.state import RunStatus
from opsmith.errors import UsageError
from opsmith.services.access import AccessRefused, set_role
from opsmith.services.approvals import approve, reject
from opsmith.services.discovery import running_servers
from opsmith.services.planning import amend_plan, make_plan
from opsmith.services.running import RunRefused, start_run
from opsmith.services.tool_calls import CallRefused, CallRequest, ConfirmationNeeded, call_tool
from tests.fakes import FakeTools, FakeWorld, fake_app

CONFIG = """
applications:
  shop: {}
planning: {default_application: shop, image_repository: "org/{app}"}
mcpServers:
  kubernetes: {command: "unused-in-unit-tests"}
rbac:
  users: {vic: viewer, olga: operator, bob: deployer, alice: approver, carol: approver, ada: admin}
"""

READ = ToolHints(read_only=True)
WRITE = ToolHints(read_only=False, destructive=True, idempotent=True)


def schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
        "required": list(props),
    }


SPECS = [
    ToolSpec(
        server="kubernetes",
        name="get_deployment",
        description="Get a deployment's replicas and image",
        input_schema=schema(deployment_name="string", namespace="string"),
        hints=READ,
    ),
    ToolSpec(
        server="kubernetes",
        name="scale_deployment",
        description="Scale a deployment to a number of replicas",
        input_schema=schema(deployment_name="string", namespace="string", replicas="integer"),
        hints=WRITE,
    ),
    ToolSpec(
        server="kubernetes",
        name="backup_deployment",
        description="Back up a deployment's spec and revision before a change",
        input_schema=schema(deployment_name="string", namespace="string"),
        hints=ToolHints(read_only=False, destructive=False),
    ),
    ToolSpec(
        server="kubernetes",
        name="get_pods",
        description="List pods with status, readiness, restarts and image",
        input_schema={
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "label_selector": {"type": "string"}},
            "required": ["namespace"],
        },
        hints=READ,
    ),
    ToolSpec(
        server="kubernetes",
        name="delete_deployment",
        description="Delete a deployment",
        input_schema=schema(deployment_name="string", namespace="string"),
        hints=WRITE,
    ),
]


def answers() -> dict[str, Any]:
    replicas = {"now": 2}  # the fake cluster's one deployment

    def deployment(_: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"name": args["deployment_name"], "replicas": replicas["now"], "image": "org/shop:v1"}

    def scaled(_: str, args: dict[str, Any]) -> dict[str, Any]:
        replicas["now"] = args.get("replicas", 0)
        return {"name": args["deployment_name"], "replicas": args.get("replicas", 0), "status": "scaled"}

    def backup(_: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"backup_id": "backup-1", "deployment": args["deployment_name"], "revision": 1, "replicas": 2}

    def pods(_: str, args: dict[str, Any]) -> dict[str, Any]:
        n = replicas["now"]
        pod = {"status": "Running", "phase": "Running", "ready": True, "image": "org/shop:v1"}
        listed = [{"name": f"shop-{i}", **pod} for i in range(n)]
        return {"total": n, "running": n, "ready": n, "not_ready": 0, "crash_looping": 0, "pods": listed}

    return {
        "get_deployment": deployment,
        "scale_deployment": scaled,
        "delete_deployment": scaled,
        "backup_deployment": backup,
        "get_pods": pods,
    }


@pytest.fixture
def world() -> FakeWorld:
    return fake_app(CONFIG, FakeTools(specs=list(SPECS), answers=answers()))


def who(user: str, role: str) -> Identity:
    return Identity(user=user, role=role, source="config")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


PROD = {"deployment_name": "shop", "namespace": "production"}


# -- opsmith call ---------------------------------------------------------------------------------


def test_a_viewer_reads_but_a_destructive_call_is_refused_before_it_is_sent(world: FakeWorld) -> None:
    result = run(
        call_tool(world.app, who("vic", "viewer"), CallRequest("kubernetes", "get_deployment", PROD))
    )
    assert result.structured == {"name": "shop", "replicas": 2, "image": "org/shop:v1"}
    with pytest.raises(CallRefused, match=r"vic \(viewer\) may not execute"):
        run(
            call_tool(
                world.app,
                who("vic", "viewer"),
                CallRequest("kubernetes", "delete_deployment", PROD, confirmed=True),
            )
        )
    assert [c[1] for c in world.tools.calls] == ["get_deployment"]
    assert world.audit.actions() == [
        ("vic", "tool.called", "kubernetes/get_deployment"),
        ("vic", "tool.refused", "kubernetes/delete_deployment"),
    ]
    refused = world.audit.chain[-1].details
    assert refused["risk"] == "CRITICAL" and refused["environment"] == "production"


def test_a_destructive_call_needs_confirmation_and_then_is_audited_with_its_result(world: FakeWorld) -> None:
    request = CallRequest("kubernetes", "scale_deployment", {**PROD, "replicas": 3})
    with pytest.raises(ConfirmationNeeded, match="not confirmed"):
        run(call_tool(world.app, who("ada", "admin"), request))
    assert world.tools.calls == []
    confirmed = CallRequest("kubernetes", "scale_deployment", {**PROD, "replicas": 3}, confirmed=True)
    run(call_tool(world.app, who("ada", "admin"), confirmed))
    assert [a for _, a, _ in world.audit.actions()] == ["tool.refused", "tool.called"]
    called = world.audit.chain[-1].details
    assert called["ok"] is True and called["args"]["replicas"] == 3 and "scaled" in called["result"]


def test_an_operator_is_held_to_its_environments_and_its_highest_risk(world: FakeWorld) -> None:
    olga = who("olga", "operator")
    with pytest.raises(CallRefused, match="may not execute in production"):
        run(
            call_tool(
                world.app,
                olga,
                CallRequest("kubernetes", "scale_deployment", {**PROD, "replicas": 1}, confirmed=True),
            )
        )
    staging = {"deployment_name": "shop", "namespace": "staging"}
    with pytest.raises(CallRefused, match="up to MEDIUM risk, this is CRITICAL"):
        run(
            call_tool(
                world.app, olga, CallRequest("kubernetes", "delete_deployment", staging, confirmed=True)
            )
        )
    run(
        call_tool(
            world.app,
            olga,
            CallRequest("kubernetes", "scale_deployment", {**staging, "replicas": 1}, confirmed=True),
        )
    )
    assert [c[1] for c in world.tools.calls] == ["scale_deployment"]


def test_secret_arguments_are_redacted_in_the_audit_trail(world: FakeWorld) -> None:
    args = {**PROD, "password": "hunter2-secret"}
    run(call_tool(world.app, who("vic", "viewer"), CallRequest("kubernetes", "get_deployment", args)))
    assert "hunter2-secret" not in str(world.audit.chain[-1].details)


def test_a_stopped_server_is_never_started_for_a_call(world: FakeWorld) -> None:
    world.servers.set_enabled("kubernetes", False)
    with pytest.raises(UsageError, match="stopped by an operator"):
        run(call_tool(world.app, who("ada", "admin"), CallRequest("kubernetes", "get_deployment", PROD)))
    assert world.tools.started == []


# -- roles ----------------------------------------------------------------------------------------


def test_only_an_admin_sets_roles_never_their_own_and_it_is_audited(world: FakeWorld) -> None:
    with pytest.raises(AccessRefused, match=r"bob \(deployer\) may not admin"):
        set_role(world.app, who("bob", "deployer"), "vic", "admin", via="test")
    with pytest.raises(UsageError, match="their own role"):
        set_role(world.app, who("ada", "admin"), "ada", "viewer", via="test")
    with pytest.raises(UsageError, match="unknown role 'root'"):
        set_role(world.app, who("ada", "admin"), "vic", "root", via="test")
    change = set_role(world.app, who("ada", "admin"), "vic", "operator", via="test")
    assert change.role == "operator" and world.app.roles.all() == {"vic": "operator"}
    assert world.audit.actions() == [("ada", "role.changed", "vic")]


# -- planning -------------------------------------------------------------------------------------

SCALE = "Scale shop in production to 4 replicas"


def test_a_viewer_may_not_plan_and_nothing_starts(world: FakeWorld) -> None:
    with pytest.raises(AccessRefused, match="may not plan"):
        run(make_plan(world.app, who("vic", "viewer"), SCALE, {}))
    assert world.tools.started == []


def test_a_fresh_recorded_catalog_plans_without_starting_servers(world: FakeWorld) -> None:
    bob = who("bob", "deployer")
    first = run(make_plan(world.app, bob, SCALE, {}))
    assert world.tools.started == [["kubernetes"]]
    second = run(make_plan(world.app, bob, SCALE, {}))
    assert world.tools.started == [["kubernetes"]], "planned from the recorded catalog"
    assert [s.tool for s in second.steps] == [s.tool for s in first.steps]
    world.clock.advance(world.app.config.planning.catalog_max_age + 1)
    run(make_plan(world.app, bob, SCALE, {}))
    assert len(world.tools.started) == 2, "a stale catalog is discovered again"


def test_a_changed_server_configuration_is_discovered_again(world: FakeWorld) -> None:
    bob = who("bob", "deployer")
    run(make_plan(world.app, bob, SCALE, {}))
    changed = fake_app(CONFIG.replace("unused-in-unit-tests", "another-command"), world.tools)
    changed.servers.seen, changed.servers.tools = world.servers.seen, world.servers.tools
    run(make_plan(changed.app, bob, SCALE, {}))
    assert len(world.tools.started) == 2


def test_catalog_max_age_zero_always_discovers() -> None:
    config = CONFIG.replace(
        'image_repository: "org/{app}"}', 'image_repository: "org/{app}", catalog_max_age: 0}'
    )
    world = fake_app(config, FakeTools(specs=list(SPECS), answers=answers()))
    bob = who("bob", "deployer")
    run(make_plan(world.app, bob, SCALE, {}))
    run(make_plan(world.app, bob, SCALE, {}))
    assert len(world.tools.started) == 2


def test_amend_keeps_the_requester_copies_closed_plans_and_is_audited(world: FakeWorld) -> None:
    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    amended = run(amend_plan(world.app, who("alice", "approver"), plan.id, {"replicas": 5}))
    assert amended.requested_by == "bob" and amended.hash != plan.hash
    assert amended.id == plan.id and amended.amended_by == ["alice"]
    assert ("alice", "plan.amended", plan.id) in world.audit.actions()
    reject(world.app, who("alice", "approver"), plan.id, "no")
    # A rejected plan is never brought back: the amended version is a new plan that links to it.
    copy = run(amend_plan(world.app, who("bob", "deployer"), plan.id, {"replicas": 6}))
    assert copy.id != plan.id and copy.amended_from == plan.id and copy.requested_by == "bob"
    assert copy.status is PlanStatus.PENDING_APPROVAL
    assert world.plans.get(plan.id).status is PlanStatus.REJECTED


# -- running --------------------------------------------------------------------------------------


def test_an_unapproved_plan_is_refused_and_a_claimed_approval_is_audited(world: FakeWorld) -> None:
    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    assert plan.requires_approval
    with pytest.raises(RunRefused, match="approves nothing"):
        run(start_run(world.app, who("bob", "deployer"), plan.id, approval_claimed=True, via="mcp"))
    with pytest.raises(RunRefused, match="not approved"):
        run(start_run(world.app, who("bob", "deployer"), plan.id))
    actions = [a for _, a, _ in world.audit.actions()]
    assert actions[-2:] == ["mcp.approval_ignored", "run.refused"]
    assert world.journal.runs == {}


def test_an_approved_plan_runs_through_the_fakes_and_its_plan_follows(world: FakeWorld) -> None:
    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    approved, _ = approve(world.app, who("alice", "approver"), plan.id, "ok")
    assert approved.status is PlanStatus.APPROVED
    settled, state, failure = run(start_run(world.app, who("bob", "deployer"), plan.id))
    assert failure is None and state.status is RunStatus.SUCCEEDED, state
    assert settled.status is PlanStatus.SUCCEEDED and world.plans.get(plan.id).status is PlanStatus.SUCCEEDED
    assert ("kubernetes", "scale_deployment") in [(s, t) for s, t, _ in world.tools.calls]
    assert world.audit.verify().ok
    with pytest.raises(RunRefused):
        run(start_run(world.app, who("bob", "deployer"), plan.id))


def test_a_plan_edited_after_approval_does_not_run(world: FakeWorld) -> None:
    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    approve(world.app, who("alice", "approver"), plan.id, "ok")
    stored = world.plans.get(plan.id)
    step = stored.steps[-1].model_copy(update={"args": {**stored.steps[-1].args, "replicas": 99}})
    world.plans.save(stored.model_copy(update={"steps": [*stored.steps[:-1], step]}))
    with pytest.raises(RunRefused, match="changed after it was made"):
        run(start_run(world.app, who("bob", "deployer"), plan.id))
    assert world.tools.calls == [] or all(c[1] != "scale_deployment" for c in world.tools.calls)


def test_servers_an_operator_stopped_are_not_started(world: FakeWorld) -> None:
    world.servers.set_enabled("kubernetes", False)

    async def open_all() -> list[str]:
        async with running_servers(world.app) as pool:
            return pool.catalog.servers()

    assert run(open_all()) == []
    assert world.tools.started == [[]]


def test_refused_approvals_are_audited_and_count_for_nothing(world: FakeWorld) -> None:
    from opsmith.domain.approval import ApprovalError

    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    with pytest.raises(ApprovalError, match="may not approve"):
        approve(world.app, who("bob", "deployer"), plan.id, "mine")
    stored = world.plans.get(plan.id)
    world.plans.save(stored.model_copy(update={"request": stored.request + " (edited)"}))
    with pytest.raises(ApprovalError, match="changed after it was made"):
        approve(world.app, who("alice", "approver"), plan.id, "ok")
    assert [a for _, a, _ in world.audit.actions()][-2:] == ["plan.approval_refused", "plan.approval_refused"]
    assert world.approvals.approvals == [] and world.plans.get(plan.id).status is PlanStatus.PENDING_APPROVAL


def flaky_world(failures: int) -> FakeWorld:
    """get_deployment fails with a retryable error `failures` times, then answers."""
    from opsmith.errors import ToolCallError

    left = [failures]

    def flaky(_: str, args: dict[str, Any]) -> dict[str, Any]:
        if left[0] > 0:
            left[0] -= 1
            raise ToolCallError("the server was busy", retryable=True)
        return {"name": args["deployment_name"], "replicas": 2, "image": "org/shop:v1"}

    return fake_app(CONFIG, FakeTools(specs=list(SPECS), answers={**answers(), "get_deployment": flaky}))


HAND_WRITTEN = """
title: Read shop twice
environment: staging
steps:
  - {id: first, server: kubernetes, tool: get_deployment,
     args: {deployment_name: shop, namespace: staging}, retry: {attempts: ATTEMPTS, initial_delay: 0}}
"""


@pytest.mark.parametrize(("attempts", "status"), [(3, RunStatus.SUCCEEDED), (1, RunStatus.FAILED)])
def test_a_hand_written_plan_runs_with_its_own_retry_policy(attempts: int, status: RunStatus) -> None:
    from opsmith.services.planning import make_manual_plan

    world = flaky_world(failures=2)
    text = HAND_WRITTEN.replace("ATTEMPTS", str(attempts))
    plan = run(make_manual_plan(world.app, who("olga", "operator"), text, source="plan.yaml"))
    assert plan.status is PlanStatus.APPROVED and not plan.requires_approval
    _, state, _ = run(start_run(world.app, who("olga", "operator"), plan.id))
    assert state.status is status
    assert state.step("first").attempts == min(attempts, 3)
    assert ("olga", "plan.created", plan.id) in world.audit.actions()


def test_what_the_store_holds_without_a_valid_signature_never_runs(world: FakeWorld) -> None:
    plan = run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    approve(world.app, who("alice", "approver"), plan.id, "ok")
    # An approval rewritten behind opsmith's back (here: its signature lost) counts for nothing.
    given = world.approvals.approvals[0]
    world.approvals.approvals[0] = given.model_copy(update={"seal": ""})
    with pytest.raises(RunRefused, match="signature does not verify"):
        run(start_run(world.app, who("bob", "deployer"), plan.id))
    world.approvals.approvals[0] = given
    # A finished plan set back to approved in the store, without going through save (which signs).
    settled, _, _ = run(start_run(world.app, who("bob", "deployer"), plan.id))
    assert settled.status is PlanStatus.SUCCEEDED
    world.plans.plans[plan.id] = world.plans.get(plan.id).model_copy(update={"status": PlanStatus.APPROVED})
    with pytest.raises(RunRefused, match="changed outside opsmith"):
        run(start_run(world.app, who("bob", "deployer"), plan.id))
    assert [a for _, a, _ in world.audit.actions()][-1] == "run.refused"

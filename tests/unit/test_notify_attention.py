"""Notices of runs held for a person (needs_attention), once per hold, and of cancelled runs.

The services over fakes (tests/fakes.py): a scale whose check fails and whose undo fails too holds
the run for a person; a person's rollback that fails again is a new hold, told again."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from opsmith.config import parse_config
from opsmith.domain.errors import ToolCallError
from opsmith.domain.notifications import NotifyEvent
from opsmith.domain.notify_messages import email_text
from opsmith.engine.recovery import Choice
from opsmith.engine.state import RunStatus
from opsmith.services.approvals import approve
from opsmith.services.notifications import notify_attention, notify_run
from opsmith.services.planning import make_plan
from opsmith.services.running import Decision, resume_run, start_run
from tests.fakes import FakeOutbox, FakeSenders, FakeTools, FakeWorld, fake_app
from tests.unit.test_explain import the_plan, the_run
from tests.unit.test_services import CONFIG as SERVICES
from tests.unit.test_services import SCALE, SPECS, answers, who

ROUTES = """
notifications:
  channels: {chat: {type: slack, webhook_url: "${SLACK_URL}"}}
  rules: [{events: [needs_attention, cancelled], environments: [production], channels: [chat]}]
"""


def world(tools: FakeTools) -> tuple[FakeWorld, FakeOutbox]:
    w = fake_app(SERVICES + ROUTES, tools)
    outbox = FakeOutbox()
    w.app = replace(w.app, outbox=outbox, senders=FakeSenders())
    return w, outbox


def failing_undo_tools() -> FakeTools:
    """The scale succeeds, its check fails, and every later scale (its undo) fails."""
    found = answers()
    scale = found["scale_deployment"]
    calls = {"scale": 0}

    def scaled(tool: str, args: dict[str, Any]) -> dict[str, Any]:
        calls["scale"] += 1
        if calls["scale"] > 1:
            raise ToolCallError("kubernetes/scale_deployment failed: the API server refused it")
        return scale(tool, args)  # type: ignore[no-any-return]

    def pods(tool: str, args: dict[str, Any]) -> dict[str, Any]:
        raise ToolCallError("kubernetes/get_pods failed: pods are crash-looping")

    return FakeTools(specs=list(SPECS), answers={**found, "scale_deployment": scaled, "get_pods": pods})


def attention(outbox: FakeOutbox) -> list[Any]:
    return [d for d in outbox.rows.values() if d.notice.event is NotifyEvent.NEEDS_ATTENTION]


def test_a_run_held_for_a_person_is_told_once_per_hold() -> None:
    w, outbox = world(failing_undo_tools())
    plan = asyncio.run(make_plan(w.app, who("bob", "deployer"), SCALE, {}))
    approve(w.app, who("alice", "approver"), plan.id, "ok")
    _, state, _ = asyncio.run(start_run(w.app, who("bob", "deployer"), plan.id))
    assert state.status is RunStatus.NEEDS_ATTENTION

    (first,) = attention(outbox)
    notice = first.notice
    assert notice.run_id == state.run_id and notice.environment == "production"
    assert notice.summary.startswith(f"Run {state.run_id} of ") and "needs attention" in notice.summary
    assert "the undo of scale failed" in notice.summary, "what waits for the person"
    assert notice.root_cause, "a rollback held after a failure carries the failure's cause"
    assert email_text(notice)[0] == f"[opsmith] Run needs attention: {plan.id} (production)"
    # The same hold told again (any caller, any number of times) queues nothing new.
    assert notify_attention(w.app, plan, state) == []

    decision = Decision(choice=Choice.FAIL)
    _, again, _ = asyncio.run(resume_run(w.app, who("bob", "deployer"), state.run_id, decision=decision))
    assert again.status is RunStatus.NEEDS_ATTENTION
    held = attention(outbox)
    assert len(held) == 2, "the undo failed again: a new hold"
    assert held[0].subject != held[1].subject and all(d.subject.startswith(state.run_id) for d in held)
    assert not [d for d in outbox.rows.values() if d.notice.event is not NotifyEvent.NEEDS_ATTENTION]


def test_a_run_that_is_not_held_is_not_told_as_held() -> None:
    w, outbox = world(FakeTools(specs=list(SPECS), answers=answers()))
    plan = the_plan()
    assert notify_attention(w.app, plan, the_run("boom", status=RunStatus.FAILED)) == []
    assert outbox.rows == {}


def test_a_cancelled_run_is_told_once_without_a_root_cause() -> None:
    w, _ = world(FakeTools(specs=[]))
    plan = the_plan().model_copy(
        update={"intent": the_plan().intent.model_copy(update={"environment": "production"})}
    )
    cancelled = the_run("boom", status=RunStatus.CANCELLED)
    (queued,) = notify_run(w.app, plan, cancelled)
    assert queued.notice.event is NotifyEvent.CANCELLED and queued.subject == "run-1"
    assert queued.notice.summary == "Run run-1 of Deploy was cancelled" and queued.notice.root_cause is None
    assert email_text(queued.notice)[0] == "[opsmith] Run cancelled: plan-1 (production)"
    assert notify_run(w.app, plan, cancelled) == []


def test_the_routing_rules_accept_the_new_events() -> None:
    config = parse_config(ROUTES, source="test")
    assert config.notifications.channels_for(NotifyEvent.NEEDS_ATTENTION, "production") == ["chat"]
    assert config.notifications.channels_for(NotifyEvent.CANCELLED, "staging") == []

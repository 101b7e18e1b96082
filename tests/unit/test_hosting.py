"""The duties of a long-lived process and its live event feed, through the in-memory fakes."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.api.events import EventHub
from opsmith.domain.plan import PlanStatus
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.state import RunStatus, new_run
from opsmith.services.approvals import approve
from opsmith.services.hosting import Drivers, Host, keep_servers, take_over_orphans
from opsmith.services.identity import acting_as
from opsmith.services.planning import make_plan
from opsmith.services.running import RunRefused, Started, start_run
from tests.fakes import FakeServerHost, FakeTools, FakeWorld, fake_app
from tests.unit.test_services import CONFIG, SCALE, SPECS, answers, who

DEAD_OWNER = f"{socket.gethostname()}:999999999:deadbeef"  # a local process that does not exist


@pytest.fixture
def world() -> FakeWorld:
    return fake_app(CONFIG, FakeTools(specs=list(SPECS), answers=answers()))


def host_of(world: FakeWorld) -> Host:
    return Host(app=world.app, servers=FakeServerHost(world.tools), owner=who("ada", "admin"))


def approved(world: FakeWorld) -> str:
    plan = asyncio.run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    approve(world.app, who("alice", "approver"), plan.id, "ok")
    return plan.id


def test_a_launched_run_is_answered_once_it_exists_and_goes_on_in_the_background(world: FakeWorld) -> None:
    plan_id = approved(world)
    drivers = Drivers()

    async def scenario() -> tuple[str, str]:
        def drive(on_started: Started) -> Any:
            return start_run(world.app, who("bob", "deployer"), plan_id, on_started=on_started)

        state = await drivers.launch(drive)
        first = state.status.value
        assert drivers.driving(state.run_id)
        _, ended, _ = await drivers.tasks[state.run_id]
        return first, ended.status.value

    first, last = asyncio.run(scenario())
    assert first == "pending" and last == "succeeded"
    assert drivers.tasks == {}, "a finished run is no longer listed as driven"


def test_a_refused_launch_raises_before_anything_runs(world: FakeWorld) -> None:
    plan = asyncio.run(make_plan(world.app, who("bob", "deployer"), SCALE, {}))
    drivers = Drivers()

    async def scenario() -> None:
        await drivers.launch(lambda on: start_run(world.app, who("bob", "deployer"), plan.id, on_started=on))

    with pytest.raises(RunRefused, match="not approved"):
        asyncio.run(scenario())
    assert drivers.tasks == {} and world.journal.runs == {}


def orphan(world: FakeWorld, plan_id: str) -> str:
    """A run left by a process that died just after it started (its lease names a dead process)."""
    plan = world.plans.get(plan_id)
    state = new_run(plan, run_id="run_orphan")
    world.journal.commit(state, owner=DEAD_OWNER, started_by="bob", claim=plan)
    return state.run_id


def test_a_run_whose_driver_died_is_taken_over_as_its_starter(world: FakeWorld) -> None:
    run_id = orphan(world, approved(world))
    host = host_of(world)

    async def scenario() -> list[str]:
        taken = await take_over_orphans(host, lambda user: acting_as(world.app, user))
        await asyncio.gather(*host.drivers.tasks.values())
        return taken

    assert asyncio.run(scenario()) == [run_id]
    assert world.journal.get(run_id).status is RunStatus.SUCCEEDED
    assert ("bob", "run.resumed", run_id) in world.audit.actions()


def test_a_take_over_refused_is_not_tried_again_until_the_run_changes(world: FakeWorld) -> None:
    run_id = orphan(world, approved(world))
    world.app.roles.set("bob", "viewer", "ada")  # the starter lost the right to execute
    host = host_of(world)

    async def twice() -> tuple[list[str], list[str]]:
        starter = lambda user: acting_as(world.app, user)  # noqa: E731
        return await take_over_orphans(host, starter), await take_over_orphans(host, starter)

    assert asyncio.run(twice()) == ([], [])
    assert host.refused == {run_id: "pending"}
    assert world.journal.get(run_id).status is RunStatus.PENDING
    assert world.plans.get(world.journal.get(run_id).plan_id).status is PlanStatus.RUNNING


def test_the_servers_kept_are_the_configured_ones_an_operator_did_not_stop(world: FakeWorld) -> None:
    host = host_of(world)
    asyncio.run(keep_servers(host))
    assert isinstance(host.servers, FakeServerHost) and host.servers.running == {"kubernetes"}
    world.servers.set_enabled("kubernetes", False)
    asyncio.run(keep_servers(host))
    assert host.servers.running == set()


# -- the live event feed ---------------------------------------------------------------------------


def commit_events(world: FakeWorld, run_id: str, count: int) -> None:
    state = world.journal.runs[run_id]
    now = datetime.now(UTC)
    events = [RunEvent(run_id=run_id, at=now, type=EventType.LOG, message=f"e{i}") for i in range(count)]
    world.journal.commit(state, owner="test", events=events)


def a_run(world: FakeWorld) -> str:
    plan = world.plans.get(approved(world))
    state = new_run(plan, run_id="run_watched")
    world.journal.commit(state, owner="test", claim=plan)
    return state.run_id


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8),
    drops=st.lists(st.integers(min_value=0, max_value=60), max_size=4),
    start=st.integers(min_value=0, max_value=5),
)
def test_a_watcher_that_reconnects_gets_every_event_once_in_order(
    batches: list[int], drops: list[int], start: int
) -> None:
    """Events committed in batches while a watcher reads; the watcher drops its connection after
    some events and reconnects from the last number it saw. It ends with every event after where
    it started, each once, in order."""
    world = fake_app(CONFIG, FakeTools(specs=list(SPECS), answers=answers()))
    run_id = a_run(world)
    commit_events(world, run_id, start)
    total = start + sum(batches)
    hub = EventHub(world.app, poll_seconds=0.001)
    cuts = sorted(set(drops))

    async def scenario() -> list[int]:
        seen: list[int] = []
        remaining = list(batches)

        async def committer() -> None:
            for count in remaining:
                commit_events(world, run_id, count)
                await asyncio.sleep(0.002)

        writer = asyncio.create_task(committer())
        after = 0
        while len(seen) < total:
            follower = hub.follow(run_id, after)
            try:
                async with asyncio.timeout(10):
                    async for event in follower:
                        seen.append(event.seq)
                        after = event.seq
                        if cuts and len(seen) >= cuts[0]:
                            cuts.pop(0)
                            break  # the connection drops here
                        if len(seen) >= total:
                            break
            finally:
                await follower.aclose()
        await writer
        assert hub.watched == 0, "a closed watcher leaves nothing behind"
        await hub.close()
        return seen

    assert asyncio.run(scenario()) == list(range(1, total + 1))


def test_many_watchers_of_one_run_share_one_poll(world: FakeWorld) -> None:
    run_id = a_run(world)
    hub = EventHub(world.app, poll_seconds=0.001)
    reads: list[int] = []
    original = world.journal.events

    def counted(run: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
        reads.append(after)
        return original(run, after, limit)

    world.journal.events = counted  # type: ignore[method-assign]

    async def scenario() -> list[list[int]]:
        async def watch() -> list[int]:
            got = []
            async with asyncio.timeout(10):
                async for event in hub.follow(run_id, 0):
                    got.append(event.seq)
                    if len(got) == 5:
                        return got
            return got

        watchers = [asyncio.create_task(watch()) for _ in range(50)]
        await asyncio.sleep(0.05)
        reads.clear()
        commit_events(world, run_id, 5)
        results = await asyncio.gather(*watchers)
        await hub.close()
        return results

    results = asyncio.run(scenario())
    assert all(r == [1, 2, 3, 4, 5] for r in results)
    # One poller read the five new events for all fifty watchers; idle polls read nothing new.
    assert reads.count(0) <= 1


def test_a_run_row_for_a_plan_that_is_not_running_is_never_driven(world: FakeWorld) -> None:
    run_id = orphan(world, approved(world))
    plan = world.plans.get(world.journal.get(run_id).plan_id)
    world.plans.save(plan.model_copy(update={"status": PlanStatus.ROLLED_BACK}))  # finished, signed
    host = host_of(world)
    before = len(world.tools.calls)
    assert asyncio.run(take_over_orphans(host, lambda user: acting_as(world.app, user))) == []
    assert len(world.tools.calls) == before, "nothing was called"
    assert host.refused == {run_id: "pending"}
    assert ("bob", "run.refused", run_id) in world.audit.actions()

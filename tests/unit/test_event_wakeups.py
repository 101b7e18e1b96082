"""The event hub with wake-ups (a fake LISTEN): a notice wakes a run's reader long before its poll, a
notice for what was read costs nothing, readers poll fast again when the notices stop, and an idle
stream (and a Server-Sent Events stream through its route) gets its keep-alive beat without losing
its place. The notice payload parses back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.api.events import EventHub
from opsmith.engine.events import RunEvent
from opsmith.store.wakeups import parse
from tests.fakes import FakeTools, FakeWakeups, FakeWorld, fake_app
from tests.unit.test_hosting import a_run, commit_events
from tests.unit.test_services import CONFIG, SPECS, answers

LONG = 600.0  # a poll no test waits for


def a_world() -> tuple[FakeWorld, str, list[int]]:
    """A world with one run, and the `after` of every read of its events."""
    world = fake_app(CONFIG, FakeTools(specs=list(SPECS), answers=answers()))
    run_id = a_run(world)
    reads: list[int] = []
    original = world.journal.events

    def counted(run: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
        reads.append(after)
        return original(run, after, limit)

    world.journal.events = counted  # type: ignore[method-assign]
    return world, run_id, reads


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.001)


async def settle() -> None:
    for _ in range(20):  # a woken reader is ready on the next turn of the loop: give it several
        await asyncio.sleep(0)


async def with_hub(hub: EventHub, body: Callable[[], Awaitable[None]]) -> None:
    listening = asyncio.create_task(hub.listen())
    try:
        await body()
    finally:
        listening.cancel()
        await hub.close()


def test_a_notice_wakes_the_reader_long_before_its_poll_and_one_for_what_was_read_costs_nothing() -> None:
    world, run_id, reads = a_world()
    wakeups = FakeWakeups(live=True)
    hub = EventHub(world.app, poll_seconds=LONG, wakeups=wakeups, fallback_seconds=LONG)
    got: list[int] = []

    async def watch() -> None:
        async for event in hub.follow(run_id, 0):
            got.append(event.seq)

    async def body() -> None:
        await wakeups.listening.wait()
        watcher = asyncio.create_task(watch())
        await until(lambda: len(reads) == 1)  # the reader's first look: it now waits on its poll
        commit_events(world, run_id, 3)
        wakeups.notice(run_id, 3)
        await until(lambda: got == [1, 2, 3])
        seen = len(reads)
        wakeups.notice(run_id, 2)  # late, or repeated: already read
        wakeups.notice("run_other", 9)  # nobody watches it here
        await settle()
        assert len(reads) == seen, "no read for a notice of what was already read"
        watcher.cancel()

    asyncio.run(with_hub(hub, body))


def test_when_the_notices_stop_the_readers_poll_at_the_fast_pace_again() -> None:
    world, run_id, reads = a_world()
    wakeups = FakeWakeups(live=True)
    hub = EventHub(world.app, poll_seconds=0.001, wakeups=wakeups, fallback_seconds=LONG)
    got: list[int] = []

    async def watch() -> None:
        async for event in hub.follow(run_id, 0):
            got.append(event.seq)

    async def body() -> None:
        await wakeups.listening.wait()
        watcher = asyncio.create_task(watch())
        await until(lambda: len(reads) == 1)
        commit_events(world, run_id, 2)  # and its notice lost with the connection
        wakeups.set_live(False)
        await until(lambda: got == [1, 2])
        commit_events(world, run_id, 1)  # no notice at all: the fast poll finds it
        await until(lambda: got == [1, 2, 3])
        watcher.cancel()

    asyncio.run(with_hub(hub, body))


def test_an_idle_stream_gets_keep_alive_beats_and_keeps_its_place() -> None:
    world, run_id, _ = a_world()
    commit_events(world, run_id, 2)
    hub = EventHub(world.app, poll_seconds=0.001)

    async def body() -> None:
        batches = hub.batches(run_id, 1, idle=0.005)
        try:
            assert [e.seq for e in await anext(batches)] == [2]
            assert await anext(batches) == [], "a beat when nothing came"
            commit_events(world, run_id, 2)
            seqs: list[int] = []
            while len(seqs) < 2:
                seqs += [e.seq for e in await anext(batches)]
            assert seqs == [3, 4]
        finally:
            await batches.aclose()

    asyncio.run(with_hub(hub, body))


@given(run_id=st.text(min_size=1, max_size=80), seq=st.integers(min_value=0, max_value=10**18 - 1))
def test_a_notice_payload_parses_back(run_id: str, seq: int) -> None:
    assert parse(f"{run_id}:{seq}") == (run_id, seq)


@given(payload=st.text(max_size=100))
def test_any_payload_is_ignored_or_read_as_sent(payload: str) -> None:
    found = parse(payload)  # never raises
    if found is not None:
        run_id, seq = found
        assert payload.startswith(f"{run_id}:") and int(payload[len(run_id) + 1 :]) == seq


def test_a_server_sent_event_stream_outlives_a_silence_longer_than_its_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A regression: the stream's keep-alive timeout once closed the hub's generator, so the first
    quiet spell longer than a heartbeat ended the stream (the client saw a broken chunked body)."""
    from opsmith.api.routes import runs as run_routes

    monkeypatch.setattr(run_routes, "SSE_HEARTBEAT", 0.005)
    world, run_id, _ = a_world()
    commit_events(world, run_id, 1)
    hub = EventHub(world.app, poll_seconds=0.001)

    async def body() -> None:
        stream = run_routes._sse(hub, run_id, 0)
        try:
            assert "id: 1\n" in await anext(stream)
            assert await anext(stream) == ": keep-alive\n\n"
            assert await anext(stream) == ": keep-alive\n\n"
            commit_events(world, run_id, 1)
            chunk = await anext(stream)
            while chunk.startswith(":"):
                chunk = await anext(stream)
            assert "id: 2\n" in chunk
        finally:
            await stream.aclose()

    asyncio.run(with_hub(hub, body))

"""Live run events for any number of watchers: one database cursor per watched run, fanned out.

Events are committed by whoever drives the run (holds its lease): this process, another API
replica, or a CLI in another terminal. So the source of truth is the run journal, read with a
cursor on the event's sequence number (an indexed range read). On SQLite, which has no
notification across processes, it is polled every `api.event_poll_seconds`. On PostgreSQL an
`EventWakeups` (LISTEN) wakes the run's reader as soon as a commit carries its events, and the
poll only backs it up, every `api.event_fallback_seconds` while the notices flow. One reader per
watched run, not per client, keeps a hundred watchers at the cost of one.

A watcher says which sequence number it saw last. It joins the live feed first, then reads what it
missed from the journal, and skips anything at or below what it has already sent: nothing lost,
nothing twice. A watcher too slow to keep up is dropped; it reconnects with its last number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from opsmith.bootstrap import App
from opsmith.engine.events import RunEvent
from opsmith.ports import EventWakeups
from opsmith.services.reads import last_seq, run_events, run_state

_log = logging.getLogger(__name__)

PAGE = 500
QUEUE_LIMIT = 20_000


class Dropped(Exception):
    """The watcher fell too far behind; it should reconnect from its last sequence number."""


@dataclass
class _Watch:
    last: int
    queues: set[asyncio.Queue[RunEvent | None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    nudge: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    def __init__(
        self,
        app: App,
        poll_seconds: float,
        *,
        wakeups: EventWakeups | None = None,
        fallback_seconds: float = 5.0,
    ) -> None:
        self._app = app
        self._poll = poll_seconds
        self._wakeups = wakeups
        self._fallback = max(poll_seconds, fallback_seconds)
        self._watches: dict[str, _Watch] = {}

    async def listen(self) -> None:
        """Until cancelled: wake the reader of a run when a notice says it has new events (nothing
        to do without wake-ups; the readers poll)."""
        if self._wakeups is not None:
            await self._wakeups.listen(self._wake)

    def _wake(self, run_id: str | None, seq: int) -> None:
        if run_id is None:  # the notices started or stopped: anything may have been missed
            for watch in self._watches.values():
                watch.nudge.set()
        elif (woken := self._watches.get(run_id)) is not None and seq > woken.last:
            woken.nudge.set()

    def _pause(self) -> float:
        return self._fallback if self._wakeups is not None and self._wakeups.live else self._poll

    @property
    def watched(self) -> int:
        return sum(len(w.queues) for w in self._watches.values())

    async def follow(self, run_id: str, after: int) -> AsyncGenerator[RunEvent, None]:
        """Every event of the run after `after`, then each new one as it is committed, until the
        caller stops. UnknownRunError first if there is no such run."""
        batches = self.batches(run_id, after)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def batches(
        self, run_id: str, after: int, *, idle: float | None = None
    ) -> AsyncGenerator[list[RunEvent], None]:
        """As `follow`, in batches: what is already there comes at once (a stream writes it as one
        chunk), so a watcher catching up on 20,000 events does not pay for each one alone. With
        `idle`, an empty batch after that many seconds without events (a stream's keep-alive)."""
        run_state(self._app, run_id)
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        watch = self._watches.get(run_id)
        if watch is None:
            watch = self._watches[run_id] = _Watch(last=last_seq(self._app, run_id))
            watch.task = asyncio.create_task(self._poller(run_id, watch), name=f"events-{run_id}")
        watch.queues.add(queue)
        joined_at = watch.last
        sent = min(after, joined_at)  # a number past the newest event means nothing yet seen after it
        try:
            while sent < joined_at:  # what was committed before we joined, from the journal
                missed = run_events(self._app, run_id, after=sent, limit=min(PAGE, joined_at - sent))
                if not missed:
                    break
                yield missed
                sent = missed[-1].seq
            while True:
                try:
                    # Timed out here, inside: a caller's timeout around the generator would close it.
                    async with asyncio.timeout(idle):
                        items = [await queue.get()]
                except TimeoutError:
                    yield []
                    continue
                while not queue.empty() and len(items) < PAGE:
                    items.append(queue.get_nowait())
                if None in items:
                    raise Dropped(f"fell behind on run {run_id}")
                fresh = [e for e in items if e is not None and e.seq > sent]
                if fresh:
                    yield fresh
                    sent = fresh[-1].seq
        finally:
            watch.queues.discard(queue)
            if not watch.queues and self._watches.get(run_id) is watch:
                del self._watches[run_id]
                if watch.task is not None:
                    watch.task.cancel()

    async def _poller(self, run_id: str, watch: _Watch) -> None:
        while True:
            watch.nudge.clear()  # before the read: a notice that comes during it wakes the next one
            try:
                fresh = run_events(self._app, run_id, after=watch.last, limit=PAGE)
            except Exception:  # a busy or briefly unreadable database: the next poll tries again
                _log.warning("could not read the events of run %s", run_id, exc_info=True)
                fresh = []
            for event in fresh:
                watch.last = event.seq
                for queue in list(watch.queues):
                    try:
                        queue.put_nowait(event)
                    except asyncio.QueueFull:
                        _drop(queue)
            if len(fresh) < PAGE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.nudge.wait(), self._pause())

    async def close(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        for watch in self._watches.values():
            for queue in watch.queues:
                _drop(queue)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._watches.clear()


def _drop(queue: asyncio.Queue[RunEvent | None]) -> None:
    # Emptied, then marked: the watcher reads the mark next and reconnects from its last number.
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)

"""What a long-lived opsmith process does besides answering requests: it drives the runs it starts
in the background, keeps the servers as operators want them, sweeps timed-out gates, and takes
over runs whose driving process died.

Each duty is one use case over the same services as the CLI: a run started here passes `may_run`,
a take-over passes `resume_run`'s checks (the plan still as approved, idempotent steps only
re-run), and a run started by a CLI in another terminal is only watched, never driven twice: the
lease decides who drives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opsmith.bootstrap import App
from opsmith.domain.identity import Identity
from opsmith.engine.local import PAUSE
from opsmith.engine.state import RunState
from opsmith.errors import OpsmithError
from opsmith.ports import ServerHost
from opsmith.services.discovery import off_names, running_servers
from opsmith.services.running import Outcome, Started, driverless, resume_run, sweep

_log = logging.getLogger(__name__)

Drive = Callable[[Started], Coroutine[Any, Any, Outcome]]
T = TypeVar("T")


@dataclass
class Drivers:
    """The runs this process drives, each an asyncio task holding the run's lease."""

    tasks: dict[str, asyncio.Task[Outcome]] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    async def launch(self, drive: Drive) -> RunState:
        """Begin `drive` and return the run as soon as it exists; it goes on in the background.
        A refusal (not approved, no permission...) is raised here, before anything runs; so is a
        drive that ended without starting (a run that only needed a person's answer)."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[RunState] = loop.create_future()

        def on_started(state: RunState) -> None:
            if not started.done():
                started.set_result(state)

        task: asyncio.Task[Outcome] = loop.create_task(drive(on_started))
        either: list[asyncio.Future[Any]] = [task, started]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            _, ended, _ = task.result()  # raises the refusal, if that is how it ended
            return ended
        state = started.result()
        self.tasks[state.run_id] = task

        def finished(done: asyncio.Task[Outcome]) -> None:
            self._finished(state.run_id, done)

        task.add_done_callback(finished)
        return state

    async def soon(self, work: Coroutine[Any, Any, T], *, wait: float) -> T | None:
        """`work`'s result if it ends within `wait` seconds (its error too); else None, and it goes
        on in the background (a rollback of real changes may take minutes)."""
        task = asyncio.get_running_loop().create_task(work)
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result()
        self.background.add(task)
        task.add_done_callback(self._background_done)
        return None

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            _log.error("background work stopped on an error: %s", error, exc_info=error)

    def driving(self, run_id: str) -> bool:
        return run_id in self.tasks

    def _finished(self, run_id: str, task: asyncio.Task[Outcome]) -> None:
        if self.tasks.get(run_id) is task:
            del self.tasks[run_id]
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            _log.error("run %s stopped on an error: %s", run_id, error, exc_info=error)

    async def stop(self, app: App, grace: float) -> list[str]:
        """Ask every run driven here to pause (in-flight steps finish first), wait up to `grace`
        seconds, then cancel what is left: a later take-over treats those as a crash would be."""
        journal = app.journal()
        for run_id in list(self.tasks):
            journal.request(run_id, PAUSE)
        pending = list(self.tasks.values())
        if pending:
            await asyncio.wait(pending, timeout=grace)
        left = [run_id for run_id, task in self.tasks.items() if not task.done()]
        rest = [*self.tasks.values(), *self.background]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        return left


@dataclass
class Host:
    """One long-lived process: its servers, the runs it drives, who it acts as for its own duties."""

    app: App
    servers: ServerHost
    owner: Identity  # the account that runs the process: sweeps run as it
    drivers: Drivers = field(default_factory=Drivers)
    refused: dict[str, str] = field(default_factory=dict)  # take-overs refused, and why


async def keep_servers(host: Host) -> None:
    """Run exactly the servers operators want (configured, not stopped), and record what they
    offer, so plans made anywhere (a CLI in another terminal too) find the catalog fresh."""
    app = host.app
    off = off_names(app)
    wanted = [n for n in app.config.mcp_servers if n not in off]
    async with running_servers(app, wanted):
        pass  # opening records health and tools
    await host.servers.reconcile(wanted)


async def sweep_gates(host: Host) -> list[tuple[str, str]]:
    return await sweep(host.app, host.owner)


async def take_over_orphans(host: Host, identity_of: Callable[[str], Identity]) -> list[str]:
    """Go on with the runs nobody drives, each as the person who started it (their role today).
    A run only a person can decide about is left in needs_attention by resume itself; one whose
    take-over is refused (its plan changed, its starter lost the right) is logged once, not retried
    until its status changes."""
    app = host.app
    runs = app.journal()
    taken: list[str] = []
    for run_id in driverless(runs):
        if host.drivers.driving(run_id):
            continue
        status = runs.get(run_id).status.value
        if host.refused.get(run_id) == status:
            continue
        who = identity_of(runs.started_by(run_id))

        def drive(
            on_started: Started, run_id: str = run_id, who: Identity = who
        ) -> Coroutine[Any, Any, Outcome]:
            return resume_run(app, who, run_id, on_started=on_started)

        try:
            await host.drivers.launch(drive)
        except OpsmithError as refused:
            host.refused[run_id] = status
            _log.warning("did not take over run %s: %s", run_id, refused.message)
            continue
        taken.append(run_id)
    return taken


async def deliver_notifications(host: Host) -> int:
    """Send the notifications that are due (each claimed first: several servers may run this)."""
    from opsmith.services.notifications import deliver_due

    return len(await deliver_due(host.app))


async def every(seconds: float, duty: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `duty` every `seconds` until cancelled; one failing round is logged, the next one runs."""
    while True:
        try:
            await duty()
        except asyncio.CancelledError:
            raise
        except Exception:  # a background duty must outlive one bad round; it is logged with its cause
            _log.exception("%s failed; trying again in %.1f s", name, seconds)
        await asyncio.sleep(seconds)

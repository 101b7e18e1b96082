"""The worker's side of `executor: celery`: `opsmith worker` consumes step calls and makes them.

A message is only a key. The worker reads the call, and acts only if the call is still queued, its
run is running (or rolling back) with that very attempt of the step in flight, and the run's plan
is still the one approved: the same checks a driver makes before it goes on with a run. It claims
the call by compare-and-set (one worker wins; a duplicate, a redelivery or a late message finds it
claimed or done and does nothing), calls the tool through the same providers the local executor
uses (the MCP servers and the fleet, kept warm between calls), beats the call's heartbeat while it
calls, and commits the outcome. A call refused is settled as not made, so nobody waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsmith.distributed.outcome import of_error, of_result
from opsmith.domain.approval import plan_is_sealed
from opsmith.domain.errors import NotFoundError, OpsmithError, ToolCallError
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.step_calls import CallKind, CallStatus, StepCall, WorkerInfo
from opsmith.engine.local import StepTimedOut
from opsmith.engine.state import RunState, RunStatus, StepStatus, UndoStatus

if TYPE_CHECKING:
    from opsmith.bootstrap import App
    from opsmith.ports import StepCallStore, ToolProvider, ToolSource

log = logging.getLogger(__name__)

_DRIVEN = (RunStatus.RUNNING, RunStatus.ROLLING_BACK)
PLAN_FRESH = 10.0  # seconds a verified plan is trusted before it is read and verified again


OPEN_FRESH = 10.0  # seconds an opened server takes new calls before it is opened again


class _Opened:
    def __init__(self, provider: ToolProvider, release: asyncio.Event) -> None:
        self.provider = provider
        self.release = release
        self.at = time.monotonic()
        self.users = 0
        self.retired = False


class OpenServers:
    """The servers this worker calls, each opened once and shared by the calls of the next
    OPEN_FRESH seconds. An open reads the inventory in effect (whether the fleet is in use, and its
    hosts) from the database, synchronously: once per call it held up every call on the loop. An
    import still shows within OPEN_FRESH seconds, as a plan's approval does (PLAN_FRESH). Each
    open lives in a task of its own, which also closes it: the providers' task groups are left in
    the task that entered them."""

    def __init__(self, source: ToolSource) -> None:
        self._source = source
        self._open: dict[str, _Opened] = {}
        self._lock = asyncio.Lock()
        self._holders: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def use(self, server: str) -> AsyncIterator[ToolProvider]:
        opened = await self._get(server)
        opened.users += 1
        try:
            yield opened.provider
        finally:
            opened.users -= 1
            if opened.retired and opened.users == 0:
                opened.release.set()

    async def _get(self, server: str) -> _Opened:
        async with self._lock:
            found = self._open.get(server)
            if found is not None and time.monotonic() - found.at <= OPEN_FRESH:
                return found
            ready: asyncio.Future[ToolProvider] = asyncio.get_running_loop().create_future()
            release = asyncio.Event()
            holder = asyncio.create_task(self._hold(server, ready, release))
            self._holders.add(holder)
            holder.add_done_callback(self._holders.discard)
            opened = _Opened(await ready, release)
            self._open[server] = opened
            if found is not None:
                found.retired = True
                if found.users == 0:
                    found.release.set()
            return opened

    async def _hold(self, server: str, ready: asyncio.Future[ToolProvider], release: asyncio.Event) -> None:
        try:
            async with self._source.open([server]) as provider:
                ready.set_result(provider)
                await release.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            raise

    async def close(self) -> None:
        for opened in self._open.values():
            opened.release.set()
        self._open.clear()
        await asyncio.gather(*self._holders, return_exceptions=True)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StepWorker:
    """What a worker does with one message: claim the call, make it, commit its outcome. `handle`
    runs in a worker thread; the calls themselves run on `loop`, where the providers live."""

    def __init__(
        self,
        app: App,
        calls: StepCallStore,
        name: str,
        *,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._app = app
        self._calls = calls
        self.name = name
        self._loop = loop
        self._clock = clock or _now
        self._beat_every = app.config.celery.heartbeat_seconds
        self._verified: dict[tuple[str, str], tuple[float, Plan]] = {}  # sealed and approved, when
        self._lock = threading.Lock()
        self._servers = OpenServers(app.tools)

    async def close(self) -> None:
        await self._servers.close()

    def handle(self, key: str) -> str:
        """Act on one message; what came of it, in a word (for the log)."""
        call = self._calls.get(key)
        if call is None:
            return "unknown"
        if call.status is not CallStatus.QUEUED:
            return f"already {call.status.value}"
        plan, refusal = self._check(call)
        if refusal is not None or plan is None:
            why = ToolCallError(f"{call.server}/{call.tool} was not made: {refusal}")
            self._calls.settle_queued(key, of_error(why), self._clock())
            log.info("step call %s refused: %s", key, refusal)
            return "refused"
        claimed = self._calls.claim(key, self.name, self._clock())
        if claimed is None:
            return "taken"
        outcome = self._made(claimed, plan)
        if not self._calls.finish(key, self.name, outcome, self._clock()):
            log.warning("step call %s was settled by its driver before it finished here", key)
            return "given up"
        return "done"

    def _made(self, call: StepCall, plan: Plan) -> dict[str, Any]:
        future = asyncio.run_coroutine_threadsafe(self._call(call, plan), self._loop)
        while True:
            try:
                return future.result(timeout=self._beat_every)
            except concurrent.futures.TimeoutError:
                self._calls.beat(call.key, self.name, self._clock())

    async def _call(self, call: StepCall, plan: Plan) -> dict[str, Any]:
        from opsmith.services.tool_calls import PlannedFor

        try:
            async with self._servers.use(call.server) as pool:
                tools = PlannedFor(pool, self._app, plan.intent.environment)
                async with asyncio.timeout(call.timeout):
                    if call.finished_hosts:
                        result = await tools.call(
                            call.server, call.tool, call.args, finished=call.finished_hosts
                        )
                    else:
                        result = await tools.call(call.server, call.tool, call.args)
            return of_result(result)
        except TimeoutError:
            return of_error(
                StepTimedOut(f"{call.server}/{call.tool} did not answer within {call.timeout:g}s")
            )
        except OpsmithError as failure:
            return of_error(failure)
        except Exception as exc:  # a bug must still settle the call: its driver waits for it
            log.exception("step call %s", call.key)
            broken = f"the worker failed while making {call.server}/{call.tool}: {type(exc).__name__}"
            return of_error(ToolCallError(broken))

    # -- may it be made? --------------------------------------------------------------------------

    def _check(self, call: StepCall) -> tuple[Plan | None, str | None]:
        age = (self._clock() - call.created_at).total_seconds()
        if age > call.timeout + self._app.config.celery.lost_after_seconds:
            return None, f"the request is {age:.0f}s old, older than its step's timeout"
        try:
            state = self._app.journal().get(call.run_id)
        except NotFoundError:
            return None, f"run {call.run_id} is not in the database"
        refusal = _in_flight(state, call)
        if refusal is not None:
            return None, refusal
        plan = self._fresh_plan(state)
        if plan is None:
            try:
                plan = self._app.plans.get(state.plan_id)
            except NotFoundError:
                return None, f"plan {state.plan_id} is not in the database"
            refusal = self._plan_refusal(plan, state)
            if refusal is not None:
                return None, refusal
            with self._lock:
                self._verified[(plan.id, state.plan_hash)] = (time.monotonic(), plan)
        return plan, _step_refusal(plan, call)

    def _fresh_plan(self, state: RunState) -> Plan | None:
        # Reading and verifying the plan is most of a call's cost here: a plan verified for this
        # run's hash is trusted for PLAN_FRESH seconds (its driver checks it only when it starts).
        with self._lock:
            found = self._verified.get((state.plan_id, state.plan_hash))
        if found is None or time.monotonic() - found[0] > PLAN_FRESH:
            return None
        return found[1]

    def _plan_refusal(self, plan: Plan, state: RunState) -> str | None:
        """Why the run's plan may not be acted on now (None: it may): as a driver checks it."""
        if plan.status not in (PlanStatus.RUNNING, PlanStatus.FAILED):
            return f"plan {plan.id} is {plan.status.value}"
        sealed = plan_is_sealed(plan, self._app.seal)
        if not plan.hash == state.plan_hash == plan.content_hash() or not sealed:
            return f"plan {plan.id} changed since run {state.run_id} started from it"
        if plan.requires_approval:
            from opsmith.services.approvals import state_of

            if not state_of(self._app, plan, expired_count=True).approved:
                return f"plan {plan.id} is not covered by valid approvals"
        return None


def _step_refusal(plan: Plan, call: StepCall) -> str | None:
    """Why the call is not what the plan's step (or its undo) calls (None: it is)."""
    step = next((s for s in plan.steps if s.id == call.step_id), None)
    if step is None:
        return f"plan {plan.id} has no step {call.step_id}"
    wanted = (step.server, step.tool)
    if call.kind is CallKind.UNDO:
        wanted = (step.rollback.server, step.rollback.tool) if step.rollback else ("", "")
    if (call.server, call.tool) != wanted:
        return f"step {call.step_id} of plan {plan.id} does not call {call.server}/{call.tool}"
    return None


def _in_flight(state: RunState, call: StepCall) -> str | None:
    """Why this attempt of the step is not in flight in the run (None: it is)."""
    if state.status not in _DRIVEN:
        return f"run {state.run_id} is {state.status.value}"
    step = state.steps.get(call.step_id)
    if step is None:
        return f"run {state.run_id} has no step {call.step_id}"
    if call.kind is CallKind.UNDO:
        return None if step.undo is UndoStatus.CALLING else f"the undo of {call.step_id} is not being made"
    if step.status is not StepStatus.RUNNING or step.attempts != call.attempt:
        return f"attempt {call.attempt} of {call.step_id} is not running (the step is {step.status.value})"
    return None


class Heartbeat:
    """Says in `workers` that this worker is alive, every `every` seconds, until stopped."""

    def __init__(self, calls: StepCallStore, info: WorkerInfo, every: float) -> None:
        self._calls = calls
        self._info = info
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="opsmith-worker-heartbeat", daemon=True)

    def start(self) -> None:
        self._calls.register_worker(self._info)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._calls.remove_worker(self._info.name)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._calls.beat_worker(self._info.name, _now())
            except OpsmithError as failure:
                log.warning("worker heartbeat: %s", failure.message)


def run_worker(app: App, *, name: str, concurrency: int) -> None:
    """Consume step calls until stopped (SIGTERM or SIGINT: Celery's warm shutdown)."""
    from opsmith.bootstrap import serving
    from opsmith.distributed.broker import ACKS_LATE, QUEUE, TASK, celery_app

    calls = app.step_calls
    assert calls is not None  # wired whenever executor is celery
    served, host = serving(app)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="opsmith-worker-calls", daemon=True)
    runner.start()
    worker = StepWorker(served, calls, name, loop=loop)
    celery = celery_app(app.config.celery, app.environ)

    def step_call(key: str) -> None:
        log.info("step call %s: %s", key, worker.handle(key))

    celery.task(name=TASK, acks_late=ACKS_LATE, ignore_result=True)(step_call)
    now = _now()
    info = WorkerInfo(name, socket.gethostname(), os.getpid(), concurrency, now, now)
    beat = Heartbeat(calls, info, app.config.celery.heartbeat_seconds)
    beat.start()
    try:
        celery.worker_main(
            [
                "--quiet", "worker", "--pool=threads", f"--concurrency={concurrency}",
                "--prefetch-multiplier=1", f"--hostname={name}", f"--queues={QUEUE}", "--loglevel=WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]
        )  # fmt: skip
    finally:
        beat.stop()
        try:
            asyncio.run_coroutine_threadsafe(worker.close(), loop).result(timeout=30)
            asyncio.run_coroutine_threadsafe(host.close(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            runner.join(timeout=10)


def _now() -> datetime:
    return datetime.now(UTC)

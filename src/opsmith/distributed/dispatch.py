"""The driver's side of `executor: celery`: the engine as it is, with its step calls made by workers.

Whoever holds a run's lease (`opsmith run`, `opsmith serve`) runs the LocalExecutor: RBAC, the
evidence gates, arguments, retries, the audit and every commit stay where they are. Only the call
itself is handed over: `DispatchingTools` stores it as a `step_calls` row (keyed by run, step,
attempt and call), sends the key through the broker, and waits for the row to be `done`. Which
step and attempt a call is for, the engine says (`calling_step`, set around each step's call and
undo): two steps calling one tool with equal arguments at once are never taken for each other.

While it waits it reads the rows (one query for all calls in flight), and
- asks again for a call no worker claimed within `resend_after_seconds` (its message may have been
  lost with a broker restart; the claim is a compare-and-set, so asking twice is harmless);
- settles a claimed call whose worker went silent for `lost_after_seconds` as lost: the call may
  have run. An idempotent step then gets a retryable "may have run" error, so the engine's retry
  rules try it again (a new attempt, a new key); a step that is not idempotent stops the run as a
  crash of its driver would, and `engine.recovery` decides its fate: needs_attention.
A call the driver stops waiting for (a timeout, the run stopping) that no worker claimed yet is
settled there and then, so a message delivered later does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsmith.config import CeleryConfig
from opsmith.distributed.outcome import decoded, of_error
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import ConnectionLostError, OpsmithError, ToolCallError
from opsmith.domain.identity import Identity, Permission
from opsmith.domain.journal import AuditNote
from opsmith.domain.plan import Plan, Step
from opsmith.domain.results import ToolResult
from opsmith.domain.servers import ServerStatus
from opsmith.domain.step_calls import CallingStep, CallKind, CallStatus, StepCall, call_key, calling_step
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.local import LocalExecutor
from opsmith.engine.recovery import recover
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import RunState
from opsmith.ports import Broker, Executor, Listener, Progress, RunJournal, StepCallStore, ToolProvider

log = logging.getLogger(__name__)

POLL_SECONDS = 0.01  # between two reads of the calls in flight that are done
SCAN_SECONDS = 0.25  # between two reads of all of them
LOST = "lost"  # the outcome kind of a call whose worker went silent


class WorkerLost(Exception):
    """A worker went silent while calling a step that is not idempotent: the driver stops, as if it
    had crashed, and recovers the run by the crash rule. Not an OpsmithError on purpose: the engine
    must not take it for the call's failure."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.message = message


@dataclass
class _Waiting:
    call: StepCall
    done: asyncio.Future[StepCall]


class DispatchingTools:
    """A ToolProvider whose step calls are made by workers; `inner` answers the catalog, and makes
    any call the engine does not make for one of the plan's steps or undos (there is none today)."""

    def __init__(
        self,
        inner: ToolProvider,
        watch: CallWatch,
        *,
        plan: Plan,
        settings: ExecutionSettings,
    ) -> None:
        self._inner = inner
        self._watch = watch
        self._steps = {s.id: s for s in plan.steps}
        self._settings = settings
        self._counts: dict[tuple[str, int], int] = {}

    @property
    def catalog(self) -> Catalog:
        return self._inner.catalog

    def statuses(self) -> list[ServerStatus]:
        return self._inner.statuses()

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
        finished: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ToolResult:
        target = self._target(server, tool)
        if target is None:
            return await self._inner.call(
                server, tool, arguments, timeout=timeout, progress=progress, finished=finished
            )
        step, calling = target
        stored = self._request(step, calling, server, tool, arguments, finished)
        settled = await self._watch.made(stored)
        return self._answer(step, calling.kind, settled)

    # -- which call this is -----------------------------------------------------------------------

    def _target(self, server: str, tool: str) -> tuple[Step, CallingStep] | None:
        """The step the engine says it makes this call for (`calling_step`, set around each step's
        call and undo), if this is that step's tool (or its undo's)."""
        calling = calling_step.get()
        if calling is None:
            return None
        step = self._steps.get(calling.step_id)
        if step is None:
            return None
        wanted = (step.server, step.tool)
        if calling.kind is CallKind.UNDO:
            if step.rollback is None:
                return None
            wanted = (step.rollback.server, step.rollback.tool)
        return (step, calling) if (server, tool) == wanted else None

    def _request(
        self,
        step: Step,
        calling: CallingStep,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        finished: Mapping[str, Mapping[str, Any]] | None,
    ) -> StepCall:
        if calling.kind is CallKind.CALL:
            counted = (step.id, calling.attempt)
            n = self._counts.get(counted, 0) + 1
            self._counts[counted] = n
            timeout = step.timeout if step.timeout is not None else self._settings.step_timeout
        else:
            n = secrets.randbelow(2**48)
            timeout = self._settings.step_timeout
        now = self._watch.now()
        return StepCall(
            key=call_key(calling.run_id, step.id, calling.attempt, calling.kind, n),
            run_id=calling.run_id,
            step_id=step.id,
            attempt=calling.attempt,
            kind=calling.kind,
            server=server,
            tool=tool,
            args=arguments,
            finished_hosts={h: dict(row) for h, row in finished.items()} if finished else None,
            timeout=timeout,
            created_at=now,
            sent_at=now,
        )

    def _answer(self, step: Step, kind: CallKind, settled: StepCall) -> ToolResult:
        outcome = settled.outcome or {}
        if outcome.get("kind") == LOST:
            message = str(outcome.get("message"))
            if kind is CallKind.CALL and not step.idempotent:
                raise WorkerLost(step.id, message)
            # Retryable, and it may have been made: the engine retries only an idempotent step.
            raise ConnectionLostError(message, hint="the step runs again if it is idempotent")
        answer = decoded(outcome)
        if isinstance(answer, OpsmithError):
            raise answer
        return answer


class CallWatch:
    """The calls in flight of every run this process drives. The calls asked for at once are
    stored in one transaction, and those in flight are read in one query per tick (so ten runs at
    once cost the database what one does), each answered once its row is done. The database is
    used from a thread: the engine's loop goes on with the other steps while PostgreSQL answers."""

    def __init__(
        self,
        calls: StepCallStore,
        broker: Broker,
        celery: CeleryConfig,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.calls = calls
        self._broker = broker
        self._celery = celery
        self._clock = clock or _now
        self._waiting: dict[str, _Waiting] = {}
        self._unstored: dict[str, StepCall] = {}
        self._poller: asyncio.Task[None] | None = None
        self._storer: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        return self._clock()

    async def made(self, call: StepCall) -> StepCall:
        """The call once done: stored and sent, asked for again, or settled as lost."""
        waiting = _Waiting(call, asyncio.get_running_loop().create_future())
        self._waiting[call.key] = waiting
        self._unstored[call.key] = call
        if self._storer is None or self._storer.done():
            self._storer = asyncio.create_task(self._store())
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            return await waiting.done
        except BaseException:
            # Timed out, or the run stops: a call no worker took yet is never made after this.
            if self._unstored.pop(call.key, None) is None:  # else never stored nor sent
                self._abandon(call)
            raise
        finally:
            self._waiting.pop(call.key, None)

    def _abandon(self, call: StepCall) -> None:
        abandoned = ToolCallError(f"{call.server}/{call.tool} was not made: its driver stopped waiting")
        try:
            self.calls.settle_queued(call.key, of_error(abandoned), self._clock())
        except OpsmithError as failure:
            # Left queued: a worker that gets it refuses it, as its step is no longer running.
            log.warning("settling step call %s: %s", call.key, failure.message)

    async def _store(self) -> None:
        """Store what was asked for since the last time, in one transaction, then send it."""
        while self._unstored:
            batch = list(self._unstored.values())
            self._unstored.clear()
            try:
                stored = await asyncio.to_thread(self.calls.request_many, batch)
            except OpsmithError as failure:
                for call in batch:
                    waiting = self._waiting.get(call.key)
                    if waiting is not None and not waiting.done.done():
                        waiting.done.set_exception(failure)
                continue
            keys: list[str] = []
            for call in batch:
                row = stored[call.key]
                waiting = self._waiting.get(call.key)
                if waiting is None:  # given up on while it was being stored
                    if row.status is CallStatus.QUEUED:
                        self._abandon(row)
                elif row.status is CallStatus.DONE:
                    waiting.done.set_result(row)
                elif row.status is CallStatus.QUEUED:
                    keys.append(call.key)
            if keys:
                self._sending(keys)

    def _sending(self, keys: list[str]) -> None:
        task = asyncio.create_task(asyncio.to_thread(self._send, keys))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _send(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self._broker.send(key)
            except OpsmithError as failure:
                # These and the rest are asked for again after resend_after_seconds, once the
                # broker is back: not one send timeout each while it is down.
                log.warning("%s", failure.message)
                return

    def _resend(self, key: str) -> None:
        self.calls.resent(key, self._clock())
        self._sending([key])

    async def _poll(self) -> None:
        scanned = time.monotonic()
        while self._waiting:
            await asyncio.sleep(POLL_SECONDS)
            keys = [key for key in self._waiting if key not in self._unstored]
            # Only the calls done are read at each tick; all of them now and then, for the queued
            # to ask for again and the claimed whose worker went silent (both counted in seconds).
            scan = time.monotonic() - scanned >= SCAN_SECONDS
            only = None if scan else CallStatus.DONE
            try:
                rows = await asyncio.to_thread(self.calls.get_many, keys, status=only)
                if scan:
                    scanned = time.monotonic()
                self._look(rows)
            except OpsmithError as failure:
                log.warning("reading the step calls in flight: %s", failure.message)

    def _look(self, rows: Mapping[str, StepCall]) -> None:
        now = self._clock()
        for key, row in rows.items():
            waiting = self._waiting.get(key)
            if waiting is None or waiting.done.done():
                continue
            if row.status is CallStatus.DONE:
                waiting.done.set_result(row)
            elif row.status is CallStatus.QUEUED:
                if (now - row.sent_at).total_seconds() > self._celery.resend_after_seconds:
                    self._resend(key)
            else:
                self._lost_if_silent(row, now)

    def _lost_if_silent(self, row: StepCall, now: datetime) -> None:
        since = row.silent_since()
        assert since is not None  # claimed, so claimed by a worker
        assert row.worker is not None
        silent = (now - since).total_seconds()
        if silent <= self._celery.lost_after_seconds:
            return
        outcome = {
            "ok": False,
            "kind": LOST,
            "message": (
                f"worker {row.worker} went silent during {row.server}/{row.tool} (no heartbeat for"
                f" {silent:.0f}s): the call may or may not have been made"
            ),
            "retryable": True,
        }
        # If the worker finishes at this very moment, one of the two wins; the next look reads it.
        self.calls.finish(row.key, row.worker, outcome, now)


class DistributedExecutor:
    """The Executor of `executor: celery`: the LocalExecutor over DispatchingTools, and the crash
    rule applied when a worker went silent during a step that is not idempotent."""

    def __init__(
        self,
        inner: LocalExecutor,
        *,
        plan: Plan,
        runs: RunJournal,
        identity: Identity,
        settings: ExecutionSettings,
        listener: Listener | None,
    ) -> None:
        self._inner = inner
        self._plan = plan
        self._runs = runs
        self._identity = identity
        self._settings = settings
        self._listener = listener
        self._failure: str | None = None

    @property
    def owner(self) -> str:
        return self._inner.owner

    @owner.setter
    def owner(self, value: str) -> None:
        self._inner.owner = value

    @property
    def state(self) -> RunState | None:
        return self._inner.state

    @state.setter
    def state(self, value: RunState | None) -> None:
        self._inner.state = value

    @property
    def failure(self) -> str | None:
        return self._failure or self._inner.failure

    def mark_touched(self, step_id: str) -> None:
        self._inner.mark_touched(step_id)

    async def execute(self, state: RunState) -> RunState:
        try:
            return await self._inner.execute(state)
        except WorkerLost as lost:
            return self._recovered(lost)

    async def fail_and_rollback(self, why: str) -> RunState:
        try:
            return await self._inner.fail_and_rollback(why)
        except WorkerLost as lost:
            return self._recovered(lost)

    def _recovered(self, lost: WorkerLost) -> RunState:
        """What a new driver would make of the run after a crash: `engine.recovery`'s rule. The
        inner executor let the lease go on its way out; it is taken again to record that."""
        state = self._inner.state
        assert state is not None  # execute() set it
        owner = self._inner.owner
        claimed = self._runs.claim(state.run_id, owner, seconds=self._settings.lease_seconds)
        if claimed is None:
            return state  # another process drives the run now; it recovers it
        try:
            recovered = recover(self._plan, claimed)
            now = _now()
            events = [
                RunEvent(
                    run_id=state.run_id,
                    at=now,
                    type=EventType.STEP_INTERRUPTED,
                    step_id=step_id,
                    message=_interrupted(step_id, lost, rerun=step_id in recovered.rerun),
                )
                for step_id in [*recovered.rerun, *recovered.held]
            ]
            held = ", ".join(recovered.held)
            why = (
                f"run {state.run_id} needs attention: {held} may or may not have done its work"
                f" ({lost.message}); check it, then: opsmith resume {state.run_id} --retry STEP"
                " | --skip STEP | --rollback STEP"
            )
            if recovered.held:
                events.append(
                    RunEvent(run_id=state.run_id, at=now, type=EventType.RUN_ATTENTION, message=why)
                )
                self._failure = why
            note = AuditNote(
                self._identity.user,
                "run.worker_lost",
                state.run_id,
                {"step": lost.step_id, "held": recovered.held},
            )
            stored = self._runs.commit(
                recovered.state,
                owner=owner,
                events=events,
                audits=[note],
                lease_seconds=self._settings.lease_seconds,
            )
            if self._listener is not None:
                for event in stored:
                    self._listener(event)
            self._inner.state = recovered.state
            return recovered.state
        finally:
            self._runs.release(state.run_id, owner)


def _interrupted(step_id: str, lost: WorkerLost, *, rerun: bool) -> str:
    if step_id == lost.step_id:
        return f"{lost.message}; not idempotent: a person decides"
    # Calls in flight beside it were stopped with the driver, as a crash stops them.
    return (
        "stopped with the run; runs again"
        if rerun
        else "stopped with the run: it may or may not have done its work"
    )


class DistributedExecutors:
    """The ExecutorFactory of `executor: celery`."""

    def __init__(self, calls: StepCallStore, broker: Broker, celery: CeleryConfig) -> None:
        self._watch = CallWatch(calls, broker, celery)

    def __call__(
        self,
        plan: Plan,
        *,
        tools: ToolProvider,
        runs: RunJournal,
        identity: Identity,
        permission: Permission,
        settings: ExecutionSettings | None = None,
        auto_validate: bool = False,
        listener: Listener | None = None,
        owner: str | None = None,
    ) -> Executor:
        settings = settings or ExecutionSettings()
        dispatching = DispatchingTools(tools, self._watch, plan=plan, settings=settings)
        inner = LocalExecutor(
            plan,
            tools=dispatching,
            runs=runs,
            identity=identity,
            permission=permission,
            settings=settings,
            auto_validate=auto_validate,
            listener=listener,
            owner=owner,
        )
        return DistributedExecutor(
            inner, plan=plan, runs=runs, identity=identity, settings=settings, listener=listener
        )


def _now() -> datetime:
    return datetime.now(UTC)

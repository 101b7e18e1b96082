"""The local executor: runs an approved plan with asyncio, committing every state change.

Order of a step: RBAC for this tool call, the compliance evidence that guards it, its arguments
resolved from earlier outputs, the call (with a timeout) and retries for retryable errors, the result
recorded. Each change is one transaction holding the new state, its events and the audit entry of
the call, so a crash never leaves one without the others. A failure stops new steps; what completed
is undone newest first (true LIFO).

The run's state lives in `self.state` and is only replaced synchronously (no await between reading
and writing it), so the step tasks and the scheduling loop never lose each other's changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsmith.domain.call_environment import foreign_environment
from opsmith.domain.errors import OperationError, OpsmithError, ServerUnavailableError, ToolCallError
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.identity import Action, Identity, Permission, decide
from opsmith.domain.journal import AuditNote
from opsmith.domain.plan import Plan, Step, ToolCall
from opsmith.domain.results import ToolResult
from opsmith.domain.step_calls import CallingStep, CallKind, calling_step
from opsmith.engine.conditions import unmet_expectations, unmet_when
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.evidence_gate import unmet_before
from opsmith.engine.fleet_undo import reach, sent_hosts
from opsmith.engine.outputs import settle_pause, step_output
from opsmith.engine.recovery import finished_hosts
from opsmith.engine.references import resolve
from opsmith.engine.retry import RetryPolicy, delay, should_retry
from opsmith.engine.rollback import broken_steps, held_undos, rollback_order, undo_call, unrecorded
from opsmith.engine.scheduler import Frontier, apply_result, gate_after, start_step
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import (
    Outputs,
    RunState,
    RunStatus,
    StepStatus,
    UndoStatus,
    with_fan_out,
    with_run_status,
    with_step_status,
    with_undo,
)
from opsmith.ports import RunJournal, ToolProvider
from opsmith.store.runs import LeaseLost, new_owner

Listener = Callable[[RunEvent], None]

PAUSE = "pause"
CANCEL = "cancel"
CANCEL_AND_ROLLBACK = "cancel+rollback"
PROGRESS_EVERY = 0.25  # seconds between two progress events of one step


class StepFailed(Exception):
    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.output = output


@dataclass(frozen=True)
class Settled:
    """How a step ended, for the scheduling loop to record: output or error, and its audit entries."""

    step_id: str
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    notes: list[AuditNote] = field(default_factory=list)
    skipped: bool = False  # its `when` conditions did not hold: it was never called


class StepTimedOut(OperationError):
    """One attempt of a tool call took longer than the step's timeout; it may have done its work."""

    retryable = True


class LocalExecutor:
    def __init__(
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
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self.plan = plan
        self._tools = tools
        self._runs = runs
        self._identity = identity
        self._permission = permission
        self._settings = settings or ExecutionSettings()
        self._auto_validate = auto_validate
        self._listener = listener
        self._rng = rng or random.Random()
        self.owner = owner or new_owner()
        self._failure: str | None = None
        self._requested: str | None = None
        self._touched: set[str] = set()  # steps whose tool was actually called
        self._steps = {s.id: s for s in plan.steps}
        self.state: RunState | None = None

    # -- driving a run ------------------------------------------------------------------------

    async def execute(self, state: RunState) -> RunState:
        """Run (or go on with) `state` under this executor's lease, renewed in the background, then
        roll back if it failed; the lease is let go whatever happens."""
        self.state = state
        beat = asyncio.create_task(self._heartbeat())
        try:
            if state.status in (RunStatus.ROLLING_BACK, RunStatus.FAILED):
                return await self.rollback()
            final = await self.run()
            if final.status is RunStatus.FAILED:
                final = await self.rollback()
            return final
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            self._runs.release(state.run_id, self.owner)

    async def fail_and_rollback(self, why: str) -> RunState:
        """Stop the run for `why` (a person's choice, a gate that timed out) and undo what completed."""
        self._failure = why
        current = self._current
        if current.status not in (RunStatus.FAILED, RunStatus.ROLLING_BACK):
            self._commit(
                with_run_status(current, RunStatus.FAILED),
                [],
                [self._note("run.state", {"status": "failed", "why": why})],
            )
        return await self.execute(self._current)

    def mark_touched(self, step_id: str) -> None:
        """The step's tool may have been called (by a process that died): undo it if it failed."""
        self._touched.add(step_id)

    async def run(self, state: RunState | None = None) -> RunState:
        """Drive the run until it succeeds, waits at a gate, pauses, is cancelled, or fails."""
        if state is not None:
            self.state = state
        current = self._current
        failed = [k for k, s in current.steps.items() if s.status is StepStatus.FAILED]
        if failed and self._failure is None:
            # Resumed after a failure that was not rolled back: it is still a failure.
            self._failure = f"step {failed[0]} failed: {current.step(failed[0]).error}"
        if current.status in (
            RunStatus.PENDING,
            RunStatus.AWAITING_VALIDATION,
            RunStatus.PAUSED,
            RunStatus.NEEDS_ATTENTION,
        ):
            first = current.status is RunStatus.PENDING
            self._commit(
                with_run_status(current, RunStatus.RUNNING),
                [self._event(EventType.RUN_STARTED, message=self._started_message(first))],
                started_by=self._identity.user,
            )
        running: dict[asyncio.Task[Settled], str] = {}
        frontier = Frontier(self.plan, self._current)
        # Steps a crash interrupted that may run again go first.
        again = [k for k, s in self._current.steps.items() if s.status is StepStatus.RETRY_WAIT]
        done: set[asyncio.Task[Settled]] = set()
        try:
            while True:
                # What finished and what starts next go into one commit: a chain costs one commit
                # per step, and a step is still recorded as running before its tool is called.
                current = self._current
                events: list[RunEvent] = []
                notes: list[AuditNote] = []
                changed: list[str] = []
                for task in done:
                    running.pop(task)
                    settled = task.result()  # a LeaseLost or a store error stops the run here
                    current = self._settle(current, settled, events, notes)
                    changed.append(settled.step_id)
                    if settled.ok or settled.skipped:
                        frontier.satisfied(settled.step_id)
                chosen: list[str] = []
                if self._may_schedule(current):
                    free = self._settings.max_parallel - len(running) - len(again)
                    chosen = again + frontier.take(max(free, 0))
                    again = []
                    now = _now()
                    for step_id in chosen:
                        current = start_step(self.plan, current, step_id, at=now)
                        events.append(self._event(EventType.STEP_STARTED, step_id, self._steps[step_id].name))
                if events or changed or chosen:
                    self._commit(current, events, notes, changed=changed + chosen)
                for step_id in chosen:
                    running[asyncio.create_task(self._step(self._steps[step_id]))] = step_id
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            if self._current.status is RunStatus.AWAITING_VALIDATION:
                return self._current
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return self._finish()

    def _started_message(self, first: bool) -> str:
        if first:
            return f"{self.plan.id}: {len(self.plan.steps)} steps"
        done = sum(1 for s in self._current.steps.values() if s.status is StepStatus.SUCCEEDED)
        return (
            f"{self.plan.id}: resumed by {self._identity.user}, {done} of {len(self.plan.steps)} steps done"
        )

    def _may_schedule(self, current: RunState) -> bool:
        return self._failure is None and self._requested is None and current.status is RunStatus.RUNNING

    def _settle(
        self, current: RunState, settled: Settled, events: list[RunEvent], notes: list[AuditNote]
    ) -> RunState:
        """The run with one step's final result; its events and audit entries added to the batch."""
        step_id = settled.step_id
        notes.extend(settled.notes)
        if settled.skipped:
            message = f"skipped: {settled.error}"
            events.append(self._event(EventType.STEP_SKIPPED, step_id, message))
            return with_step_status(current, step_id, StepStatus.SKIPPED, at=_now(), error=message)
        current = apply_result(
            current, step_id, ok=settled.ok, output=settled.output, error=settled.error, at=_now()
        )
        if not settled.ok:
            events.append(self._event(EventType.STEP_FAILED, step_id, settled.error or "failed"))
            if self._failure is None:
                self._failure = f"step {step_id} failed: {settled.error}"
            step = self._steps[step_id]
            if step_id in self._touched and step.changes_target and step.rollback is not None:
                # Its tool was called and may have changed the target: recorded with the failure, so
                # that a rollback another process resumes undoes it too.
                current = with_undo(current, step_id, UndoStatus.DUE)
            return current
        output = settled.output or {}
        events.append(self._event(EventType.STEP_SUCCEEDED, step_id, summarize(output), {"output": output}))
        if not gate_after(self.plan, step_id) or self._failure is not None:
            return current
        if self._auto_validate:
            who = f"validated by {self._identity.user} (auto-validate)"
            events.append(self._event(EventType.GATE_PASSED, step_id, who))
            return current
        deadline = datetime.now(UTC) + timedelta(seconds=self._settings.gate_timeout)
        waiting = with_run_status(current, RunStatus.AWAITING_VALIDATION)
        message = f"validate {step_id} to continue (by {deadline:%Y-%m-%d %H:%M} UTC, else rolled back)"
        events.append(self._event(EventType.GATE_WAITING, step_id, message))
        return waiting.model_copy(update={"gate_deadline": deadline})

    def _finish(self) -> RunState:
        current = self._current
        if self._failure is None and self._requested == PAUSE and current.status is RunStatus.RUNNING:
            paused = with_run_status(current, RunStatus.PAUSED)
            return self._commit(
                paused,
                [self._event(EventType.RUN_PAUSED, message="paused; resume: opsmith resume")],
                clear=True,
            )
        if self._failure is None and self._requested in (CANCEL, CANCEL_AND_ROLLBACK):
            return self._cancel(current)
        stuck = [k for k, s in current.steps.items() if s.status in (StepStatus.PENDING, StepStatus.READY)]
        if self._failure is None and stuck:
            # Nothing failed, yet steps never became ready: never call that a success.
            self._failure = f"steps never became ready: {', '.join(stuck)}"
        if self._failure is None:
            done = with_run_status(current, RunStatus.SUCCEEDED)
            return self._commit(
                done,
                [self._event(EventType.RUN_FINISHED, message="succeeded")],
                [self._note("run.state", {"status": "succeeded"})],
            )
        failed = with_run_status(current, RunStatus.FAILED)
        return self._commit(failed, [], [self._note("run.state", {"status": "failed", "why": self._failure})])

    def _cancel(self, current: RunState) -> RunState:
        now = _now()
        for step_id, s in current.steps.items():
            if s.status in (StepStatus.PENDING, StepStatus.READY, StepStatus.RETRY_WAIT):
                current = with_step_status(current, step_id, StepStatus.CANCELLED, at=now)
        if self._requested == CANCEL_AND_ROLLBACK:
            self._failure = "cancelled; undoing what completed"
            return self._commit(with_run_status(current, RunStatus.FAILED), [], clear=True)
        cancelled = with_run_status(current, RunStatus.CANCELLED)
        return self._commit(
            cancelled,
            [self._event(EventType.RUN_FINISHED, message="cancelled")],
            [self._note("run.state", {"status": "cancelled"})],
            clear=True,
        )

    # -- one step -----------------------------------------------------------------------------

    async def _step(self, step: Step) -> Settled:
        """Call the step's tool until it succeeds or fails for good. Retries commit each attempt's
        end; the final result is committed by the scheduling loop with whatever starts next."""
        while True:
            outcome = await self._attempt(step)
            if isinstance(outcome, Settled):
                return outcome
            await asyncio.sleep(outcome)
            if self._failure is not None or self._requested in (CANCEL, CANCEL_AND_ROLLBACK):
                return Settled(step.id, ok=False, error="not retried: the run is stopping")
            current = self._current
            attempt = current.step(step.id).attempts + 1
            self._commit(
                start_step(self.plan, current, step.id, at=_now()),
                [self._event(EventType.STEP_STARTED, step.id, f"{step.name} (attempt {attempt})")],
                changed=[step.id],
            )

    async def _attempt(self, step: Step) -> Settled | float:
        """One attempt: the step's result, or the delay before the next attempt."""
        skip = unmet_when(step, Outputs(self._current))
        if skip:
            return Settled(step.id, ok=False, error="; ".join(skip), skipped=True)
        try:
            args = self._prepare(step, self._current)
        except StepFailed as failure:
            return Settled(step.id, ok=False, error=failure.message)
        first = time.perf_counter()
        self._touched.add(step.id)
        earlier: list[AuditNote] = []  # checks that were not yet true, each call audited
        while True:
            started = time.perf_counter()
            outcome = await self._call(step, args)
            if isinstance(outcome, OpsmithError):
                error = outcome
                break
            output = step_output(step, outcome, args)
            unmet = unmet_expectations(step, output, Outputs(self._current))
            if not unmet:
                note = self._call_note(step, args, ok=True, summary=summarize(output), started=started)
                return Settled(step.id, ok=True, output=output, notes=[*earlier, note])
            why = "expected " + "; ".join(unmet)
            pause = settle_pause(step.settle, time.perf_counter() - first)
            if pause is None or self._failure is not None or self._requested in (CANCEL, CANCEL_AND_ROLLBACK):
                note = self._call_note(step, args, ok=False, summary=why, started=started)
                return Settled(step.id, ok=False, output=output, error=why, notes=[*earlier, note])
            # A read-only check of something still settling (pods starting): ask again, as kubectl wait does.
            earlier.append(self._call_note(step, args, ok=False, summary=f"not yet: {why}", started=started))
            await asyncio.sleep(pause)
        note = self._call_note(step, args, ok=False, summary=error.message, started=started)
        attempt = self._current.step(step.id).attempts
        repeatable = step.idempotent or not error.retryable or _safe_to_repeat(error)
        policy = self._retry(step)
        if repeatable and should_retry(policy, attempt, error.retryable):
            wait = delay(policy, attempt, self._rng.random())
            waiting = apply_result(
                self._current, step.id, ok=False, error=error.message, at=_now(), retry=True
            )
            data = {"attempt": attempt, "delay": wait}
            message = f"attempt {attempt} failed: {error.message}"
            self._commit(
                waiting,
                [self._event(EventType.STEP_RETRYING, step.id, message, data)],
                [*earlier, note],
                changed=[step.id],
            )
            return wait
        # What a failed call reported (an error result's structured content) is kept: its undo may need it.
        return Settled(
            step.id, ok=False, output=_reported(error), error=error.message, notes=[*earlier, note]
        )

    async def _call(self, step: Step, args: dict[str, Any]) -> ToolResult | OpsmithError:
        progress = _ProgressEvents(self, step.id)
        # Hosts an interrupted attempt finished (recorded with the step) are not contacted again.
        finished = finished_hosts(step, self._current.step(step.id))
        outcome: ToolResult | OpsmithError
        attempt = self._current.step(step.id).attempts
        token = calling_step.set(CallingStep(self._current.run_id, step.id, attempt, CallKind.CALL))
        try:
            # A timeout scope, not wait_for: wait_for wraps the call in a task of its own, one more
            # trip through the event loop for every step.
            async with asyncio.timeout(self._timeout(step)):
                if finished:
                    outcome = await self._tools.call(
                        step.server, step.tool, args, progress=progress, finished=finished
                    )
                else:
                    # Nothing recorded: the very call a provider that never fans out has always had.
                    outcome = await self._tools.call(step.server, step.tool, args, progress=progress)
        except TimeoutError:
            outcome = StepTimedOut(
                f"{step.server}/{step.tool} did not answer within {self._timeout(step):g}s"
            )
        except OpsmithError as failure:
            outcome = failure
        finally:
            calling_step.reset(token)
            progress.stop()
        # Hosts that finished since the last progress commit: recorded also when the call failed or
        # timed out, so that the next attempt leaves them alone.
        progress.flush()
        if progress.lost is not None:
            raise progress.lost  # another process drives the run now: stop, as any commit would
        return outcome

    def _prepare(self, step: Step, current: RunState) -> dict[str, Any]:
        qualified = f"{step.server}/{step.tool}"
        decision = decide(
            self._identity,
            self._permission,
            Action.EXECUTE,
            environment=self.plan.intent.environment,
            risk=step.risk,
            tool=qualified,
        )
        if not decision.allowed:
            self._commit(
                self._current,
                [self._event(EventType.STEP_DENIED, step.id, decision.reason)],
                [self._note("tool.denied", {"step": step.id, "tool": qualified, "why": decision.reason})],
            )
            raise StepFailed(f"not allowed: {decision.reason}")
        outputs = Outputs(current)
        unmet = unmet_before(self.plan, step.id, outputs)
        if unmet:
            reasons = "; ".join(reason for _, reason in unmet)
            raise StepFailed(f"compliance not met before {step.id}: {reasons}")
        try:
            args = resolve(step.args, outputs, step_id=step.id, known_steps=self._steps.keys())
        except OpsmithError as error:
            raise StepFailed(error.message) from None
        foreign = foreign_environment(args, self.plan.intent.environment)
        if foreign is not None:
            # Judged, approved and allowed for one environment, the call would act in another.
            why = (
                f"{step.id} ({qualified}) names {foreign}, and the plan was made for"
                f" {self.plan.intent.environment or 'no environment'}"
            )
            self._commit(
                self._current,
                [self._event(EventType.STEP_DENIED, step.id, why)],
                [self._note("tool.denied", {"step": step.id, "tool": qualified, "why": why})],
            )
            raise StepFailed(f"not allowed: {why}")
        return args

    def _timeout(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self._settings.step_timeout

    def _retry(self, step: Step) -> RetryPolicy:
        if step.retry is None:
            return self._settings.retry
        return dataclasses.replace(self._settings.retry, **step.retry.model_dump(exclude_none=True))

    # -- rollback -----------------------------------------------------------------------------

    async def rollback(self, state: RunState | None = None) -> RunState:
        """Undo what changed the target, newest first: steps that failed part-way, then what completed,
        last completed first. A failing undo is recorded and the rest still run; an undo that waits
        for a person (see engine.recovery) stops the rollback in needs_attention."""
        if state is not None:
            self.state = state
        current = self._current
        if self._failure is None:
            failed = [k for k, s in current.steps.items() if s.status is StepStatus.FAILED]
            if failed:
                self._failure = f"step {failed[0]} failed: {current.step(failed[0]).error}"
        # A step that failed while changing the target may have left it half-changed (a rollout
        # that crash-loops): its own undo runs first, as the newest change.
        broken = broken_steps(self.plan, current, self._touched)
        order = rollback_order(self.plan, current)
        waiting = held_undos(current)
        if not order and not broken and not waiting:
            message = f"failed: {self._failure}; nothing to roll back"
            return self._commit(current, [self._event(EventType.RUN_FINISHED, message=message)])
        events = []
        if current.status is not RunStatus.ROLLING_BACK:
            current = with_run_status(current, RunStatus.ROLLING_BACK)
            undoing = ", ".join(broken + order)
            events.append(
                self._event(EventType.ROLLBACK_STARTED, message=f"undoing {undoing} (newest first)")
            )
        for step_id in broken:
            if current.step(step_id).undo is None:
                # Recorded, so that a rollback resumed by another process undoes it too.
                current = with_undo(current, step_id, UndoStatus.DUE)
        self._commit(current, events)
        if waiting:
            return self._attention(waiting)
        any_failed = False
        for step_id in broken:
            if unrecorded(self.plan, self._current, step_id) and (
                self._current.step(step_id).undo is not UndoStatus.CHOSEN
            ):
                self._hold(step_id)
                waiting.append(step_id)
                continue
            ok = await self._undo(step_id)
            any_failed = any_failed or not ok
        if waiting:
            # The undos that wait are of the newest changes: older ones are undone after them.
            return self._attention(waiting)
        for step_id in order:
            ok = await self._undo(step_id)
            any_failed = any_failed or not ok
        final = RunStatus.NEEDS_ATTENTION if any_failed else RunStatus.ROLLED_BACK
        return self._commit(
            with_run_status(self._current, final),
            [self._event(EventType.ROLLBACK_FINISHED, message=final.value)],
            [self._note("run.state", {"status": final.value})],
        )

    async def _undo(self, step_id: str) -> bool:
        """Call the step's undo; its start is committed first, so a crash mid-call is known later."""
        step = self._steps[step_id]
        try:
            call = undo_call(self.plan, self._current, step_id)
        except OpsmithError as error:
            return self._undone(step_id, ok=False, message=error.message)
        data: dict[str, Any] = {"tool": call.tool}
        assert step.rollback is not None  # undo_call raised otherwise
        left_out = [k for k in step.rollback.args if k not in call.args]
        if left_out:
            data["left_out"] = left_out
        hosts = self._undo_hosts(step_id, call)
        data |= hosts
        self._commit(
            with_undo(self._current, step_id, UndoStatus.CALLING),
            [self._event(EventType.ROLLBACK_CALLING, step_id, f"{call.server}/{call.tool}", data)],
        )
        started = time.perf_counter()
        attempt = self._current.step(step_id).attempts
        token = calling_step.set(CallingStep(self._current.run_id, step_id, attempt, CallKind.UNDO))
        try:
            async with asyncio.timeout(self._settings.step_timeout):
                result = await self._tools.call(call.server, call.tool, call.args)
        except TimeoutError:
            message = f"{call.tool} did not answer within {self._settings.step_timeout:g}s"
            return self._undone(step_id, ok=False, message=message)
        except OpsmithError as error:
            return self._undone(step_id, ok=False, message=error.message)
        finally:
            calling_step.reset(token)
        output = result.structured if result.structured is not None else {"text": result.text}
        tool = f"{call.server}/{call.tool}"
        summary = summarize(output)
        if hosts:
            # The undo's answer says where it undid: its hosts that succeeded, and those left out.
            hosts["undone_hosts"] = _names(output.get("succeeded_hosts"))
            summary = _undone_on(hosts)
        note = self._call_note(step, call.args, ok=True, summary=summary, started=started, tool=tool)
        data = {"ok": True, "tool": call.tool, "output": output, **hosts}
        return self._undone(step_id, ok=True, message=f"{call.tool}: {summary}", data=data, note=note)

    def _undo_hosts(self, step_id: str, call: ToolCall) -> dict[str, Any]:
        """For the undo of a step that fanned out over hosts: the hosts it is sent to (None for a
        group) and those left out because the step did not act there; {} for any other undo."""
        found = reach(self.plan, self._current, step_id)
        if found is None or call.server != HOSTS_SERVER:
            return {}
        return {"hosts": sent_hosts(call), "left_out_hosts": list(found.untouched)}

    def _undone(
        self,
        step_id: str,
        *,
        ok: bool,
        message: str,
        data: dict[str, Any] | None = None,
        note: AuditNote | None = None,
    ) -> bool:
        """Record how an undo ended. A step that failed stays `failed`: only its undo's status moves."""
        current = self._current
        status = current.step(step_id).status
        if ok:
            if status in (StepStatus.SUCCEEDED, StepStatus.ROLLBACK_FAILED):
                current = with_step_status(current, step_id, StepStatus.ROLLED_BACK, at=_now())
            current = with_undo(current, step_id, UndoStatus.DONE)
        else:
            if status is StepStatus.SUCCEEDED:
                current = with_step_status(
                    current, step_id, StepStatus.ROLLBACK_FAILED, at=_now(), error=message
                )
            if current.step(step_id).undo is not UndoStatus.FAILED:
                current = with_undo(current, step_id, UndoStatus.FAILED)
        notes = [note] if note is not None else []
        if not ok:
            notes.append(self._note("rollback.failed", {"step": step_id, "error": message}))
        self._commit(
            current,
            [self._event(EventType.ROLLBACK_ACTION, step_id, message, data or {"ok": ok})],
            notes,
        )
        return ok

    def _hold(self, step_id: str) -> None:
        """The failed step did not record what its undo needs and may have changed the target."""
        step = self._steps[step_id]
        assert step.rollback is not None  # broken_steps lists only steps with one
        needs = unrecorded(self.plan, self._current, step_id)
        message = (
            f"undo held: {step.rollback.server}/{step.rollback.tool} needs {', '.join(needs)} of "
            f"{step_id}, which it did not record, and {step.server}/{step.tool} may have changed the target"
        )
        self._commit(
            with_undo(self._current, step_id, UndoStatus.HELD),
            [
                self._event(
                    EventType.ROLLBACK_ACTION, step_id, message, {"ok": False, "held": True, "needs": needs}
                )
            ],
            [self._note("rollback.held", {"step": step_id, "needs": needs})],
        )

    def _attention(self, waiting: list[str]) -> RunState:
        run_id = self._current.run_id
        steps = ", ".join(waiting)
        why = (
            f"the undo of {steps} waits for a person: check what it changed, then: opsmith resume "
            f"{run_id} --rollback STEP (run the undo with what was recorded; what was not is left "
            "to the tool's default) | --skip STEP (count it as done)"
        )
        self._failure = f"{self._failure}; {why}" if self._failure else why
        return self._commit(
            with_run_status(self._current, RunStatus.NEEDS_ATTENTION),
            [self._event(EventType.RUN_ATTENTION, message=why, data={"steps": waiting})],
            [self._note("run.state", {"status": RunStatus.NEEDS_ATTENTION.value, "why": why})],
        )

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def _current(self) -> RunState:
        assert self.state is not None, "run() or execute() sets the state first"
        return self.state

    async def _heartbeat(self) -> None:
        """Renew the lease and pick up pause/cancel requests until cancelled."""
        run_id = self._current.run_id
        while True:
            await asyncio.sleep(self._settings.heartbeat_every)
            try:
                requested = self._runs.heartbeat(run_id, self.owner, seconds=self._settings.lease_seconds)
            except LeaseLost:
                return  # the next commit fails with LeaseLost and stops the run
            if requested and self._requested is None:
                self._requested = requested

    def request(self, what: str) -> None:
        """Pause or cancel from inside this process (other processes go through the store)."""
        self._requested = what

    def _commit(
        self,
        state: RunState,
        events: Sequence[RunEvent] = (),
        notes: Sequence[AuditNote] = (),
        *,
        started_by: str = "",
        clear: bool = False,
        changed: Sequence[str] | None = None,
    ) -> RunState:
        stored = self._runs.commit(
            state,
            owner=self.owner,
            changed=changed,
            events=events,
            audits=notes,
            started_by=started_by,
            lease_seconds=self._settings.lease_seconds,
            clear_request=clear,
        )
        self.state = state
        if self._listener is not None:
            for event in stored:
                self._listener(event)
        return state

    def _event(
        self,
        kind: EventType,
        step_id: str | None = None,
        message: str = "",
        data: dict[str, Any] | None = None,
    ) -> RunEvent:
        return RunEvent(
            run_id=self._current.run_id,
            at=_now(),
            type=kind,
            step_id=step_id,
            message=message,
            data=data or {},
        )

    def _note(self, action: str, details: dict[str, Any]) -> AuditNote:
        return AuditNote(self._identity.user, action, self._current.run_id, details)

    def _call_note(
        self,
        step: Step,
        args: dict[str, Any],
        *,
        ok: bool,
        summary: str,
        started: float,
        tool: str | None = None,
    ) -> AuditNote:
        return self._note(
            "tool.called",
            {
                "step": step.id,
                "tool": tool or f"{step.server}/{step.tool}",
                "args": args,
                "ok": ok,
                "result": summary[:300],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


def _names(value: object) -> list[str]:
    return [str(name) for name in value] if isinstance(value, list) else []


def _undone_on(hosts: Mapping[str, Any]) -> str:
    """Where a fleet undo undid, in words: "undone on web01, web02; left out (did not act): web03"."""
    undone = hosts.get("undone_hosts") or []
    text = f"undone on {len(undone)} host(s)" + (f": {', '.join(undone[:10])}" if undone else "")
    if len(undone) > 10:
        text += f" and {len(undone) - 10} more"
    left_out = hosts.get("left_out_hosts") or []
    if left_out:
        text += f"; left out (the step did not act there): {', '.join(left_out[:10])}"
        text += f" and {len(left_out) - 10} more" if len(left_out) > 10 else ""
    return text


def _safe_to_repeat(error: OpsmithError) -> bool:
    # A call that never reached its server may be repeated even when the tool is not idempotent.
    # A connection lost mid-call or a timeout may have done the work: not safe.
    return isinstance(error, ServerUnavailableError) and not error.may_have_reached


def _reported(error: OpsmithError) -> dict[str, Any] | None:
    # A tool's error result may carry what the failing call did (MCP structuredContent).
    return error.output if isinstance(error, ToolCallError) else None


def summarize(output: dict[str, Any] | None) -> str:
    if not output:
        return ""
    # The fields that say what happened, in the order a person reads them; "message" last.
    keys = (
        "status", "number", "passed", "succeeded", "failed", "coverage_percent", "quality_gate", "counts",
        "image", "verified", "replicas", "backup_id", "running", "ready", "crash_looping", "health",
        "healthy", "ready_endpoints", "active_color", "message",
    )  # fmt: skip
    parts = []
    for key in keys:
        if key in output and output[key] is not None and not isinstance(output[key], list):
            value = output[key]
            if isinstance(value, dict) and "status" in value:
                value = value["status"]
            parts.append(f"{key}={value}")
    return ", ".join(parts[:5]) or ", ".join(f"{k}" for k in list(output)[:4])


class _ProgressEvents:
    """A step's `step.progress` events while its call fans out over hosts. At most one every
    PROGRESS_EVERY seconds (500 hosts finishing would otherwise be 500 commits), and always the
    last, when nothing is pending; a report the throttle held back is committed when its interval
    is over, so what finished is durable within PROGRESS_EVERY even when nothing else finishes.
    Each commit also records, with the step's state, the rows of the hosts that finished since the
    previous one (`StepState.fan_out`): the event holds the counts only. A commit refused because
    the lease was lost is kept for the engine to raise once the call returns: the provider calling
    this must not be the one to stop."""

    def __init__(self, engine: LocalExecutor, step_id: str) -> None:
        self._engine = engine
        self._step = step_id
        self._last = float("-inf")
        self._heard: Mapping[str, Any] | None = None  # the latest report not committed yet
        self._rows: dict[str, Mapping[str, Any]] = {}  # rows heard since the last commit
        self._timer: asyncio.TimerHandle | None = None
        self.lost: LeaseLost | None = None

    def __call__(self, counts: Mapping[str, Any]) -> None:
        if self.lost is not None:
            return
        row = counts.get("row")
        if isinstance(row, Mapping) and isinstance(row.get("host"), str):
            self._rows[row["host"]] = row
        self._heard = counts
        wait = PROGRESS_EVERY - (time.monotonic() - self._last)
        if counts.get("pending") == 0 or wait <= 0:
            self._commit()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._commit)

    def flush(self) -> None:
        """Commit what was heard since the last commit, if anything."""
        if self._heard is not None:
            self._commit()

    def stop(self) -> None:
        """No later commit: the call is over (one due is made by `flush`, or not at all)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _commit(self) -> None:
        self.stop()
        counts, self._heard = self._heard, None
        if counts is None or self.lost is not None:
            return
        self._last = time.monotonic()
        data = {k: counts[k] for k in ("total", "completed", "failed", "pending", "host") if k in counts}
        message = (
            f"{data.get('completed', 0)}/{data.get('total', 0)} hosts done, {data.get('failed', 0)} failed"
        )
        if data.get("host"):
            message += f" (last: {data['host']})"
        engine = self._engine
        event = engine._event(EventType.STEP_PROGRESS, self._step, message, data)
        total = counts.get("total")
        state = with_fan_out(
            engine._current, self._step, self._rows, total=total if isinstance(total, int) else None
        )
        try:
            engine._commit(state, [event], changed=[self._step])
        except LeaseLost as lost:
            self.lost = lost
            return
        self._rows = {}


def _now() -> datetime:
    return datetime.now(UTC)

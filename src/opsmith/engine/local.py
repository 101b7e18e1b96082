"""The local executor: runs an approved plan with asyncio, committing every state change.

Order of a step: RBAC for this tool call, the compliance evidence that guards it, its arguments
resolved from earlier outputs, the call with retries for retryable errors, the result recorded.
A failure stops new steps; what completed is undone newest first (true LIFO).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opsmith.domain.errors import OpsmithError
from opsmith.domain.identity import Action, Identity, Permission, decide
from opsmith.domain.plan import Plan, Step
from opsmith.engine.events import EventType, RunEvent
from opsmith.engine.evidence_gate import unmet_before
from opsmith.engine.references import referenced_steps, resolve
from opsmith.engine.retry import RetryPolicy, delay, should_retry
from opsmith.engine.rollback import rollback_call, rollback_order
from opsmith.engine.scheduler import apply_result, gate_after, ready_steps, start_step
from opsmith.engine.state import (
    RunState,
    RunStatus,
    StepStatus,
    succeeded_outputs,
    with_run_status,
    with_step_status,
)
from opsmith.store.audit import AuditLog
from opsmith.store.runs import RunRepository
from opsmith.tools.ports import ToolProvider

Listener = Callable[[RunEvent], None]


class StepFailed(Exception):
    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.output = output


class LocalExecutor:
    def __init__(
        self,
        plan: Plan,
        *,
        tools: ToolProvider,
        runs: RunRepository,
        audit: AuditLog,
        identity: Identity,
        permission: Permission,
        retry: RetryPolicy | None = None,
        max_parallel: int = 5,
        auto_validate: bool = False,
        listener: Listener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.plan = plan
        self._tools = tools
        self._runs = runs
        self._audit = audit
        self._identity = identity
        self._permission = permission
        self._retry = retry or RetryPolicy(attempts=3, initial_delay=0.5, max_delay=10)
        self._max_parallel = max_parallel
        self._auto_validate = auto_validate
        self._listener = listener
        self._rng = rng or random.Random()
        self._failure: str | None = None
        self._touched: set[str] = set()  # steps whose tool was actually called

    async def run(self, state: RunState) -> RunState:
        """Drive the run until it succeeds, waits at a gate, or fails and is rolled back."""
        if state.status in (RunStatus.PENDING, RunStatus.AWAITING_VALIDATION, RunStatus.PAUSED):
            state = self._save(with_run_status(state, RunStatus.RUNNING))
            self._emit(state, EventType.RUN_STARTED, message=f"{self.plan.id}: {len(self.plan.steps)} steps")
        running: dict[asyncio.Task[tuple[str, bool, dict[str, Any] | None, str | None]], str] = {}
        while True:
            if self._failure is None and state.status is RunStatus.RUNNING:
                for step_id in ready_steps(self.plan, state, max_parallel=self._max_parallel):
                    if step_id in running.values():
                        continue
                    state = self._save(start_step(self.plan, state, step_id, at=_now()))
                    self._emit(state, EventType.STEP_STARTED, step_id, self.plan_step(step_id).name)
                    task = asyncio.create_task(self._execute(self.plan_step(step_id), state))
                    running[task] = step_id
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                step_id, ok, output, error = task.result()
                del running[task]
                state = self._save(apply_result(state, step_id, ok=ok, output=output, error=error, at=_now()))
                if ok:
                    self._emit(
                        state, EventType.STEP_SUCCEEDED, step_id, summarize(output), {"output": output or {}}
                    )
                    if gate_after(self.plan, step_id) and self._failure is None:
                        state = self._gate(state, step_id)
                else:
                    self._failure = f"step {step_id} failed: {error}"
                    self._emit(state, EventType.STEP_FAILED, step_id, error or "failed")
            if state.status is RunStatus.AWAITING_VALIDATION and not running:
                return state
        return self._finish(state)

    def plan_step(self, step_id: str) -> Step:
        return self.plan.step(step_id)

    async def _execute(
        self, step: Step, state: RunState
    ) -> tuple[str, bool, dict[str, Any] | None, str | None]:
        try:
            output = await self._call_step(step, state)
        except StepFailed as failure:
            return step.id, False, failure.output, failure.message
        return step.id, True, output, None

    async def _call_step(self, step: Step, state: RunState) -> dict[str, Any]:
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
            self._audit.append(
                self._identity.user, "tool.denied", state.run_id, {"step": step.id, "tool": qualified}
            )
            self._emit(state, EventType.STEP_DENIED, step.id, decision.reason)
            raise StepFailed(f"not allowed: {decision.reason}")
        outputs = succeeded_outputs(state)
        unmet = unmet_before(self.plan, step.id, outputs)
        if unmet:
            reasons = "; ".join(reason for _, reason in unmet)
            raise StepFailed(f"compliance not met before {step.id}: {reasons}")
        try:
            args = resolve(step.args, outputs, step_id=step.id, known_steps=[s.id for s in self.plan.steps])
        except OpsmithError as error:
            raise StepFailed(error.message) from None
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            self._touched.add(step.id)
            try:
                result = await self._tools.call(step.server, step.tool, args)
            except OpsmithError as error:
                self._record_call(state, step, args, ok=False, summary=error.message, started=started)
                if not step.idempotent and error.retryable and not _safe_to_repeat(error):
                    raise StepFailed(error.message) from None
                if should_retry(self._retry, attempt, error.retryable):
                    wait = delay(self._retry, attempt, self._rng.random())
                    self._emit(
                        state,
                        EventType.STEP_RETRYING,
                        step.id,
                        f"attempt {attempt} failed: {error.message}",
                        {"attempt": attempt, "delay": wait},
                    )
                    await asyncio.sleep(wait)
                    continue
                raise StepFailed(error.message) from None
            output = result.structured if result.structured is not None else {"text": result.text}
            self._record_call(state, step, args, ok=True, summary=summarize(output), started=started)
            return output

    def _gate(self, state: RunState, step_id: str) -> RunState:
        if self._auto_validate:
            self._emit(
                state, EventType.GATE_PASSED, step_id, f"validated by {self._identity.user} (auto-validate)"
            )
            return state
        state = self._save(with_run_status(state, RunStatus.AWAITING_VALIDATION))
        self._emit(state, EventType.GATE_WAITING, step_id, f"validate {step_id} to continue")
        return state

    def _finish(self, state: RunState) -> RunState:
        if self._failure is None:
            state = self._save(with_run_status(state, RunStatus.SUCCEEDED))
            self._emit(state, EventType.RUN_FINISHED, message="succeeded")
            self._audit.append(self._identity.user, "run.state", state.run_id, {"status": "succeeded"})
            return state
        state = self._save(with_run_status(state, RunStatus.FAILED))
        self._audit.append(
            self._identity.user, "run.state", state.run_id, {"status": "failed", "why": self._failure}
        )
        return state

    async def rollback(self, state: RunState) -> RunState:
        """Undo completed steps newest first; a failing action is recorded and the rest still run."""
        order = rollback_order(self.plan, state)
        # A step that failed while changing the target may have left it half-changed (a rollout
        # that crash-loops): its own rollback runs first, as the newest change.
        broken = [
            s.id
            for s in self.plan.steps
            if s.changes_target
            and s.rollback is not None
            and s.id in self._touched
            and state.step(s.id).status is StepStatus.FAILED
        ]
        if not order and not broken:
            message = f"failed: {self._failure}; nothing to roll back"
            self._emit(state, EventType.RUN_FINISHED, message=message)
            return state
        state = self._save(with_run_status(state, RunStatus.ROLLING_BACK))
        undoing = ", ".join(broken + order)
        self._emit(state, EventType.ROLLBACK_STARTED, message=f"undoing {undoing} (newest first)")
        any_failed = False
        for step_id in broken:
            ok = await self._undo_failed(state, step_id)
            any_failed = any_failed or not ok
        for step_id in order:
            outputs = succeeded_outputs(state)
            try:
                call = rollback_call(self.plan, step_id, outputs)
                started = time.perf_counter()
                result = await self._tools.call(call.server, call.tool, call.args)
                output = result.structured if result.structured is not None else {"text": result.text}
                self._record_call(
                    state,
                    self.plan_step(step_id),
                    call.args,
                    ok=True,
                    summary=summarize(output),
                    started=started,
                    tool=f"{call.server}/{call.tool}",
                )
                state = self._save(with_step_status(state, step_id, StepStatus.ROLLED_BACK, at=_now()))
                self._emit(
                    state,
                    EventType.ROLLBACK_ACTION,
                    step_id,
                    f"{call.tool}: {summarize(output)}",
                    {"ok": True, "tool": call.tool, "output": output},
                )
            except OpsmithError as error:
                any_failed = True
                state = self._save(
                    with_step_status(
                        state, step_id, StepStatus.ROLLBACK_FAILED, at=_now(), error=error.message
                    )
                )
                self._emit(state, EventType.ROLLBACK_ACTION, step_id, error.message, {"ok": False})
        final = RunStatus.NEEDS_ATTENTION if any_failed else RunStatus.ROLLED_BACK
        state = self._save(with_run_status(state, final))
        self._emit(state, EventType.ROLLBACK_FINISHED, message=final.value)
        self._audit.append(self._identity.user, "run.state", state.run_id, {"status": final.value})
        return state

    async def _undo_failed(self, state: RunState, step_id: str) -> bool:
        """Run the rollback of a step that failed part-way; its state stays `failed`."""
        step = self.plan_step(step_id)
        if step.rollback is not None and step_id in referenced_steps(step.rollback.args):
            # The undo needs this step's own output (e.g. the colour it switched from); a failed
            # step has none, and the tool's own failure left the target as it was.
            message = f"nothing to undo: {step_id} failed before it changed anything it reports"
            self._emit(state, EventType.ROLLBACK_ACTION, step_id, message, {"ok": True, "skipped": True})
            return True
        try:
            call = rollback_call(self.plan, step_id, succeeded_outputs(state))
            started = time.perf_counter()
            result = await self._tools.call(call.server, call.tool, call.args)
        except OpsmithError as error:
            self._emit(state, EventType.ROLLBACK_ACTION, step_id, error.message, {"ok": False})
            return False
        output = result.structured if result.structured is not None else {"text": result.text}
        tool = f"{call.server}/{call.tool}"
        step = self.plan_step(step_id)
        self._record_call(
            state, step, call.args, ok=True, summary=summarize(output), started=started, tool=tool
        )
        data = {"ok": True, "tool": call.tool, "output": output}
        self._emit(state, EventType.ROLLBACK_ACTION, step_id, f"{call.tool}: {summarize(output)}", data)
        return True

    @property
    def failure(self) -> str | None:
        return self._failure

    def _record_call(
        self,
        state: RunState,
        step: Step,
        args: dict[str, Any],
        *,
        ok: bool,
        summary: str,
        started: float,
        tool: str | None = None,
    ) -> None:
        self._audit.append(
            self._identity.user,
            "tool.called",
            state.run_id,
            {
                "step": step.id,
                "tool": tool or f"{step.server}/{step.tool}",
                "args": args,
                "ok": ok,
                "result": summary[:300],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    def _save(self, state: RunState) -> RunState:
        self._runs.save(state, started_by=self._identity.user)
        return state

    def _emit(
        self,
        state: RunState,
        kind: EventType,
        step_id: str | None = None,
        message: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = self._runs.append(
            RunEvent(
                run_id=state.run_id, at=_now(), type=kind, step_id=step_id, message=message, data=data or {}
            )
        )
        if self._listener is not None:
            self._listener(event)


def _safe_to_repeat(error: OpsmithError) -> bool:
    # A server that was unavailable never received the call: repeating it is safe even when the
    # tool is not idempotent. A timeout may have done the work: not safe.
    from opsmith.domain.errors import ServerUnavailableError

    return isinstance(error, ServerUnavailableError) and "closed the connection" not in error.message


def summarize(output: dict[str, Any] | None) -> str:
    if not output:
        return ""
    # The fields that say what happened, in the order a person reads them; "message" last.
    keys = (
        "status", "number", "passed", "failed", "coverage_percent", "quality_gate", "counts", "image",
        "verified", "replicas", "backup_id", "running", "ready", "crash_looping", "health", "healthy",
        "ready_endpoints", "active_color", "message",
    )  # fmt: skip
    parts = []
    for key in keys:
        if key in output and output[key] is not None and not isinstance(output[key], list):
            value = output[key]
            if isinstance(value, dict) and "status" in value:
                value = value["status"]
            parts.append(f"{key}={value}")
    return ", ".join(parts[:5]) or ", ".join(f"{k}" for k in list(output)[:4])


def _now() -> datetime:
    return datetime.now(UTC)

"""Explain a failed run (`opsmith explain RUN`, GET /api/v1/runs/{id}/explanation).

The evidence is what the run recorded of its failed steps (errors, outputs, per-host stderr and
exit codes) and what the plan's read-only steps say now (recent logs, pod states), asked through
the same checked path as `opsmith call`: the caller's role must be allowed to read each tool, and
every call is audited. A call that is refused or fails is a note of the explanation, never its end.
The rules then match those lines (opsmith.domain.root_cause); every claim cites its line.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsmith.bootstrap import App
from opsmith.domain.errors import OpsmithError, UsageError
from opsmith.domain.identity import Identity
from opsmith.domain.plan import Plan
from opsmith.domain.redaction import Redactor
from opsmith.domain.root_cause import Analysis, Artifact, analyse
from opsmith.domain.root_cause_rules import Rule
from opsmith.engine.run_evidence import (
    evidence_calls,
    failed_step,
    failed_steps,
    output_artifacts,
    recorded_artifacts,
    step_facts,
)
from opsmith.engine.state import RunState, RunStatus
from opsmith.rule_library import load_rules
from opsmith.services import reads
from opsmith.services.discovery import off_names, running_servers
from opsmith.services.known_secrets import secret_values
from opsmith.services.tool_calls import CallRequest, checked_call

__all__ = ["RunNotFailed", "analysis_of", "explain_run", "rules_of"]

# What may be explained: a run that failed, whether or not what it did was undone since.
EXPLAINABLE = frozenset({RunStatus.FAILED, RunStatus.ROLLING_BACK, RunStatus.ROLLED_BACK})


class RunNotFailed(UsageError):
    """An explanation asked of a run that did not fail (it succeeded, runs, or waits)."""


def rules_of(app: App) -> list[Rule]:
    """The bundled rules and the user's (analysis.rule_dirs)."""
    return load_rules(app.config.analysis.rule_dirs)


async def explain_run(app: App, identity: Identity, run_id: str, *, fetch: bool | None = None) -> Analysis:
    """The analysis of a failed run; UnknownRunError for an unknown id, RunNotFailed for a run that
    did not fail. `fetch` (default: analysis.fetch) reads recent evidence through read-only tools."""
    run, plan = reads.run_with_plan(app, run_id)
    _refuse_unfailed(run, plan)
    rules = rules_of(app)
    redactor = Redactor(secret_values(app))
    artifacts = recorded_artifacts(plan, run, redactor)
    notes: list[str] = []
    if app.config.analysis.fetch if fetch is None else fetch:
        fetched, notes = await _fetch(app, identity, plan, run, redactor)
        artifacts += fetched
    return analysis_of(rules, plan, run, artifacts, notes, redactor=redactor)


def analysis_of(
    rules: Sequence[Rule],
    plan: Plan,
    run: RunState,
    artifacts: Sequence[Artifact],
    notes: Sequence[str] = (),
    *,
    redactor: Redactor | None = None,
) -> Analysis:
    """The pure part: the analysis of these artifacts of this run (what bench/root_cause.py times)."""
    return analyse(
        rules,
        artifacts,
        run_id=run.run_id,
        plan_id=plan.id,
        status=run.status.value,
        steps=step_facts(plan, run),
        failed=failed_step(plan, run, redactor or Redactor()),
        notes=list(notes),
    )


def _refuse_unfailed(run: RunState, plan: Plan) -> None:
    if run.status in EXPLAINABLE or failed_steps(plan, run):
        return
    raise RunNotFailed(
        f"run {run.run_id} did not fail (it is {run.status.value}): there is no failure to explain",
        hint=f"`opsmith status {run.run_id}` shows where it stands; explain a failed or rolled-back run",
    )


async def _fetch(
    app: App, identity: Identity, plan: Plan, run: RunState, redactor: Redactor
) -> tuple[list[Artifact], list[str]]:
    settings = app.config.analysis
    if settings.max_fetches == 0:
        return [], []
    off = off_names(app)
    wanted = sorted(
        {s.server for s in plan.steps if s.server in app.config.mcp_servers and s.server not in off}
    )
    if not wanted:
        return [], []
    artifacts: list[Artifact] = []
    notes: list[str] = []
    try:
        async with running_servers(app, wanted) as pool:
            for call in evidence_calls(plan, run, pool.catalog, limit=settings.max_fetches):
                step = call.step
                spec = pool.catalog.get(step.server, step.tool)
                if spec is None:
                    continue
                request = CallRequest(step.server, step.tool, call.arguments, timeout=settings.fetch_timeout)
                try:
                    result = await checked_call(app, identity, pool, request, spec, via="explain")
                except OpsmithError as error:
                    why = redactor.text(error.message)
                    notes.append(f"{step.server}/{step.tool} (step {step.id}) was not read: {why}")
                    continue
                content = result.structured if result.structured is not None else result.text
                artifacts += output_artifacts(step, content, redactor, fetched=True)
    except OpsmithError as error:
        notes.append(f"recent evidence was not read: {redactor.text(error.message)}")
    return artifacts, notes

"""What a recorded run offers as evidence of its failure, as artifacts of lines, and which read-only
steps of its plan may be asked again for recent logs and state.

Every line is redacted before any rule sees it: the secret values given, any `key=value` whose key
looks secret, bearer tokens and passwords inside URLs. Pure: plan and run in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsmith.domain.catalog import Catalog
from opsmith.domain.plan import Plan, Step
from opsmith.domain.redaction import REDACTED, Redactor
from opsmith.domain.root_cause import MAX_LINE_CHARS, Artifact, FailedStep, StepFact
from opsmith.domain.root_cause_rules import ArtifactKind
from opsmith.engine.state import RunState, StepState, StepStatus

__all__ = [
    "MAX_ARTIFACT_LINES",
    "EvidenceCall",
    "artifact_kind",
    "evidence_calls",
    "failed_step",
    "failed_steps",
    "output_artifacts",
    "recorded_artifacts",
    "step_facts",
    "text_lines",
]

MAX_ARTIFACT_LINES = 2000
_MAX_DEPTH = 12

_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[\w.~+/=-]{4,}")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]{1,200}:)[^@\s/]{1,200}@")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.-]{0,40}?(?:pass|secret|token|key|credential)[\w.-]{0,40})"
    r"(\s{0,3}[=:]\s{0,3})(\"[^\"]{0,500}\"|'[^']{0,500}'|[^\s,;&]{1,500})"
)
_RUNTIME_REF = re.compile(r"\$\{steps\.")


def text_lines(text: str, redactor: Redactor) -> tuple[str, ...]:
    """`text` as redacted lines, each cut to MAX_LINE_CHARS, at most MAX_ARTIFACT_LINES of them."""
    lines = text.splitlines()[:MAX_ARTIFACT_LINES]
    return tuple(_clean(line, redactor) for line in lines)


_SECRET_WORDS = ("pass", "secret", "token", "key", "credential")


def _clean(line: str, redactor: Redactor) -> str:
    line = redactor.text(line[: MAX_LINE_CHARS * 2])
    lower = line.lower()
    # Each search only where its word is present: most lines hold none, and a substring test is
    # far cheaper than the search.
    if "bearer" in lower or "basic" in lower:
        line = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    if "://" in line:
        line = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", line)
    if any(word in lower for word in _SECRET_WORDS):
        line = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", line)
    return line[:MAX_LINE_CHARS]


def output_lines(value: Any, redactor: Redactor) -> tuple[str, ...]:
    """A step's output as lines: a log line (a string inside a list) as it is, a field as
    `path: value`, so `pods.2.status: CrashLoopBackOff` can be cited."""
    found: list[str] = []
    _walk(redactor.data(value), "", found, 0)
    return tuple(_clean(line, redactor) for line in found[:MAX_ARTIFACT_LINES])


def _walk(value: Any, path: str, found: list[str], depth: int) -> None:
    if len(found) >= MAX_ARTIFACT_LINES or depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), found, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, str):
                found.extend(item.splitlines() or [""])
            else:
                _walk(item, f"{path}.{index}" if path else str(index), found, depth + 1)
    elif isinstance(value, str):
        first, *rest = value.splitlines() or [""]
        found.append(f"{path}: {first}" if path else first)
        found.extend(rest)
    else:
        found.append(f"{path}: {value}" if path else str(value))


def artifact_kind(tool: str, arguments: Mapping[str, Any] | None = None) -> ArtifactKind:
    """What a tool's output is: logs, events, or other output (by its name and arguments)."""
    words = f"{tool} {' '.join(str(v) for v in (arguments or {}).values())}".lower()
    if "event" in words:
        return "event"
    return "log" if "log" in tool.lower() else "output"


def failed_steps(plan: Plan, run: RunState) -> list[Step]:
    """The steps that failed, the first to finish first (it is the run's failure)."""
    failed = [s for s in plan.steps if run.steps.get(s.id) and run.steps[s.id].status is StepStatus.FAILED]
    return sorted(failed, key=lambda s: _finished_order(run.steps[s.id]))


def _finished_order(state: StepState) -> float:
    moment = state.finished_at
    if isinstance(moment, datetime):
        return moment.timestamp()
    return float(moment) if isinstance(moment, int | float) else float("inf")


def failed_step(plan: Plan, run: RunState, redactor: Redactor) -> FailedStep | None:
    """The run's failure: the failed step that finished first, its error redacted."""
    steps = failed_steps(plan, run)
    if not steps:
        return None
    step, state = steps[0], run.steps[steps[0].id]
    return FailedStep(
        id=step.id,
        title=step.name,
        server=step.server,
        tool=step.tool,
        error=None if state.error is None else "\n".join(text_lines(state.error, redactor))[:MAX_LINE_CHARS],
        exit_codes=_exit_codes(state),
    )


def _exit_codes(state: StepState) -> list[int]:
    codes = [row.get("exit_code") for row in _host_rows(state)]
    if isinstance(state.output, Mapping):
        codes.append(state.output.get("exit_code"))
    return list(dict.fromkeys(c for c in codes if isinstance(c, int) and not isinstance(c, bool)))


def step_facts(plan: Plan, run: RunState) -> list[StepFact]:
    return [
        StepFact(
            id=s.id,
            title=s.name,
            server=s.server,
            tool=s.tool,
            status=run.steps[s.id].status.value if s.id in run.steps else "pending",
        )
        for s in plan.steps
    ]


def recorded_artifacts(plan: Plan, run: RunState, redactor: Redactor) -> list[Artifact]:
    """What the run recorded of its failed steps: each one's error, its output, and per host of a
    fleet step the stderr, the reason and the exit code."""
    artifacts: list[Artifact] = []
    for step in failed_steps(plan, run):
        state = run.steps[step.id]
        where = {"step": step.id, "server": step.server, "tool": step.tool}
        if state.error:
            artifacts.append(Artifact(kind="error", lines=text_lines(state.error, redactor), **where))
        output = state.output
        rows = _host_rows(state)
        if isinstance(output, Mapping) and rows:
            output = {k: v for k, v in output.items() if k != "hosts"}  # the rows are read per host below
        if output:
            artifacts += output_artifacts(step, output, redactor, fetched=False)
        for row in rows:
            artifacts += _host_artifacts(row, where, redactor)
    return artifacts


def output_artifacts(step: Step, output: Any, redactor: Redactor, *, fetched: bool) -> list[Artifact]:
    lines = output_lines(output, redactor)
    if not lines:
        return []
    kind = artifact_kind(step.tool, step.args)
    return [
        Artifact(kind=kind, step=step.id, server=step.server, tool=step.tool, fetched=fetched, lines=lines)
    ]


def _host_rows(state: StepState) -> list[Mapping[str, Any]]:
    """The rows of a fleet step's hosts that did not succeed: the fan-out record, else its output's."""
    rows: Iterable[Any] = state.fan_out.rows.values() if state.fan_out and state.fan_out.rows else ()
    if not rows and isinstance(state.output, Mapping) and isinstance(state.output.get("hosts"), list):
        rows = state.output["hosts"]
    return [r for r in rows if isinstance(r, Mapping) and r.get("ok") is not True]


def _host_artifacts(row: Mapping[str, Any], where: Mapping[str, str], redactor: Redactor) -> list[Artifact]:
    host = str(row.get("host") or "?")
    found: list[Artifact] = []
    said = [str(row[k]) for k in ("failure", "reason") if isinstance(row.get(k), str) and row.get(k)]
    if said:
        found.append(Artifact(kind="error", host=host, lines=text_lines("\n".join(said), redactor), **where))
    if isinstance(row.get("stderr"), str) and row["stderr"].strip():
        found.append(Artifact(kind="stderr", host=host, lines=text_lines(row["stderr"], redactor), **where))
    code = row.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        found.append(Artifact(kind="exit_code", host=host, lines=(f"exit code {code}",), **where))
    return found


@dataclass(frozen=True)
class EvidenceCall:
    """A read-only step of the plan asked again now: its own tool and arguments."""

    step: Step
    arguments: dict[str, Any]


def evidence_calls(plan: Plan, run: RunState, catalog: Catalog, *, limit: int) -> list[EvidenceCall]:
    """The plan's read-only steps (by the catalog's annotations) that did not succeed in the run,
    whose arguments need no other step's output: the logs and state checks the failure cut short,
    or that failed themselves. Those nearest the failure come first."""
    failed = [s.id for s in failed_steps(plan, run)]
    order = {step_id: index for index, step_id in enumerate(failed)}
    chosen: list[tuple[tuple[int, int], EvidenceCall]] = []
    for index, step in enumerate(plan.steps):
        state = run.steps.get(step.id)
        spec = catalog.get(step.server, step.tool)
        if state is None or spec is None or not spec.hints.effective_read_only:
            continue
        if state.status is StepStatus.SUCCEEDED or _RUNTIME_REF.search(repr(step.args)):
            continue
        after_failure = any(d in order for d in step.depends_on)
        rank = (order.get(step.id, len(order) + (0 if after_failure else 1)), index)
        chosen.append((rank, EvidenceCall(step, _at_once(step.args))))
    chosen.sort(key=lambda pair: pair[0])
    return [call for _, call in chosen[:limit]]


def _at_once(arguments: Mapping[str, Any]) -> dict[str, Any]:
    # A check that waits for pods to settle would hold the explanation for its whole wait; what
    # is there now is the evidence.
    return {
        k: (0 if k in ("wait_seconds", "wait") and isinstance(v, int) else v) for k, v in arguments.items()
    }

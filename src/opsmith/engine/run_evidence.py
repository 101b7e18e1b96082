"""What a recorded run offers as evidence of its failure, as artifacts of lines, and which read-only
steps of its plan may be asked again for recent logs and state.

Every line is redacted before any rule sees it: the secret values given, any `key=value` whose key
looks secret, bearer tokens and passwords inside URLs. Pure: plan and run in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from opsmith.domain.catalog import Catalog
from opsmith.domain.plan import Plan, Step
from opsmith.domain.redaction import REDACTED, Redactor, is_secret_key
from opsmith.domain.root_cause import MAX_LINE_CHARS, Artifact, FailedStep, StepFact
from opsmith.domain.root_cause_rules import ArtifactKind
from opsmith.engine.state import RunState, StepState, StepStatus

__all__ = [
    "MAX_ARTIFACT_LINES",
    "EvidenceCall",
    "artifact_kind",
    "cleaned",
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
    # The known secrets are hidden in the whole text first, so one that spans lines is caught too.
    lines = redactor.text(text).splitlines()[:MAX_ARTIFACT_LINES]
    return cleaned(lines, redactor)


# The words the searches below need in a line (lower-cased): a line without them cannot hold what
# those searches hide.
_BEARER_WORDS = ("bearer", "basic")
_SECRET_WORDS = ("pass", "secret", "token", "key", "credential")
_WORDS = (*_BEARER_WORDS, "://", *_SECRET_WORDS)


def cleaned(lines: Sequence[str], redactor: Redactor) -> tuple[str, ...]:
    """Each line redacted and cut to MAX_LINE_CHARS: the same lines as `_clean` gives one by one.

    The lines of one artifact are looked at together first: when none holds a known secret or a
    word the searches need (most logs), no line is searched at all."""
    if not lines:
        return ()
    whole = "\n".join(lines)
    hiding = Redactor([secret for secret in redactor.secrets if secret in whole])
    longest = max(map(len, lines))
    # The words are looked for only where the searches look (a hostile line is cut first).
    searched = whole if longest <= MAX_LINE_CHARS * 2 else "\n".join(_cut(lines, MAX_LINE_CHARS * 2))
    lower = searched.lower()
    if hiding.secrets or any(word in lower for word in _WORDS):
        return tuple(_clean(line, hiding) for line in lines)
    return tuple(lines) if longest <= MAX_LINE_CHARS else tuple(_cut(lines, MAX_LINE_CHARS))


def _cut(lines: Sequence[str], length: int) -> list[str]:
    return [line[:length] for line in lines]


def _clean(line: str, redactor: Redactor) -> str:
    # The secrets are hidden in the whole line before it is cut: one across the cut would
    # otherwise show its first part.
    line = redactor.text(line)[: MAX_LINE_CHARS * 2]
    lower = line.lower()
    # Each search only where its word is present: most lines hold none, and a substring test is
    # far cheaper than the search. Hiding a value (REDACTED) never makes a word appear.
    if any(word in lower for word in _BEARER_WORDS):
        line = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    if "://" in line:
        line = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", line)
    if any(word in lower for word in _SECRET_WORDS):
        line = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", line)
    return line[:MAX_LINE_CHARS]


def output_lines(value: Any, redactor: Redactor) -> tuple[str, ...]:
    """A step's output as lines: a log line (a string inside a list) as it is, a field as
    `path: value`, so `pods.2.status: CrashLoopBackOff` can be cited. Redacted as
    `Redactor.data` would, while walking (no redacted copy of the output is made first)."""
    found: list[str] = []
    _walk(value, "", found, 0, redactor)
    return cleaned(found[:MAX_ARTIFACT_LINES], redactor)


def _walk(value: Any, path: str, found: list[str], depth: int, redactor: Redactor) -> None:
    if len(found) >= MAX_ARTIFACT_LINES or depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = redactor.text(str(key))
            where = f"{path}.{name}" if path else name
            if is_secret_key(str(key)):
                found.append(f"{where}: {REDACTED}")
            else:
                _walk(item, where, found, depth + 1, redactor)
    elif isinstance(value, list | tuple | set | frozenset):
        # Each item gives one line at least: no more items are read than lines are still wanted.
        items = list(islice(value, MAX_ARTIFACT_LINES - len(found)))
        if _log_lines(items, found, redactor):
            return
        for index, item in enumerate(items):
            if len(found) >= MAX_ARTIFACT_LINES:
                return
            if isinstance(item, str):
                found.extend(redactor.text(item).splitlines() or [""])
            else:
                _walk(item, f"{path}.{index}" if path else str(index), found, depth + 1, redactor)
    elif isinstance(value, str):
        first, *rest = redactor.text(value).splitlines() or [""]
        found.append(f"{path}: {first}" if path else first)
        found.extend(rest)
    else:
        found.append(f"{path}: {value}" if path else str(value))


# What str.splitlines splits at.
_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _log_lines(items: list[Any], found: list[str], redactor: Redactor) -> bool:
    """Strings without a line break (a log) are each one line, as they are: added in one pass,
    without a call per line when no known secret is among them. False when `items` is not that."""
    try:
        joined = "".join(items)
    except TypeError:  # not all strings
        return False
    if any(brk in joined for brk in _BREAKS):
        return False
    found.extend(map(redactor.text, items) if any(s in joined for s in redactor.secrets) else items)
    return True


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

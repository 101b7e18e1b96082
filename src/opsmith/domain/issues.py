"""Issues for failures: the fingerprint that says two failed runs are the same failure, the issue the
built-in tracker keeps per fingerprint, where a new occurrence goes, and the markdown people read.

A fingerprint is made of what stays the same when the same thing breaks again: the application (the
plan's first subject), the environment, the failed step's server/tool and the cause, which is the
root-cause rule that matched or, when none did, the error's first line with what changes from run to
run taken out (timestamps, ids, pod name suffixes, numbers). Pure: plain values in, plain values out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import NotFoundError, OperationError
from opsmith.domain.root_cause import Analysis, EvidenceLine

__all__ = [
    "MAX_BODY_CHARS",
    "ExternalRef",
    "Fingerprint",
    "Issue",
    "IssueState",
    "IssueUpdate",
    "Occurrence",
    "Placement",
    "Recorded",
    "Recurrence",
    "SyncState",
    "TrackerError",
    "TrackerRefused",
    "TrackerUnavailable",
    "UnknownIssueError",
    "UpdateKind",
    "error_kind",
    "fingerprint",
    "occurrence_of",
    "place",
    "record",
    "recurrence_comment",
    "withdrawn",
]

MAX_BODY_CHARS = 60_000  # GitHub refuses bodies over 65,536 characters
MAX_EVIDENCE_LINES = 20
_MAX_TITLE = 250


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class IssueState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class SyncState(StrEnum):
    """Where the external copy stands: `local` when no external tracker is configured."""

    LOCAL = "local"
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


class Recurrence(StrEnum):
    """What a failure does when its issue was closed: reopen it, or open a new one."""

    REOPEN = "reopen"
    NEW = "new"


class UpdateKind(StrEnum):
    OPEN = "open"  # the issue itself: title, body, labels
    COMMENT = "comment"  # a repeat while it is open
    REOPEN = "reopen"  # a repeat after it was closed: reopened, with the comment


class UnknownIssueError(NotFoundError):
    """An issue id that the built-in tracker does not have."""


class TrackerError(OperationError):
    """An external issue tracker (GitHub) did not take a change. `retryable`: the same request may
    succeed later; `retry_after`: seconds the tracker asked to wait (429, or a rate limit)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after


class TrackerUnavailable(TrackerError):
    """It could not be reached, timed out, answered 5xx or asked to slow down: try again later."""

    retryable = True


class TrackerRefused(TrackerError):
    """It refused the request (401/403 credentials, 404 no such repository or issue, 422 invalid):
    the same request fails again until the configuration is corrected."""


class Fingerprint(_Frozen):
    """What makes two failures the same; `value` is its stable digest."""

    subject: str
    environment: str | None
    tool: str
    cause: str = Field(description="`rule:<id>` when a rule matched, else `error:<normalised error>`")
    value: str


class ExternalRef(_Frozen):
    """The issue's copy on the external tracker."""

    number: int
    url: str


class IssueUpdate(_Frozen):
    """One change of an issue to be mirrored on the external tracker, in order; `run_id` is the run
    it records (one update per run: settling a run twice records it once)."""

    id: int
    issue_id: int
    kind: UpdateKind
    run_id: str | None
    body: str
    created_at: datetime
    synced_at: datetime | None = None


class Issue(_Frozen):
    """An issue of the built-in tracker: one failure (fingerprint) and every run it happened in."""

    id: int
    fingerprint: str
    subject: str
    environment: str | None
    tool: str
    cause: str
    title: str
    body: str
    labels: list[str]
    state: IssueState
    occurrences: int
    run_ids: list[str]
    external: ExternalRef | None = None
    sync: SyncState
    sync_attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    updates: list[IssueUpdate] = Field(default_factory=list, description="filled when one issue is shown")


class Occurrence(_Frozen):
    """One failed run, ready for the tracker: the texts are already redacted."""

    run_id: str
    fingerprint: Fingerprint
    title: str
    body: str = Field(description="the markdown that opens an issue")
    evidence: str = Field(description="the markdown of this run's cause and evidence, for a comment")
    link: str | None
    labels: list[str]
    at: datetime


class Placement(StrEnum):
    NEW = "new"
    COMMENT = "comment"
    REOPEN = "reopen"


@dataclass(frozen=True)
class Recorded:
    """What a store writes for one occurrence: the issue as it now stands (`id` 0 for a new one)
    and the update to mirror on the external tracker."""

    issue: Issue
    kind: UpdateKind
    body: str


def record(
    latest: Issue | None, occurrence: Occurrence, on_recurrence: Recurrence, sync: SyncState
) -> Recorded:
    """The change one occurrence makes, given the newest issue of its fingerprint. `sync`: LOCAL
    when no external tracker is configured, else the change waits (PENDING, due now)."""
    at = occurrence.at
    waiting: dict[str, object] = {}
    if sync is not SyncState.LOCAL:
        waiting = {"sync": SyncState.PENDING, "next_attempt_at": at, "sync_attempts": 0, "last_error": None}
    where = place(latest, on_recurrence)
    if latest is None or where is Placement.NEW:
        found = occurrence.fingerprint
        issue = Issue(
            id=0,
            fingerprint=found.value,
            subject=found.subject,
            environment=found.environment,
            tool=found.tool,
            cause=found.cause,
            title=occurrence.title,
            body=occurrence.body,
            labels=occurrence.labels,
            state=IssueState.OPEN,
            occurrences=1,
            run_ids=[occurrence.run_id],
            sync=SyncState.LOCAL,
            created_at=at,
            updated_at=at,
        ).model_copy(update=waiting)
        return Recorded(issue, UpdateKind.OPEN, occurrence.body)
    count = latest.occurrences + 1
    reopened = where is Placement.REOPEN
    changes: dict[str, object] = {
        "occurrences": count,
        "run_ids": [*latest.run_ids, occurrence.run_id],
        "state": IssueState.OPEN,
        "closed_at": None,
        "updated_at": at,
        **waiting,
    }
    kind = UpdateKind.REOPEN if reopened else UpdateKind.COMMENT
    return Recorded(
        latest.model_copy(update=changes), kind, recurrence_comment(occurrence, count, reopened=reopened)
    )


def withdrawn(issue: Issue, run_ids: Iterable[str], at: datetime) -> Issue:
    """The issue closed at `at` (elsewhere, on the external tracker), without the runs whose
    updates were not mirrored yet: those are recorded again, as recurrences after the close."""
    gone = set(run_ids)
    kept = [r for r in issue.run_ids if r not in gone]
    return issue.model_copy(
        update={
            "state": IssueState.CLOSED,
            "closed_at": issue.closed_at or at,
            "run_ids": kept,
            "occurrences": max(1, issue.occurrences - (len(issue.run_ids) - len(kept))),
            "updated_at": at,
        }
    )


def place(latest: Issue | None, on_recurrence: Recurrence) -> Placement:
    """Where a new occurrence of a fingerprint goes, given the newest issue of that fingerprint."""
    if latest is None:
        return Placement.NEW
    if latest.state is IssueState.OPEN:
        return Placement.COMMENT
    return Placement.REOPEN if on_recurrence is Recurrence.REOPEN else Placement.NEW


# -- the fingerprint -------------------------------------------------------------------------------

_K8S = "[bcdfghjklmnpqrstvwxz2456789]"
# What changes between runs of the same failure, replaced (in this order) before the error is kept.
_NOISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d[t ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\brun_[0-9a-z_]+"), "<run>"),
    # A Deployment's pod: name-<replicaset hash>-<5 characters>; a Job's or a bare ReplicaSet's too.
    # Kubernetes draws both from consonants and digits without vowels, so words are left alone.
    (re.compile(rf"\b([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*?)-{_K8S}{{6,10}}-{_K8S}{{5}}\b"), r"\1-<pod>"),
    (re.compile(rf"\b([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*?)-{_K8S}{{5}}\b(?!-)"), r"\1-<pod>"),
    (re.compile(r"\b(?:sha256:)?[0-9a-f]{12,}\b"), "<hash>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "<n>"),
    (re.compile(r"\d+(?:\.\d+)*"), "<n>"),
)
_SPACE = re.compile(r"\s+")
_MAX_ERROR_KIND = 120


def error_kind(error: str | None) -> str:
    """The first non-empty line of an error, lower-cased, with run-to-run noise replaced by
    placeholders and whitespace collapsed; "unknown" when there is nothing."""
    first = next((line for line in (error or "").splitlines() if line.strip()), "")
    text = first.lower()[:2000]
    for pattern, replacement in _NOISE:
        text = pattern.sub(replacement, text)
    text = _SPACE.sub(" ", text).strip()[:_MAX_ERROR_KIND]
    return text or "unknown"


def fingerprint(subject: str, environment: str | None, tool: str, cause: str) -> Fingerprint:
    """The fingerprint of these parts (each compared trimmed and case-insensitively)."""
    parts = [
        subject.strip().lower(),
        (environment or "").strip().lower(),
        tool.strip().lower(),
        cause.strip(),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return Fingerprint(
        subject=parts[0], environment=parts[1] or None, tool=parts[2], cause=parts[3], value=f"fp_{digest}"
    )


# -- the markdown ----------------------------------------------------------------------------------


def occurrence_of(
    analysis: Analysis,
    *,
    subject: str,
    environment: str | None,
    labels: list[str],
    link: str | None,
    at: datetime,
) -> Occurrence:
    """The tracker's view of one analysed failed run (texts to be redacted by the caller first)."""
    failed = analysis.failed_step
    tool = f"{failed.server}/{failed.tool}" if failed else "none"
    if analysis.explained and analysis.findings:
        cause = f"rule:{analysis.findings[0].rule}"
    else:
        cause = f"error:{error_kind(failed.error if failed else analysis.root_cause)}"
    found = fingerprint(subject, environment, tool, cause)
    what = analysis.error_type or "unexplained failure"
    where = f" at step {failed.id}" if failed else ""
    title = f"{subject} failed in {environment or 'no environment'}: {what}{where}"
    run = f"[{analysis.run_id}]({link})" if link else f"`{analysis.run_id}`"
    head = (
        f"Run {run} of plan `{analysis.plan_id}` ended **{analysis.status}**"
        f" in **{_inline(environment or 'no environment')}**."
    )
    body = "\n\n".join(
        [
            head,
            _analysis_markdown(analysis),
            _components(analysis),
            f"`opsmith explain {analysis.run_id}` shows the full analysis.",
            f"<!-- opsmith fingerprint: {found.value} -->",
        ]
    )
    return Occurrence(
        run_id=analysis.run_id,
        fingerprint=found,
        title=_inline(title)[:_MAX_TITLE],
        body=_bounded(body),
        evidence=_bounded(f"{head}\n\n{_analysis_markdown(analysis)}"),
        link=link,
        labels=list(dict.fromkeys(labels)),
        at=at,
    )


def recurrence_comment(occurrence: Occurrence, count: int, *, reopened: bool) -> str:
    """The comment a repeat adds: which occurrence this is, the new run, and its evidence."""
    what = "Reopened: the failure came back" if reopened else "The failure happened again"
    return _bounded(f"**{what}** (occurrence {count}).\n\n{occurrence.evidence}")


def _analysis_markdown(analysis: Analysis) -> str:
    parts = ["### Root cause", _inline(analysis.root_cause)]
    facts = []
    if analysis.error_type:
        facts.append(f"**Error type:** {_inline(analysis.error_type)}")
    if analysis.confidence:
        facts.append(f"**Confidence:** {analysis.confidence}")
    if analysis.explained and analysis.findings:
        facts.append(f"**Rule:** `{analysis.findings[0].rule}`")
    if facts:
        parts.append(" · ".join(facts))
    if analysis.fix is not None:
        fix = analysis.fix
        lines = [_inline(fix.summary)]
        if fix.file:
            lines.append(f"- File: {_code(fix.file)}")
        if fix.dockerfile:
            lines.append(f"- Dockerfile line: {_code(fix.dockerfile)}")
        lines += [f"{n}. {_inline(step)}" for n, step in enumerate(fix.steps, 1)]
        parts += ["### Fix", "\n".join(lines)]
    parts += ["### Evidence", _evidence(analysis.evidence)]
    return "\n\n".join(parts)


def _evidence(lines: list[EvidenceLine]) -> str:
    if not lines:
        return "_No line was recorded._"
    shown = []
    for line in lines[:MAX_EVIDENCE_LINES]:
        shown.append(f"- {_inline(line.citation)}\n\n{_block(line.text)}")
    more = len(lines) - MAX_EVIDENCE_LINES
    if more > 0:
        shown.append(f"_{more} more line(s): see `opsmith explain`._")
    return "\n\n".join(shown)


def _components(analysis: Analysis) -> str:
    if not analysis.components:
        return ""
    rows = [f"- `{c.step}` {_inline(c.title)}: {c.outcome}" for c in analysis.components]
    return "### Steps\n\n" + "\n".join(rows)


def _block(text: str) -> str:
    # A fence longer than any run of backticks in the line, so a log line cannot close it early.
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _code(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    return f"{tick} {text} {tick}"


def _inline(text: str) -> str:
    # Words taken from logs must not mention people or teams on the tracker ("@oncall"): a word
    # joiner after each @ keeps the text readable and the mention inert.
    return text.replace("@", "@\u2060")


def _bounded(text: str) -> str:
    if len(text) <= MAX_BODY_CHARS:
        return text
    return text[: MAX_BODY_CHARS - 40] + "\n\n_(cut: see `opsmith explain`)_"

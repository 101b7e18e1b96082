"""Root-cause analysis of a failed run: evidence lines in, cited findings and one explanation out.

No claim without an observed line: a rule fires only on a line it matched, and each finding
cites that line's artifact (the step, the server/tool, the host, the line number). When no rule
matches, the analysis says so and shows what it read.

Matching is bounded whatever the input: each line is cut to MAX_LINE_CHARS before any pattern
sees it, and at most MAX_LINES lines are read in all, so a hostile log costs at most
(rules x MAX_LINES) searches over short lines. Pure: plain values in, plain values out.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from pydantic import BaseModel, ConfigDict, Field, computed_field

from opsmith.domain.root_cause_rules import ArtifactKind, Confidence, Fix, Rule, raised, render

__all__ = [
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "Analysis",
    "Artifact",
    "Component",
    "EvidenceLine",
    "FailedStep",
    "Finding",
    "Hit",
    "StepFact",
    "analyse",
    "match_lines",
]

MAX_LINE_CHARS = 2000
MAX_LINES = 20_000
SHOWN_UNMATCHED = 30  # lines an unexplained failure shows of what it read


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Artifact(_Frozen):
    """One thing that was read: a step's error or output, a host's stderr or exit code, or what a
    read-only tool returned when the analysis asked it (`fetched`)."""

    kind: ArtifactKind
    step: str | None = None
    server: str | None = None
    tool: str | None = None
    host: str | None = None
    fetched: bool = False
    lines: tuple[str, ...] = ()


class EvidenceLine(_Frozen):
    """One observed line and where it came from; `line` counts from 1 within its artifact."""

    text: str
    line: int = Field(ge=1)
    kind: ArtifactKind
    step: str | None = None
    server: str | None = None
    tool: str | None = None
    host: str | None = None
    fetched: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def citation(self) -> str:
        parts = [f"step {self.step}" if self.step else "run"]
        if self.server and self.tool:
            parts.append(f"{self.server}/{self.tool}")
        if self.host:
            parts.append(f"host {self.host}")
        read = "read now" if self.fetched else "recorded"
        parts.append(f"{self.kind} line {self.line} ({read})")
        return ", ".join(parts)


@dataclass(frozen=True)
class Hit:
    """A rule's pattern matched a line; `groups` are its named groups' texts."""

    rule: Rule
    line: EvidenceLine
    groups: dict[str, str]


class Finding(_Frozen):
    """What one rule concluded, with the line it matched and the lines that back it up."""

    rule: str
    kind: str
    error_type: str
    root_cause: str
    fix: Fix
    confidence: Confidence
    stated_confidence: Confidence = Field(description="the rule's own, before corroboration")
    priority: int = 0
    cited: EvidenceLine
    corroborated_by: list[EvidenceLine] = Field(default_factory=list)


class StepFact(_Frozen):
    """A step of the plan and how it ended in the run (a StepStatus value)."""

    id: str
    title: str
    server: str
    tool: str
    status: str


class Component(_Frozen):
    step: str
    title: str
    status: str
    outcome: str = Field(description="passed, failed, rolled back, skipped or not run")


class FailedStep(_Frozen):
    id: str
    title: str
    server: str
    tool: str
    error: str | None = None
    exit_codes: list[int] = Field(default_factory=list)


class Analysis(_Frozen):
    """The explanation of one failed run, as every face shows it."""

    run_id: str
    plan_id: str
    status: str
    failed_step: FailedStep | None
    explained: bool = Field(description="false: no rule matched; `evidence` is then what was read")
    error_type: str | None
    root_cause: str
    fix: Fix | None
    confidence: Confidence | None
    evidence: list[EvidenceLine] = Field(description="the lines the claims cite, or those read")
    findings: list[Finding]
    components: list[Component]
    lines_read: int
    artifacts_read: int
    truncated: bool = Field(description="more lines were there than the analysis reads")
    notes: list[str] = Field(default_factory=list, description="evidence that could not be read, and why")


def match_lines(rules: Sequence[Rule], artifacts: Iterable[Artifact]) -> tuple[list[Hit], int, bool]:
    """Every (rule, line) match, the number of lines read and whether the cap cut the reading."""
    hits: list[Hit] = []
    read = 0
    # The compiled searches are looked up once: a rule's pattern is a private attribute, and
    # reaching it through the model on every line costs more than the search itself.
    Tried = tuple[Rule, Callable[[str], re.Match[str] | None], frozenset[str]]
    by_kind: dict[str, list[Tried]] = {}
    for rule in rules:
        entry = (rule, rule.regex.search, frozenset(rule.screen))
        for kind in rule.applies_to:
            by_kind.setdefault(kind, []).append(entry)
    # Per kind, the screen words of its rules: most lines contain none of them, so no pattern
    # runs on them at all; which lines do is found by a substring search per word over all of an
    # artifact's lines at once (see _screened).
    words = {kind: sorted({w for _, _, screen in tried for w in screen}) for kind, tried in by_kind.items()}
    always = {kind: any(not screen for _, _, screen in tried) for kind, tried in by_kind.items()}
    for artifact in artifacts:
        if not artifact.lines:
            continue
        if read >= MAX_LINES:
            return hits, read, True
        lines = artifact.lines[: MAX_LINES - read]
        read += len(lines)
        fitting = by_kind.get(artifact.kind, [])
        screen_words = words.get(artifact.kind, [])
        if max(map(len, lines)) > MAX_LINE_CHARS:
            lines = tuple(raw[:MAX_LINE_CHARS] for raw in lines)
        unscreened = always.get(artifact.kind, False)
        for index in range(len(lines)) if unscreened else _screened(lines, screen_words):
            text = lines[index]
            lower = text.lower()
            present = {w for w in screen_words if w in lower}
            for rule, search, screen in fitting:
                if screen and screen.isdisjoint(present):
                    continue
                found = search(text)
                if found is not None:
                    groups = {k: v for k, v in found.groupdict().items() if v is not None}
                    hits.append(Hit(rule, _line(artifact, index + 1, text), groups))
        if len(lines) < len(artifact.lines):
            return hits, read, True
    return hits, read, False


def _screened(lines: Sequence[str], words: Sequence[str]) -> list[int]:
    """The indexes of the lines that may hold one of `words`, in order: each word is looked for in
    all the lines joined and lower-cased, once per line that holds it (a false lead across the
    joint is dropped by the caller's test of each line)."""
    if not words or not lines:
        return []
    block = "\n".join(lines).lower()
    if len(block) != sum(map(len, lines)) + len(lines) - 1:
        # A character whose lower case is longer (İ): the offsets are those of the lowered lines.
        lines = [line.lower() for line in lines]
        block = "\n".join(lines)
    starts: list[int] = []
    holding: set[int] = set()
    for word in words:
        at = block.find(word)
        while at != -1:
            if not starts:
                starts = list(accumulate((len(line) + 1 for line in lines), initial=0))
            index = bisect_right(starts, at) - 1
            holding.add(index)
            at = block.find(word, starts[index + 1])
    return sorted(holding)


def _line(artifact: Artifact, number: int, text: str) -> EvidenceLine:
    return EvidenceLine(
        text=text,
        line=number,
        kind=artifact.kind,
        step=artifact.step,
        server=artifact.server,
        tool=artifact.tool,
        host=artifact.host,
        fetched=artifact.fetched,
    )


def findings(hits: Sequence[Hit], artifacts: Sequence[Artifact]) -> list[Finding]:
    """One finding per rule that fired, citing its first matched line (recorded evidence first)."""
    by_rule: dict[str, list[Hit]] = {}
    for hit in hits:
        by_rule.setdefault(hit.rule.id, []).append(hit)
    found = []
    for rule_hits in by_rule.values():
        first, rule = rule_hits[0], rule_hits[0].rule
        backing = _corroboration(rule, first, rule_hits, artifacts)
        found.append(
            Finding(
                rule=rule.id,
                kind=rule.kind,
                error_type=render(rule.error_type, first.groups),
                root_cause=render(rule.root_cause, first.groups),
                fix=rule.fix.rendered(first.groups),
                confidence=raised(rule.confidence) if backing else rule.confidence,
                stated_confidence=rule.confidence,
                priority=rule.priority,
                cited=first.line,
                corroborated_by=backing,
            )
        )
    return found


def _corroboration(
    rule: Rule, first: Hit, hits: Sequence[Hit], artifacts: Sequence[Artifact]
) -> list[EvidenceLine]:
    """Lines other than the cited one that back the rule: its own pattern in another artifact, or a
    line matching one of its `corroborate` patterns. At most three, for the reader."""
    backing: list[EvidenceLine] = []
    place = _place(first.line)
    for hit in hits[1:]:
        if _place(hit.line) != place and all(_place(b) != _place(hit.line) for b in backing):
            backing.append(hit.line)
    backers = rule.backers
    if backers and len(backing) < 3:
        read = 0
        for artifact in artifacts:
            for number, raw in enumerate(artifact.lines, start=1):
                read += 1
                if read > MAX_LINES or len(backing) >= 3:
                    return backing
                text = raw[:MAX_LINE_CHARS]
                if not any(p.search(text) for p in backers):
                    continue
                line = _line(artifact, number, text)
                if line != first.line and line not in backing:
                    backing.append(line)
    return backing[:3]


def _place(line: EvidenceLine) -> tuple[str | None, ...]:
    return (line.step, line.server, line.tool, line.host, line.kind, str(line.fetched))


_OUTCOMES = {
    "succeeded": "passed",
    "rolled_back": "passed, then rolled back",
    "rollback_failed": "passed; its rollback failed",
    "failed": "failed",
    "skipped": "skipped",
    "cancelled": "cancelled",
}


def analyse(
    rules: Sequence[Rule],
    artifacts: Sequence[Artifact],
    *,
    run_id: str,
    plan_id: str,
    status: str,
    steps: Sequence[StepFact],
    failed: FailedStep | None,
    notes: Sequence[str] = (),
) -> Analysis:
    """The explanation: the best cause found (else the symptom), its fix and confidence, every
    finding with its cited line, and what passed and what failed."""
    hits, read, truncated = match_lines(rules, artifacts)
    found = findings(hits, artifacts)
    found.sort(key=_rank)
    components = [
        Component(step=s.id, title=s.title, status=s.status, outcome=_OUTCOMES.get(s.status, "not run"))
        for s in steps
    ]
    base = {
        "run_id": run_id,
        "plan_id": plan_id,
        "status": status,
        "failed_step": failed,
        "components": components,
        "lines_read": read,
        "artifacts_read": len(artifacts),
        "truncated": truncated,
        "notes": list(notes),
    }
    if not found:
        return Analysis(
            **base,
            explained=False,
            error_type=None,
            root_cause=f"no rule matched the {read} lines read; the evidence below is what was seen",
            fix=None,
            confidence=None,
            evidence=_unmatched_view(artifacts),
            findings=[],
        )
    causes = [f for f in found if f.kind == "cause"]
    symptoms = [f for f in found if f.kind == "symptom"]
    primary = causes[0] if causes else symptoms[0]
    error_type = symptoms[0].error_type if symptoms else primary.error_type
    cited = list(dict.fromkeys(line for f in found for line in (f.cited, *f.corroborated_by)))
    return Analysis(
        **base,
        explained=True,
        error_type=error_type,
        root_cause=primary.root_cause,
        fix=primary.fix,
        confidence=primary.confidence,
        evidence=cited,
        findings=found,
    )


def _rank(finding: Finding) -> tuple[int, int, int, int]:
    # Causes before symptoms; the more specific (the rule says), then the more confident; recorded
    # evidence before what was read later.
    level = {"high": 0, "medium": 1, "low": 2}[finding.confidence]
    return (0 if finding.kind == "cause" else 1, -finding.priority, level, 1 if finding.cited.fetched else 0)


def _unmatched_view(artifacts: Sequence[Artifact]) -> list[EvidenceLine]:
    # The errors first (the failed step's is read first), then the end of everything else: the
    # last lines are where a failure shows. Only the lines shown are made into evidence.
    errors = [(a, n, raw) for a in artifacts if a.kind == "error" for n, raw in enumerate(a.lines, 1)][:10]
    keep = SHOWN_UNMATCHED - len(errors)
    rest: list[tuple[Artifact, int, str]] = []
    for artifact in reversed([a for a in artifacts if a.kind != "error"]):
        if len(rest) >= keep:
            break
        first = max(len(artifact.lines) - (keep - len(rest)), 0)
        rest = [(artifact, n + 1, artifact.lines[n]) for n in range(first, len(artifact.lines))] + rest
    return [_line(a, n, raw[:MAX_LINE_CHARS]) for a, n, raw in errors + rest]

"""The root-cause rule library as data: what one rule matches, what it claims, and its parser.

A rule file is YAML with one key, `rules:`, a list of rules (see src/opsmith/bundled/root_causes.yaml).
A rule matches one evidence line with a regular expression; its texts are templates over the
pattern's named groups (`{path}`), so a claim only ever repeats what a line said. Patterns are
compiled once, here, and a pattern that nests quantifiers (`(a+)+`) is refused: the matcher also
caps every line's length and the lines it reads, so no log can make matching slow.

Pure: parses text handed to it; reading the files is the caller's business.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from opsmith.domain.errors import UsageError

__all__ = [
    "ARTIFACT_KINDS",
    "ArtifactKind",
    "Confidence",
    "Fix",
    "Rule",
    "RuleFileError",
    "merge_rules",
    "parse_rules",
    "raised",
]

ArtifactKind = Literal["error", "output", "log", "event", "stderr", "exit_code"]
ARTIFACT_KINDS: tuple[str, ...] = ("error", "output", "log", "event", "stderr", "exit_code")
Confidence = Literal["low", "medium", "high"]
_LEVELS: tuple[Confidence, ...] = ("low", "medium", "high")

_ID = r"^[a-z][a-z0-9_-]{0,63}$"
_FIELD = re.compile(r"\{([^{}]*)\}")
# A group holding a quantifier, itself quantified: the shape of catastrophic backtracking. A guard
# against the common cases, not a proof; the caps on lines are what bound the time.
_NESTED = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,?\d*\})")
MAX_PATTERN_CHARS = 500
_DEFAULT_KINDS: list[ArtifactKind] = ["error", "output", "log", "event", "stderr"]


class RuleFileError(UsageError):
    """A root-cause rule file that is not valid YAML, has an unknown key, or a rule that is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fix(_Strict):
    """What to do about a cause. Every text may use the rule pattern's named groups."""

    summary: str = Field(min_length=1)
    file: str | None = Field(default=None, description="the file to add or correct")
    dockerfile: str | None = Field(default=None, description="the Dockerfile line that puts it in the image")
    steps: list[str] = Field(default_factory=list, description="next steps, in order")

    def rendered(self, groups: dict[str, str]) -> Fix:
        return Fix(
            summary=render(self.summary, groups),
            file=None if self.file is None else render(self.file, groups),
            dockerfile=None if self.dockerfile is None else render(self.dockerfile, groups),
            steps=[render(s, groups) for s in self.steps],
        )

    def templates(self) -> list[str]:
        return [self.summary, *(t for t in (self.file, self.dockerfile) if t), *self.steps]


class Rule(_Strict):
    """One rule: a line it matches, the error type and cause it then claims, and the fix.

    `kind: symptom` rules name what was seen (CrashLoopBackOff); `cause` rules name why (a missing
    file). `confidence` is the rule's own; only corroborating lines (`corroborate`, or its pattern
    matched in another artifact) raise it, one level.
    """

    id: str = Field(pattern=_ID)
    kind: Literal["symptom", "cause"] = "cause"
    error_type: str = Field(min_length=1)
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS)
    ignore_case: bool = False
    applies_to: list[ArtifactKind] = Field(default_factory=_DEFAULT_KINDS.copy)
    root_cause: str = Field(min_length=1)
    fix: Fix
    confidence: Confidence
    priority: int = Field(default=0, ge=-1000, le=1000, description="the higher wins among causes found")
    corroborate: list[str] = Field(default_factory=list, description="patterns of lines that back it up")
    screen: list[str] = Field(
        default_factory=list,
        description="lower-case words one of which every line the pattern matches contains: lines"
        " without any are not searched (empty: every line is)",
    )
    source: str = Field(default="", exclude=True)
    _regex: re.Pattern[str] = PrivateAttr()
    _backers: tuple[re.Pattern[str], ...] = PrivateAttr()

    @model_validator(mode="after")
    def _compiled(self) -> Rule:
        flags = re.IGNORECASE if self.ignore_case else 0
        self._regex = _compile(self.pattern, flags, "pattern")
        self._backers = tuple(_compile(p, re.IGNORECASE, "corroborate") for p in self.corroborate)
        names = set(self._regex.groupindex)
        for text in [self.error_type, self.root_cause, *self.fix.templates()]:
            for name in _FIELD.findall(text):
                if name not in names:
                    shown = ", ".join(sorted(names)) or "none"
                    raise ValueError(
                        f"template {text!r} uses {{{name}}}, which is not a named group of the pattern"
                        f" (its groups: {shown})"
                    )
        if any(not word or word != word.lower() for word in self.screen):
            raise ValueError(
                "screen words are lower-case and not empty (they are looked for in the lower-cased line)"
            )
        if not self.applies_to:
            raise ValueError("applies_to is empty: the rule could never fire")
        return self

    @property
    def regex(self) -> re.Pattern[str]:
        return self._regex

    @property
    def backers(self) -> tuple[re.Pattern[str], ...]:
        return self._backers


def _compile(pattern: str, flags: int, what: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"{what} is longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED.search(pattern):
        raise ValueError(
            f"{what} {pattern!r} nests a quantifier inside a quantified group, which can take"
            " exponential time on a hostile line; write it without the outer repetition"
        )
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from exc


def render(template: str, groups: dict[str, str]) -> str:
    """`template` with each `{name}` replaced by that group's text (an unmatched group: empty)."""
    return _FIELD.sub(lambda m: groups.get(m.group(1)) or "", template)


def raised(level: Confidence) -> Confidence:
    """One level up, at most high."""
    return _LEVELS[min(_LEVELS.index(level) + 1, len(_LEVELS) - 1)]


_RULE_KEYS = tuple(name for name, info in Rule.model_fields.items() if not info.exclude)
_FIX_KEYS = tuple(Fix.model_fields)


def parse_rules(text: str, *, source: str) -> list[Rule]:
    """The rules of one file; RuleFileError naming the file, the rule and what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise RuleFileError(
            f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}",
            hint="fix the syntax at that line",
        ) from exc
    if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(data["rules"], list):
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise RuleFileError(
            f"{source}: a rule file is a mapping with one key, 'rules', a list of rules (found: {found})",
            hint="see src/opsmith/bundled/root_causes.yaml for the shape",
        )
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(data["rules"]):
        rule = _rule(item, index, source)
        if rule.id in seen:
            raise RuleFileError(
                f"{source}: rule {rule.id!r} is defined twice", hint="give each rule its own id"
            )
        seen.add(rule.id)
        rules.append(rule)
    return rules


def _rule(item: Any, index: int, source: str) -> Rule:
    name = item.get("id") if isinstance(item, dict) else None
    where = f"{source}: rule {name!r}" if isinstance(name, str) else f"{source}: rules[{index}]"
    if not isinstance(item, dict):
        raise RuleFileError(f"{where}: a rule is a mapping, got {type(item).__name__}")
    _unknown_keys(item, _RULE_KEYS, where, "a rule")
    if isinstance(item.get("fix"), dict):
        _unknown_keys(item["fix"], _FIX_KEYS, f"{where}: fix", "a fix")
    try:
        rule = Rule.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(the rule)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RuleFileError(
            f"{where}: {path}: {message}", hint="see src/opsmith/bundled/root_causes.yaml for examples"
        ) from exc
    return rule.model_copy(update={"source": source})


def _unknown_keys(item: dict[Any, Any], allowed: Sequence[str], where: str, what: str) -> None:
    for key in item:
        if key in allowed:
            continue
        nearest = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
        advice = f"; did you mean {nearest[0]!r}?" if nearest else ""
        raise RuleFileError(
            f"{where}: unknown key {key!r}{advice}", hint=f"keys {what} takes: {', '.join(allowed)}"
        )


def merge_rules(*libraries: Iterable[Rule]) -> list[Rule]:
    """The rules of every library, in order; a later rule with an earlier one's id replaces it
    (a user's rule replaces the bundled one of the same id)."""
    by_id: dict[str, Rule] = {}
    for library in libraries:
        for rule in library:
            by_id[rule.id] = rule
    return list(by_id.values())

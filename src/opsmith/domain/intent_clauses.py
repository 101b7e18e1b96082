"""Splitting a tokenised request into clauses, each with its action (or none).

A clause is the text between commas, sentence ends and connectors ("and", "then"). Its first
verb is its action; later verb words in the same clause are nouns ("deploy the security patch"
deploys, it does not update). A clause without a verb either continues the one before ("deploy
a and b"), asks about status ("is nginx running?"), or is something the user wants that is not
an action ("log results"), which becomes a note.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field

from opsmith.domain.intent_text import Token
from opsmith.domain.intent_words import (
    CHECK_NOUNS,
    CONNECTORS,
    HOTFIX_WORDS,
    LONGEST_VERB,
    NOTE_VERBS,
    QUESTION_WORDS,
    STATE_WORDS,
    VERB_PARAMS,
    VERBS,
)

# A word right after these is a noun, not a verb: "the update", "a patch".
NOUN_MARKERS = frozenset({"the", "a", "an", "this", "that", "my", "our", "new", "latest", "its"})
# Words that may open a clause without being its content: "then log results", "please restart".
OPENERS = frozenset({"please", "pls", "kindly", "then", "now", "also", "just", "and", "finally"})


@dataclass(frozen=True)
class Known:
    """The vocabulary, indexed for lookups by lowercase name."""

    applications: dict[str, str]
    groups: dict[str, str]
    # difflib is the slow part of reading a long request against a large vocabulary.
    _nearest: dict[tuple[str, str, float], list[str]] = field(default_factory=dict, compare=False, repr=False)

    def nearest(self, name: str, kind: str, cutoff: float = 0.5) -> list[str]:
        """Up to three known names like this one, most alike first."""
        key = (name.lower(), kind, cutoff)
        if key not in self._nearest:
            table = self.applications if kind == "application" else self.groups
            found = difflib.get_close_matches(key[0], list(table), n=3, cutoff=cutoff)
            self._nearest[key] = [table[low] for low in found]
        return list(self._nearest[key])


@dataclass
class Clause:
    tokens: list[Token]
    action: str | None = None
    verb: tuple[int, int] | None = None  # token span of the verb phrase
    note: bool = False
    joins: set[int] = field(default_factory=set)  # where continuation clauses were joined on


def find_verb(tokens: list[Token], known: Known) -> tuple[int, int, tuple[str, ...]] | None:
    """The first verb phrase of a clause: start index, end index, the phrase."""
    for start, token in enumerate(tokens):
        if token.quoted or token.group or token.low in known.applications:
            continue
        if start > 0 and tokens[start - 1].low in NOUN_MARKERS:
            continue  # "the update", "a patch": nouns
        for length in range(min(LONGEST_VERB, len(tokens) - start), 0, -1):
            run = tokens[start : start + length]
            phrase = tuple(t.low for t in run)
            if phrase in VERBS and not any(t.quoted or t.group for t in run):
                return start, start + length, phrase
    return None


def split_clauses(tokens: list[Token], known: Known) -> list[Clause]:
    raw: list[list[Token]] = [[]]
    for token in tokens:
        plain = not token.quoted and not token.group
        if token.boundary or (plain and token.low in CONNECTORS):
            raw.append([])
        else:
            raw[-1].append(token)
    clauses: list[Clause] = []
    pending: list[Token] = []
    for part in (p for p in raw if p):
        clause = _classify(part, known)
        if clause is None:  # a continuation: joins the clause before, or the next one
            if clauses:
                clauses[-1].joins.add(len(clauses[-1].tokens))
                clauses[-1].tokens.extend(part)
            else:
                pending.extend(part)
            continue
        if pending:
            clause = _prepend(pending, clause)
            pending = []
        clauses.append(clause)
    if pending:
        clauses.append(Clause(tokens=pending))  # context only: no action anywhere
    return clauses


def _classify(tokens: list[Token], known: Known) -> Clause | None:
    verb = find_verb(tokens, known)
    if verb is not None:
        start, end, phrase = verb
        action = VERBS[phrase]
        if action == "deploy" and _mentions_hotfix(tokens):
            action = "hotfix"
        return Clause(tokens=tokens, action=action, verb=(start, end))
    lows = [t.low for t in tokens if not t.quoted and not t.group]
    first = next((low for low in lows if low not in OPENERS), "")
    if (first in QUESTION_WORDS or first in {"ensure", "make"}) and STATE_WORDS.intersection(lows):
        return Clause(tokens=tokens, action="check")
    if CHECK_NOUNS.intersection(lows) and first not in NOTE_VERBS:
        return Clause(tokens=tokens, action="check")
    if first in NOTE_VERBS:
        return Clause(tokens=tokens, note=True)
    return None


def _mentions_hotfix(tokens: list[Token]) -> bool:
    lows = [t.low for t in tokens if not t.quoted]
    pairs = itertools.pairwise(lows)
    return bool(HOTFIX_WORDS.intersection(lows)) or ("hot", "fix") in set(pairs)


def _prepend(pending: list[Token], clause: Clause) -> Clause:
    shift = len(pending)
    verb = (clause.verb[0] + shift, clause.verb[1] + shift) if clause.verb else None
    joins = {shift + j for j in clause.joins}
    return Clause(pending + clause.tokens, clause.action, verb, clause.note, joins)


def verb_params(clause: Clause) -> dict[str, str]:
    if clause.verb is None:
        return {}
    start, end = clause.verb
    return VERB_PARAMS.get(tuple(t.low for t in clause.tokens[start:end]), {})

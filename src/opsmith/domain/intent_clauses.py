"""Splitting a tokenised request into clauses, each with its action (or none).

A clause is the text between commas, sentence ends and connectors ("and", "then"). Its first
verb is its action; later verb words in the same clause are nouns ("deploy the security patch"
deploys, it does not update). A clause without a verb either continues the one before ("deploy
a and b"), asks about status ("is nginx running?"), is something the user wants that is not
an action ("log results"), which becomes a note, or asks for something with a verb opsmith does
not know ("wipe the cache"), which is marked unrecognised so that the reader refuses it rather
than let it vanish into the clause before.

Every part of a request must be accounted for, so a continuation that starts with a word no
table knows is kept as `doubtful`: the reader then says whether it could place that word as a
name ("and postgresql on db-01") or not ("and then wipe"), and refuses it in the second case.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field

from opsmith.domain.intent_text import Token, is_number, is_version
from opsmith.domain.intent_words import (
    CHECK_NOUNS,
    CONNECTORS,
    ENVIRONMENT_NOUNS,
    HOTFIX_WORDS,
    KNOWN_WORDS,
    LEAD_WORDS,
    LONGEST_VERB,
    MARKERS,
    NOTE_VERBS,
    QUESTION_WORDS,
    REPLICA_NOUNS,
    SLOTS,
    STATE_WORDS,
    TRAILING_WORDS,
    VERB_PARAMS,
    VERBS,
)

# A word right after these is a noun, not a verb: "the update", "a patch".
NOUN_MARKERS = frozenset({"the", "a", "an", "this", "that", "my", "our", "new", "latest", "its"})


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
    unrecognised: bool = False  # reads as a request, but its verb is none opsmith knows
    # Continuations whose first word no table knows: (part start, that word, part end) indices.
    doubtful: list[tuple[int, int, int]] = field(default_factory=list)

    def first_word(self) -> str | None:
        """The clause's first word after lead-in words ("then", "we need to"): a note's verb."""
        return next((t.low for t in self.tokens if t.quoted or t.group or t.low not in LEAD_WORDS), None)


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
    pending = Clause(tokens=[])  # context before the first clause with an action or a note
    for part in (p for p in raw if p):
        clause = _classify(part, known) or _unrecognised(part, known)
        if clause is None:  # a continuation: joins the clause before, or the next one
            _join(clauses[-1] if clauses else pending, part, known, mark=bool(clauses))
            continue
        if pending.tokens:
            clause = _prepend(pending, clause)
            pending = Clause(tokens=[])
        clauses.append(clause)
    if pending.tokens:
        clauses.append(pending)  # context only: no action anywhere
    return clauses


def _join(clause: Clause, part: list[Token], known: Known, *, mark: bool) -> None:
    at = len(clause.tokens)
    if mark:
        clause.joins.add(at)
    head = _unknown_head(part, known)
    if head is not None:
        clause.doubtful.append((at, at + head, at + len(part)))
    clause.tokens.extend(part)


def _unrecognised(part: list[Token], known: Known) -> Clause | None:
    """A part that opens with an unknown word followed by its object: "wipe the staging cache"."""
    head = _unknown_head(part, known)
    if head is None:
        return None
    after = next((t for t in part[head + 1 :] if t.quoted or t.group or t.low not in TRAILING_WORDS), None)
    if after is None or _names_something(after):
        return None  # "and apache too", "postgresql on db-01": a name, as far as words can tell
    return Clause(tokens=part, unrecognised=True)


def _unknown_head(part: list[Token], known: Known) -> int | None:
    """Where the part's first word stands, if it is a plain word that no table or name knows."""
    index = next((i for i, t in enumerate(part) if t.quoted or t.group or t.low not in LEAD_WORDS), None)
    if index is None or not _is_unknown_word(part[index], known):
        return None
    return index


def _is_unknown_word(token: Token, known: Known) -> bool:
    low = token.low
    if token.quoted or token.group or not low.isascii() or not low.replace("-", "").isalpha():
        return False
    if low.startswith("-") or low.endswith("-"):
        return False  # a flag, or a typo of one
    return low not in KNOWN_WORDS and low not in known.applications and low not in known.groups


def _names_something(token: Token) -> bool:
    """Would this word, right after an unknown one, make that one a name ("redis on", "x service")?"""
    low = token.low
    if token.quoted or token.group:
        return False
    return (
        low in SLOTS
        or low in MARKERS
        or low in REPLICA_NOUNS
        or low in ENVIRONMENT_NOUNS
        or is_number(low)
        or is_version(token.text)
    )


def _classify(tokens: list[Token], known: Known) -> Clause | None:
    verb = find_verb(tokens, known)
    if verb is not None:
        start, end, phrase = verb
        action = VERBS[phrase]
        if action == "deploy" and _mentions_hotfix(tokens):
            action = "hotfix"
        return Clause(tokens=tokens, action=action, verb=(start, end))
    lows = [t.low for t in tokens if not t.quoted and not t.group]
    first = next((low for low in lows if low not in LEAD_WORDS), "")
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


def _prepend(pending: Clause, clause: Clause) -> Clause:
    shift = len(pending.tokens)
    verb = (clause.verb[0] + shift, clause.verb[1] + shift) if clause.verb else None
    joins = pending.joins | {shift + j for j in clause.joins}
    doubtful = pending.doubtful + [(a + shift, b + shift, c + shift) for a, b, c in clause.doubtful]
    return Clause(
        pending.tokens + clause.tokens, clause.action, verb, clause.note, joins, clause.unrecognised, doubtful
    )


def verb_params(clause: Clause) -> dict[str, str]:
    if clause.verb is None:
        return {}
    start, end = clause.verb
    return VERB_PARAMS.get(tuple(t.low for t in clause.tokens[start:end]), {})

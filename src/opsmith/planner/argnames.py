"""Match the argument names opsmith uses to the names a tool declares.

Playbooks, aliases and `--set` speak snake_case (`label_selector`, `tail_lines`); MCP servers
spell the same parameters `labelSelector`, `label-selector`, `tail` or `ns`. A name the tool does
not declare is matched, in this order, by:

1. spelling: case, `_` and `-` ignored, so camelCase, kebab-case and snake_case meet;
2. synonym: another name of its group in SYNONYMS, spelled in any of those ways.

Exact declared names always win, and a name that would match two declared parameters matches
none: a wrong argument sent to an operations tool costs more than a missing one, which the plan
shows and `--set` fills. For the same reason a generic parameter (`name`, `count`: see GENERIC)
is no synonym when its description says it holds something else ("Container name").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# Names servers give the same parameter. The first of each group is opsmith's own spelling.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("deployment_name", "deployment", "name"),
    ("label_selector", "selector", "labels"),
    ("tail_lines", "tail", "lines"),
    ("namespace", "ns"),
    ("app", "application", "app_name"),
    ("job", "job_name", "fullname"),
    ("image", "image_name"),
    ("replicas", "replica_count", "count"),
    ("wait_seconds", "timeout_seconds"),
)


@dataclass(frozen=True)
class Generic:
    """A parameter name servers use for many things; its description says which.

    The first word of the description found in `means` or `not_means` decides ("Name of the
    deployment to scale" is ours, "Container name" is not)."""

    means: frozenset[str]
    not_means: frozenset[str]
    # With no such word: the value is ours if the tool has no more specific parameter for it.
    alone_means: bool = False
    # Filled arguments (by canonical name) that make this parameter pick something else: with a
    # label selector, a `name` is a pod's or a container's, not the application's.
    not_with: frozenset[str] = frozenset()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


GENERIC: dict[str, Generic] = {
    "name": Generic(
        means=_words(
            "deployment resource application app job workload project statefulset replicaset daemonset"
        ),
        not_means=_words(
            "container node branch file pod namespace secret configmap volume context cluster user "
            "image tag label key path directory folder repository repo commit service host queue "
            "artifact plugin view port variable parameter credential role account policy event step "
            "stage snapshot backup revision chart suite field column table database index topic"
        ),
        alone_means=True,
        not_with=frozenset({"label_selector"}),
    ),
    "count": Generic(
        means=_words("replica pod instance worker"),
        not_means=_words(
            "line build item result page log event entry record row byte character commit retry "
            "attempt second minute"
        ),
    ),
}

How = Literal["exact", "spelling", "synonym"]
_RANK: dict[How, int] = {"exact": 0, "spelling": 1, "synonym": 2}


def normalise(name: str) -> str:
    """The key two spellings of one name share: `label_selector`, `labelSelector`,
    `label-selector` and `LabelSelector` are all `labelselector`."""
    return re.sub(r"[_\-]", "", name).casefold()


_GROUPS: dict[str, tuple[str, ...]] = {normalise(n): group for group in SYNONYMS for n in group}


def canonical(name: str) -> str | None:
    """opsmith's own name for a name of a synonym group, in any spelling; None outside the table."""
    group = _GROUPS.get(normalise(name))
    return group[0] if group else None


def synonyms(name: str) -> frozenset[str]:
    """The keys (see `normalise`) of the other names of its group."""
    key = normalise(name)
    return frozenset(normalise(n) for n in _GROUPS.get(key, ())) - {key}


def generic(name: str) -> Generic | None:
    return GENERIC.get(normalise(name))


def says(name: str, prop: Any) -> bool | None:
    """For a generic parameter: whether its description says it holds what its synonyms mean;
    None when it says neither (or the parameter is not generic)."""
    kind = generic(name)
    description = prop.get("description") if isinstance(prop, dict) else None
    if kind is None or not isinstance(description, str):
        return None
    for word in re.findall(r"[a-z]+", description.casefold()):
        singular = word[:-1] if word.endswith("s") else word
        if word in kind.means or singular in kind.means:
            return True
        if word in kind.not_means or singular in kind.not_means:
            return False
    return None


@dataclass(frozen=True)
class Match:
    """Where one argument goes: the declared parameter and how it was found, or, when more
    than one parameter fits equally well, the ones it could be."""

    target: str | None
    how: How | None = None
    candidates: tuple[str, ...] = ()


def match(name: str, props: Mapping[str, Any]) -> Match:
    """The declared parameter an argument named `name` fills; see the module docstring."""
    if name in props:
        return Match(name, "exact")
    key = normalise(name)
    spelled = [p for p in props if normalise(p) == key]
    if spelled:
        return _only(spelled, "spelling")
    alike = synonyms(key)
    # A generic parameter whose description says it holds something else is no synonym.
    similar = [p for p in props if normalise(p) in alike and says(p, props[p]) is not False]
    return _only(similar, "synonym") if similar else Match(None)


def _only(found: list[str], how: How) -> Match:
    return Match(found[0], how) if len(found) == 1 else Match(None, candidates=tuple(found))


@dataclass
class Placement:
    """Arguments placed onto a tool's parameters, in the order they were given."""

    placed: dict[str, str] = field(default_factory=dict)  # argument -> parameter it fills
    unplaced: dict[str, str] = field(default_factory=dict)  # argument -> why it fills none
    unknown: list[str] = field(default_factory=list)  # arguments like no declared parameter

    @property
    def renamed(self) -> list[str]:
        return [f"{name} -> {target}" for name, target in self.placed.items() if name != target]


def place(names: Sequence[str], props: Mapping[str, Any], *, open_schema: bool) -> Placement:
    """Each argument onto at most one declared parameter, each parameter filled at most once.

    When several arguments fill one parameter, an exact name beats a spelling, which beats a
    synonym; a tie places none of them. A tool that takes undeclared arguments gets the ones
    that match nothing under their own names."""
    matches = {name: match(name, props) for name in names}
    claims: dict[str, list[str]] = {}
    for name, found in matches.items():
        if found.target is not None:
            claims.setdefault(found.target, []).append(name)
    result = Placement()
    for name, found in matches.items():
        if found.target is None:
            if found.candidates:
                result.unplaced[name] = f"could be {' or '.join(found.candidates)}: name one of them"
            elif open_schema:
                result.placed[name] = name
            else:
                result.unknown.append(name)
            continue
        reason = _rivalry(name, found, [(r, matches[r]) for r in claims[found.target]])
        if reason:
            result.unplaced[name] = reason
        else:
            result.placed[name] = found.target
    return result


def _rivalry(name: str, found: Match, rivals: list[tuple[str, Match]]) -> str | None:
    """Why another argument filling the same parameter keeps this one out, if one does."""
    rank = {r: _RANK[m.how] for r, m in rivals if m.how is not None}
    best = min(rank.values())
    ahead = [r for r, level in rank.items() if r != name and level <= best]
    if not ahead:
        return None
    if rank[name] > best:
        return f"{found.target} is already given as {' and '.join(ahead)}"
    return f"{' and '.join(ahead)} also gives {found.target}"


def nearest(name: str, declared: Sequence[str], count: int = 3) -> list[str]:
    """The declared names closest to `name`, closest first, compared as keys."""
    by_key: dict[str, str] = {}
    for other in declared:
        by_key.setdefault(normalise(other), other)
    close = difflib.get_close_matches(normalise(name), list(by_key), n=count, cutoff=0.0)
    return [by_key[key] for key in close]

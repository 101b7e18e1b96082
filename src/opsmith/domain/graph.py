"""Dependency graphs of plan steps: validation, order, parallel levels, critical-path estimates.

A graph is a sequence of `Node`s; an edge is a name in `depends_on`. Every function
here validates first, so callers get one clear `GraphError` (what is wrong and how
to fix it) instead of a wrong answer. Input order is the tie-breaker everywhere, so
the same steps always give the same order, levels and critical path.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from opsmith.domain.errors import GraphError

__all__ = [
    "Estimate",
    "Node",
    "ancestors",
    "descendants",
    "estimate",
    "format_duration_range",
    "parallel_groups",
    "topological_order",
    "validate",
]

# Hints list at most this many known ids: enough to spot a typo, short enough to read.
_HINT_IDS = 10


@dataclass(frozen=True)
class Node:
    """One step: its id, the ids it must wait for, and its estimated (min, max) seconds."""

    id: str
    depends_on: tuple[str, ...] = ()
    duration: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Estimate:
    """Earliest finish of the whole graph, and the chain of steps that sets the maximum."""

    minimum: float
    maximum: float
    critical_path: tuple[str, ...]


# --- validation ---------------------------------------------------------------------------


def validate(nodes: Sequence[Node]) -> None:
    """Raise `GraphError` unless the nodes form a well-formed DAG with sane durations."""
    _check_ids(nodes)
    _check_durations(nodes)
    _check_dependencies(nodes)
    _check_acyclic(nodes)


def _check_ids(nodes: Sequence[Node]) -> None:
    seen: set[str] = set()
    for position, node in enumerate(nodes, start=1):
        if not node.id.strip():
            raise GraphError(
                f"step #{position} has an empty id",
                hint="give every step a non-empty id",
            )
        if node.id in seen:
            raise GraphError(
                f"duplicate step id {node.id!r}",
                hint="step ids must be unique; rename one of the two steps",
            )
        seen.add(node.id)


def _check_durations(nodes: Sequence[Node]) -> None:
    for node in nodes:
        low, high = node.duration
        problem = _duration_problem(low, high)
        if problem:
            raise GraphError(
                f"step {node.id!r} has duration ({low}, {high}): {problem}",
                hint="durations are (minimum, maximum) seconds, finite, >= 0, minimum <= maximum",
            )


def _duration_problem(low: float, high: float) -> str:
    """Why (low, high) is not a usable duration range, or '' when it is."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not a finite number of seconds"
    if low < 0 or high < 0:
        return "negative"
    if low > high:
        return "minimum is greater than maximum"
    return ""


def _check_dependencies(nodes: Sequence[Node]) -> None:
    known = [node.id for node in nodes]
    known_set = set(known)
    for node in nodes:
        for dep in node.depends_on:
            if dep == node.id:
                raise GraphError(
                    f"step {node.id!r} depends on itself",
                    hint=f"remove {node.id!r} from its own depends_on",
                )
            if dep not in known_set:
                raise GraphError(
                    f"step {node.id!r} depends on unknown step {dep!r}",
                    hint=f"known steps, nearest first: {_nearest_ids(dep, known)}",
                )


def _nearest_ids(name: str, known: Sequence[str]) -> str:
    """Known ids ordered by similarity to `name` (input order on ties), for typo hints."""
    ranked = sorted(
        enumerate(known),
        key=lambda item: (-SequenceMatcher(None, name, item[1]).ratio(), item[0]),
    )
    shown = [ident for _, ident in ranked[:_HINT_IDS]]
    more = len(known) - len(shown)
    if not shown:
        return "(none)"
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _check_acyclic(nodes: Sequence[Node]) -> None:
    cycle = _find_cycle(nodes)
    if cycle:
        raise GraphError(
            "cycle: " + " -> ".join(cycle),
            hint="a step cannot wait for itself; remove one of these dependencies",
        )


def _find_cycle(nodes: Sequence[Node]) -> list[str]:
    """A cycle in execution order (X -> Y: Y waits for X), closed, or [] when there is none.

    Iterative depth-first search over dependents, so deep chains cannot hit the
    recursion limit; every node is a start, so cycles unreachable from roots are found.
    """
    after = _dependents(nodes)
    done: set[str] = set()
    for node in nodes:
        if node.id in done:
            continue
        path = _cycle_from(node.id, after, done)
        if path:
            return _rotate_to_first(path, nodes)
    return []


def _cycle_from(start: str, after: Mapping[str, list[str]], done: set[str]) -> list[str]:
    path: list[str] = [start]
    on_path: set[str] = {start}
    pending: list[Iterator[str]] = [iter(after[start])]
    while pending:
        step = next(pending[-1], None)
        if step is None:
            finished = path.pop()
            on_path.discard(finished)
            done.add(finished)
            pending.pop()
        elif step in on_path:
            return [*path[path.index(step) :], step]
        elif step not in done:
            path.append(step)
            on_path.add(step)
            pending.append(iter(after[step]))
    return []


def _rotate_to_first(cycle: list[str], nodes: Sequence[Node]) -> list[str]:
    """Start the (closed) cycle at its earliest step in input order, so messages are stable."""
    position = {node.id: index for index, node in enumerate(nodes)}
    ring = cycle[:-1]
    first = min(range(len(ring)), key=lambda index: position[ring[index]])
    ring = ring[first:] + ring[:first]
    return [*ring, ring[0]]


# --- shared helpers -----------------------------------------------------------------------


def _deps(node: Node) -> list[str]:
    """depends_on without repeats: naming a dependency twice is harmless, not a second edge."""
    return list(dict.fromkeys(node.depends_on))


def _dependents(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """For each id, the ids that wait for it, in input order."""
    after: dict[str, list[str]] = {node.id: [] for node in nodes}
    for node in nodes:
        for dep in _deps(node):
            if dep in after:
                after[dep].append(node.id)
    return after


def _require_known(nodes: Sequence[Node], node_id: str) -> None:
    known = [node.id for node in nodes]
    if node_id not in known:
        raise GraphError(
            f"unknown step {node_id!r}",
            hint=f"known steps, nearest first: {_nearest_ids(node_id, known)}",
        )


# --- order and levels ---------------------------------------------------------------------


def topological_order(nodes: Sequence[Node]) -> list[str]:
    """Every step after all it depends on (Kahn); among ready steps, the earliest in input order."""
    validate(nodes)
    return _kahn(nodes)


def _kahn(nodes: Sequence[Node]) -> list[str]:
    position = {node.id: index for index, node in enumerate(nodes)}
    waiting = {node.id: len(_deps(node)) for node in nodes}
    after = _dependents(nodes)
    ready = [position[ident] for ident, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        ident = nodes[heapq.heappop(ready)].id
        order.append(ident)
        for follower in after[ident]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, position[follower])
    return order


def _levels(nodes: Sequence[Node]) -> dict[str, int]:
    """Length of each step's longest dependency chain (0 for a step that waits for nothing)."""
    by_id = {node.id: node for node in nodes}
    level: dict[str, int] = {}
    for ident in _kahn(nodes):
        level[ident] = max((level[dep] + 1 for dep in _deps(by_id[ident])), default=0)
    return level


def parallel_groups(nodes: Sequence[Node]) -> list[list[str]]:
    """Steps grouped by level: group k can start once groups < k are done; input order inside."""
    validate(nodes)
    level = _levels(nodes)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in nodes:
        groups[level[node.id]].append(node.id)
    return groups


# --- estimates ----------------------------------------------------------------------------


def estimate(nodes: Sequence[Node]) -> Estimate:
    """Earliest finish with unlimited parallelism: the longest path, by minima and by maxima."""
    validate(nodes)
    if not nodes:
        return Estimate(0.0, 0.0, ())
    by_id = {node.id: node for node in nodes}
    order = _kahn(nodes)
    finish_min: dict[str, float] = {}
    for ident in order:
        deps = _deps(by_id[ident])
        finish_min[ident] = max((finish_min[d] for d in deps), default=0.0) + by_id[ident].duration[0]
    finish_max, came_from = _longest_by_max(order, by_id)
    return Estimate(
        minimum=max(finish_min.values()),
        maximum=max(value for value, _ in finish_max.values()),
        critical_path=_critical_path(order, finish_max, came_from),
    )


def _longest_by_max(
    order: Sequence[str], by_id: Mapping[str, Node]
) -> tuple[dict[str, tuple[float, int]], dict[str, str | None]]:
    """Per step: (latest finish by maxima, steps on that chain) and the dependency it came from.

    The chain length breaks ties between equally long paths so that, with unknown
    (zero) durations, the critical path is still the longest chain of steps.
    """
    finish: dict[str, tuple[float, int]] = {}
    came_from: dict[str, str | None] = {}
    for ident in order:
        best: str | None = None
        for dep in _deps(by_id[ident]):
            if best is None or finish[dep] > finish[best]:
                best = dep
        start, steps = finish[best] if best is not None else (0.0, 0)
        finish[ident] = (start + by_id[ident].duration[1], steps + 1)
        came_from[ident] = best
    return finish, came_from


def _critical_path(
    order: Sequence[str], finish: Mapping[str, tuple[float, int]], came_from: Mapping[str, str | None]
) -> tuple[str, ...]:
    last = order[0]
    for ident in order:
        if finish[ident] > finish[last]:
            last = ident
    chain: list[str] = []
    step: str | None = last
    while step is not None:
        chain.append(step)
        step = came_from[step]
    return tuple(reversed(chain))


# --- reachability -------------------------------------------------------------------------


def descendants(nodes: Sequence[Node], node_id: str) -> set[str]:
    """Every step that waits, directly or through others, for `node_id`."""
    validate(nodes)
    _require_known(nodes, node_id)
    return _reach(node_id, _dependents(nodes))


def ancestors(nodes: Sequence[Node], node_id: str) -> set[str]:
    """Every step `node_id` waits for, directly or through others."""
    validate(nodes)
    _require_known(nodes, node_id)
    return _reach(node_id, {node.id: _deps(node) for node in nodes})


def _reach(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        ident = todo.pop()
        if ident not in seen:
            seen.add(ident)
            todo.extend(edges[ident])
    return seen


# --- durations for people -----------------------------------------------------------------

_MINUTE = 60.0
_HOUR = 3600.0
# Floating error (e.g. 0.1 + 0.2) must not push 300.0000001 s up to "6 min".
_SLACK = 1e-6


def format_duration_range(minimum: float, maximum: float) -> str:
    """A range for people: "< 1 min", "2-5 min", "45 s-2 min", "20 min-1.5 h", "1-2 h".

    The minimum is rounded to the nearest unit and the maximum rounded up, so the
    text never promises less than the estimate's maximum and never shows low > high;
    both only grow as their inputs grow. Hours go in half-hour steps.
    """
    problem = _duration_problem(minimum, maximum)
    if problem:
        raise GraphError(
            f"cannot format duration ({minimum}, {maximum}): {problem}",
            hint="durations are (minimum, maximum) seconds, finite, >= 0, minimum <= maximum",
        )
    if maximum < _MINUTE:
        return "< 1 min"
    high_minutes = _round_up(maximum / _MINUTE, 1.0)
    if high_minutes < 60:
        return _join(_low_part(minimum, "min"), _number(high_minutes), "min")
    return _join(_low_part(minimum, "h"), _number(_round_up(maximum / _HOUR, 0.5)), "h")


def _low_part(seconds: float, high_unit: str) -> tuple[str, str]:
    """(number, unit) for the minimum, in the high end's unit unless it is smaller than one."""
    whole_seconds = _round_half_up(seconds, 1.0)
    if whole_seconds == 0:
        return "0", high_unit  # "0-2 min" reads better than "0 s-2 min"
    if whole_seconds < _MINUTE:
        return _number(whole_seconds), "s"
    minutes = _round_half_up(seconds / _MINUTE, 1.0)
    if high_unit == "min" or minutes < 60:
        return _number(minutes), "min"
    return _number(_round_half_up(seconds / _HOUR, 0.5)), "h"


def _join(low: tuple[str, str], high: str, unit: str) -> str:
    number, low_unit = low
    if low_unit != unit:
        return f"{number} {low_unit}-{high} {unit}"
    if number == high:
        return f"{high} {unit}"
    return f"{number}-{high} {unit}"


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - _SLACK) * step


def _round_half_up(value: float, step: float) -> float:
    return math.floor(value / step + 0.5 + _SLACK) * step


def _number(value: float) -> str:
    """2.0 -> "2", 1.5 -> "1.5": whole numbers without a decimal point, never exponents."""
    return str(int(value)) if value == int(value) else f"{value:.1f}"

"""Which agent takes a task, and why. Pure: no I/O; deterministic.

An agent is a candidate only if it is enabled, handles the task's type (itself or as a generalist)
and holds fewer tasks than its maximum. Each candidate is scored on four terms in [0, 1]:

    capability  1 for a specialist of the task's type, 0.5 for a generalist
    load        the share of its capacity still free
    success     its success rate
    priority    its success rate again, in proportion to the task's severity: the more urgent the
                task, the more a reliable agent counts

The weighted sum decides; equal totals go to the smaller agent id, so the same inputs always give
the same choice. The choice carries every term (the Score) and a one-line reason naming the
runner-up, which the task keeps.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from opsmith.domain.agents import Agent
from opsmith.domain.tasks import Assignment, Score, Task, queue_key

__all__ = ["Choice", "Queue", "Weights", "assign_all", "choose"]

_TOP = 4  # the highest severity (emergency)


@dataclass(frozen=True)
class Weights:
    capability: float = 0.4
    load: float = 0.25
    success: float = 0.2
    priority: float = 0.15


@dataclass(frozen=True)
class Choice:
    agent_id: str
    score: Score
    reason: str
    candidates: int

    def assignment(self, at: datetime, by: str = "orchestrator") -> Assignment:
        return Assignment(
            agent_id=self.agent_id,
            by=by,
            reason=self.reason,
            score=self.score,
            candidates=self.candidates,
            at=at,
        )


def score(task: Task, agent: Agent, load: int, weights: Weights) -> Score | None:
    """The agent's score for the task, or None when it may not take it (disabled, another
    specialty, or full)."""
    terms = _terms(task.type, task.priority.severity, agent, load, weights)
    if terms is None:
        return None
    total, capability, free, success, urgency = terms
    return Score(capability=capability, load=free, success=success, priority=urgency, total=total)


def _terms(
    kind: str, severity: int, agent: Agent, load: int, weights: Weights
) -> tuple[float, float, float, float, float] | None:
    # Plain floats: a decision scores every agent, and only the chosen one's Score is made.
    capability = agent.capability(kind)
    if not agent.enabled or capability == 0.0 or load >= agent.max_concurrent:
        return None
    free = 1.0 - load / agent.max_concurrent
    success = agent.success_rate
    urgency = success * severity / _TOP
    total = (
        weights.capability * capability
        + weights.load * free
        + weights.success * success
        + weights.priority * urgency
    )
    return round(total, 6), capability, free, success, urgency


def choose(task: Task, agents: Iterable[Agent], loads: Mapping[str, int], weights: Weights) -> Choice | None:
    """The best agent for `task`, or None when no agent may take it now."""
    kind, severity = task.type, task.priority.severity
    best: tuple[float, str, Agent, tuple[float, float, float, float, float]] | None = None
    second: tuple[float, str] | None = None
    candidates = 0
    for agent in agents:
        terms = _terms(kind, severity, agent, loads.get(agent.id, 0), weights)
        if terms is None:
            continue
        candidates += 1
        rank = (terms[0], agent.id)
        if best is None or _better(rank, (best[0], best[1])):
            if best is not None:
                second = (best[0], best[1])
            best = (terms[0], agent.id, agent, terms)
        elif second is None or _better(rank, second):
            second = rank
    if best is None:
        return None
    _, _, agent, (total, capability, free, success, urgency) = best
    found = Score(capability=capability, load=free, success=success, priority=urgency, total=total)
    return Choice(agent.id, found, _reason(task, agent, loads.get(agent.id, 0), found, second), candidates)


def _better(a: tuple[float, str], b: tuple[float, str]) -> bool:
    # A higher total wins; of equal totals, the smaller id (a stable tie-break).
    return a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])


def _reason(task: Task, agent: Agent, load: int, found: Score, second: tuple[float, str] | None) -> str:
    kind = "handles" if found.capability == 1.0 else "takes any task, as a generalist:"
    text = (
        f"{agent.id} {kind} {task.type}; load {load}/{agent.max_concurrent},"
        f" success rate {found.success:.2f}, {task.priority.value} priority: score {found.total:.3f}"
    )
    if second is not None:
        text += f" (next: {second[1]} {second[0]:.3f})"
    return text


def assign_all(
    tasks: Sequence[Task], agents: Sequence[Agent], loads: Mapping[str, int], weights: Weights
) -> list[tuple[Task, Choice]]:
    """Assign as many due tasks as capacity allows, the most urgent first (queue_key), each
    choice counting in the load of the next. Tasks no agent may take are left out."""
    held = dict(loads)
    chosen: list[tuple[Task, Choice]] = []
    for task in sorted(tasks, key=queue_key):
        choice = choose(task, agents, held, weights)
        if choice is None:
            continue
        held[choice.agent_id] = held.get(choice.agent_id, 0) + 1
        chosen.append((task, choice))
    return chosen


class Queue:
    """Queued tasks kept in queue order, for taking the most urgent one at a time (a heap: building
    it is linear, each `pop` logarithmic)."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self._heap = [(queue_key(t), t) for t in tasks]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def pop(self) -> Task:
        return heapq.heappop(self._heap)[1]

    def push(self, task: Task) -> None:
        heapq.heappush(self._heap, (queue_key(task), task))

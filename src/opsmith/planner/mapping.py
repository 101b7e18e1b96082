"""Choose the tool for each capability by scoring every tool of the catalog.

Deterministic: the same catalog, health and history give the same choice. Words of the tool's
name weigh most, then its title and description; annotations veto what a capability may not
use (a check never uses a destructive tool) and penalise what does not fit (a build is not a
read-only tool); a degraded server and a slow history lose points.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsmith.domain.capabilities import Capability
from opsmith.domain.catalog import Catalog, ToolSpec, ToolWords
from opsmith.domain.plan import Candidate
from opsmith.domain.plan import Mapping as ToolMapping

NAME_HIT = 4.0
AVOID_HIT = -5.0
TITLE_HIT = 1.0
DESCRIPTION_HIT = 0.5
DESCRIPTION_CAP = 3
WRITE_ON_READ_ONLY = -8.0
READ_ON_WRITER = -3.0
READ_ONLY_BONUS = 1.0
DEGRADED = -2.0
THRESHOLD = 4.0


def choose_tool(
    capability: Capability,
    catalog: Catalog,
    *,
    degraded: frozenset[str] = frozenset(),
    durations: Mapping[str, float] | None = None,
) -> ToolMapping | None:
    """The best tool for the capability with the runners-up, or None if no tool qualifies."""
    scored: list[tuple[float, int, str, Candidate]] = []
    order = {server: i for i, server in enumerate(catalog.servers())}
    for tool in catalog.with_name_words(capability.name_words):
        result = score(capability, tool, degraded=tool.server in degraded, words=catalog.words(tool))
        if result is None:
            continue
        points, reasons = result
        seconds = (durations or {}).get(tool.qualified_name)
        if seconds is not None:
            reasons.append(f"took {seconds:.1f}s on average before")
        candidate = Candidate(tool=tool.qualified_name, score=round(points, 2), reasons=reasons)
        # Ties: faster history first, then configuration order, then name.
        scored.append((-points, order.get(tool.server, 0), f"{seconds or 0:012.3f}{tool.name}", candidate))
    qualified = sorted((s for s in scored if -s[0] >= THRESHOLD), key=lambda s: (s[0], s[2], s[1]))
    if not qualified:
        return None
    ranked = [entry[3] for entry in qualified]
    return ToolMapping(capability=capability.name, chosen=ranked[0], runners_up=ranked[1:4])


def score(
    capability: Capability, tool: ToolSpec, *, degraded: bool = False, words: ToolWords | None = None
) -> tuple[float, list[str]] | None:
    """Points and the reasons for them; None when the tool must never serve this capability."""
    if capability.effect == "read" and tool.hints.destructive is True and not tool.hints.read_only:
        return None  # a check must never be able to destroy anything
    words = words or Catalog([tool]).words(tool)
    name = words.name
    hits = sorted(name & set(capability.name_words))
    if not hits:
        return None
    points = NAME_HIT * len(hits)
    reasons = [f"name has {', '.join(hits)}"]
    avoided = sorted(name & set(capability.avoid))
    if avoided:
        points += AVOID_HIT * len(avoided)
        reasons.append(f"name has {', '.join(avoided)} (another job)")
    title_hits = sorted(words.title & set(capability.keywords))
    if title_hits:
        points += TITLE_HIT * len(title_hits)
        reasons.append(f"title mentions {', '.join(title_hits)}")
    described = sorted(words.description & set(capability.keywords))[:DESCRIPTION_CAP]
    if described:
        points += DESCRIPTION_HIT * len(described)
        reasons.append(f"description mentions {', '.join(described)}")
    points, reasons = _effect(capability, tool, points, reasons)
    if degraded:
        points += DEGRADED
        reasons.append("server is degraded")
    return points, reasons


def _effect(
    capability: Capability, tool: ToolSpec, points: float, reasons: list[str]
) -> tuple[float, list[str]]:
    read_only = bool(tool.hints.read_only)
    if capability.effect == "write" and read_only:
        return points + WRITE_ON_READ_ONLY, [*reasons, "read-only, but this step must change something"]
    if capability.effect == "read" and not read_only:
        return points + READ_ON_WRITER, [*reasons, "not read-only, for a check"]
    if capability.effect == "read":
        return points + READ_ONLY_BONUS, [*reasons, "read-only, as a check should be"]
    return points, reasons

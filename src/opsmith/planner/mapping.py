"""Choose the tool for each capability by scoring every tool of the catalog.

Deterministic: the same catalog, health and history give the same choice. Words of the tool's
name weigh most, then its title and description; annotations veto what a capability may not
use (a check never uses a destructive tool) and penalise what does not fit (a build is not a
read-only tool); a degraded server and a slow history lose points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opsmith.domain.binding import BindingSet
from opsmith.domain.capabilities import Capability
from opsmith.domain.catalog import Catalog, Choice, ToolSpec, ToolWords, operation_choices, tool_words
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
STRUCTURED_READ = 0.5
STRUCTURED_READS = frozenset({"get", "list"})
DOMAIN_FIT = 3.0  # at most, for a server whose tools speak of every domain word's subject
THRESHOLD = 4.0


def choose_tool(
    capability: Capability,
    catalog: Catalog,
    *,
    degraded: frozenset[str] = frozenset(),
    durations: Mapping[str, float] | None = None,
) -> ToolMapping | None:
    """The best tool for the capability with the runners-up, or None if no tool qualifies."""
    scored: list[tuple[float, str, int, str, Candidate]] = []
    order = {server: i for i, server in enumerate(catalog.servers())}
    fits = {server: _fit(capability, catalog.server_words(server)) for server in catalog.servers()}
    options: list[tuple[ToolSpec, Choice | None]] = [
        # A tool whose job depends on a selector argument serves only through one of its operations.
        (t, None)
        for t in catalog.with_name_words(capability.name_words)
        if not any(c.selects == "operation" for c in operation_choices(t))
    ]
    options += [(c.tool, c) for c in catalog.with_choice_words(_forms(capability.name_words))]
    for tool, choice in options:
        if choice is None:
            result = score(capability, tool, degraded=tool.server in degraded, words=catalog.words(tool))
        else:
            result = score_choice(
                capability, choice, degraded=tool.server in degraded, words=catalog.words(tool)
            )
        if result is None:
            continue
        points, reasons = result
        seconds = (durations or {}).get(tool.qualified_name)
        if seconds is not None:
            reasons.append(f"took {seconds:.1f}s on average before")
        if points < THRESHOLD:
            continue  # the domain ranks tools that qualify; it never makes a tool qualify
        fit = fits[tool.server]
        if fit == 0 and max(fits.values(), default=0) > 0:
            continue  # a server that never speaks of the domain does not serve it while one that does runs
        if capability.effect == "read" and catalog.words(tool).name & STRUCTURED_READS:
            points += STRUCTURED_READ
            reasons.append("reads the object itself (get/list), not a description of it")
        if fit:
            points += fit
            reasons.append(f"server fits the domain (+{fit:g})")
        fixed = {choice.param: choice.value} if choice else {}
        candidate = Candidate(tool=tool.qualified_name, score=round(points, 2), reasons=reasons, fixed=fixed)
        # Ties: faster history first, then configuration order, then name.
        label = f"{tool.name} {choice.value}" if choice else tool.name
        scored.append((-points, f"{seconds or 0:012.3f}", order.get(tool.server, 0), label, candidate))
    qualified = sorted(scored, key=lambda s: (s[0], s[1], s[2], s[3]))
    if not qualified:
        return None
    ranked = [entry[4] for entry in qualified]
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
    points += _hit(reasons, name & set(capability.avoid), AVOID_HIT, "name has {} (another job)")
    points += _hit(reasons, words.title & set(capability.keywords), TITLE_HIT, "title mentions {}")
    points += _described(capability, words, reasons)
    points, reasons = _effect(capability, tool, points, reasons)
    return _health(points, reasons, degraded)


def score_choice(
    capability: Capability, choice: Choice, *, degraded: bool = False, words: ToolWords | None = None
) -> tuple[float, list[str]] | None:
    """Points for one operation of a tool (`kubectl_rollout` with `subCommand=undo` for a rollback):
    its value must name the job; a check takes only an operation that reads."""
    tool = choice.tool
    # An operation reads if its value says so; for a kind of object, the tool's own hints decide.
    reads = choice_reads(choice.value) if choice.selects == "operation" else bool(tool.hints.read_only)
    if capability.effect == "read" and not reads:
        return None  # a check never runs an operation that may change something
    words = words or Catalog([tool]).words(tool)
    said = set(tool_words(choice.value))
    hits = sorted(w for w in said if _forms([w]) & set(capability.name_words))
    if not hits:
        return None
    points = NAME_HIT * len(hits)
    reasons = [f"{choice.param}={choice.value} ({', '.join(hits)})"]
    points += _hit(reasons, (words.name - said) & set(capability.name_words), NAME_HIT, "name has {}")
    points += _hit(reasons, (said | words.name) & set(capability.avoid), AVOID_HIT, "{} (another job)")
    points += _described(capability, words, reasons)
    hints = tool.hints.model_copy(
        update={"read_only": reads, "destructive": None if reads else tool.hints.destructive}
    )
    points, reasons = _effect(capability, tool.model_copy(update={"hints": hints}), points, reasons)
    return _health(points, reasons, degraded)


def _hit(reasons: list[str], found: Iterable[str], weight: float, said: str) -> float:
    """Points for the words found (sorted, for stable reasons), and the reason, when there are any."""
    words = sorted(found)
    if words:
        reasons.append(said.format(", ".join(words)))
    return weight * len(words)


def _described(capability: Capability, words: ToolWords, reasons: list[str]) -> float:
    described = sorted(words.description & set(capability.keywords))[:DESCRIPTION_CAP]
    return _hit(reasons, described, DESCRIPTION_HIT, "description mentions {}")


def _health(points: float, reasons: list[str], degraded: bool) -> tuple[float, list[str]]:
    if degraded:
        return points + DEGRADED, [*reasons, "server is degraded"]
    return points, reasons


# Operation values that only read: a tool annotated destructive for its other operations is a check
# with one of these fixed.
READ_OPERATIONS = frozenset(
    {"status", "history", "get", "list", "show", "describe", "view", "read", "logs", "log", "info"}
    | {"inspect", "top", "events", "diff", "explain", "version", "check", "health", "search"}
)


def _forms(words: list[str] | frozenset[str] | set[str]) -> set[str]:
    """Each word with its plural or singular (`pods` / `pod`, `services` / `service`)."""
    found: set[str] = set()
    for word in words:
        found |= {word, word[:-1] if word.endswith("s") else word + "s"}
    return found


def choice_reads(value: str) -> bool:
    words = tool_words(value)
    return bool(words) and all(w in READ_OPERATIONS for w in words)


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


def _fit(capability: Capability, about: frozenset[str]) -> float:
    """Up to DOMAIN_FIT: the share of the capability's domain words (three are plenty) the server's
    tools speak of, so one stray word (a git tool's "status") earns little."""
    if not capability.domain:
        return 0.0
    return round(DOMAIN_FIT * min(1.0, len(about & set(capability.domain)) / 3), 2)


def server_fit(capability: Capability, catalog: Catalog, server: str) -> float:
    """How well a server's tools speak of the capability's domain (0: not at all)."""
    return _fit(capability, catalog.server_words(server))


def rejections(capability: Capability, catalog: Catalog, sets: Sequence[BindingSet] = ()) -> dict[str, str]:
    """Per configured server, why none of its tools serves the capability: what a refusal shows."""
    why: dict[str, str] = {}
    for server in catalog.servers():
        kinds = [s.name for s in sets if s.fits(server, set(catalog.names(server)))]
        best: tuple[float, str] | None = None
        vetoed: list[str] = []
        for tool in catalog.tools(server):
            if capability.effect == "read" and tool.hints.destructive is True and not tool.hints.read_only:
                if set(catalog.words(tool).name) & set(capability.name_words):
                    vetoed.append(tool.name)
                continue
            result = score(capability, tool, words=catalog.words(tool))
            if result is not None and (best is None or result[0] > best[0]):
                best = (result[0], tool.name)
        parts = [f"bindings {', '.join(kinds)} have none for it"] if kinds else []
        if best is not None:
            parts.append(f"best tool {best[1]} scored {best[0]:g} (needs {THRESHOLD:g})")
        elif not vetoed:
            parts.append(f"no tool named for it ({', '.join(capability.name_words)})")
        if vetoed:
            parts.append(f"{', '.join(vetoed[:3])} may destroy something, and this is a check")
        why[server] = "; ".join(parts)
    return why

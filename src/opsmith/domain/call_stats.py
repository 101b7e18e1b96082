"""What the `tool.called` audit entries say of each tool, summed: calls, errors and a histogram of
the durations of the successful ones. `/metrics` reports it; the store sums it in the database, and
`fold_calls` says, over entries read one by one, what that sum must be.

Pure: stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from opsmith.domain.audit import AuditEntry

CALLED = "tool.called"
UNNAMED = "?"  # the tool of an entry that names none


@dataclass(frozen=True)
class CallStats:
    """One tool's calls: `errors` of them not ok; `timed` ok ones with a duration, `seconds` their
    total, and `within[i]` how many of those took at most `bounds[i]` seconds (the bounds asked)."""

    calls: int = 0
    errors: int = 0
    timed: int = 0
    seconds: float = 0.0
    within: tuple[int, ...] = field(default_factory=tuple)


def fold_calls(entries: Iterable[AuditEntry], bounds: Sequence[float]) -> dict[str, CallStats]:
    """Per tool ("server/tool"), what its `tool.called` entries among `entries` say. An entry is ok
    when its `ok` is true; its duration is its `ms`, when that is a number."""
    found: dict[str, CallStats] = {}
    for entry in entries:
        if entry.action != CALLED:
            continue
        details = entry.details
        tool = details.get("tool")
        name = UNNAMED if tool is None else str(tool)
        seen = found.get(name) or CallStats(within=(0,) * len(bounds))
        ok = details.get("ok") is True
        ms = details.get("ms")
        took = float(ms) / 1000 if ok and isinstance(ms, int | float) and not isinstance(ms, bool) else None
        found[name] = CallStats(
            calls=seen.calls + 1,
            errors=seen.errors + (0 if ok else 1),
            timed=seen.timed + (0 if took is None else 1),
            seconds=seen.seconds + (took or 0.0),
            within=tuple(
                n + (1 if took is not None and took <= bound else 0)
                for n, bound in zip(seen.within, bounds, strict=True)
            ),
        )
    return found

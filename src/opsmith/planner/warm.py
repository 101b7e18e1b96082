"""What a long-lived process (`opsmith serve`) keeps between plans instead of making it again for each:
the planner and the recorded catalog (whose word index costs more to build than a plan's mapping).

Each value is kept with the stamp of what it was made from, and used again only while the stamp the
caller reads now is equal to it. A stamp holds the very objects it stands for (the loaded playbooks,
the configuration, the recorded tools), never their ids: an id can be reused once its object is gone,
an object held cannot. Tuples compare their items by identity first, so an unchanged stamp costs
one pass of `is`, and a changed one a comparison of values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # an App is made by every command; the planner is loaded only by those that plan
    from opsmith.domain.catalog import Catalog
    from opsmith.planner.planner import Planner

T = TypeVar("T")


class Kept(Generic[T]):
    """One value and the stamp of what it was made from."""

    def __init__(self) -> None:
        self._kept: tuple[object, T] | None = None

    def get(self, stamp: object, make: Callable[[], T]) -> T:
        """The kept value when it was made from a stamp equal to `stamp`; else `make()`, kept."""
        kept = self._kept
        if kept is not None and kept[0] == stamp:
            if kept[0] is not stamp:  # equal objects, new ones: compare the next stamp by identity
                self._kept = (stamp, kept[1])
            return kept[1]
        value = make()
        self._kept = (stamp, value)
        return value

    def clear(self) -> None:
        self._kept = None


@dataclass(frozen=True)
class Warm:
    """The values kept for one App. Single-threaded use: the services run on one event loop, and a
    Planner keeps per-request state while it plans (it plans synchronously, so no other request can
    interleave with it)."""

    planner: Kept[Planner] = field(default_factory=Kept)
    catalog: Kept[Catalog] = field(default_factory=Kept)

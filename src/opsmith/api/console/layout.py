"""Where the boxes and arrows of a plan's graph go in an SVG: one row per parallel level, top-down.

Rows, not columns: a laptop screen scrolls down more easily than sideways, and a long chain of
levels is common (a deploy has nine) while wide levels are not. Steps of one level sit side by
side, centred; within a row they are ordered by where their dependencies sit (the mean of their
parents' centres, input order on ties), which keeps most arrows short and uncrossed. Every
dependency gets its own arrow, from the bottom of the step it waits for to the top of the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opsmith.domain.graph import Node, parallel_groups

__all__ = ["Layout", "Link", "Placed", "Sizes", "layout"]


@dataclass(frozen=True)
class Sizes:
    box_width: float = 232.0
    box_height: float = 68.0
    gap_x: float = 28.0
    gap_y: float = 40.0
    margin: float = 10.0


@dataclass(frozen=True)
class Placed:
    """One step's box: its level (row) and its top-left corner."""

    id: str
    level: int
    x: float
    y: float
    width: float
    height: float

    @property
    def center_x(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(frozen=True)
class Link:
    """The arrow of one dependency: `target` waits for `source`. `path` is SVG path data."""

    source: str
    target: str
    path: str


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    boxes: tuple[Placed, ...]
    links: tuple[Link, ...]

    def box(self, step_id: str) -> Placed:
        return next(b for b in self.boxes if b.id == step_id)


def layout(nodes: Sequence[Node], sizes: Sizes | None = None) -> Layout:
    """The placed boxes and arrows of a valid step graph (GraphError otherwise, from the graph)."""
    size = sizes or Sizes()
    groups = parallel_groups(nodes)
    widest = max((len(g) for g in groups), default=0)
    width = 2 * size.margin + widest * size.box_width + max(0, widest - 1) * size.gap_x
    height = 2 * size.margin + len(groups) * size.box_height + max(0, len(groups) - 1) * size.gap_y
    by_id = {node.id: node for node in nodes}
    position = {node.id: index for index, node in enumerate(nodes)}
    placed: dict[str, Placed] = {}
    for level, group in enumerate(groups):
        row = _ordered(group, by_id, placed, position)
        row_width = len(row) * size.box_width + (len(row) - 1) * size.gap_x
        left = (width - row_width) / 2
        top = size.margin + level * (size.box_height + size.gap_y)
        for column, step_id in enumerate(row):
            x = left + column * (size.box_width + size.gap_x)
            placed[step_id] = Placed(step_id, level, x, top, size.box_width, size.box_height)
    links = tuple(
        Link(dep, node.id, _arrow(placed[dep], placed[node.id]))
        for node in nodes
        for dep in dict.fromkeys(node.depends_on)
    )
    return Layout(width, height, tuple(placed[n.id] for n in nodes), links)


def _ordered(
    group: list[str], by_id: dict[str, Node], placed: dict[str, Placed], position: dict[str, int]
) -> list[str]:
    def key(step_id: str) -> tuple[float, int]:
        parents = [placed[d].center_x for d in by_id[step_id].depends_on if d in placed]
        return (sum(parents) / len(parents) if parents else 0.0, position[step_id])

    return sorted(group, key=key)


def _arrow(source: Placed, target: Placed) -> str:
    x1, y1 = source.center_x, source.bottom
    x2, y2 = target.center_x, target.y
    middle = (y1 + y2) / 2
    return f"M{_n(x1)} {_n(y1)} C{_n(x1)} {_n(middle)} {_n(x2)} {_n(middle)} {_n(x2)} {_n(y2)}"


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")

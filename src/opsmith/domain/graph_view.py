"""Draw a step graph top-down as text, like seed 001's "Generated Task Graph".

    START, then one row of boxes per parallel level (wrapped when wider than `width`),
    connectors between neighbouring rows, END.

The rule that keeps the picture honest: a connector is a "bus" that joins a set of
parents to a set of children, and a reader takes it to mean every parent -> every
child. So only complete parent x child sets are drawn as one bus, and buses of one
band never touch or cross. Any dependency that cannot be drawn that way (it skips
a level, or its bus would collide with another) is written inside the child's box
as "after: X, Y" instead. Every dependency is therefore either drawn or listed, and
no line ever suggests one that does not exist. START and END are decoration: they
join the first and the last row only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from opsmith.domain.graph import Node, parallel_groups, validate

__all__ = ["Box", "draw"]

_GAP = 4  # blank columns between boxes side by side
_MIN_INNER = 11  # narrowest box text area: room for "after: " and a short id
_NOTE_INNER = 32  # a box widens up to this to keep a known "after:" note on one line
_MIN_WIDTH = 24  # below this no useful box fits; a smaller `width` is treated as this
_BUS_GAP = 2  # blank columns between two buses, so they cannot read as one

# Connector characters by the arms they have: up, down, left, right.
_JUNCTION = {
    frozenset("ud"): "│",
    frozenset("lr"): "─",
    frozenset("ur"): "└",
    frozenset("ul"): "┘",
    frozenset("dr"): "┌",
    frozenset("dl"): "┐",
    frozenset("ulr"): "┴",
    frozenset("dlr"): "┬",
    frozenset("udr"): "├",
    frozenset("udl"): "┤",
    frozenset("udlr"): "┼",
}


@dataclass(frozen=True)
class Box:
    """What one step's box says, top to bottom; the first line is its title."""

    node_id: str
    lines: tuple[str, ...]


def draw(nodes: Sequence[Node], boxes: Mapping[str, Box], *, width: int = 100) -> str:
    """The graph as text, START at the top and END at the bottom; no trailing spaces.

    A step without a `Box` (or with no lines) is drawn with its id as the only line.
    Dependencies no line can show are listed in the dependent's box as "after: id, ...".
    `width` below 24 columns is taken as 24. Raises `GraphError` when the nodes are
    not a valid DAG.
    """
    validate(nodes)
    limit = max(width, _MIN_WIDTH)
    deps = {node.id: tuple(dict.fromkeys(node.depends_on)) for node in nodes}
    levels = _ordered_levels(nodes, deps)
    notes = _skipping(levels, deps)
    texts = {node.id: _box_text(node.id, boxes.get(node.id), notes.get(node.id, ""), limit) for node in nodes}
    rows = _rows(levels, {ident: _inner(t) for ident, t in texts.items()}, limit)
    centers = _centers(rows, texts)
    bands = [_band_links(upper, lower, deps, centers) for upper, lower in pairwise(rows)]
    for ident, missing in _undrawn(deps, bands).items():
        texts[ident] = (*texts[ident], *_wrap("after: " + ", ".join(missing), _inner(texts[ident])))
    return _render(rows, texts, centers, bands)


# --- box text -----------------------------------------------------------------------------


def _skipping(levels: Sequence[Sequence[str]], deps: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The "after:" note each step is sure to get: dependencies more than one level up.

    Lines only join neighbouring rows, so these are known before layout; sizing the
    box for them keeps the note readable. Notes for buses that collide come later.
    """
    notes: dict[str, str] = {}
    for above, level in pairwise(levels):
        for ident in level:
            far = [dep for dep in deps[ident] if dep not in above]
            if far:
                notes[ident] = "after: " + ", ".join(far)
    return notes


def _box_text(node_id: str, box: Box | None, note: str, limit: int) -> tuple[str, ...]:
    """The box's lines, cleaned and wrapped to the box's text width (wide enough for `note`)."""
    lines = [_clean(line) for line in (box.lines if box is not None and box.lines else (node_id,))]
    widest = max([_MIN_INNER, min(_width(note), _NOTE_INNER), *(_width(line) for line in lines)])
    inner = min(widest, limit - 4)
    wrapped: list[str] = []
    for line in lines:
        wrapped.extend(_wrap(line, inner))
    # Every line is padded to the full width, so the width survives wrapping narrower lines.
    return tuple(_pad(line, inner) for line in wrapped)


def _inner(lines: Sequence[str]) -> int:
    return _width(lines[0])


def _clean(text: str) -> str:
    """Control characters would break the grid: tabs and newlines become spaces, others go."""
    kept: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            kept.append(" ")
        elif category != "Cf":
            kept.append(char)
    return "".join(kept).strip()


def _char_width(char: str) -> int:
    """Terminal columns: 0 for combining marks, 2 for wide (CJK, emoji), else 1."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


_EMOJI_STYLE = "\ufe0f"  # after a narrow symbol (⚠️) terminals draw it two columns wide


def _clusters(text: str) -> list[tuple[str, int]]:
    """Characters with their combining marks attached, and the columns each takes."""
    clusters: list[tuple[str, int]] = []
    for char in text:
        width = _char_width(char)
        if width:
            clusters.append((char, width))
        elif clusters:  # a mark with nothing before it has nowhere to go: dropped
            base, base_width = clusters[-1]
            clusters[-1] = (base + char, 2 if char == _EMOJI_STYLE else base_width)
    return clusters


def _width(text: str) -> int:
    return sum(width for _, width in _clusters(text))


def _pad(text: str, inner: int) -> str:
    return text + " " * (inner - _width(text))


def _wrap(text: str, limit: int) -> list[str]:
    """Greedy word wrap by display width; a word longer than a line is split."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if _width(candidate) <= limit:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char, _ in _clusters(word):
            if _width(current + char) > limit:
                lines.append(current)
                current = ""
            current += char
    lines.append(current)
    return [_pad(line, limit) for line in lines]


# --- layout -------------------------------------------------------------------------------


def _ordered_levels(nodes: Sequence[Node], deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Parallel levels, each reordered by where its parents sit above (barycentre).

    Children under their parents keep buses short and apart, so more dependencies
    are drawn as lines. The sort is stable: ties keep input order.
    """
    levels = parallel_groups(nodes)
    for above, level in pairwise(levels):
        position = {ident: index for index, ident in enumerate(above)}

        def barycentre(ident: str, position: dict[str, int] = position) -> float:
            placed = [position[dep] for dep in deps[ident] if dep in position]
            return sum(placed) / len(placed) if placed else float(len(position))

        level.sort(key=barycentre)
    return levels


def _rows(levels: Sequence[list[str]], inner: Mapping[str, int], limit: int) -> list[list[str]]:
    """Levels packed into rows no wider than `limit` (a single too-wide box gets its own row)."""
    rows: list[list[str]] = []
    for level in levels:
        row: list[str] = []
        used = 0
        for ident in level:
            box_width = inner[ident] + 4
            if row and used + _GAP + box_width > limit:
                rows.append(row)
                row, used = [], 0
            used += box_width + (_GAP if row else 0)
            row.append(ident)
        rows.append(row)
    return rows


def _row_width(row: Sequence[str], texts: Mapping[str, Sequence[str]]) -> int:
    return sum(_inner(texts[ident]) + 4 for ident in row) + _GAP * (len(row) - 1)


def _lefts(rows: Sequence[Sequence[str]], texts: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Left column of every box: each row centred on one middle column.

    Centring on a column (not on the canvas) puts a lone box's ┬ and the ▼ above the
    next lone box in the same column even when the boxes differ in width.
    """
    middle = max([0, *(_row_width(row, texts) for row in rows)]) // 2
    lefts: dict[str, int] = {}
    for row in rows:
        column = middle - _row_width(row, texts) // 2
        for ident in row:
            lefts[ident] = column
            column += _inner(texts[ident]) + 4 + _GAP
    return lefts


def _centers(rows: Sequence[Sequence[str]], texts: Mapping[str, Sequence[str]]) -> dict[str, int]:
    return {ident: left + (_inner(texts[ident]) + 4) // 2 for ident, left in _lefts(rows, texts).items()}


# --- which dependencies become lines ------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    """A bus: every parent (row above) -> every child (row below)."""

    parents: tuple[str, ...]
    children: tuple[str, ...]


def _band_links(
    upper: Sequence[str], lower: Sequence[str], deps: Mapping[str, Sequence[str]], centers: Mapping[str, int]
) -> list[_Link]:
    """Buses between two neighbouring rows, chosen so that none touches another.

    Children with the same parents above share a bus; that makes each candidate a
    complete parent x child set, the only shape a bus can show truthfully.
    """
    shared: dict[tuple[str, ...], list[str]] = {}
    for child in lower:
        parents = tuple(ident for ident in upper if ident in deps[child])
        if parents:
            shared.setdefault(parents, []).append(child)
    candidates = [_Link(parents, tuple(children)) for parents, children in shared.items()]
    return _select(candidates, centers)


def _span(link: _Link, centers: Mapping[str, int]) -> tuple[int, int]:
    columns = [centers[ident] for ident in (*link.parents, *link.children)]
    return min(columns), max(columns)


def _select(candidates: Sequence[_Link], centers: Mapping[str, int]) -> list[_Link]:
    """Greedy: the buses carrying most dependencies first, each kept only if it is clear of the rest."""
    chosen: list[tuple[tuple[int, int], _Link]] = []
    ranked = sorted(
        candidates, key=lambda link: (-len(link.parents) * len(link.children), _span(link, centers))
    )
    for link in ranked:
        low, high = _span(link, centers)
        if all(
            high + _BUS_GAP < other_low or other_high + _BUS_GAP < low
            for (other_low, other_high), _ in chosen
        ):
            chosen.append(((low, high), link))
    return [link for _, link in sorted(chosen, key=lambda item: item[0])]


def _undrawn(deps: Mapping[str, Sequence[str]], bands: Sequence[Sequence[_Link]]) -> dict[str, list[str]]:
    """Per step, the dependencies no line shows, in depends_on order."""
    drawn: set[tuple[str, str]] = {
        (parent, child)
        for band in bands
        for link in band
        for parent in link.parents
        for child in link.children
    }
    missing = {
        child: [dep for dep in parents if (dep, child) not in drawn] for child, parents in deps.items()
    }
    return {child: parents for child, parents in missing.items() if parents}


# --- rendering ----------------------------------------------------------------------------


class _Canvas:
    """Lines of terminal cells; a wide character fills its cell and leaves the next one empty."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = []

    def new_line(self) -> int:
        self.lines.append([])
        return len(self.lines) - 1

    def put(self, line: int, column: int, text: str) -> None:
        cells = self.lines[line]
        for cluster, width in _clusters(text):
            cells.extend(" " * (column + width - len(cells)))
            cells[column] = cluster
            if width == 2:
                cells[column + 1] = ""
            column += width

    def text(self) -> str:
        return "\n".join("".join(cells).rstrip() for cells in self.lines)


_Bus = tuple[tuple[int, ...], tuple[int, ...]]  # parent columns, child columns


def _render(
    rows: Sequence[Sequence[str]],
    texts: Mapping[str, Sequence[str]],
    centers: Mapping[str, int],
    bands: Sequence[Sequence[_Link]],
) -> str:
    canvas = _Canvas()
    start = _middle(rows[0], centers) if rows else 2
    canvas.put(canvas.new_line(), start - 2, "START")
    _put_band(canvas, [((start,), tuple(centers[ident] for ident in rows[0]) if rows else (start,))])
    for index, row in enumerate(rows):
        if index < len(bands):
            band = bands[index]
            _put_row(canvas, row, texts, centers, {ident for link in band for ident in link.parents})
            _put_band(canvas, [_columns(link, centers) for link in band])
        else:
            _put_row(canvas, row, texts, centers, set(row))
    if rows:
        end = _middle(rows[-1], centers)
        _put_band(canvas, [(tuple(centers[ident] for ident in rows[-1]), (end,))])
    else:
        end = start
    canvas.put(canvas.new_line(), end - 1, "END")
    return canvas.text()


def _middle(row: Sequence[str], centers: Mapping[str, int]) -> int:
    return (centers[row[0]] + centers[row[-1]]) // 2


def _columns(link: _Link, centers: Mapping[str, int]) -> _Bus:
    return tuple(centers[i] for i in link.parents), tuple(centers[i] for i in link.children)


def _put_row(
    canvas: _Canvas,
    row: Sequence[str],
    texts: Mapping[str, Sequence[str]],
    centers: Mapping[str, int],
    with_exit: set[str],
) -> None:
    """One row of boxes, all as tall as the tallest; a ┬ under each box with a line out."""
    height = max(len(texts[ident]) for ident in row)
    first = len(canvas.lines)
    for _ in range(height + 2):
        canvas.new_line()
    for ident in row:
        inner = _inner(texts[ident])
        left = centers[ident] - (inner + 4) // 2
        lines = [*texts[ident], *([" " * inner] * (height - len(texts[ident])))]
        bottom = list("└" + "─" * (inner + 2) + "┘")
        if ident in with_exit:
            bottom[(inner + 4) // 2] = "┬"
        canvas.put(first, left, "┌" + "─" * (inner + 2) + "┐")
        for offset, line in enumerate(lines, start=1):
            canvas.put(first + offset, left, f"│ {line} │")
        canvas.put(first + height + 1, left, "".join(bottom))


def _put_band(canvas: _Canvas, buses: Sequence[_Bus]) -> None:
    """Connector lines between two rows: straight drops take 2 lines, buses 4; none, 1 blank."""
    if not buses:
        canvas.new_line()
        return
    if all(parents == children and len(parents) == 1 for parents, children in buses):
        _put_marks(canvas, [column for parents, _ in buses for column in parents], "│")
        _put_marks(canvas, [column for parents, _ in buses for column in parents], "▼")
        return
    _put_marks(canvas, [column for parents, _ in buses for column in parents], "│")
    line = canvas.new_line()
    for parents, children in buses:
        canvas.put(line, min([*parents, *children]), _bus_line(parents, children))
    _put_marks(canvas, [column for _, children in buses for column in children], "│")
    _put_marks(canvas, [column for _, children in buses for column in children], "▼")


def _put_marks(canvas: _Canvas, columns: Sequence[int], mark: str) -> None:
    line = canvas.new_line()
    for column in columns:
        canvas.put(line, column, mark)


def _bus_line(parents: Sequence[int], children: Sequence[int]) -> str:
    """The horizontal part of a bus: ┴ where a parent comes in, ┬ where a child goes out."""
    low, high = min([*parents, *children]), max([*parents, *children])
    chars: list[str] = []
    for column in range(low, high + 1):
        arms = {
            "u" if column in parents else "",
            "d" if column in children else "",
            "l" if column > low else "",
            "r" if column < high else "",
        } - {""}
        chars.append(_JUNCTION[frozenset(arms)])
    return "".join(chars)

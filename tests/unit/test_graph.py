"""Step graphs: validation, order, levels, estimates, reachability, durations, the drawing."""

from __future__ import annotations

import math
import re
import unicodedata
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import GraphError, UsageError
from opsmith.domain.graph import (
    Estimate,
    Node,
    ancestors,
    descendants,
    estimate,
    format_duration_range,
    parallel_groups,
    topological_order,
    validate,
)
from opsmith.domain.graph_view import Box, draw

MIN = 60.0

# Seed 001's deployment graph, with its durations in seconds.
SEED = [
    Node("build", (), (2 * MIN, 5 * MIN)),
    Node("test", ("build",), (3 * MIN, 7 * MIN)),
    Node("quality", ("test",), (2 * MIN, 4 * MIN)),
    Node("security", ("test",), (2 * MIN, 3 * MIN)),
    Node("push", ("quality", "security"), (3 * MIN, 5 * MIN)),
    Node("verify", ("push",), (10.0, 50.0)),
    Node("deploy", ("verify",), (2 * MIN, 3 * MIN)),
    Node("pods", ("deploy",), (10.0, 40.0)),
    Node("logs", ("deploy",), (1 * MIN, 2 * MIN)),
    Node("service", ("pods", "logs"), (10.0, 30.0)),
]
SEED_TITLES = {
    "build": ("Step 1: BUILD", "jenkins", "trigger_build"),
    "test": ("Step 2: TEST", "jenkins", "run_tests"),
    "quality": ("Step 3: QUALITY SCAN", "sonarqube", "analyze_project"),
    "security": ("Step 4: SECURITY", "sonarqube", "get_vulnerabilities"),
    "push": ("Step 5: BUILD IMAGE", "registry", "push_image"),
    "verify": ("Step 6: VERIFY IMAGE", "registry", "verify_image"),
    "deploy": ("Step 7: DEPLOY K8S", "kubernetes", "apply_deployment"),
    "pods": ("Step 8: VERIFY", "kubernetes", "get_pods"),
    "logs": ("Step 9: HEALTH", "kubernetes", "get_pod_logs"),
    "service": ("Step 10: MONITOR", "kubernetes", "get_service"),
}


def seed_boxes() -> dict[str, Box]:
    by_id = {node.id: node for node in SEED}
    return {
        ident: Box(
            ident, (*lines, "Risk: MEDIUM 🟡", f"Duration: {format_duration_range(*by_id[ident].duration)}")
        )
        for ident, lines in SEED_TITLES.items()
    }


def edges_of(nodes: list[Node]) -> set[tuple[str, str]]:
    """(dependency, dependent) pairs."""
    return {(dep, node.id) for node in nodes for dep in node.depends_on}


# --- random DAGs --------------------------------------------------------------------------


@st.composite
def dags(draw_: st.DrawFn, max_size: int = 10) -> list[Node]:
    """A DAG: node i may only depend on nodes < i; then the input order is shuffled."""
    size = draw_(st.integers(0, max_size))
    nodes = []
    for index in range(size):
        deps = draw_(st.lists(st.integers(0, index - 1), unique=True)) if index else []
        low = draw_(st.integers(0, 600))
        high = low + draw_(st.integers(0, 600))
        nodes.append(Node(f"n{index}", tuple(f"n{d}" for d in deps), (float(low), float(high))))
    return draw_(st.permutations(nodes))


# --- validate -----------------------------------------------------------------------------


def raised(nodes: list[Node]) -> GraphError:
    with pytest.raises(GraphError) as caught:
        validate(nodes)
    return caught.value


def test_a_valid_graph_passes_and_graph_errors_are_usage_errors() -> None:
    validate(SEED)
    validate([])
    assert issubclass(GraphError, UsageError)


def test_empty_id() -> None:
    error = raised([Node("a"), Node("  ")])
    assert error.message == "step #2 has an empty id"
    assert error.hint


def test_duplicate_id_is_named() -> None:
    error = raised([Node("build"), Node("test"), Node("build")])
    assert error.message == "duplicate step id 'build'"


def test_unknown_dependency_names_both_and_lists_known_ids_nearest_first() -> None:
    error = raised([Node("deploy", ("biuld",)), Node("test"), Node("build"), Node("push")])
    assert error.message == "step 'deploy' depends on unknown step 'biuld'"
    assert error.hint is not None
    assert error.hint.startswith("known steps, nearest first: build, ")
    assert set(error.hint.split(": ")[1].split(", ")) == {"build", "deploy", "test", "push"}


def test_unknown_dependency_hint_is_capped() -> None:
    nodes = [Node(f"s{i}") for i in range(15)] + [Node("x", ("s99",))]
    hint = raised(nodes).hint
    assert hint is not None and hint.endswith("and 6 more")


def test_self_dependency() -> None:
    assert raised([Node("a", ("a",))]).message == "step 'a' depends on itself"


def test_cycle_path_is_shown_in_order_from_and_to_the_same_step() -> None:
    nodes = [Node("build", ("deploy",)), Node("test", ("build",)), Node("deploy", ("test",))]
    assert raised(nodes).message == "cycle: build -> test -> deploy -> build"


def test_longer_cycle_starts_at_its_first_step_in_input_order() -> None:
    nodes = [
        Node("root"),
        Node("e", ("d",)),
        Node("b", ("a",)),
        Node("c", ("b",)),
        Node("d", ("c",)),
        Node("a", ("root", "e")),
    ]
    assert raised(nodes).message == "cycle: e -> a -> b -> c -> d -> e"


def test_cycle_not_reachable_from_any_root() -> None:
    nodes = [Node("root"), Node("leaf", ("root",)), Node("x", ("y",)), Node("y", ("x",)), Node("z", ("y",))]
    assert raised(nodes).message == "cycle: x -> y -> x"


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        ((5.0, 2.0), "minimum is greater than maximum"),
        ((-1.0, 2.0), "negative"),
        ((0.0, math.inf), "not a finite number of seconds"),
        ((math.nan, 1.0), "not a finite number of seconds"),
    ],
)
def test_bad_durations(duration: tuple[float, float], problem: str) -> None:
    assert raised([Node("a", (), duration)]).message.endswith(problem)


def test_a_dependency_named_twice_is_one_edge() -> None:
    nodes = [Node("a"), Node("b", ("a", "a"))]
    assert topological_order(nodes) == ["a", "b"]
    assert descendants(nodes, "a") == {"b"}


# --- order and levels ---------------------------------------------------------------------


def test_topological_order_breaks_ties_by_input_order() -> None:
    nodes = [Node("c"), Node("b", ("c",)), Node("a"), Node("d", ("a",))]
    assert topological_order(nodes) == ["c", "b", "a", "d"]
    assert topological_order([]) == []


def test_topological_order_of_the_seed() -> None:
    assert topological_order(SEED) == [n.id for n in SEED]


@given(dags(max_size=15))
def test_topological_order_respects_every_edge(nodes: list[Node]) -> None:
    order = topological_order(nodes)
    assert sorted(order) == sorted(n.id for n in nodes)
    position = {ident: index for index, ident in enumerate(order)}
    for dep, dependent in edges_of(nodes):
        assert position[dep] < position[dependent]
    assert topological_order(nodes) == order


@given(dags(max_size=12), st.data())
def test_a_back_edge_is_a_named_cycle(nodes: list[Node], data: st.DataObject) -> None:
    sources = [n for n in nodes if descendants(nodes, n.id)]
    if not sources:
        return
    source = data.draw(st.sampled_from(sources))
    target = data.draw(st.sampled_from(sorted(descendants(nodes, source.id))))
    looped = [Node(n.id, (*n.depends_on, target), n.duration) if n is source else n for n in nodes]
    with pytest.raises(GraphError) as caught:
        topological_order(looped)
    message = caught.value.message
    assert message.startswith("cycle: ")
    path = message.removeprefix("cycle: ").split(" -> ")
    assert path[0] == path[-1] and len(path) >= 3
    assert len(set(path[:-1])) == len(path) - 1
    for before, after in pairwise(path):
        assert (before, after) in edges_of(looped)


def test_parallel_groups_of_the_seed() -> None:
    assert parallel_groups(SEED) == [
        ["build"],
        ["test"],
        ["quality", "security"],
        ["push"],
        ["verify"],
        ["deploy"],
        ["pods", "logs"],
        ["service"],
    ]


def test_parallel_groups_use_the_longest_chain() -> None:
    # c waits for a directly and, through b, for two steps: it belongs to level 2.
    nodes = [Node("c", ("a", "b")), Node("b", ("a",)), Node("a"), Node("z")]
    assert parallel_groups(nodes) == [["a", "z"], ["b"], ["c"]]
    assert parallel_groups([]) == []


@given(dags())
def test_parallel_groups_put_every_step_after_its_dependencies(nodes: list[Node]) -> None:
    groups = parallel_groups(nodes)
    level = {ident: index for index, group in enumerate(groups) for ident in group}
    assert sorted(level) == sorted(n.id for n in nodes)
    assert all(group for group in groups)
    for node in nodes:
        assert level[node.id] == max((level[d] + 1 for d in node.depends_on), default=0)


# --- estimate -----------------------------------------------------------------------------


def test_estimate_follows_the_longer_parallel_branch() -> None:
    result = estimate(SEED)
    # build 5 + test 7 + quality 4 (not security 3) + push 5 + verify 50 s + deploy 3 + logs 2 + service 30 s
    assert result.maximum == (5 + 7 + 4 + 5 + 3 + 2) * MIN + 50 + 30
    # by minima the branches tie (2 min each); logs (1 min) beats pods (10 s)
    assert result.minimum == (2 + 3 + 2 + 3 + 2 + 1) * MIN + 10 + 10
    assert result.critical_path == (
        "build",
        "test",
        "quality",
        "push",
        "verify",
        "deploy",
        "logs",
        "service",
    )
    assert result.maximum < sum(n.duration[1] for n in SEED)
    assert result.minimum < sum(n.duration[0] for n in SEED)
    assert format_duration_range(result.minimum, result.maximum) == "13-28 min"


def test_estimate_of_nothing_and_of_unknown_durations() -> None:
    assert estimate([]) == Estimate(0.0, 0.0, ())
    # With no durations the critical path is still the longest chain of steps.
    assert estimate([Node("a"), Node("b"), Node("c", ("b",))]) == Estimate(0.0, 0.0, ("b", "c"))


def test_critical_path_by_maximum_even_when_minimum_comes_from_elsewhere() -> None:
    nodes = [Node("root"), Node("steady", ("root",), (50.0, 60.0)), Node("wild", ("root",), (1.0, 500.0))]
    result = estimate(nodes)
    assert (result.minimum, result.maximum, result.critical_path) == (50.0, 500.0, ("root", "wild"))


@given(dags(max_size=12))
def test_estimate_is_bounded_by_the_biggest_step_and_the_sum(nodes: list[Node]) -> None:
    result = estimate(nodes)
    maxima = [n.duration[1] for n in nodes]
    minima = [n.duration[0] for n in nodes]
    assert max(maxima, default=0.0) <= result.maximum <= sum(maxima)
    assert max(minima, default=0.0) <= result.minimum <= sum(minima)
    assert result.minimum <= result.maximum
    by_id = {n.id: n for n in nodes}
    path = result.critical_path
    assert math.isclose(sum(by_id[i].duration[1] for i in path), result.maximum)
    for before, after in pairwise(path):
        assert before in by_id[after].depends_on
    if path:
        assert not by_id[path[0]].depends_on


@given(st.lists(st.tuples(st.integers(0, 900), st.integers(0, 900)), max_size=12))
def test_estimate_of_a_chain_is_the_sum(spans: list[tuple[int, int]]) -> None:
    nodes = [
        Node(f"s{i}", (f"s{i - 1}",) if i else (), (float(min(span)), float(max(span))))
        for i, span in enumerate(spans)
    ]
    result = estimate(nodes)
    assert result.maximum == sum(max(span) for span in spans)
    assert result.minimum == sum(min(span) for span in spans)
    assert result.critical_path == tuple(n.id for n in nodes)


# --- reachability -------------------------------------------------------------------------


def test_descendants_and_ancestors() -> None:
    assert descendants(SEED, "deploy") == {"pods", "logs", "service"}
    assert descendants(SEED, "quality") == {"push", "verify", "deploy", "pods", "logs", "service"}
    assert descendants(SEED, "service") == set()
    assert ancestors(SEED, "push") == {"build", "test", "quality", "security"}
    assert ancestors(SEED, "build") == set()
    assert ancestors(SEED, "service") == {n.id for n in SEED} - {"service"}


def test_reachability_of_an_unknown_step() -> None:
    with pytest.raises(GraphError, match="unknown step 'deplyo'") as caught:
        descendants(SEED, "deplyo")
    assert caught.value.hint is not None and caught.value.hint.startswith(
        "known steps, nearest first: deploy"
    )


@given(dags())
def test_descendants_and_ancestors_mirror_each_other(nodes: list[Node]) -> None:
    for node in nodes:
        for other in descendants(nodes, node.id):
            assert node.id in ancestors(nodes, other)
        assert node.id not in descendants(nodes, node.id)


# --- durations for people -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (0, 0, "< 1 min"),
        (5, 59.9, "< 1 min"),
        (0, 120, "0-2 min"),
        (45, 120, "45 s-2 min"),
        (120, 300, "2-5 min"),
        (125, 290, "2-5 min"),
        (300, 300, "5 min"),
        (300, 300.0000001, "5 min"),  # float noise does not round up a whole minute
        (60, 61, "1-2 min"),  # the maximum is rounded up: never promise less
        (1200, 2100, "20-35 min"),
        (1200, 3600, "20 min-1 h"),
        (3600, 7200, "1-2 h"),
        (2700, 9000, "45 min-2.5 h"),
        (5400, 5400, "1.5 h"),
        (59.7, 120, "1-2 min"),
        (30, 7200, "30 s-2 h"),
        (36000, 360000, "10-100 h"),
    ],
)
def test_format_duration_range(low: float, high: float, text: str) -> None:
    assert format_duration_range(low, high) == text


def test_format_duration_range_refuses_nonsense() -> None:
    with pytest.raises(GraphError):
        format_duration_range(10, 5)
    with pytest.raises(GraphError):
        format_duration_range(-1, 5)


_UNIT = {"s": 1.0, "min": MIN, "h": 3600.0}


def bounds(text: str) -> tuple[float, float]:
    """Seconds shown as the low and high end of a formatted range."""
    if text == "< 1 min":
        return 0.0, MIN
    match = re.fullmatch(r"([\d.]+)(?: (s|min|h))?(?:-([\d.]+))? (s|min|h)", text)
    assert match, text
    low, low_unit, high, unit = match.groups()
    high = high or low
    return float(low) * _UNIT[low_unit or unit], float(high) * _UNIT[unit]


@settings(max_examples=300)
@given(st.floats(0, 200_000), st.floats(0, 200_000), st.floats(0, 200_000))
def test_formatted_ranges_are_ordered_monotonic_and_cover_the_maximum(a: float, b: float, c: float) -> None:
    low, mid, high = sorted((a, b, c))
    shown_low, shown_high = bounds(format_duration_range(low, mid))
    assert shown_low <= shown_high
    assert shown_high >= mid
    # Growing either end never shrinks what is shown.
    assert bounds(format_duration_range(low, high))[1] >= shown_high
    assert bounds(format_duration_range(mid, mid))[0] >= shown_low or mid < MIN


# --- drawing: a reader for the text -------------------------------------------------------

_ARMS = {
    "│": "ud",
    "─": "lr",
    "└": "ur",
    "┘": "ul",
    "┌": "dr",
    "┐": "dl",
    "┴": "ulr",
    "┬": "dlr",
    "├": "udr",
    "┤": "udl",
    "┼": "udlr",
    "▼": "u",
}
_MOVES = {"u": (-1, 0, "d"), "d": (1, 0, "u"), "l": (0, -1, "r"), "r": (0, 1, "l")}


class Picture:
    """Reads a drawing the way a person would: boxes, and which lines join which boxes."""

    def __init__(self, text: str) -> None:
        self.grid = [self._cells(line) for line in text.split("\n")]
        self.boxes: list[tuple[int, int, int, int]] = []  # top, left, bottom, right
        self.owner: dict[tuple[int, int], int] = {}
        self._find_boxes()

    @staticmethod
    def _cells(line: str) -> list[str]:
        """One entry per terminal column: a wide character is followed by an empty one."""
        cells: list[str] = []
        for char in line:
            if unicodedata.combining(char) or char == "\ufe0f":
                if char == "\ufe0f" and cells[-1] != "":
                    cells.append("")  # ⚠️ takes two columns
                cells[-2 if cells[-1] == "" else -1] += char
                continue
            cells.append(char)
            if unicodedata.east_asian_width(char) in ("W", "F"):
                cells.append("")
        return cells

    def at(self, row: int, col: int) -> str:
        if 0 <= row < len(self.grid) and 0 <= col < len(self.grid[row]):
            return self.grid[row][col]
        return " "

    def _find_boxes(self) -> None:
        # A box top is ┌─...─┐ (a bus always has an arm up, a top border never does).
        for row, cells in enumerate(self.grid):
            line = "".join(cell or "\0" for cell in cells)  # keeps string index == column
            for match in re.finditer(r"┌─+┐", line):
                left, right = match.start(), match.end() - 1
                bottom = row + 1
                while self.at(bottom, left) == "│":
                    assert self.at(bottom, right) == "│"
                    bottom += 1
                assert self.at(bottom, left) == "└" and self.at(bottom, right) == "┘"
                assert set(self.grid[bottom][left + 1 : right]) <= {"─", "┬"}
                self.boxes.append((row, left, bottom, right))
                for r in range(row, bottom + 1):
                    for c in range(left, right + 1):
                        self.owner[(r, c)] = len(self.boxes) - 1

    def content(self, box: int) -> list[str]:
        top, left, bottom, right = self.boxes[box]
        return ["".join(self.grid[r][left + 1 : right]).strip() for r in range(top + 1, bottom)]

    def title(self, box: int) -> str:
        return self.content(box)[0]

    def after(self, box: int) -> list[str]:
        lines = [line for line in self.content(box) if line]
        for index, line in enumerate(lines):
            if line.startswith("after:"):  # the list may wrap onto the following lines
                return " ".join(lines[index:]).removeprefix("after:").strip().split(", ")
        return []

    def edges(self) -> set[tuple[str, str]]:
        """(parent title, child title) for every pair a connector joins; START/END by name."""
        seen: set[tuple[int, int]] = set()
        found: set[tuple[str, str]] = set()
        for row, line in enumerate(self.grid):
            for col, char in enumerate(line):
                if char == "▼" and (row, col) not in seen:
                    parents, children = self._trace(row, col, seen)
                    found |= {(p, c) for p in parents for c in children}
        return found

    def _trace(self, row: int, col: int, seen: set[tuple[int, int]]) -> tuple[set[str], set[str]]:
        parents: set[str] = set()
        children: set[str] = set()
        todo = [(row, col)]
        while todo:
            r, c = todo.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            char = self.at(r, c)
            if char == "▼":
                below = self.owner.get((r + 1, c))
                children.add(self.title(below) if below is not None else "".join(self.grid[r + 1]).strip())
            if r == 1:
                parents.add("".join(self.grid[0]).strip())  # the START label
            for arm in _ARMS[char]:
                dr, dc, back = _MOVES[arm]
                nr, nc = r + dr, c + dc
                if (nr, nc) in self.owner:
                    assert arm == "u" and self.at(nr, nc) == "┬", (r, c, arm)
                    parents.add(self.title(self.owner[(nr, nc)]))
                elif back in _ARMS.get(self.at(nr, nc), ""):
                    todo.append((nr, nc))
        return parents, children


# --- drawing ------------------------------------------------------------------------------


def test_draw_the_seed() -> None:
    text = draw(SEED, seed_boxes())
    picture = Picture(text)
    titles = [picture.title(box) for box in range(len(picture.boxes))]
    assert sorted(titles) == sorted(lines[0] for lines in SEED_TITLES.values())
    for ident, lines in SEED_TITLES.items():
        assert text.count(lines[0] + " ") == 1, ident
    assert text.splitlines()[0].strip() == "START" and text.splitlines()[-1].strip() == "END"
    for left, right in [("Step 3: QUALITY SCAN", "Step 4: SECURITY"), ("Step 8: VERIFY", "Step 9: HEALTH")]:
        rows = [line for line in text.splitlines() if left in line]
        assert len(rows) == 1 and right in rows[0]
    # Every dependency of this graph fits as a line: none needs an "after:" note.
    assert "after:" not in text
    title = {ident: lines[0] for ident, lines in SEED_TITLES.items()}
    assert picture.edges() == {(title[a], title[b]) for a, b in edges_of(SEED)} | {
        ("START", title["build"]),
        (title["service"], "END"),
    }
    assert "┴" in text and "┬" in text and "▼" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_draw_nothing_and_one_step() -> None:
    assert draw([], {}) == "START\n  │\n  ▼\n END"
    text = draw([Node("only")], {})
    assert Picture(text).edges() == {("START", "only"), ("only", "END")}


def test_draw_a_chain_runs_straight_down() -> None:
    nodes = [Node("a"), Node("b", ("a",)), Node("c", ("b",))]
    long = "a much longer title for b"
    text = draw(nodes, {"b": Box("b", (long,))})
    # boxes of different widths still line up: every arrow in one column, no jogs
    assert len({line.index("▼") for line in text.splitlines() if "▼" in line}) == 1
    assert Picture(text).edges() == {("START", "a"), ("a", long), (long, "c"), ("c", "END")}


def test_an_edge_that_skips_a_level_is_listed_not_drawn() -> None:
    nodes = [Node("a"), Node("b", ("a",)), Node("c", ("a", "b"))]
    picture = Picture(draw(nodes, {}))
    assert ("a", "c") not in picture.edges()
    box_c = next(box for box in range(len(picture.boxes)) if picture.title(box) == "c")
    assert picture.after(box_c) == ["a"]


def test_a_diamond_and_many_roots() -> None:
    nodes = [
        Node("r1"),
        Node("r2"),
        Node("left", ("r1", "r2")),
        Node("right", ("r1", "r2")),
        Node("end", ("left", "right")),
    ]
    picture = Picture(draw(nodes, {}))
    assert picture.edges() == edges_of(nodes) | {("START", "r1"), ("START", "r2"), ("end", "END")}


def test_a_wide_level_wraps_onto_several_rows() -> None:
    nodes = [Node("root"), *(Node(f"leaf{i}", ("root",)) for i in range(9))]
    text = draw(nodes, {}, width=50)
    assert max(len(line) for line in text.splitlines()) <= 50
    picture = Picture(text)
    assert sorted(picture.title(b) for b in range(len(picture.boxes))) == sorted(n.id for n in nodes)
    drawn = picture.edges()
    for i in range(9):
        box = next(b for b in range(len(picture.boxes)) if picture.title(b) == f"leaf{i}")
        # each leaf is joined to root by a line or says it comes after root, never both
        assert (("root", f"leaf{i}") in drawn) != (picture.after(box) == ["root"])


def test_draw_refuses_a_cycle() -> None:
    with pytest.raises(GraphError, match="cycle"):
        draw([Node("a", ("b",)), Node("b", ("a",))], {})


def test_odd_text_keeps_the_grid() -> None:
    nodes = [Node("a"), Node("b", ("a",))]
    boxes = {
        "a": Box(
            "a", ("tab\there", "newline\nhere", "x" * 300, "wide 🟡 漢字", "cafe\u0301 \u26a0\ufe0f approval")
        ),
        "b": Box("b", ()),
    }
    text = draw(nodes, boxes, width=60)
    assert Picture(text).edges() == {("START", "tab here"), ("tab here", "b"), ("b", "END")}
    assert all(line == line.rstrip() for line in text.splitlines())


@settings(max_examples=300, deadline=None)
@given(dags(max_size=12), st.integers(0, 160), st.lists(st.integers(0, 30), min_size=12, max_size=12))
def test_any_dag_is_drawn_truthfully(nodes: list[Node], width: int, extra: list[int]) -> None:
    boxes = {
        n.id: Box(n.id, (f"[{n.id}]", "x" * extra[int(n.id[1:])])) if extra[int(n.id[1:])] else Box(n.id, ())
        for n in nodes
    }
    title = {n.id: f"[{n.id}]" if extra[int(n.id[1:])] else n.id for n in nodes}
    text = draw(nodes, boxes, width=width)
    assert draw(nodes, boxes, width=width) == text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert text.startswith(("START", " ")) and text.splitlines()[-1].strip() == "END"
    picture = Picture(text)
    shown = [picture.title(box) for box in range(len(picture.boxes))]
    assert sorted(shown) == sorted(title.values())  # every step exactly once
    by_title = {t: ident for ident, t in title.items()} | {"START": "START", "END": "END"}
    real = edges_of(nodes)
    drawn = {(by_title[p], by_title[c]) for p, c in picture.edges()}
    roots = {n.id for n in nodes if not n.depends_on}
    sinks = {n.id for n in nodes} - {dep for dep, _ in real}
    for parent, child in drawn:  # no line shows a dependency that does not exist
        if parent == "START":
            assert child in roots or (child == "END" and not nodes)
        elif child == "END":
            assert parent in sinks
        else:
            assert (parent, child) in real
    listed = {
        (dep, by_title[picture.title(box)]) for box in range(len(picture.boxes)) for dep in picture.after(box)
    }
    assert listed <= real
    assert not (listed & drawn)
    assert real <= drawn | listed  # and every dependency is shown one way or the other

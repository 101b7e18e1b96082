"""The fast paths of the root-cause analysis give exactly what the plain per-line way gives.

The matcher screens all of an artifact's lines at once, and the redaction looks at all of an
artifact's lines before it searches any: each is checked here against a plain reference (every
line redacted with every search; every rule tried on every line its screen lets through), on
generated lines full of what those shortcuts look for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain.redaction import REDACTED, Redactor
from opsmith.domain.root_cause import MAX_LINE_CHARS, MAX_LINES, Artifact, match_lines
from opsmith.engine import run_evidence
from opsmith.engine.run_evidence import cleaned, output_lines, text_lines
from opsmith.rule_library import bundled_rules
from tests.unit.test_root_cause import SAMPLES

SECRET = "S3cret-Value-0123456789"
REDACTOR = Redactor([SECRET, "hunter22"])

# What the redaction and the screens look for, and what could fool a shortcut: upper case, a
# character whose lower case is longer (İ), line breaks inside a "line", lines past the cuts.
PIECES = [
    "info request served", " ", "Bearer abcdef123456", "BASIC dXNlcjpwYXNz", "https://u:pw1234@db/x",
    "password=hunter22", "API_KEY: 'a b c'", "token", "KEY", "credential", "secret", "://", SECRET,
    SECRET[:9], "hunter22", "İ", "Σ", "\n", "\r", "CrashLoopBackOff", "cannot find module",
    "Cannot find module './config/production.json'", "OOMKilled", "not found", "timeout", "=", ":",
]  # fmt: skip
SAMPLE_LINES = [line for _, line in SAMPLES.values()]


def line_texts() -> st.SearchStrategy[str]:
    piece = st.sampled_from(PIECES + SAMPLE_LINES) | st.text(max_size=12)
    short = st.lists(piece, max_size=8).map("".join)
    long = st.tuples(short, st.integers(MAX_LINE_CHARS - 40, 2 * MAX_LINE_CHARS + 40), short).map(
        lambda t: t[0] + "x" * t[1] + t[2]
    )
    return st.one_of(short, short, short, long)


def reference_clean(line: str, redactor: Redactor) -> str:
    # Every search on every line, nothing skipped.
    line = redactor.text(line)[: MAX_LINE_CHARS * 2]
    line = run_evidence._BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    line = run_evidence._URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", line)
    line = run_evidence._SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", line)
    return line[:MAX_LINE_CHARS]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_texts(), max_size=12))
def test_the_lines_of_an_artifact_are_redacted_as_each_line_alone_would_be(lines: list[str]) -> None:
    assert cleaned(lines, REDACTOR) == tuple(reference_clean(line, REDACTOR) for line in lines)
    assert all(SECRET not in line and "hunter22" not in line for line in cleaned(lines, REDACTOR))


def test_a_secret_across_the_cut_of_a_long_line_shows_no_part_of_it() -> None:
    # 4,000 characters (the cut before the searches) end inside the 174th copy; hiding the copies
    # before it shortens the line enough that the cut part would be shown.
    line = SECRET * 200
    shown = text_lines(line, REDACTOR)
    assert shown == (REDACTED * 200,)
    assert cleaned([line], REDACTOR) == shown


def test_a_secret_spanning_lines_of_a_text_is_hidden() -> None:
    redactor = Redactor(["first-half\nsecond-half"])
    assert text_lines("a first-half\nsecond-half b\nnext", redactor) == (f"a {REDACTED} b", "next")


def reference_walk(value: Any, path: str, found: list[str], depth: int) -> None:
    # The plain way: a redacted copy of the output first (Redactor.data), then walked.
    if len(found) >= run_evidence.MAX_ARTIFACT_LINES or depth > 12:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            reference_walk(item, f"{path}.{key}" if path else str(key), found, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, str):
                found.extend(item.splitlines() or [""])
            else:
                reference_walk(item, f"{path}.{index}" if path else str(index), found, depth + 1)
    elif isinstance(value, str):
        first, *rest = value.splitlines() or [""]
        found.append(f"{path}: {first}" if path else first)
        found.extend(rest)
    else:
        found.append(f"{path}: {value}" if path else str(value))


def reference_output_lines(value: Any, redactor: Redactor) -> tuple[str, ...]:
    found: list[str] = []
    reference_walk(redactor.data(value), "", found, 0)
    return tuple(reference_clean(line, redactor) for line in found[: run_evidence.MAX_ARTIFACT_LINES])


KEYS = st.sampled_from(["pods", "lines", "status", "token", "api-key", "name", SECRET, "a\nb", "İd"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | line_texts(),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_a_steps_output_gives_the_lines_of_its_redacted_copy(value: Any) -> None:
    assert output_lines(value, REDACTOR) == reference_output_lines(value, REDACTOR)


def test_a_long_list_of_log_lines_is_read_only_as_far_as_the_cap() -> None:
    logs = [f"line {n}" for n in range(run_evidence.MAX_ARTIFACT_LINES * 3)]
    shown = output_lines({"pods": [{"lines": logs}]}, REDACTOR)
    assert shown == tuple(logs[: run_evidence.MAX_ARTIFACT_LINES])


def reference_hits(artifacts: Sequence[Artifact]) -> list[tuple[str, int, int, dict[str, str]]]:
    # Every line, one at a time: the rules of its kind whose screen words it holds are searched.
    found = []
    rules = bundled_rules()
    for place, artifact in enumerate(artifacts):
        for number, raw in enumerate(artifact.lines[:MAX_LINES], start=1):
            text = raw[:MAX_LINE_CHARS]
            lower = text.lower()
            for rule in rules:
                if artifact.kind not in rule.applies_to:
                    continue
                if rule.screen and not any(word in lower for word in rule.screen):
                    continue
                match = rule.regex.search(text)
                if match:
                    groups = {k: v for k, v in match.groupdict().items() if v is not None}
                    found.append((rule.id, place, number, groups))
    return found


KINDS = st.sampled_from(["error", "output", "log", "event", "stderr", "exit_code"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KINDS, st.lists(line_texts(), max_size=10)), max_size=4))
def test_the_screens_over_all_lines_at_once_find_what_each_line_alone_would(
    made: list[tuple[str, list[str]]],
) -> None:
    artifacts = [
        Artifact(kind=kind, step=f"s{n}", lines=tuple(lines)) for n, (kind, lines) in enumerate(made)
    ]  # type: ignore[arg-type]
    hits, read, truncated = match_lines(bundled_rules(), artifacts)
    # Each artifact has its own step, so a hit's step names its artifact; the order counts too
    # (a finding cites its rule's first hit).
    found = [(h.rule.id, int(h.line.step.removeprefix("s")), h.line.line, h.groups) for h in hits]  # type: ignore[union-attr]
    assert found == reference_hits(artifacts)
    assert read == sum(len(a.lines) for a in artifacts) and not truncated


def test_a_character_whose_lower_case_is_longer_does_not_shift_the_screen() -> None:
    # "İ".lower() is two characters: lower-casing all the lines at once moves what follows.
    crash = "Error: Cannot find module './config/production.json'"
    artifacts = [Artifact(kind="log", step="s0", lines=("İ" * 60, "x", crash, "CrashLoopBackOff"))]
    hits, _, _ = match_lines(bundled_rules(), artifacts)
    assert [(h.rule.id, h.line.line) for h in hits] == [(r, n) for r, _, n, _ in reference_hits(artifacts)]
    assert {h.line.line for h in hits} == {3, 4}

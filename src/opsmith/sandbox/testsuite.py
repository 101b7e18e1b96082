"""The sandbox's test format and its evaluation against a commit's files.

A test file is `tests/<name>.test.json`: {"suite": NAME, "cases": [{"name": ..., "expect": [...]}]}.
Each expectation names a `file` and one check: `exists` (bool), `contains`, `not_contains`,
`matches` (regular expression), or `json_path` (dotted) with `equals`. Coverage is the share of
source lines (non-test .js files) in files that some selected case checks.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel

from opsmith.sandbox.jssource import code_lines, is_source


class CaseResult(BaseModel):
    suite: str
    name: str
    status: Literal["PASSED", "FAILED", "ERROR"]
    message: str | None = None


class FileCoverage(BaseModel):
    path: str
    lines: int
    covered: bool


class Evaluation(BaseModel):
    suites: list[str]
    cases: list[CaseResult]
    files: list[FileCoverage]
    coverage_percent: float


def test_files(tree: dict[str, bytes]) -> list[str]:
    return sorted(p for p in tree if p.startswith("tests/") and p.endswith(".test.json"))


def suites_in(tree: dict[str, bytes]) -> dict[str, str]:
    """Suite name -> file; a file that is not valid JSON is its own suite named after the file."""
    found: dict[str, str] = {}
    for path in test_files(tree):
        name = path.removeprefix("tests/").removesuffix(".test.json")
        try:
            doc = json.loads(tree[path])
            if isinstance(doc, dict) and isinstance(doc.get("suite"), str):
                name = doc["suite"]
        except ValueError:
            pass
        found[name] = path
    return found


def _lookup(doc: Any, dotted: str) -> tuple[bool, Any]:
    current = doc
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def _check(tree: dict[str, bytes], expect: dict[str, Any]) -> str | None:
    """None when the expectation holds, else why it does not."""
    path = expect.get("file")
    if not isinstance(path, str):
        raise ValueError("expectation lacks a 'file'")
    present = path in tree
    if "exists" in expect:
        wanted = bool(expect["exists"])
        if present != wanted:
            return f"expected file {path} to {'exist' if wanted else 'be absent'}"
        return None
    if not present:
        return f"file {path} does not exist"
    text = tree[path].decode("utf-8", errors="replace")
    if "contains" in expect:
        if str(expect["contains"]) not in text:
            return f"{path} does not contain {expect['contains']!r}"
        return None
    if "not_contains" in expect:
        needle = str(expect["not_contains"])
        if needle in text:
            line = text[: text.index(needle)].count("\n") + 1
            return f"{path}:{line} contains {needle!r}"
        return None
    if "matches" in expect:
        if not re.search(str(expect["matches"]), text):
            return f"{path} does not match /{expect['matches']}/"
        return None
    if "json_path" in expect:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            return f"{path} is not valid JSON: {exc}"
        found, value = _lookup(doc, str(expect["json_path"]))
        if not found:
            return f"{path} has no {expect['json_path']}"
        if "equals" in expect and value != expect["equals"]:
            return f"{path} {expect['json_path']} is {value!r}, expected {expect['equals']!r}"
        return None
    raise ValueError(f"expectation on {path} has no check (exists/contains/not_contains/matches/json_path)")


def evaluate(tree: dict[str, bytes], suite_filter: str = "all") -> Evaluation:
    suites = suites_in(tree)
    selected = suites if suite_filter == "all" else {suite_filter: suites[suite_filter]}
    cases: list[CaseResult] = []
    referenced: set[str] = set()
    for suite, path in sorted(selected.items()):
        try:
            doc = json.loads(tree[path])
            raw_cases = doc["cases"]
            if not isinstance(raw_cases, list):
                raise ValueError("'cases' must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            cases.append(
                CaseResult(suite=suite, name=path, status="ERROR", message=f"cannot load {path}: {exc}")
            )
            continue
        for index, case in enumerate(raw_cases):
            name = (
                str(case.get("name", f"case {index + 1}")) if isinstance(case, dict) else f"case {index + 1}"
            )
            try:
                expects = case["expect"]
                failures = []
                for expect in expects:
                    referenced.add(str(expect.get("file")))
                    problem = _check(tree, expect)
                    if problem:
                        failures.append(problem)
            except (ValueError, KeyError, TypeError, re.error) as exc:
                cases.append(CaseResult(suite=suite, name=name, status="ERROR", message=str(exc)))
                continue
            if failures:
                cases.append(CaseResult(suite=suite, name=name, status="FAILED", message="; ".join(failures)))
            else:
                cases.append(CaseResult(suite=suite, name=name, status="PASSED"))
    files = [
        FileCoverage(
            path=path,
            lines=len(code_lines(content.decode("utf-8", errors="replace"))),
            covered=path in referenced,
        )
        for path, content in sorted(tree.items())
        if is_source(path)
    ]
    total = sum(f.lines for f in files)
    covered = sum(f.lines for f in files if f.covered)
    percent = round(100.0 * covered / total, 1) if total else 0.0
    return Evaluation(suites=sorted(selected), cases=cases, files=files, coverage_percent=percent)

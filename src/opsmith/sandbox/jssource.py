"""Just enough JavaScript reading for the sandbox: bracket balance, require() calls, source files."""

from __future__ import annotations

import re
from dataclasses import dataclass

REQUIRE = re.compile(r"""require\(\s*['"]([^'"]+)['"]\s*\)""")
# require(`./config/${process.env.APP_ENV}.json`): a path that depends on the environment.
REQUIRE_TEMPLATE = re.compile(
    r"""require\(\s*`((?:[^`$\\]|\$\{\s*process\.env\.[A-Za-z_][A-Za-z0-9_]*\s*\})+)`\s*\)"""
)
ENV_REFERENCE = re.compile(r"\$\{\s*process\.env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
NODE_BUILTINS = frozenset(
    {
        "assert",
        "buffer",
        "child_process",
        "crypto",
        "events",
        "fs",
        "http",
        "https",
        "net",
        "os",
        "path",
        "querystring",
        "stream",
        "url",
        "util",
        "zlib",
    }
)
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Require:
    line: int
    spec: str

    def in_env(self, env: dict[str, str]) -> Require:
        """The path node would load: `${process.env.X}` becomes X's value ("undefined" when unset)."""
        return Require(self.line, ENV_REFERENCE.sub(lambda m: env.get(m.group(1), "undefined"), self.spec))

    @property
    def relative(self) -> bool:
        return self.spec.startswith("./") or self.spec.startswith("../")

    @property
    def package(self) -> str:
        parts = self.spec.split("/")
        return "/".join(parts[:2]) if self.spec.startswith("@") else parts[0]


def is_source(path: str) -> bool:
    return path.endswith(".js") and not path.startswith(("tests/", "test/", "node_modules/"))


def requires(text: str) -> list[Require]:
    found: list[Require] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("//"):
            continue
        found.extend(Require(number, match.group(1)) for match in REQUIRE.finditer(line))
        found.extend(Require(number, match.group(1)) for match in REQUIRE_TEMPLATE.finditer(line))
    return found


def syntax_error(text: str) -> str | None:
    """Report the first unbalanced bracket, skipping strings and comments, as node would refuse to load."""
    stack: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return f"{line}: SyntaxError: Unterminated comment"
            line += text.count("\n", i, end)
            i = end + 2
            continue
        elif ch in "'\"`":
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n" and ch != "`":
                    return f"{line}: SyntaxError: Invalid or unexpected token"
                j += 1
            if j >= n:
                return f"{line}: SyntaxError: Invalid or unexpected token"
            line += text.count("\n", i, j)
            i = j + 1
            continue
        elif ch in "([{":
            stack.append((ch, line))
        elif ch in ")]}":
            if not stack or stack[-1][0] != _PAIRS[ch]:
                return f"{line}: SyntaxError: Unexpected token '{ch}'"
            stack.pop()
        i += 1
    if stack:
        return f"{stack[-1][1]}: SyntaxError: Unexpected end of input"
    return None


def code_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank, non-comment lines with their numbers: what quality metrics count."""
    result = []
    in_block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_block:
            if "*/" in line:
                in_block = False
            continue
        if not line or line.startswith("//"):
            continue
        if line.startswith("/*"):
            in_block = "*/" not in line
            continue
        result.append((number, raw))
    return result

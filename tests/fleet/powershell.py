"""A PowerShell interpreter for the simulated Windows hosts of tests/fleet/wsman.py: the part of the
language and of Windows that the scripts opsmith sends there use, run for real.

Those scripts are the ones opsmith.domain.scripts_windows renders (service status, stop, start and
restart, process check, install_file, wait_healthy for a service), the statements of the WinRM
executor's put_file, and the short ones the WinRM tests write. They are run the way Windows
PowerShell 5.1 runs them:

    language    the script parsed whole before anything runs; functions with typed parameters,
                dynamic scopes and `$script:`; if/elseif/else, while, foreach, try/catch/finally,
                throw, return, exit; pipelines; arrays, hashtables ([ordered] too), casts, -f,
                -replace, -and/-or, comparisons (case-insensitive, the right side converted to the
                left side's type), double-quoted strings with $variables, `$x++`
    errors      terminating and non-terminating ones, as $ErrorActionPreference and -ErrorAction
                say; an uncaught one is written to stderr and the exit code is 1
    cmdlets     see COMMANDS (with the parameters each takes)
    .NET        see STATIC_MEMBERS and the member names in MEMBER_NAMES
    ConvertTo-Json -Compress as Windows PowerShell 5.1 writes it (', <, >, & as \\u0027...)
    stdin       `$input`: the lines sent to the command's stdin (what the WinRM executor's bootstrap
                reads, then dot-sources with `. ([ScriptBlock]::Create(...))`), and `-join`

against a `Machine`: its service table, files, directories and processes, and a clock that
Start-Sleep moves on (the endpoint makes a script take that long).

What it does not know fails loudly. A cmdlet, parameter, type, static or instance member,
operator or piece of syntax outside the subset raises `Unsupported`, when the script is parsed
(so also in a branch that would not run) or when it is reached; no try/catch of the script can
catch it. `run` then ends the script with exit code UNSUPPORTED_EXIT and says on stderr which
statement it could not run, so a change to opsmith's scripts that this interpreter cannot follow
shows up as a failure instead of passing untested. Widen the subset here when that happens.
"""

from __future__ import annotations

import array
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any, Protocol

__all__ = [
    "COMMANDS",
    "MEMBER_NAMES",
    "STATIC_MEMBERS",
    "UNSUPPORTED_EXIT",
    "Machine",
    "Ran",
    "Unsupported",
    "parse",
    "reads_stdin",
    "run",
]

UNSUPPORTED_EXIT = 99
MAX_STATEMENTS = 100_000  # a script that runs more has a loop that never ends
MAX_CLOCK_SECONDS = 3600.0  # nor does a script that sleeps longer
PID = 4242


class Machine(Protocol):
    """What a script acts on (SimulatedWindows is one)."""

    services: dict[str, str]  # name -> Running | Stopped | Paused
    refuse_stop: set[str]  # services whose stop fails as Windows fails it
    pending_seconds: float  # how long a service takes to stop or start (StopPending...)
    files: dict[str, bytes]  # lower-cased path -> content
    directories: set[str]  # lower-cased paths, besides drive roots and those holding a file
    processes: dict[str, list[int]]  # process name without .exe -> pids
    corrupt_writes: bool  # flip a bit of every chunk [IO.File] writes
    chunks: list[int]  # sizes of the chunks [IO.File] wrote, in order


@dataclass(frozen=True)
class Ran:
    """What a script came to: its output, its exit code and the simulated seconds it took."""

    stdout: str
    stderr: str  # all of it, in the order written
    exit_code: int
    seconds: float
    unsupported: str | None = None  # the loud failure, if the script went outside the subset
    # What was written straight to the stderr handle ([Console]::Error), which powershell.exe passes
    # on as it is; the rest (error records) it writes as CLIXML.
    raw_stderr: str = ""
    error_records: str = ""  # stderr without raw_stderr


class Unsupported(Exception):
    """The script uses something this interpreter does not implement."""

    def __init__(self, detail: str, statement: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.statement = statement


def reads_stdin(script: str) -> bool:
    """Whether `script` reads its stdin (`$input`), so that its command waits for the input to end.
    Read from the text: a `$input` inside a string literal counts too, which no script here has."""
    return re.search(r"(?i)\$input\b", script) is not None


def run(script: str, machine: Machine, stdin: str = "") -> Ran:
    """Parse `script` and run it against `machine`, with `stdin` as what its `$input` reads."""
    state = _Run(machine, stdin)
    try:
        body = parse(script)
        code = state.main(body)
    except Unsupported as exc:
        message = (
            f"simulated Windows host: unsupported statement `{exc.statement}`: {exc.detail}"
            " (tests/fleet/powershell.py implements only what opsmith's scripts use)"
        )
        state.stderr.append(message)
        return state.ran(UNSUPPORTED_EXIT, message)
    finally:
        state.settle()
    return state.ran(code, None)


class _RawText(str):
    """A line written straight to stderr, not as an error record."""


# -- the syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Const:
    value: Any


@dataclass(frozen=True)
class _Var:
    scope: str | None
    name: str


@dataclass(frozen=True)
class _Expandable:
    parts: tuple[str | _Var, ...]


@dataclass(frozen=True)
class _Paren:
    pipeline: _Pipeline


@dataclass(frozen=True)
class _SubArray:
    body: tuple[Any, ...]


@dataclass(frozen=True)
class _HashLit:
    entries: tuple[tuple[str, _Pipeline], ...]
    ordered: bool


@dataclass(frozen=True)
class _ArrayLit:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class _Cast:
    type: str
    operand: Any


@dataclass(frozen=True)
class _Unary:
    op: str  # -not, -
    operand: Any


@dataclass(frozen=True)
class _Binary:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class _TypeRef:
    type: str


@dataclass(frozen=True)
class _Static:
    type: str
    member: str
    args: tuple[Any, ...] | None  # None: a property


@dataclass(frozen=True)
class _Member:
    target: Any
    member: str
    args: tuple[Any, ...] | None


@dataclass(frozen=True)
class _Index:
    target: Any
    index: Any


@dataclass(frozen=True)
class _Param:
    name: str
    type: str | None


@dataclass(frozen=True)
class _BlockLit:
    params: tuple[_Param, ...]
    body: tuple[Any, ...]


@dataclass(frozen=True)
class _DotSource:
    src: str
    block: Any  # an expression whose value is a script block: `. ([ScriptBlock]::Create($text))`


@dataclass(frozen=True)
class _ArgName:
    name: str
    value: Any | None  # -Force:$force


@dataclass(frozen=True)
class _Command:
    name: str
    args: tuple[Any, ...]  # _ArgName or expressions


@dataclass(frozen=True)
class _Pipeline:
    elements: tuple[Any, ...]  # the first an expression or a command, the others commands


@dataclass(frozen=True)
class _Pipe:
    src: str
    pipeline: _Pipeline


@dataclass(frozen=True)
class _Assign:
    src: str
    target: _Var
    op: str  # =, +=, ++
    value: _Pipeline | None


@dataclass(frozen=True)
class _Function:
    src: str
    name: str
    params: tuple[_Param, ...]
    body: tuple[Any, ...]


@dataclass(frozen=True)
class _If:
    src: str
    clauses: tuple[tuple[_Pipeline, tuple[Any, ...]], ...]
    otherwise: tuple[Any, ...] | None


@dataclass(frozen=True)
class _While:
    src: str
    condition: _Pipeline
    body: tuple[Any, ...]


@dataclass(frozen=True)
class _Foreach:
    src: str
    variable: _Var
    items: _Pipeline
    body: tuple[Any, ...]


@dataclass(frozen=True)
class _Try:
    src: str
    body: tuple[Any, ...]
    catch: tuple[Any, ...] | None
    final: tuple[Any, ...] | None


@dataclass(frozen=True)
class _Flow:
    src: str
    keyword: str  # throw, return, exit
    value: _Pipeline | None


# -- parsing ---------------------------------------------------------------------------------------

_SQ = "'\u2018\u2019\u201a\u201b"
_DQ = '"\u201c\u201d\u201e'
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_VARIABLE = re.compile(r"(?:([A-Za-z]+):)?([A-Za-z_][A-Za-z0-9_]*)")
_BAREWORD = re.compile(r"[^\s;|(){}'\",\u2018\u2019\u201a\u201b\u201c\u201d\u201e]+")
_KEYWORDS = frozenset(
    {
        *("function", "filter", "if", "elseif", "else", "while", "for", "foreach", "do", "until", "switch"),
        *("try", "catch", "finally", "trap", "throw", "return", "exit", "break", "continue", "param"),
        *("begin", "process", "end", "data", "dynamicparam", "class", "enum", "using", "in"),
    }
)
# Binary operators and how tightly they bind; a comma binds tighter than any of them.
_LEVELS = {
    "-and": 0,
    "-or": 0,
    "-bor": 1,
    "-eq": 2,
    "-ne": 2,
    "-gt": 2,
    "-ge": 2,
    "-lt": 2,
    "-le": 2,
    "-replace": 2,
    "-join": 2,
    "+": 3,
    "-": 3,
    "*": 4,
    "/": 4,
    "%": 4,
    "-f": 5,
}
_ENDS = ("", "\n", "\r", ";", "|", ")", "}")


def parse(script: str) -> tuple[Any, ...]:
    """The statements of `script`; Unsupported for anything outside the subset, wherever it is."""
    parser = _Parser(script)
    body = parser.block("")
    for command, line in parser.calls:
        name = command.name.lower()
        spec = COMMANDS.get(name)
        if spec is None:
            if name not in parser.defined:
                raise Unsupported(f"the command {command.name}", line)
            continue
        for arg in command.args:
            if isinstance(arg, _ArgName) and not spec.takes(arg.name):
                raise Unsupported(f"the parameter -{arg.name} of {spec.name}", line)
    return body


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.calls: list[tuple[_Command, str]] = []
        self.defined: set[str] = set()

    # -- characters

    def peek(self, ahead: int = 0) -> str:
        at = self.at + ahead
        return self.text[at] if at < len(self.text) else ""

    def starts(self, text: str) -> bool:
        return self.text.startswith(text, self.at)

    def line(self) -> str:
        start = self.text.rfind("\n", 0, self.at) + 1
        end = self.text.find("\n", self.at)
        return self.text[start : len(self.text) if end == -1 else end].strip()

    def fail(self, detail: str) -> Unsupported:
        return Unsupported(detail, self.line())

    def space(self, newlines: bool = False) -> None:
        while self.at < len(self.text):
            char = self.text[self.at]
            if char in " \t" or (char in "\r\n" and newlines) or (char == "\r" and self.peek(1) == "\n"):
                self.at += 1
            elif char == "#":
                end = self.text.find("\n", self.at)
                self.at = len(self.text) if end == -1 else end
            elif char == "`":
                raise self.fail("a backtick line continuation")
            else:
                return

    def expect(self, text: str) -> None:
        if not self.starts(text):
            raise self.fail(f"expected {text!r} at {self.text[self.at : self.at + 24]!r}")
        self.at += len(text)

    def word(self) -> str:
        found = _NAME.match(self.text, self.at)
        return found[0] if found else ""

    def at_end(self) -> bool:
        return self.peek() in _ENDS

    # -- statements

    def block(self, end: str) -> tuple[Any, ...]:
        statements: list[Any] = []
        while True:
            self.space(newlines=True)
            while self.peek() == ";":
                self.at += 1
                self.space(newlines=True)
            if (end and self.starts(end)) or (not end and self.at >= len(self.text)):
                return tuple(statements)
            if self.at >= len(self.text):
                raise self.fail(f"a missing {end!r}")
            statements.append(self.statement())
            self.space()
            if not (self.peek() in ("", "\n", "\r", ";") or (end and self.starts(end))):
                raise self.fail(f"unexpected {self.text[self.at : self.at + 24]!r}")

    def statement(self) -> Any:
        src = self.line()
        keyword = self.word().lower()
        if keyword in _KEYWORDS:
            self.at += len(keyword)
            return self.keyword(keyword, src)
        if self.peek() == "$":
            assignment = self.assignment(src)
            if assignment is not None:
                return assignment
        if self.peek() == "." and self.peek(1) == " ":
            before = self.at
            self.at += 1
            self.space()
            if self.peek() == "(":
                return _DotSource(src, self.primary())
            self.at = before
        return _Pipe(src, self.pipeline())

    def keyword(self, keyword: str, src: str) -> Any:
        if keyword == "function":
            return self.function(src)
        if keyword == "if":
            clauses = [(self.condition(), self.braced())]
            otherwise = None
            while True:
                before = self.at
                self.space(newlines=True)
                following = self.word().lower()
                if following == "elseif":
                    self.at += len(following)
                    clauses.append((self.condition(), self.braced()))
                    continue
                if following == "else":
                    self.at += len(following)
                    otherwise = self.braced()
                else:
                    self.at = before
                return _If(src, tuple(clauses), otherwise)
        if keyword == "while":
            return _While(src, self.condition(), self.braced())
        if keyword == "foreach":
            self.space()
            self.expect("(")
            self.space(newlines=True)
            variable = self.variable()
            self.space()
            if self.word().lower() != "in":
                raise self.fail("foreach without `in`")
            self.at += 2
            self.space(newlines=True)
            items = self.pipeline()
            self.space(newlines=True)
            self.expect(")")
            return _Foreach(src, variable, items, self.braced())
        if keyword == "try":
            body = self.braced()
            catch = final = None
            before = self.at
            self.space(newlines=True)
            if self.word().lower() == "catch":
                self.at += len("catch")
                self.space()
                if self.peek() == "[":
                    raise self.fail("a catch of a given exception type")
                catch = self.braced()
                before = self.at
                self.space(newlines=True)
            if self.word().lower() == "finally":
                self.at += len("finally")
                final = self.braced()
            else:
                self.at = before
            if catch is None and final is None:
                raise self.fail("try without catch or finally")
            return _Try(src, body, catch, final)
        if keyword in ("throw", "return", "exit"):
            self.space()
            return _Flow(src, keyword, None if self.at_end() else self.pipeline())
        raise self.fail(f"the keyword {keyword}")

    def function(self, src: str) -> _Function:
        self.space()
        name = self.word()
        if not name:
            raise self.fail("a function without a name")
        self.at += len(name)
        self.space()
        params = self.params() if self.peek() == "(" else ()
        self.space(newlines=True)
        self.expect("{")
        self.space(newlines=True)
        if self.word().lower() == "param":
            if params:
                raise self.fail("parameters given twice")
            self.at += len("param")
            self.space()
            params = self.params()
        body = self.block("}")
        self.expect("}")
        self.defined.add(name.lower())
        return _Function(src, name, params, body)

    def params(self) -> tuple[_Param, ...]:
        self.expect("(")
        found: list[_Param] = []
        while True:
            self.space(newlines=True)
            if self.peek() == ")":
                self.at += 1
                return tuple(found)
            kind = None
            if self.peek() == "[":
                kind = _type_key(self.type_name())
                if kind not in _CASTS:
                    raise self.fail(f"a parameter of type [{kind}]")
                self.space()
            variable = self.variable()
            self.space()
            if self.peek() == "=":
                raise self.fail("a parameter's default value")
            found.append(_Param(variable.name.lower(), kind))
            self.space(newlines=True)
            if self.peek() == ",":
                self.at += 1
            elif self.peek() != ")":
                raise self.fail(f"unexpected {self.text[self.at : self.at + 24]!r} in parameters")

    def condition(self) -> _Pipeline:
        self.space()
        self.expect("(")
        self.space(newlines=True)
        found = self.pipeline()
        self.space(newlines=True)
        self.expect(")")
        return found

    def braced(self) -> tuple[Any, ...]:
        self.space(newlines=True)
        self.expect("{")
        body = self.block("}")
        self.expect("}")
        return body

    def assignment(self, src: str) -> _Assign | None:
        before = self.at
        target = self.variable()
        self.space()
        for op in ("+=", "=", "++"):
            if self.starts(op):
                self.at += len(op)
                if op == "++":
                    return _Assign(src, target, op, None)
                self.space(newlines=True)
                return _Assign(src, target, op, self.pipeline())
        if self.peek() in "-*/%" and self.peek(1) == "=":
            raise self.fail(f"the assignment operator {self.peek()}=")
        self.at = before
        return None

    # -- pipelines and commands

    def pipeline(self) -> _Pipeline:
        self.space()
        if self.at_end():
            raise self.fail("a missing expression")
        if self.peek().isalpha():
            elements: list[Any] = [self.command()]
        elif self.peek() == "&" or (self.peek() == "." and self.peek(1) in " $"):
            raise self.fail("the call operator")
        else:
            elements = [self.expression()]
        while True:
            before = self.at
            self.space()
            if self.peek() == "|" and self.peek(1) != "|":
                self.at += 1
                self.space(newlines=True)
                if not self.peek().isalpha():
                    raise self.fail("an expression after | (only a command can take pipeline input)")
                elements.append(self.command())
            else:
                self.at = before
                return _Pipeline(tuple(elements))

    def command(self) -> _Command:
        name = self.word()
        self.at += len(name)
        line = self.line()
        args: list[Any] = []
        while True:
            self.space()
            char = self.peek()
            if char in _ENDS:
                break
            if char in "<>" or (char.isdigit() and self.peek(1) == ">"):
                raise self.fail("a redirection")
            if char == "-" and self.peek(1).isalpha():
                found = _WORD.match(self.text, self.at + 1)
                assert found is not None
                self.at += 1 + len(found[0])
                if self.peek() == ":":
                    self.at += 1
                    args.append(_ArgName(found[0], self.argument()))
                else:
                    args.append(_ArgName(found[0], None))
                continue
            args.append(self.argument())
        command = _Command(name, tuple(args))
        self.calls.append((command, line))
        return command

    def argument(self) -> Any:
        char = self.peek()
        if char == "[":
            raise self.fail("a type in a command's argument")
        if char == "$" or char in "(@{" + _SQ + _DQ:
            value = self.postfix(self.primary())
        else:
            number = _NUMBER.match(self.text, self.at)
            end = number.end() if number else self.at
            if number and (end >= len(self.text) or self.text[end] in " \t\r\n;|)}"):
                self.at = end
                value = _Const(_number(number[0]))
            else:
                bare = _BAREWORD.match(self.text, self.at)
                if bare is None:
                    raise self.fail(f"the argument {self.text[self.at : self.at + 24]!r}")
                self.at = bare.end()
                value = _Const(bare[0])
        if self.peek() == ",":
            raise self.fail("an array written as a command's argument")
        return value

    # -- expressions

    def expression(self, comma: bool = True) -> Any:
        return self.binary(0, comma)

    def binary(self, level: int, comma: bool) -> Any:
        left = self.operand(comma)
        while True:
            before = self.at
            self.space()
            op = self.operator()
            if op is None or _LEVELS[op.lower()] < level:
                self.at = before
                return left
            self.at += len(op)
            self.space(newlines=True)
            right = self.binary(_LEVELS[op.lower()] + 1, comma)
            left = _Binary(op.lower(), left, right)

    def operator(self) -> str | None:
        char = self.peek()
        if char == "-" and self.peek(1).isalpha():
            found = _WORD.match(self.text, self.at + 1)
            assert found is not None
            op = "-" + found[0]
            if op.lower() not in _LEVELS:
                raise self.fail(f"the operator {op}")
            return op
        if char and char in "+-*/%" and self.peek(1) != "=" and self.peek(1) != char:
            return char
        return None

    def operand(self, comma: bool) -> Any:
        first = self.unary()
        if not comma:
            return first
        items = [first]
        while True:
            before = self.at
            self.space()
            if self.peek() != ",":
                self.at = before
                return first if len(items) == 1 else _ArrayLit(tuple(items))
            self.at += 1
            self.space(newlines=True)
            items.append(self.unary())

    def unary(self) -> Any:
        self.space()
        if self.text[self.at : self.at + 4].lower() == "-not" and not self.peek(4).isalnum():
            self.at += 4
            return _Unary("-not", self.unary())
        if self.peek() == "!":
            self.at += 1
            return _Unary("-not", self.unary())
        if self.peek() == "-" and self.peek(1).isdigit():
            self.at += 1
            return _Unary("-", self.unary())
        if self.peek() == "[":
            name = self.type_name()
            key = _type_key(name)
            if self.starts("::"):
                if key not in _STATIC_TYPES:
                    raise self.fail(f"the type [{name}]")
                return self.postfix(_TypeRef(key))
            if key == "ordered":
                self.space()
                if not self.starts("@{"):
                    raise self.fail("[ordered] before something other than a hashtable")
                return self.postfix(self.hashtable(ordered=True))
            if key not in _CASTS:
                raise self.fail(f"a cast to [{name}]")
            self.space()
            return _Cast(key, self.unary())
        return self.postfix(self.primary())

    def type_name(self) -> str:
        self.expect("[")
        found = re.compile(r"[A-Za-z][A-Za-z0-9_.]*").match(self.text, self.at)
        if found is None or self.text[found.end() : found.end() + 1] != "]":
            raise self.fail(f"the type {self.text[self.at - 1 : self.at + 24]!r}")
        self.at = found.end() + 1
        return found[0]

    def postfix(self, target: Any) -> Any:
        while True:
            char = self.peek()
            if char == "." and (self.peek(1).isalpha() or self.peek(1) == "_"):
                self.at += 1
                name = self.name()
                if name.lower() not in MEMBER_NAMES:
                    raise self.fail(f"the member .{name}")
                target = _Member(target, name.lower(), self.call_args() if self.peek() == "(" else None)
            elif self.starts("::") and isinstance(target, _TypeRef):
                self.at += 2
                name = self.name()
                args = self.call_args() if self.peek() == "(" else None
                member = STATIC_MEMBERS.get((target.type, name.lower()))
                if member is None or (args is None) != (member.kind == "property"):
                    raise self.fail(f"[{target.type}]::{name}")
                target = _Static(target.type, name.lower(), args)
            elif char == "[":
                self.at += 1
                self.space(newlines=True)
                index = self.expression()
                self.space(newlines=True)
                self.expect("]")
                target = _Index(target, index)
            else:
                return target

    def name(self) -> str:
        found = _WORD.match(self.text, self.at)
        if found is None:
            raise self.fail("a member without a name")
        self.at = found.end()
        return found[0]

    def call_args(self) -> tuple[Any, ...]:
        self.expect("(")
        args: list[Any] = []
        self.space(newlines=True)
        if self.peek() == ")":
            self.at += 1
            return ()
        while True:
            self.space(newlines=True)
            args.append(self.expression(comma=False))
            self.space(newlines=True)
            if self.peek() == ")":
                self.at += 1
                return tuple(args)
            self.expect(",")

    def primary(self) -> Any:
        char = self.peek()
        if char == "$":
            return self.variable()
        if char and char in _SQ:
            return _Const(self.single_quoted())
        if char and char in _DQ:
            return self.double_quoted()
        if char.isdigit():
            found = _NUMBER.match(self.text, self.at)
            assert found is not None
            self.at = found.end()
            if self.peek().isalpha():
                raise self.fail("a number with a suffix")
            return _Const(_number(found[0]))
        if char == "(":
            self.at += 1
            self.space(newlines=True)
            inner = self.pipeline()
            self.space(newlines=True)
            self.expect(")")
            return _Paren(inner)
        if self.starts("@("):
            self.at += 2
            body = self.block(")")
            self.expect(")")
            return _SubArray(body)
        if self.starts("@{"):
            return self.hashtable(ordered=False)
        if char == "{":
            self.at += 1
            self.space(newlines=True)
            params: tuple[_Param, ...] = ()
            if self.word().lower() == "param":
                self.at += len("param")
                self.space()
                params = self.params()
            body = self.block("}")
            self.expect("}")
            return _BlockLit(params, body)
        raise self.fail(f"the expression {self.text[self.at : self.at + 24]!r}")

    def hashtable(self, *, ordered: bool) -> _HashLit:
        self.expect("@{")
        entries: list[tuple[str, _Pipeline]] = []
        while True:
            self.space(newlines=True)
            while self.peek() == ";":
                self.at += 1
                self.space(newlines=True)
            if self.peek() == "}":
                self.at += 1
                return _HashLit(tuple(entries), ordered)
            key = self.single_quoted() if self.peek() and self.peek() in _SQ else self.name()
            self.space()
            self.expect("=")
            self.space(newlines=True)
            entries.append((key, self.pipeline()))
            self.space()
            if self.peek() not in (";", "\n", "\r", "}"):
                raise self.fail(f"unexpected {self.text[self.at : self.at + 24]!r} in a hashtable")

    def variable(self) -> _Var:
        self.expect("$")
        if self.peek() in ("{", "(", "?", "$", "^"):
            raise self.fail(f"the variable ${self.peek()}")
        found = _VARIABLE.match(self.text, self.at)
        if found is None:
            raise self.fail("a variable without a name")
        scope = found[1].lower() if found[1] else None
        if scope not in (None, "script", "global", "local"):
            raise self.fail(f"the variable scope {found[1]}:")
        self.at = found.end()
        return _Var(scope, found[2].lower())

    def single_quoted(self) -> str:
        # Any of the five quote characters opens and closes it; two in a row stand for the second.
        self.at += 1
        value: list[str] = []
        while self.at < len(self.text):
            char = self.text[self.at]
            if char in _SQ:
                if self.peek(1) and self.peek(1) in _SQ:
                    value.append(self.peek(1))
                    self.at += 2
                    continue
                self.at += 1
                return "".join(value)
            value.append(char)
            self.at += 1
        raise self.fail("an unterminated string")

    def double_quoted(self) -> _Expandable:
        self.at += 1
        parts: list[str | _Var] = []
        text: list[str] = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "`": "`", "$": "$", '"': '"', "'": "'"}
        while True:
            if self.at >= len(self.text):
                raise self.fail("an unterminated string")
            char = self.text[self.at]
            if char in _DQ:
                if self.peek(1) and self.peek(1) in _DQ:
                    text.append(self.peek(1))
                    self.at += 2
                    continue
                self.at += 1
                break
            if char == "`":
                if self.peek(1) not in escapes:
                    raise self.fail(f"the escape `{self.peek(1)}")
                text.append(escapes[self.peek(1)])
                self.at += 2
                continue
            if char == "$" and (self.peek(1).isalpha() or self.peek(1) in "_{("):
                if text:
                    parts.append("".join(text))
                    text = []
                parts.append(self.variable())
                continue
            text.append(char)
            self.at += 1
        if text:
            parts.append("".join(text))
        return _Expandable(tuple(parts))


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _type_key(name: str) -> str:
    key = name.lower()
    return key.removeprefix("system.")


# -- values ----------------------------------------------------------------------------------------


class _Void:
    """What a void method or a [void] cast gives: nothing at all (not even $null) in the output."""


VOID = _Void()


class _Char(str):
    """A [char]: a one-character string that [int] reads as its code."""


class _Hash:
    """A hashtable ([ordered] or not): string keys, looked up without regard to case."""

    def __init__(self, *, ordered: bool) -> None:
        self.ordered = ordered
        self.items: dict[str, tuple[str, Any]] = {}

    def get(self, key: Any) -> Any:
        found = self.items.get(_key(key))
        return None if found is None else found[1]

    def set(self, key: Any, value: Any) -> None:
        self.items[_key(key)] = (str(key), value)

    def keys(self) -> list[str]:
        return [key for key, _ in self.items.values()]

    def insert(self, index: int, key: Any, value: Any) -> None:
        if not self.ordered:
            raise Unsupported("Insert on a hashtable that is not [ordered]")
        if _key(key) in self.items:
            raise _DotNetError("Item has already been added.")
        pairs = list(self.items.items())
        pairs.insert(index, (_key(key), (str(key), value)))
        self.items = dict(pairs)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise Unsupported(f"a hashtable key that is a {type(key).__name__}")
    return key.lower()


class _Object:
    """A .NET object a script holds: its properties and methods by lower-cased name."""

    type_name = "System.Object"

    def prop(self, name: str) -> Any:
        raise Unsupported(f"the property {self.type_name}.{name}")

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "tostring" and not args:
            return str(self)
        raise Unsupported(f"the method {self.type_name}.{name}()")

    def __str__(self) -> str:
        return self.type_name


class _DotNetError(Exception):
    """A .NET method threw: PowerShell reports it as `Exception calling "M" with "N" argument(s)`."""


class _PSError(Exception):
    """A PowerShell error that a try/catch catches. `statement_only`: one that ends only its statement
    when nothing catches it and $ErrorActionPreference is not Stop (a .NET exception, a failed
    conversion), as opposed to `throw` and errors turned terminating by Stop."""

    def __init__(self, message: str, *, statement_only: bool, record: _ErrorRecord | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.statement_only = statement_only
        self.record = record or _ErrorRecord(_Exception(message))


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Return(Exception):
    pass


class _Exception(_Object):
    type_name = "System.Management.Automation.RuntimeException"

    def __init__(self, message: str) -> None:
        self.message = message

    def prop(self, name: str) -> Any:
        if name == "message":
            return self.message
        return super().prop(name)

    def __str__(self) -> str:
        return self.message


class _ErrorRecord(_Object):
    type_name = "System.Management.Automation.ErrorRecord"

    def __init__(self, exception: _Exception) -> None:
        self.exception = exception

    def prop(self, name: str) -> Any:
        if name == "exception":
            return self.exception
        return super().prop(name)

    def __str__(self) -> str:
        return self.exception.message


def _true(value: Any) -> bool:
    """PowerShell's truth: $null, 0, '' and an empty array are false; an array of one is its item."""
    if value is None or value is VOID:
        return False
    if isinstance(value, list):
        return _true(value[0]) if len(value) == 1 else bool(value)
    if isinstance(value, bool | int | float | str):
        return bool(value)
    return True


def _text(value: Any) -> str:
    """A value as PowerShell turns it into a string."""
    if value is None or value is VOID:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, list):
        return " ".join(_text(item) for item in value)
    if isinstance(value, bytes):
        return " ".join(str(byte) for byte in value)
    if isinstance(value, _Hash):
        return (
            "System.Collections.Specialized.OrderedDictionary"
            if value.ordered
            else "System.Collections.Hashtable"
        )
    return str(value)


def _float_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")  # what .NET Framework prints for a double


def _items(value: Any) -> list[Any]:
    """A value as it goes down a pipeline: an array one item per element, nothing for void."""
    if value is VOID:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def _collapse(items: list[Any]) -> Any:
    """A pipeline's output as one value: $null, the one item, or an array."""
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def _to_number(value: Any) -> int | float:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, _Char):
        return ord(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            pass
    raise _PSError(
        f'Cannot convert value "{_text(value)}" to type "System.Int32". Error: "Input string was not in a'
        ' correct format."',
        statement_only=True,
    )


def _to_int(value: Any) -> int:
    number = _to_number(value)
    # .NET rounds a double to the even integer when it is halfway, as Python's round does.
    return number if isinstance(number, int) else round(number)


def _cast(kind: str, value: Any) -> Any:
    if kind == "void":
        return VOID
    if value is VOID:
        value = None
    if kind in ("int", "int32"):
        if isinstance(value, list):
            raise _PSError(
                'Cannot convert the "System.Object[]" value of type "System.Object[]" to type'
                ' "System.Int32".',
                statement_only=True,
            )
        return _to_int(value)
    if kind == "double":
        return float(_to_number(value))
    if kind == "string":
        return _text(value)
    if kind in ("bool", "boolean"):
        return _true(value)
    if kind == "char":
        if isinstance(value, int) and not isinstance(value, bool):
            return _Char(chr(value))
        if isinstance(value, str) and len(value) == 1:
            return _Char(value)
        raise _PSError(
            f'Cannot convert value "{_text(value)}" to type "System.Char". Error: "String must be exactly'
            ' one character long."',
            statement_only=True,
        )
    raise Unsupported(f"a cast to [{kind}]")


_CASTS = frozenset({"int", "int32", "double", "string", "bool", "boolean", "char", "void"})


class _NoConversion(Exception):
    pass


def _like(left: Any, right: Any) -> Any:
    """`right` converted to the type of `left`, as PowerShell's comparisons do."""
    if isinstance(left, bool):
        return _true(right)
    if isinstance(left, int | float) and not isinstance(left, bool):
        try:
            return _to_number(right)
        except _PSError as exc:
            raise _NoConversion from exc
    if isinstance(left, str):
        return _text(right)
    return right


def _compare(op: str, left: Any, right: Any) -> Any:
    if isinstance(left, list):  # an array on the left filters its items
        return [item for item in left if _compare(op, item, right)]
    if left is None:
        if op in ("-eq", "-ne"):
            return (right is None) == (op == "-eq")
        left = "" if isinstance(right, str) else 0
    try:
        other = _like(left, right)
    except _NoConversion:
        if op in ("-eq", "-ne"):
            return op == "-ne"
        raise _PSError(
            f'Could not compare "{_text(left)}" to "{_text(right)}".', statement_only=True
        ) from None
    if isinstance(left, str):
        left, other = left.lower(), other.lower()
    elif not isinstance(left, bool | int | float):
        if op in ("-eq", "-ne"):
            return (left is other or left == other) == (op == "-eq")
        raise Unsupported(f"ordering a {type(left).__name__}")
    results = {
        "-eq": left == other,
        "-ne": left != other,
        "-gt": left > other,
        "-ge": left >= other,
        "-lt": left < other,
        "-le": left <= other,
    }
    return results[op]


def _add(left: Any, right: Any) -> Any:
    if left is None:
        return right
    if isinstance(left, str):
        return left + _text(right)
    if isinstance(left, list):
        return left + (right if isinstance(right, list) else [right])
    if isinstance(left, bool | int | float):
        return _to_number(left) + _to_number(right)
    raise Unsupported(f"adding to a {type(left).__name__}")


def _arithmetic(op: str, left: Any, right: Any) -> int | float:
    a, b = _to_number(left), _to_number(right)
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise _PSError("Attempted to divide by zero.", statement_only=True)
    if op == "%":
        remainder = math.fmod(a, b)  # the sign of the dividend, as .NET's
        return int(remainder) if isinstance(a, int) and isinstance(b, int) else remainder
    quotient = a / b
    return int(quotient) if quotient.is_integer() and isinstance(a, int) and isinstance(b, int) else quotient


def _format(pattern: str, args: list[Any]) -> str:
    """.NET composite formatting: {0}, {1,-8}, {0:x4}, {{ and }}."""
    out: list[str] = []
    at = 0
    while at < len(pattern):
        char = pattern[at]
        if pattern.startswith(("{{", "}}"), at):
            out.append(char)
            at += 2
        elif char == "{":
            end = pattern.find("}", at)
            found = re.fullmatch(r"\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?(?::(.*))?", pattern[at + 1 : end], re.S)
            if end == -1 or found is None:
                raise _PSError(
                    "Error formatting a string: Input string was not in a correct format..",
                    statement_only=True,
                )
            index = int(found[1])
            if index >= len(args):
                raise _PSError(
                    "Error formatting a string: Index (zero based) must be greater than or equal to zero and"
                    " less than the size of the argument list..",
                    statement_only=True,
                )
            text = _format_one(args[index], found[3])
            width = int(found[2] or 0)
            out.append(text.rjust(width) if width > 0 else text.ljust(-width))
            at = end + 1
        elif char == "}":
            raise _PSError(
                "Error formatting a string: Input string was not in a correct format..", statement_only=True
            )
        else:
            out.append(char)
            at += 1
    return "".join(out)


def _format_one(value: Any, spec: str | None) -> str:
    if not spec:
        return _text(value)
    found = re.fullmatch(r"([xXdD])(\d*)", spec)
    if found is None or not isinstance(value, int) or isinstance(value, bool):
        raise Unsupported(f"the format {{0:{spec}}} of a {type(value).__name__}")
    width = int(found[2] or 0)
    kind = {"x": "x", "X": "X", "d": "d", "D": "d"}[found[1]]
    return format(value, f"0{width}{kind}")


def _dotnet_replacement(text: str) -> str:
    """A .NET regex replacement ($1, ${name}, $$) as Python's re.sub reads one."""
    out: list[str] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char == "$" and at + 1 < len(text):
            if text[at + 1] == "$":
                out.append("$")
                at += 2
                continue
            group = re.match(r"(\d+)|\{(\w+)\}|(&)", text[at + 1 :])
            if group:
                out.append(f"\\g<{group[1] or group[2] or 0}>")
                at += 1 + len(group[0])
                continue
        out.append("\\\\" if char == "\\" else char)
        at += 1
    return "".join(out)


def _replace(left: Any, right: Any) -> Any:
    if isinstance(left, list):
        return [_replace(item, right) for item in left]
    pattern, replacement = (
        (right[0], right[1]) if isinstance(right, list) and len(right) == 2 else (right, "")
    )
    if isinstance(right, list) and len(right) != 2:
        raise Unsupported("-replace with more than a pattern and a replacement")
    return re.sub(_text(pattern), _dotnet_replacement(_text(replacement)), _text(left), flags=re.IGNORECASE)


def _utf16(text: str) -> str:
    """`text` as .NET holds it: one character per UTF-16 code unit (a surrogate pair is two)."""
    units = array.array("H", text.encode("utf-16-le"))
    return "".join(chr(unit) for unit in units)


def _from_utf16(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# Windows PowerShell 5.1's ConvertTo-Json (JavaScriptSerializer) escapes these as well.
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_HTML = "<>'&"


def _json(value: Any, depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value) if math.isfinite(value) else f'"{_float_text(value)}"'
    if isinstance(value, str):
        return '"' + "".join(_json_char(char) for char in value) + '"'
    if depth < 0:
        raise Unsupported("ConvertTo-Json of something nested deeper than -Depth")
    if isinstance(value, list):
        return "[" + ",".join(_json(item, depth - 1) for item in value) + "]"
    if isinstance(value, _Hash):
        return (
            "{"
            + ",".join(f"{_json(key, 0)}:{_json(value.get(key), depth - 1)}" for key in value.keys())  # noqa: SIM118 (a _Hash, not a dict)
            + "}"
        )
    raise Unsupported(f"ConvertTo-Json of a {_text(value)}")


def _json_char(char: str) -> str:
    if char in _JSON_ESCAPES:
        return _JSON_ESCAPES[char]
    if ord(char) < 0x20 or char in _JSON_HTML:
        return f"\\u{ord(char):04x}"
    return char


def _dotnet_date(value: dt.datetime, pattern: str) -> str:
    """A .NET custom date format of the few specifiers the scripts use (yyyy MM dd HH mm ss)."""
    specifiers = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
    out: list[str] = []
    at = 0
    while at < len(pattern):
        if pattern[at] == "\\" and at + 1 < len(pattern):
            out.append(pattern[at + 1])
            at += 2
            continue
        for specifier, code in specifiers.items():
            if pattern.startswith(specifier, at):
                out.append(value.strftime(code))
                at += len(specifier)
                break
        else:
            if pattern[at].isalpha():
                raise Unsupported(f"the date format specifier {pattern[at]!r} in {pattern!r}")
            out.append(pattern[at])
            at += 1
    return "".join(out)


# -- the objects scripts hold ----------------------------------------------------------------------


class _Service(_Object):
    type_name = "System.ServiceProcess.ServiceController"

    def __init__(self, state: _Run, name: str) -> None:
        self.state = state
        self.name = name

    def prop(self, name: str) -> Any:
        if name == "status":
            return self.state.service_status(self.name)
        if name in ("name", "servicename", "displayname"):
            return self.name
        return super().prop(name)

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "start" and not args:
            if self.state.service_status(self.name) == "Running":
                raise _DotNetError("An instance of the service is already running.")
            if self.state.service_status(self.name) != "Stopped":
                raise _DotNetError(f"Cannot start service {self.name} on computer '.'.")
            self.state.change_service(self.name, "Running", wait=False)
            return VOID
        if name == "continue" and not args:
            if self.state.service_status(self.name) != "Paused":
                raise _DotNetError(f"Cannot resume {self.name} service on computer '.'.")
            self.state.change_service(self.name, "Running", wait=False)
            return VOID
        return super().call(name, args)


class _TimeSpan(_Object):
    type_name = "System.TimeSpan"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def prop(self, name: str) -> Any:
        if name == "totalseconds":
            return self.seconds
        if name == "totalmilliseconds":
            return self.seconds * 1000
        return super().prop(name)


class _Stopwatch(_Object):
    type_name = "System.Diagnostics.Stopwatch"

    def __init__(self, state: _Run) -> None:
        self.state = state
        self.started = state.clock

    def prop(self, name: str) -> Any:
        if name == "elapsed":
            return _TimeSpan(self.state.clock - self.started)
        return super().prop(name)


class _Process(_Object):
    type_name = "System.Diagnostics.Process"

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid

    def prop(self, name: str) -> Any:
        if name == "id":
            return self.pid
        if name in ("name", "processname"):
            return self.name
        return super().prop(name)


class _FileHash(_Object):
    type_name = "Microsoft.PowerShell.Commands.FileHashInfo"

    def __init__(self, algorithm: str, digest: str, path: str) -> None:
        self.algorithm, self.digest, self.path = algorithm, digest, path

    def prop(self, name: str) -> Any:
        if name == "hash":
            return self.digest
        if name == "algorithm":
            return self.algorithm
        if name == "path":
            return self.path
        return super().prop(name)


class _DateTime(_Object):
    type_name = "System.DateTime"

    def __init__(self, value: dt.datetime) -> None:
        self.value = value

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "tostring" and len(args) == 1:
            return _dotnet_date(self.value, _text(args[0]))
        if name == "tostring":
            raise Unsupported("DateTime.ToString() without a format (it depends on the culture)")
        return super().call(name, args)


class _FileStream(_Object):
    type_name = "System.IO.FileStream"

    def __init__(self, state: _Run, path: str, *, writable: bool) -> None:
        self.state, self.path, self.writable = state, path, writable

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "write" and len(args) == 3 and self.writable:
            data, offset, count = args
            if not isinstance(data, bytes):
                raise Unsupported("FileStream.Write of something other than a byte[]")
            self.state.append_file(self.path, data[_to_int(offset) : _to_int(offset) + _to_int(count)])
            return VOID
        if name == "dispose" and not args:
            return VOID
        return super().call(name, args)


class _Sha256(_Object):
    type_name = "System.Security.Cryptography.SHA256Managed"

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "computehash" and len(args) == 1:
            source = args[0]
            if isinstance(source, _FileStream):
                return hashlib.sha256(source.state.file(source.path) or b"").digest()
            if isinstance(source, bytes):
                return hashlib.sha256(source).digest()
            raise Unsupported(f"ComputeHash of a {_text(source)}")
        return super().call(name, args)


class _ConsoleError(_Object):
    type_name = "System.IO.TextWriter"

    def __init__(self, state: _Run) -> None:
        self.state = state

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "writeline" and len(args) == 1:
            self.state.stderr.append(_RawText(_text(args[0])))
            return VOID
        return super().call(name, args)


class _Utf8(_Object):
    type_name = "System.Text.UTF8Encoding"

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "getstring" and len(args) == 1 and isinstance(args[0], bytes):
            return args[0].decode("utf-8", errors="replace")
        return super().call(name, args)


class _Match(_Object):
    type_name = "System.Text.RegularExpressions.Match"

    def __init__(self, found: re.Match[str]) -> None:
        self.found = found

    def prop(self, name: str) -> Any:
        if name == "value":
            return self.found[0]
        if name == "index":
            return self.found.start()
        return super().prop(name)


@dataclass(frozen=True)
class _BlockValue:
    params: tuple[_Param, ...]
    body: tuple[Any, ...]


# Every instance member any object here has: a script naming another fails when it is parsed.
MEMBER_NAMES = frozenset(
    {
        "status",
        "name",
        "servicename",
        "displayname",
        "start",
        "continue",
        "tostring",
        "elapsed",
        "totalseconds",
        "totalmilliseconds",
        "exception",
        "message",
        "keys",
        "count",
        "length",
        "id",
        "processname",
        "hash",
        "algorithm",
        "path",
        "tolowerinvariant",
        "toupperinvariant",
        "insert",
        "write",
        "dispose",
        "computehash",
        "writeline",
        "value",
        "index",
        "getstring",
    }
)


# -- the interpreter -------------------------------------------------------------------------------


class _Scope:
    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.vars: dict[str, Any] = {}

    def find(self, name: str) -> _Scope | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope
            scope = scope.parent
        return None


Sink = Callable[[Any], None]
_NO_VALUE = object()  # a parameter named with no value after a colon (`-Force`, or `-Name` then its value)
_UNSET = object()


class _Run:
    """One script's run: its scopes, functions, output and clock, on one machine."""

    def __init__(self, machine: Machine, stdin: str = "") -> None:
        self.machine = machine
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.clock = 0.0
        self.failed = False  # a non-terminating error was written: exit code 1 at the end
        self.statements = 0
        self.try_depth = 0
        self.functions: dict[str, _Function] = {}
        self.pending: dict[str, tuple[str, float]] = {}  # service -> (status it reaches, when)
        self.top = _Scope(None)
        self.top.vars.update(
            erroractionpreference="Continue", progresspreference="Continue", pid=PID, lastexitcode=None
        )
        # `$input` enumerates stdin's lines, without their line ends.
        lines = stdin.replace("\r\n", "\n").split("\n")
        self.top.vars["input"] = lines[:-1] if lines[-1] == "" else lines

    def main(self, body: tuple[Any, ...]) -> int:
        try:
            self.block(body, self.top, self.emit)
        except _Exit as done:
            return done.code
        except _Return:
            pass
        except _PSError as error:
            self.stderr.append(error.message)
            return 1
        return 1 if self.failed else 0

    def output(self) -> str:
        return "".join(f"{line}\n" for line in self.stdout)

    def ran(self, code: int, unsupported: str | None) -> Ran:
        raw = [line for line in self.stderr if isinstance(line, _RawText)]
        records = [line for line in self.stderr if not isinstance(line, _RawText)]
        return Ran(
            self.output(),
            "\n".join(self.stderr),
            code,
            self.clock,
            unsupported,
            raw_stderr="".join(f"{line}\n" for line in raw),
            error_records="\n".join(records),
        )

    def emit(self, item: Any) -> None:
        """An item that reaches the end of the script's pipeline: a line of stdout."""
        if item is None:
            return
        if isinstance(item, _Hash) or (isinstance(item, _Object) and not isinstance(item, _ErrorRecord)):
            raise Unsupported(f"showing a {_text(item)} as PowerShell's formatter would")
        self.stdout.append(_text(item))

    # -- statements

    def block(self, body: tuple[Any, ...], scope: _Scope, sink: Sink) -> None:
        for statement in body:
            try:
                self.statement(statement, scope, sink)
            except _PSError as error:
                # Nothing catches it and Stop does not make it end the script: PowerShell writes
                # it and goes on with the next statement.
                if error.statement_only and self.try_depth == 0 and self.preference(scope) != "stop":
                    self.stderr.append(error.message)
                    self.failed = True
                    continue
                raise
            except Unsupported as exc:
                if not exc.statement:
                    exc.statement = statement.src
                raise

    def statement(self, node: Any, scope: _Scope, sink: Sink) -> None:
        self.statements += 1
        if self.statements > MAX_STATEMENTS:
            raise Unsupported(f"more than {MAX_STATEMENTS} statements (a loop that does not end?)")
        if isinstance(node, _Pipe):
            for item in self.pipeline(node.pipeline, scope):
                sink(item)
        elif isinstance(node, _Assign):
            if node.op == "++":
                value = _add(self.get(node.target, scope), 1)
            else:
                assert node.value is not None
                value = self.value(node.value, scope)
                if node.op == "+=":
                    value = _add(self.get(node.target, scope), value)
            self.set(node.target, value, scope)
        elif isinstance(node, _Function):
            self.functions[node.name.lower()] = node
        elif isinstance(node, _If):
            for condition, body in node.clauses:
                if _true(self.value(condition, scope)):
                    self.block(body, scope, sink)
                    return
            if node.otherwise is not None:
                self.block(node.otherwise, scope, sink)
        elif isinstance(node, _While):
            while _true(self.value(node.condition, scope)):
                self.statements += 1
                if self.statements > MAX_STATEMENTS:
                    raise Unsupported(f"more than {MAX_STATEMENTS} statements (a loop that does not end?)")
                self.block(node.body, scope, sink)
        elif isinstance(node, _Foreach):
            items = self.value(node.items, scope)
            for item in [] if items is None else _items(items):
                self.set(node.variable, item, scope)
                self.block(node.body, scope, sink)
        elif isinstance(node, _Try):
            self.try_(node, scope, sink)
        elif isinstance(node, _Flow):
            self.flow(node, scope, sink)
        elif isinstance(node, _DotSource):
            block = self.eval(node.block, scope)
            if not isinstance(block, _BlockValue) or block.params:
                raise Unsupported("dot-sourcing something other than a script block without parameters")
            self.block(block.body, scope, sink)  # in this scope: what it defines stays defined
        else:
            raise Unsupported(f"the statement {type(node).__name__}")

    def try_(self, node: _Try, scope: _Scope, sink: Sink) -> None:
        try:
            self.try_depth += 1
            try:
                self.block(node.body, scope, sink)
            finally:
                self.try_depth -= 1
        except _PSError as error:
            if node.catch is None:
                raise
            scope.vars["_"] = error.record
            self.block(node.catch, scope, sink)
        finally:
            if node.final is not None:
                self.block(node.final, scope, sink)

    def flow(self, node: _Flow, scope: _Scope, sink: Sink) -> None:
        value = None if node.value is None else self.value(node.value, scope)
        if node.keyword == "throw":
            if isinstance(value, _ErrorRecord):
                raise _PSError(value.exception.message, statement_only=False, record=value)
            message = _text(value) if value is not None else "ScriptHalted"
            raise _PSError(message, statement_only=False)
        if node.keyword == "return":
            for item in _items(value) if node.value is not None else []:
                sink(item)
            raise _Return
        raise _Exit(_to_int(value) if value is not None else 0)

    # -- variables

    def get(self, variable: _Var, scope: _Scope) -> Any:
        if variable.scope is None and variable.name in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[variable.name]
        if variable.scope in ("script", "global"):
            return self.top.vars.get(variable.name)
        found = scope.find(variable.name)
        return None if found is None else found.vars[variable.name]

    def set(self, variable: _Var, value: Any, scope: _Scope) -> None:
        if variable.name in ("true", "false", "null"):
            raise _PSError(
                f"Cannot overwrite variable {variable.name} because it is read-only or constant.",
                statement_only=True,
            )
        target = self.top if variable.scope in ("script", "global") else scope
        target.vars[variable.name] = value

    def preference(self, scope: _Scope) -> str:
        return _text(self.get(_Var(None, "erroractionpreference"), scope)).lower()

    # -- pipelines

    def pipeline(self, pipeline: _Pipeline, scope: _Scope) -> list[Any]:
        first, *rest = pipeline.elements
        if isinstance(first, _Command):
            items = self.command(first, [], scope)
        else:
            items = _items(self.eval(first, scope))
        for command in rest:
            items = self.command(command, items, scope)
        return items

    def value(self, pipeline: _Pipeline, scope: _Scope) -> Any:
        """A pipeline as the value of an assignment or of ( ): an expression's value as it is (an
        array stays one), a command's output collapsed."""
        if len(pipeline.elements) == 1 and not isinstance(pipeline.elements[0], _Command):
            found = self.eval(pipeline.elements[0], scope)
            return None if found is VOID else found
        return _collapse(self.pipeline(pipeline, scope))

    def command(self, command: _Command, given: list[Any], scope: _Scope) -> list[Any]:
        name = command.name.lower()
        function = self.functions.get(name)
        if function is not None:
            if given:
                raise Unsupported(f"pipeline input to the function {command.name}")
            return self.call(
                function.params, function.body, self.arguments(command, scope), scope, command.name
            )
        spec = COMMANDS.get(name)
        if spec is None:  # a function of the script, not defined yet at this point
            raise _PSError(
                f"The term '{command.name}' is not recognized as the name of a cmdlet, function, script"
                " file, or operable program.",
                statement_only=True,
            )
        return spec.invoke(self, self.arguments(command, scope), given, scope)

    def arguments(self, command: _Command, scope: _Scope) -> list[tuple[str | None, Any]]:
        """The arguments, evaluated: (parameter name, value); a name with no value yet is followed by
        its value as an unnamed argument (binding decides, knowing which parameters are switches)."""
        found: list[tuple[str | None, Any]] = []
        for arg in command.args:
            if isinstance(arg, _ArgName):
                found.append(
                    (arg.name.lower(), _NO_VALUE if arg.value is None else self.eval(arg.value, scope))
                )
            else:
                value = self.eval(arg, scope)
                found.append((None, None if value is VOID else value))
        return found

    def call(
        self,
        params: tuple[_Param, ...],
        body: tuple[Any, ...],
        arguments: list[tuple[str | None, Any]],
        scope: _Scope,
        name: str,
        dollar_under: Any = _UNSET,
    ) -> list[Any]:
        """Run a function or script block in a new scope below the caller's: its output."""
        names = [param.name for param in params]
        bound: dict[str, Any] = {}
        unnamed: list[Any] = []
        pending: str | None = None
        for key, value in arguments:
            if pending is not None:
                bound[pending] = value
                pending = None
            elif key is None:
                unnamed.append(value)
            elif key not in names:
                raise Unsupported(f"the parameter -{key} of {name}")
            elif value is _NO_VALUE:
                pending = key
            else:
                bound[key] = value
        free = [n for n in names if n not in bound]
        if len(unnamed) > len(free):
            raise Unsupported(f"more arguments than {name} has parameters ($args)")
        bound.update(zip(free, unnamed, strict=False))
        child = _Scope(scope)
        if dollar_under is not _UNSET:
            child.vars["_"] = dollar_under
        for param in params:
            value = bound.get(param.name)
            child.vars[param.name] = _cast(param.type, value) if param.type else value
        items: list[Any] = []
        with contextlib.suppress(_Return):
            self.block(body, child, items.append)
        return items

    def invoke(
        self, block: _BlockValue, args: list[Any], scope: _Scope, dollar_under: Any = _UNSET
    ) -> list[Any]:
        return self.call(
            block.params, block.body, [(None, arg) for arg in args], scope, "a script block", dollar_under
        )

    # -- expressions

    def eval(self, node: Any, scope: _Scope) -> Any:
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Var):
            return self.get(node, scope)
        if isinstance(node, _Expandable):
            return "".join(
                part if isinstance(part, str) else _text(self.get(part, scope)) for part in node.parts
            )
        if isinstance(node, _Paren):
            return self.value(node.pipeline, scope)
        if isinstance(node, _SubArray):
            items: list[Any] = []
            self.block(node.body, scope, items.append)
            return items
        if isinstance(node, _HashLit):
            table = _Hash(ordered=node.ordered)
            for key, value in node.entries:
                table.set(key, self.value(value, scope))
            return table
        if isinstance(node, _ArrayLit):
            return [self.eval(item, scope) for item in node.items]
        if isinstance(node, _Cast):
            return _cast(node.type, self.eval(node.operand, scope))
        if isinstance(node, _Unary):
            operand = self.eval(node.operand, scope)
            return (not _true(operand)) if node.op == "-not" else -_to_number(operand)
        if isinstance(node, _Binary):
            return self.binary(node, scope)
        if isinstance(node, _BlockLit):
            return _BlockValue(node.params, node.body)
        if isinstance(node, _Static):
            member = STATIC_MEMBERS[(node.type, node.member)]
            args = [self.arg(a, scope) for a in node.args or ()]
            return self.dotnet(node.member, args, lambda: member.impl(self, args, scope))
        if isinstance(node, _Member):
            target = self.eval(node.target, scope)
            if node.args is None:
                return self.property(target, node.member)
            args = [self.arg(a, scope) for a in node.args]
            return self.dotnet(node.member, args, lambda: self.method(target, node.member, args))
        if isinstance(node, _Index):
            return self.index(self.eval(node.target, scope), self.eval(node.index, scope))
        raise Unsupported(f"the expression {type(node).__name__}")

    def arg(self, node: Any, scope: _Scope) -> Any:
        value = self.eval(node, scope)
        return None if value is VOID else value

    def binary(self, node: _Binary, scope: _Scope) -> Any:
        left = self.eval(node.left, scope)
        if node.op == "-and":
            return _true(left) and _true(self.eval(node.right, scope))
        if node.op == "-or":
            return _true(left) or _true(self.eval(node.right, scope))
        right = self.eval(node.right, scope)
        if node.op in ("-eq", "-ne", "-gt", "-ge", "-lt", "-le"):
            return _compare(node.op, left, right)
        if node.op == "-replace":
            return _replace(left, right)
        if node.op == "-join":
            return _text(right).join(_text(item) for item in _items(left))
        if node.op == "-f":
            return _format(_text(left), right if isinstance(right, list) else [right])
        if node.op == "+":
            return _add(left, right)
        if node.op == "-bor":
            return _to_int(left) | _to_int(right)
        return _arithmetic(node.op, left, right)

    def dotnet(self, name: str, args: list[Any], call: Callable[[], Any]) -> Any:
        try:
            return call()
        except _DotNetError as exc:
            raise _PSError(
                f'Exception calling "{name}" with "{len(args)}" argument(s): "{exc}"', statement_only=True
            ) from None

    def property(self, target: Any, name: str) -> Any:
        if target is None:
            return None
        if isinstance(target, _Object):
            return target.prop(name)
        if isinstance(target, _Hash):
            if name == "keys":
                return target.keys()
            if name == "count":
                return len(target.items)
            raise Unsupported(f"the property .{name} of a hashtable (a key read as a property)")
        if isinstance(target, list | str | bytes) and name in ("count", "length"):
            return len(target)
        raise Unsupported(f"the property .{name} of a {type(target).__name__}")

    def method(self, target: Any, name: str, args: list[Any]) -> Any:
        if target is None:
            raise _PSError("You cannot call a method on a null-valued expression.", statement_only=True)
        if isinstance(target, _Object):
            return target.call(name, args)
        if isinstance(target, _Hash) and name == "insert" and len(args) == 3:
            target.insert(_to_int(args[0]), args[1], args[2])
            return VOID
        if isinstance(target, str) and not args:
            if name == "tostring":
                return str(target)
            if name == "tolowerinvariant":
                return target.lower()
            if name == "toupperinvariant":
                return target.upper()
        if isinstance(target, bool | int | float) and name == "tostring" and not args:
            return _text(target)
        raise Unsupported(f"the method .{name}() of a {type(target).__name__}")

    def index(self, target: Any, index: Any) -> Any:
        if target is None:
            raise _PSError("Cannot index into a null array.", statement_only=True)
        if isinstance(target, _Hash):
            return target.get(index)
        if isinstance(target, list | str | bytes):
            at = _to_int(index)
            if not -len(target) <= at < len(target):
                return None
            found = target[at]
            return _Char(found) if isinstance(found, str) else found
        raise Unsupported(f"indexing a {type(target).__name__}")

    # -- the machine

    def cmdlet_error(self, cmdlet: str, message: str, options: dict[str, Any], scope: _Scope) -> None:
        """A non-terminating error of a cmdlet, handled as -ErrorAction (else the preference) says."""
        action = _text(options.get("erroraction") or self.preference(scope)).lower()
        if action in ("silentlycontinue", "ignore"):
            return
        if action == "stop":
            raise _PSError(message, statement_only=False)
        if action != "continue":
            raise Unsupported(f"-ErrorAction {action}")
        self.stderr.append(message if cmdlet == "Write-Error" else f"{cmdlet} : {message}")
        self.failed = True

    def sleep(self, seconds: float) -> None:
        self.clock += max(0.0, seconds)
        if self.clock > MAX_CLOCK_SECONDS:
            raise Unsupported(f"sleeping past {MAX_CLOCK_SECONDS:g} s (a wait that never ends?)")

    def service_key(self, name: str) -> str | None:
        return next((key for key in self.machine.services if key.lower() == name.lower()), None)

    def service_status(self, key: str) -> str:
        self.settle(key)
        if key in self.pending:
            return "StopPending" if self.pending[key][0] == "Stopped" else "StartPending"
        return self.machine.services[key]

    def change_service(self, key: str, status: str, *, wait: bool) -> None:
        if self.machine.pending_seconds <= 0:
            self.machine.services[key] = status
            return
        self.pending[key] = (status, self.clock + self.machine.pending_seconds)
        if wait:
            self.sleep(self.pending[key][1] - self.clock)
            self.settle(key)

    def refuses_stop(self, key: str) -> bool:
        return key.lower() in {name.lower() for name in self.machine.refuse_stop}

    def settle(self, key: str | None = None) -> None:
        """Services whose change is due reach their status; at the end of the script, all of them
        (the script's time is over, the host's goes on)."""
        for name, (status, when) in list(self.pending.items()):
            if key is None or (name == key and self.clock >= when):
                self.machine.services[name] = status
                del self.pending[name]

    def file(self, path: str) -> bytes | None:
        return self.machine.files.get(path.lower())

    def is_directory(self, path: str) -> bool:
        folder = path.lower().rstrip("\\")
        if re.fullmatch(r"[a-z]:", folder):
            return True
        return folder in self.machine.directories or any(
            k.startswith(folder + "\\") for k in self.machine.files
        )

    def append_file(self, path: str, data: bytes) -> None:
        if self.machine.corrupt_writes and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        self.machine.chunks.append(len(data))
        self.machine.files[path.lower()] = self.machine.files.get(path.lower(), b"") + data


# -- cmdlets ---------------------------------------------------------------------------------------

_Impl = Callable[[_Run, dict[str, Any], list[Any], _Scope], list[Any]]


@dataclass(frozen=True)
class _Cmdlet:
    name: str
    impl: _Impl
    params: tuple[str, ...] = ()  # take a value
    switches: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    variadic: bool = False  # every unnamed argument goes to the first positional parameter
    pipeline: bool = False  # takes pipeline input

    def takes(self, parameter: str) -> bool:
        key = parameter.lower()
        return key == "erroraction" or key in (p.lower() for p in (*self.params, *self.switches))

    def invoke(
        self, state: _Run, arguments: list[tuple[str | None, Any]], given: list[Any], scope: _Scope
    ) -> list[Any]:
        if given and not self.pipeline:
            raise Unsupported(f"pipeline input to {self.name}")
        switches = {s.lower() for s in self.switches}
        bound: dict[str, Any] = {}
        unnamed: list[Any] = []
        pending: str | None = None
        for key, value in arguments:
            if pending is not None:
                bound[pending] = value
                pending = None
            elif key is None:
                unnamed.append(value)
            elif key in switches:
                bound[key] = True if value is _NO_VALUE else _true(value)
            elif value is _NO_VALUE:
                pending = key
            else:
                bound[key] = value
        if pending is not None:
            raise _PSError(
                f"{self.name} : Missing an argument for parameter '{pending}'.", statement_only=True
            )
        if self.variadic:
            first = self.positional[0].lower()
            bound[first] = ([bound[first]] if first in bound else []) + unnamed
        else:
            free = [p.lower() for p in self.positional if p.lower() not in bound]
            if len(unnamed) > len(free):
                raise Unsupported(f"{len(unnamed)} unnamed arguments to {self.name}")
            bound.update(zip(free, unnamed, strict=False))
        return self.impl(state, bound, given, scope)


def _names(value: Any) -> list[str]:
    return [_text(item) for item in _items(value) if item is not None]


def _get_service(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    found: list[Any] = []
    for name in _names(args.get("name")):
        key = state.service_key(name)
        if key is None:
            state.cmdlet_error(
                "Get-Service", f"Cannot find any service with service name '{name}'.", args, scope
            )
        else:
            found.append(_Service(state, key))
    return found


def _stop_service(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    for name in _names(args.get("name")):
        key = state.service_key(name)
        if key is None:
            state.cmdlet_error(
                "Stop-Service", f"Cannot find any service with service name '{name}'.", args, scope
            )
        elif state.refuses_stop(key) and state.service_status(key) != "Stopped":
            # What Windows says of a service that does not accept the stop control.
            state.cmdlet_error(
                "Stop-Service",
                f"Service '{key} ({key})' cannot be stopped due to the following error: Cannot stop {key}"
                " service on computer '.'.",
                args,
                scope,
            )
        elif state.service_status(key) not in ("Stopped", "StopPending"):
            state.change_service(key, "Stopped", wait=not args.get("nowait"))
    return []


def _start_service(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    for name in _names(args.get("name")):
        key = state.service_key(name)
        if key is None:
            state.cmdlet_error(
                "Start-Service", f"Cannot find any service with service name '{name}'.", args, scope
            )
        elif state.service_status(key) not in ("Running", "StartPending"):
            state.change_service(key, "Running", wait=True)
    return []


def _write_output(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    found = list(given)
    for value in args.get("inputobject") or []:
        found.extend(_items(value))
    return found


def _write_error(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    state.cmdlet_error("Write-Error", _text(args.get("message")), args, scope)
    return []


def _start_sleep(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    seconds = _to_number(args.get("seconds")) + _to_number(args.get("milliseconds")) / 1000
    state.sleep(float(seconds))
    return []


def _convert_to_json(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    if not args.get("compress"):
        raise Unsupported("ConvertTo-Json without -Compress (Windows PowerShell 5.1 indents it its own way)")
    depth = _to_int(args["depth"]) if "depth" in args else 2
    return [_json(args.get("inputobject"), depth)]


def _get_process(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    found: list[Any] = []
    for name in _names(args.get("name")):
        pids = next((p for n, p in state.machine.processes.items() if n.lower() == name.lower()), None)
        if not pids:
            state.cmdlet_error(
                "Get-Process",
                f'Cannot find a process with the name "{name}". Verify the process name and call the cmdlet'
                " again.",
                args,
                scope,
            )
        else:
            found.extend(_Process(name, pid) for pid in pids)
    return found


def _select_object(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    if "first" not in args:
        raise Unsupported("Select-Object without -First")
    return given[: _to_int(args["first"])]


def _foreach_object(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    block = args.get("process")
    if not isinstance(block, _BlockValue):
        raise Unsupported("ForEach-Object without a script block")
    found: list[Any] = []
    for item in given:
        found.extend(state.invoke(block, [], scope, dollar_under=item))
    return found


def _literal_path(cmdlet: str, args: dict[str, Any]) -> str:
    path = args.get("literalpath")
    if not isinstance(path, str) or not path:
        raise _PSError(
            f"{cmdlet} : Cannot bind argument to parameter 'LiteralPath' because it is an empty string.",
            statement_only=True,
        )
    return path


def _test_path(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    path = _literal_path("Test-Path", args)
    kind = _text(args.get("pathtype") or "Any").lower()
    leaf, folder = state.file(path) is not None, state.is_directory(path)
    if kind not in ("leaf", "container", "any"):
        raise Unsupported(f"Test-Path -PathType {kind}")
    return [{"leaf": leaf, "container": folder, "any": leaf or folder}[kind]]


def _get_file_hash(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    path = _literal_path("Get-FileHash", args)
    algorithm = _text(args.get("algorithm") or "SHA256").upper()
    if algorithm not in ("SHA1", "SHA256", "SHA384", "SHA512", "MD5"):
        raise Unsupported(f"Get-FileHash -Algorithm {algorithm}")
    data = state.file(path)
    if data is None:
        state.cmdlet_error(
            "Get-FileHash", f"Cannot find path '{path}' because it does not exist.", args, scope
        )
        return []
    return [_FileHash(algorithm, hashlib.new(algorithm.lower(), data).hexdigest().upper(), path)]


def _copy_item(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    source = _literal_path("Copy-Item", args)
    destination = _text(args.get("destination"))
    data = state.file(source)
    if data is None:
        state.cmdlet_error(
            "Copy-Item", f"Cannot find path '{source}' because it does not exist.", args, scope
        )
    elif state.is_directory(destination):
        raise Unsupported("Copy-Item into a directory")
    elif not state.is_directory(str(PureWindowsPath(destination).parent)):
        state.cmdlet_error("Copy-Item", f"Could not find a part of the path '{destination}'.", args, scope)
    else:
        state.machine.files[destination.lower()] = data
    return []


def _remove_item(state: _Run, args: dict[str, Any], given: list[Any], scope: _Scope) -> list[Any]:
    path = _literal_path("Remove-Item", args)
    if state.file(path) is None:
        if state.is_directory(path):
            raise Unsupported("Remove-Item of a directory")
        state.cmdlet_error(
            "Remove-Item", f"Cannot find path '{path}' because it does not exist.", args, scope
        )
    else:
        del state.machine.files[path.lower()]
    return []


COMMANDS: dict[str, _Cmdlet] = {
    spec.name.lower(): spec
    for spec in (
        _Cmdlet("Get-Service", _get_service, params=("Name",), positional=("Name",)),
        _Cmdlet(
            "Stop-Service",
            _stop_service,
            params=("Name",),
            switches=("NoWait", "Force"),
            positional=("Name",),
        ),
        _Cmdlet("Start-Service", _start_service, params=("Name",), positional=("Name",)),
        _Cmdlet(
            "Write-Output",
            _write_output,
            params=("InputObject",),
            positional=("InputObject",),
            variadic=True,
            pipeline=True,
        ),
        _Cmdlet("Write-Error", _write_error, params=("Message",), positional=("Message",)),
        _Cmdlet("Start-Sleep", _start_sleep, params=("Seconds", "Milliseconds"), positional=("Seconds",)),
        _Cmdlet("ConvertTo-Json", _convert_to_json, params=("InputObject", "Depth"), switches=("Compress",)),
        _Cmdlet("Get-Process", _get_process, params=("Name",), positional=("Name",)),
        _Cmdlet("Select-Object", _select_object, params=("First",), pipeline=True),
        _Cmdlet(
            "ForEach-Object", _foreach_object, params=("Process",), positional=("Process",), pipeline=True
        ),
        _Cmdlet("Test-Path", _test_path, params=("LiteralPath", "PathType")),
        _Cmdlet("Get-FileHash", _get_file_hash, params=("LiteralPath", "Algorithm")),
        _Cmdlet("Copy-Item", _copy_item, params=("LiteralPath", "Destination"), switches=("Force",)),
        _Cmdlet("Remove-Item", _remove_item, params=("LiteralPath",), switches=("Force",)),
    )
}


# -- .NET static members ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StaticMember:
    kind: str  # method | property
    impl: Callable[[_Run, list[Any], _Scope], Any]


def _arity(count: int, args: list[Any], what: str) -> None:
    if len(args) != count:
        raise Unsupported(f"{what} with {len(args)} arguments")


def _regex_replace(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(3, args, "[regex]::Replace")
    text, pattern, replacement = _utf16(_text(args[0])), _text(args[1]), args[2]
    if isinstance(replacement, _BlockValue):
        block = replacement

        def evaluate(found: re.Match[str]) -> str:
            return _text(_collapse(state.invoke(block, [_Match(found)], scope)))

        return _from_utf16(re.sub(pattern, evaluate, text))
    return _from_utf16(re.sub(pattern, _dotnet_replacement(_text(replacement)), text))


def _from_base64(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(1, args, "[Convert]::FromBase64String")
    try:
        return base64.b64decode(_text(args[0]), validate=True)
    except binascii.Error:
        raise _DotNetError(
            "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two"
            " padding characters, or an illegal character among the padding characters."
        ) from None


def _script_block(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(1, args, "[ScriptBlock]::Create")
    # Parsed whole when created, as PowerShell does: what the interpreter lacks fails here, loudly.
    return _BlockValue((), parse(_text(args[0])))


def _file_open(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(3, args, "[IO.File]::Open")
    path, mode, access = _text(args[0]), _text(args[1]).lower(), _text(args[2]).lower()
    if mode not in ("create", "append") or access != "write":
        raise Unsupported(f"[IO.File]::Open mode {mode}, access {access}")
    if mode == "create" or state.file(path) is None:
        state.machine.files[path.lower()] = b""  # a write makes its folder: tests need not declare them
    return _FileStream(state, path, writable=True)


def _file_open_read(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(1, args, "[IO.File]::OpenRead")
    path = _text(args[0])
    if state.file(path) is None:
        raise _DotNetError(f"Could not find file '{path}'.")
    return _FileStream(state, path, writable=False)


def _file_copy(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(3, args, "[IO.File]::Copy")
    source, destination, overwrite = _text(args[0]), _text(args[1]), _true(args[2])
    data = state.file(source)
    if data is None:
        raise _DotNetError(f"Could not find file '{source}'.")
    if state.file(destination) is not None and not overwrite:
        raise _DotNetError(f"The file '{destination}' already exists.")
    state.machine.files[destination.lower()] = data
    return VOID


def _directory_name(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(1, args, "[IO.Path]::GetDirectoryName")
    path = PureWindowsPath(_text(args[0]))
    return None if path.parent == path else str(path.parent)


def _bit_converter(state: _Run, args: list[Any], scope: _Scope) -> Any:
    _arity(1, args, "[BitConverter]::ToString")
    if not isinstance(args[0], bytes):
        raise Unsupported("[BitConverter]::ToString of something other than a byte[]")
    return "-".join(f"{byte:02X}" for byte in args[0])


def _math(pick: Callable[..., Any]) -> Callable[[_Run, list[Any], _Scope], Any]:
    def impl(state: _Run, args: list[Any], scope: _Scope) -> Any:
        _arity(2, args, "[Math]")
        return pick(_to_number(args[0]), _to_number(args[1]))

    return impl


STATIC_MEMBERS: dict[tuple[str, str], _StaticMember] = {
    ("diagnostics.stopwatch", "startnew"): _StaticMember("method", lambda s, a, c: _Stopwatch(s)),
    ("regex", "replace"): _StaticMember("method", _regex_replace),
    ("text.regularexpressions.regex", "replace"): _StaticMember("method", _regex_replace),
    ("math", "max"): _StaticMember("method", _math(max)),
    ("math", "min"): _StaticMember("method", _math(min)),
    ("convert", "frombase64string"): _StaticMember("method", _from_base64),
    ("scriptblock", "create"): _StaticMember("method", _script_block),
    ("text.encoding", "utf8"): _StaticMember("property", lambda s, a, c: _Utf8()),
    ("io.file", "open"): _StaticMember("method", _file_open),
    ("io.file", "openread"): _StaticMember("method", _file_open_read),
    ("io.file", "copy"): _StaticMember("method", _file_copy),
    ("io.path", "getdirectoryname"): _StaticMember("method", _directory_name),
    ("bitconverter", "tostring"): _StaticMember("method", _bit_converter),
    ("security.cryptography.sha256", "create"): _StaticMember("method", lambda s, a, c: _Sha256()),
    ("console", "error"): _StaticMember("property", lambda s, a, c: _ConsoleError(s)),
    ("datetime", "utcnow"): _StaticMember("property", lambda s, a, c: _DateTime(dt.datetime.now(dt.UTC))),
}
_STATIC_TYPES = frozenset(type_ for type_, _ in STATIC_MEMBERS)

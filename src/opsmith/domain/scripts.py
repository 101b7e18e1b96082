"""The values that go into fleet scripts, how they are quoted, the `Script` itself and what it
prints back.

A fleet script is text opsmith sends to a host: bash over SSH, PowerShell over WinRM. Every value
in it comes from a request, a plan or an inventory, so every value is first validated by a strict
rule here (a service name is a service name, a path is absolute and normalised, a URL is http(s))
and then quoted for its shell (`sh_quote`, `ps_quote`). The templates (`scripts_linux`,
`scripts_windows`) put values only into an assignment block at the top of a script, each quoted;
the body after it is constant text that reads the variables, so no value is ever parsed as code.

Each script ends by printing one line `OPSMITH-RESULT {json}` (`parse_result` reads it) and exits
with one of `ScriptExit`'s codes.
"""

from __future__ import annotations

import base64
import json
import ntpath
import re
from collections.abc import Sequence
from enum import IntEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import ScriptInputError
from opsmith.domain.hosts import OsFamily

__all__ = [
    "LINUX_SERVICE_PATTERN",
    "PACKAGE_PATTERN",
    "PROCESS_PATTERN",
    "RESULT_MARKER",
    "SHA256_PATTERN",
    "VERSION_PATTERN",
    "WINDOWS_SERVICE_PATTERN",
    "Script",
    "ScriptExit",
    "Shell",
    "absolute_path",
    "command_argv",
    "file_mode",
    "flag",
    "health_url",
    "package_name",
    "package_version",
    "parse_result",
    "process_name",
    "ps_quote",
    "result_base",
    "seconds",
    "service_name",
    "sh_quote",
    "sha256_hex",
]

Shell = Literal["bash", "powershell"]

RESULT_MARKER = "OPSMITH-RESULT "


class ScriptExit(IntEnum):
    """The exit codes of every fleet script, on both shells."""

    OK = 0  # done, or nothing to do
    FAILED = 1  # the action was tried and did not work (a command's own code is in the result)
    UNSUPPORTED = 2  # the host lacks what the script needs (package manager, curl, sudo rights)
    TIMED_OUT = 3  # the wanted state was not reached within the timeout
    NOT_FOUND = 4  # the service, program, file or directory named does not exist
    CHECKSUM = 5  # a file's SHA-256 is not the expected one: the target was not replaced


class Script(BaseModel):
    """One script ready to send to a host, and what running it means.

    `idempotent`: running it again after it (maybe) ran gives the same end state, so a retry after
    a lost connection is safe. `changes`: it may change the host (a check does not).
    `max_seconds`: how long it can take by its own bounds; an adapter's timeout should be above it.
    """

    model_config = ConfigDict(frozen=True)

    shell: Shell
    operation: str
    text: str
    idempotent: bool
    changes: bool
    max_seconds: int = Field(ge=1)

    def encoded(self) -> str:
        """The script as `powershell -NoProfile -NonInteractive -EncodedCommand` takes it (base64 of
        UTF-16LE), which is how WinRM runs it: no quoting of the text by any other shell."""
        if self.shell != "powershell":
            raise ScriptInputError(
                f"the {self.operation} script is {self.shell}, and only PowerShell takes an encoded command",
                hint="send a bash script as text (for example on the stdin of `bash -s`)",
            )
        return base64.b64encode(self.text.encode("utf-16-le")).decode("ascii")


# -- quoting ---------------------------------------------------------------------------------------

# PowerShell ends a single-quoted string at any of these, not only at the ASCII apostrophe.
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def sh_quote(text: str) -> str:
    """`text` as one POSIX shell word, always single-quoted (a `'` becomes `'"'"'`), so that
    nothing in it (`$`, backquotes, `;`, newlines) is interpreted by the shell."""
    if "\0" in text:
        raise ScriptInputError(
            "a value for a bash script contains a NUL character",
            hint="no shell argument can hold NUL: remove it",
        )
    return "'" + text.replace("'", "'\"'\"'") + "'"


def ps_quote(text: str) -> str:
    """`text` as one PowerShell single-quoted string: each of the five quote characters PowerShell
    accepts (' ‘ ’ ‚ ‛) is doubled, which is how PowerShell itself escapes them."""
    if "\0" in text:
        raise ScriptInputError(
            "a value for a PowerShell script contains a NUL character",
            hint="remove the NUL character from the value",
        )
    return "'" + "".join(c + c if c in _PS_QUOTES else c for c in text) + "'"


# -- validation ------------------------------------------------------------------------------------


class _NameRule:
    """A name: one character of `first`, then up to `limit - 1` of `rest` (regex classes)."""

    def __init__(self, first: str, rest: str, limit: int) -> None:
        self.first, self.rest, self.limit = first, rest, limit
        self.pattern = f"^{first}{rest}{{0,{limit - 1}}}$"

    def why_not(self, text: str) -> str | None:
        """None if `text` is such a name, else what is wrong with it, in words."""
        if re.fullmatch(self.pattern, text):
            return None
        if not text:
            return "it is empty"
        if len(text) > self.limit:
            return f"it is longer than {self.limit} characters"
        if not re.fullmatch(self.first, text[0]):
            return f"it starts with {text[0]!r}, not a letter or digit"
        index, char = next((i, c) for i, c in enumerate(text) if not re.fullmatch(self.rest, c))
        return f"it contains {char!r} at position {index}"


_LINUX_SERVICE = _NameRule("[A-Za-z0-9]", "[A-Za-z0-9_.@:-]", 128)
# `$` is allowed: named SQL Server instances run as `MSSQL$NAME`; it is literal in single quotes.
_WINDOWS_SERVICE = _NameRule("[A-Za-z0-9]", "[A-Za-z0-9_.@$-]", 256)
_PROCESS = _NameRule("[A-Za-z0-9]", "[A-Za-z0-9_.+-]", 128)
# The union of Debian's (lower case, + . -) and RPM's (also upper case and _) package name rules.
_PACKAGE = _NameRule("[A-Za-z0-9]", "[A-Za-z0-9_.+-]", 128)
# Debian `[epoch:]upstream[-revision]` and RPM `version[-release]` both fit in these characters.
_VERSION = _NameRule("[0-9A-Za-z]", "[0-9A-Za-z.+~:_-]", 128)

LINUX_SERVICE_PATTERN = _LINUX_SERVICE.pattern
WINDOWS_SERVICE_PATTERN = _WINDOWS_SERVICE.pattern
PROCESS_PATTERN = _PROCESS.pattern
PACKAGE_PATTERN = _PACKAGE.pattern
VERSION_PATTERN = _VERSION.pattern
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
_MODE_PATTERN = r"^[0-7]{3,4}$"
_MAX_PATH = 4096
_MAX_URL = 2048
_MAX_ARGS = 256
_MAX_ARGV_CHARS = 65536
# Characters an RFC 3986 URL never holds unescaped: a URL with them is malformed or a trick.
_URL_FORBIDDEN = set(' "<>\\^`{|}')
_WINDOWS_PATH_FORBIDDEN = set('<>"|?*')


def _shown(value: str) -> str:
    """A value quoted safely for a message: repr (so newlines, NULs and quotes are visible and
    harmless), cut when long."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + "…"


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ScriptInputError(
            f"{field} must be a string, not {type(value).__name__}", hint=f"give {field} as text"
        )
    return value


def _named(value: object, field: str, rule: _NameRule, kind: str, allowed: str) -> str:
    text = _string(value, field)
    why = rule.why_not(text)
    if why is None:
        return text
    raise ScriptInputError(f"{field} {_shown(text)} is not a valid {kind}: {why}", hint=allowed)


def service_name(value: object, *, os: OsFamily = "linux", field: str = "service") -> str:
    """A service name: a systemd unit name on Linux (`nginx`, `nginx.service`, `getty@tty1`), a
    Windows service name (`Spooler`, `MSSQL$SQLEXPRESS`)."""
    if os == "windows":
        return _named(
            value,
            field,
            _WINDOWS_SERVICE,
            "Windows service name",
            "use the service's name (not its display name): letters, digits and _ . @ $ -, up to 256"
            " characters, starting with a letter or digit, e.g. 'Spooler'",
        )
    return _named(
        value,
        field,
        _LINUX_SERVICE,
        "systemd service name",
        "use letters, digits and _ . @ : -, up to 128 characters, starting with a letter or digit,"
        " e.g. 'nginx' or 'nginx.service'",
    )


def process_name(value: object, *, field: str = "process") -> str:
    """A process's executable name, as `pgrep -x` and `Get-Process` see it (`nginx`,
    `stationcontroller.exe`)."""
    return _named(
        value,
        field,
        _PROCESS,
        "process name",
        "give the executable's file name without a path: letters, digits and _ . + -, e.g. 'nginx'"
        " or 'stationcontroller.exe'",
    )


def package_name(value: object, *, field: str = "package") -> str:
    """A Debian or RPM package name (`nginx`, `libssl3`, `python3.11`, `NetworkManager`)."""
    return _named(
        value,
        field,
        _PACKAGE,
        "package name",
        "use the package's name only: letters, digits and _ . + -, starting with a letter or digit;"
        " give a version in `version`",
    )


def package_version(value: object, *, field: str = "version") -> str:
    """A package version to pin: Debian `[epoch:]version[-revision]` or RPM `version[-release]`."""
    return _named(
        value,
        field,
        _VERSION,
        "package version",
        "use the version as the package manager shows it, e.g. '1.24.0-1' or '1:1.2.3-4ubuntu1'",
    )


def sha256_hex(value: object, *, field: str = "sha256") -> str:
    """A SHA-256 digest as 64 hex digits, lower-cased."""
    text = _string(value, field)
    if re.fullmatch(SHA256_PATTERN, text):
        return text.lower()
    raise ScriptInputError(
        f"{field} {_shown(text)} is not a SHA-256 digest",
        hint="give the 64 hexadecimal digits `sha256sum` or `Get-FileHash` print",
    )


def file_mode(value: object, *, field: str = "mode") -> str:
    """A file mode in octal (`644`, `0755`)."""
    text = _string(value, field)
    if re.fullmatch(_MODE_PATTERN, text):
        return text
    raise ScriptInputError(
        f"{field} {_shown(text)} is not an octal file mode", hint="give 3 or 4 octal digits, e.g. '0644'"
    )


def seconds(value: object, *, field: str, minimum: int = 1, maximum: int = 3600) -> int:
    """A whole number of seconds in [minimum, maximum]; decimal text is accepted ("30")."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
        number = int(value)
    if number is None or not minimum <= number <= maximum:
        shown = _shown(value) if isinstance(value, str) else repr(value)
        raise ScriptInputError(
            f"{field} {shown} is not a whole number of seconds from {minimum} to {maximum}",
            hint=f"give {field} as an integer between {minimum} and {maximum}",
        )
    return number


def flag(value: object, *, field: str) -> bool:
    """A yes/no parameter: a real boolean (text like "false" would read as true if coerced)."""
    if isinstance(value, bool):
        return value
    raise ScriptInputError(f"{field} must be true or false, not {value!r}", hint=f"give {field} as a boolean")


def _path_text(value: object, field: str) -> str:
    text = _string(value, field)
    for index, char in enumerate(text):
        if ord(char) < 32 or ord(char) == 127:
            raise ScriptInputError(
                f"{field} {_shown(text)} contains the control character {char!r} at position {index}",
                hint="paths may not hold NUL, newlines or other control characters",
            )
    if not text or len(text) > _MAX_PATH:
        raise ScriptInputError(
            f"{field} {_shown(text)} is {'empty' if not text else 'too long'}",
            hint=f"give an absolute path of at most {_MAX_PATH} characters",
        )
    return text


def _resolve(parts: Sequence[str], text: str, field: str) -> list[str]:
    """`..` and `.` resolved the way `normpath` does, refusing to climb above the root (which
    `normpath` would silently clamp: `/../etc` is not `/etc` to the person who wrote it)."""
    kept: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not kept:
                raise ScriptInputError(
                    f"{field} {_shown(text)} climbs above the root with '..'",
                    hint="give the path without '..' segments that leave the root",
                )
            kept.pop()
        else:
            kept.append(part)
    if not kept:
        raise ScriptInputError(
            f"{field} {_shown(text)} is the root directory itself",
            hint="name a file or directory below the root",
        )
    return kept


def absolute_path(value: object, *, os: OsFamily = "linux", field: str = "path") -> str:
    """An absolute path, normalised (`.`, `..` and repeated separators resolved, lexically: a `..`
    after a symlink is not followed). Linux: starts with `/`. Windows: `C:\\...` or a UNC
    `\\\\server\\share\\...`, with `/` read as `\\`."""
    text = _path_text(value, field)
    if os == "windows":
        return _windows_path(text, field)
    if not text.startswith("/"):
        raise ScriptInputError(
            f"{field} {_shown(text)} is not an absolute path",
            hint="start it with '/', e.g. '/etc/nginx/nginx.conf'",
        )
    return "/" + "/".join(_resolve(text.split("/"), text, field))


def _windows_path(text: str, field: str) -> str:
    slashed = text.replace("/", "\\")
    if slashed.startswith(("\\\\?\\", "\\\\.\\")):
        raise ScriptInputError(
            f"{field} {_shown(text)} is a device or long-path name",
            hint="give an ordinary path like 'C:\\app\\file.exe' or '\\\\server\\share\\file'",
        )
    bad = next((c for c in slashed if c in _WINDOWS_PATH_FORBIDDEN), None)
    drive, rest = ntpath.splitdrive(slashed)
    if bad is None and ":" in rest:
        bad = ":"
    if bad is not None:
        raise ScriptInputError(
            f"{field} {_shown(text)} contains {bad!r}, which Windows paths may not hold",
            hint="Windows paths may not contain < > \" | ? * or a : other than the drive's",
        )
    unc = drive.startswith("\\\\")
    if not (re.fullmatch(r"[A-Za-z]:", drive) or (unc and re.fullmatch(r"\\\\[^\\]+\\[^\\]+", drive))):
        raise ScriptInputError(
            f"{field} {_shown(text)} is not an absolute Windows path",
            hint="start it with a drive ('C:\\') or a share ('\\\\server\\share\\')",
        )
    if not rest.startswith("\\"):
        raise ScriptInputError(
            f"{field} {_shown(text)} is relative to the drive's current directory",
            hint=f"write it from the root: '{drive}\\...'",
        )
    parts = _resolve(rest.split("\\"), text, field)
    odd = next((p for p in parts if p.endswith((" ", ".")) and p not in ("..", ".")), None)
    if odd is not None:
        raise ScriptInputError(
            f"{field} {_shown(text)} has a name ending in a space or a dot ({odd!r}), which Windows drops",
            hint="give the name as Windows stores it, without the trailing space or dot",
        )
    return (drive.upper() if not unc else drive) + "\\" + "\\".join(parts)


def health_url(value: object, *, field: str = "url") -> str:
    """An http(s) URL for a health check, with a host and without credentials."""
    text = _string(value, field)
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127 or c in _URL_FORBIDDEN), None)
    if bad is not None or not text or len(text) > _MAX_URL:
        why = f"it contains {bad!r}" if bad is not None else ("it is empty" if not text else "it is too long")
        raise ScriptInputError(
            f"{field} {_shown(text)} is not a usable URL: {why}",
            hint="give an http:// or https:// URL with spaces and quotes percent-encoded",
        )
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ScriptInputError(
            f"{field} {_shown(text)} has an invalid port", hint="give a port from 1 to 65535"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ScriptInputError(
            f"{field} {_shown(text)} is not an http or https URL with a host",
            hint="health checks take URLs like 'http://127.0.0.1:8080/health'",
        )
    if "@" in parts.netloc:
        raise ScriptInputError(
            f"{field} holds credentials (user@ or user:password@)",
            hint="health checks take no credentials: a password never goes into a script",
        )
    return text


def command_argv(value: object, *, os: OsFamily = "linux", field: str = "argv") -> tuple[str, ...]:
    """A command as its argument vector: a program (a bare name, or an absolute path) and its
    arguments, each passed as one word whatever it holds. The arguments are not shown in errors,
    as they may hold something private; their positions are."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ScriptInputError(
            f"{field} must be a non-empty list of strings",
            hint=f"give the command as a list, e.g. {field}=['systemctl', 'daemon-reload']",
        )
    if len(value) > _MAX_ARGS:
        raise ScriptInputError(f"{field} has {len(value)} words", hint=f"give at most {_MAX_ARGS}")
    words = []
    for index, word in enumerate(value):
        if not isinstance(word, str):
            raise ScriptInputError(
                f"{field}[{index}] must be a string, not {type(word).__name__}",
                hint="give every word as text",
            )
        if "\0" in word:
            raise ScriptInputError(f"{field}[{index}] contains a NUL character", hint="remove it")
        words.append(word)
    if sum(len(word) for word in words) > _MAX_ARGV_CHARS:
        raise ScriptInputError(f"{field} is too long", hint=f"keep it under {_MAX_ARGV_CHARS} characters")
    words[0] = _program(words[0], os, field)
    if os == "windows":
        _windows_arguments(words, field)
    return tuple(words)


def _program(word: str, os: OsFamily, field: str) -> str:
    if os == "windows" and re.fullmatch(r"[A-Za-z]:.*|\\\\.*|/.*", word):
        return absolute_path(word, os=os, field=f"{field}[0]")
    if os == "linux" and word.startswith("/"):
        return absolute_path(word, os=os, field=f"{field}[0]")
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}", word):
        return word
    raise ScriptInputError(
        f"{field}[0] {_shown(word)} is not a program name or an absolute path",
        hint="give the program as a bare name found on PATH ('systemctl') or an absolute path",
    )


def _windows_arguments(words: list[str], field: str) -> None:
    # Windows PowerShell 5.1 builds a native program's command line by wrapping an argument with
    # spaces in double quotes without escaping what is inside: these would be split or joined
    # wrongly by the program, so they are refused rather than passed garbled.
    for index, word in enumerate(words[1:], start=1):
        if '"' in word:
            problem = "contains a double quote"
        elif not word:
            problem = "is empty (Windows PowerShell drops empty arguments to programs)"
        elif word.endswith("\\") and any(c.isspace() for c in word):
            problem = "has spaces and ends in a backslash (it would escape the closing quote)"
        else:
            continue
        raise ScriptInputError(
            f"{field}[{index}] {problem}",
            hint="Windows PowerShell cannot pass such an argument to a program intact: rephrase it",
        )


# -- the result line -------------------------------------------------------------------------------


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The object of the last `OPSMITH-RESULT {json}` line in a script's output, or None.

    Only a line that starts with the marker counts (a value echoed in the middle of a line never
    does); the scripts print their line last, after a newline of their own, with every value
    JSON-encoded so it cannot break the line, so anything a command printed before it is
    overruled. Lines are split on "\\n" alone (and a trailing "\\r" dropped, for Windows), the way
    the shells end them: `str.splitlines` would also split on characters a value may contain.
    """
    last: str | None = None
    for line in stdout.split("\n"):
        if line.startswith(RESULT_MARKER):
            last = line.removesuffix("\r")
    if last is None:
        return None
    try:
        data = json.loads(last[len(RESULT_MARKER) :])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def result_base(operation: str, fields: dict[str, Any]) -> str:
    """The start of a script's result object (its operation and the values it was given) as ASCII
    JSON without the closing brace: the script appends what it found and closes it."""
    encoded = json.dumps({"op": operation, **fields}, ensure_ascii=True, separators=(",", ":"))
    return encoded[:-1]

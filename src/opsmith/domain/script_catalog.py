"""The fleet operations as data, and `render`: the one entry point from an operation's name and
parameters (as a planner or a user gives them) to the script for one kind of host.

`OPERATIONS` says for each operation what it does, on which OS, which parameters it takes (of
which kind, with what default) and whether it is idempotent or changes the host; `input_schema`
turns that into a JSON schema, so the planner and `opsmith tools` can show operations like any
other tool. Every value is validated again by the template that uses it (`scripts_linux`,
`scripts_windows`): this module checks names, presence and the shape of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from opsmith.domain import scripts_linux, scripts_windows
from opsmith.domain.errors import ScriptInputError
from opsmith.domain.hosts import OsFamily
from opsmith.domain.scripts import (
    LINUX_SERVICE_PATTERN,
    PACKAGE_PATTERN,
    PROCESS_PATTERN,
    SHA256_PATTERN,
    VERSION_PATTERN,
    WINDOWS_SERVICE_PATTERN,
    Script,
)

__all__ = ["OPERATIONS", "Operation", "Param", "ParamKind", "render"]

ParamKind = Literal[
    "service", "process", "package", "version", "path", "url", "sha256", "mode", "seconds", "argv", "flag"
]

_BOTH: tuple[OsFamily, ...] = ("linux", "windows")


class Param(BaseModel):
    """One parameter of an operation. `os`: the systems on which it exists."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ParamKind
    description: str
    required: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    os: tuple[OsFamily, ...] = _BOTH

    def json_schema(self, os: OsFamily) -> dict[str, Any]:
        """This parameter as a JSON schema property for hosts of `os`."""
        prop: dict[str, Any] = dict(_KIND_SCHEMAS[self.kind])
        if self.kind == "service":
            prop["pattern"] = WINDOWS_SERVICE_PATTERN if os == "windows" else LINUX_SERVICE_PATTERN
        if self.kind == "path":
            prop["pattern"] = r"^([A-Za-z]:[\\/]|\\\\)" if os == "windows" else "^/"
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        if self.default is not None:
            prop["default"] = self.default
        prop["description"] = self.description
        return prop


_KIND_SCHEMAS: dict[ParamKind, dict[str, Any]] = {
    "service": {"type": "string"},
    "process": {"type": "string", "pattern": PROCESS_PATTERN},
    "package": {"type": "string", "pattern": PACKAGE_PATTERN},
    "version": {"type": "string", "pattern": VERSION_PATTERN},
    "path": {"type": "string"},
    "url": {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    "sha256": {"type": "string", "pattern": SHA256_PATTERN},
    "mode": {"type": "string", "pattern": "^[0-7]{3,4}$"},
    "seconds": {"type": "integer"},
    "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "flag": {"type": "boolean"},
}


class Operation(BaseModel):
    """One fleet operation: what it does, where it runs, what it takes and what it means to run."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    os: tuple[OsFamily, ...]
    params: tuple[Param, ...]
    idempotent: bool
    changes: bool
    # Names of which exactly one must be given (wait_healthy: a URL or a service).
    one_of: tuple[str, ...] = ()

    def params_for(self, os: OsFamily) -> tuple[Param, ...]:
        return tuple(p for p in self.params if os in p.os)

    def input_schema(self, os: OsFamily) -> dict[str, Any]:
        """The parameters for hosts of `os` as a JSON schema (the shape MCP tools declare)."""
        params = self.params_for(os)
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.json_schema(os) for p in params},
            "required": [p.name for p in params if p.required],
            "additionalProperties": False,
        }
        if self.one_of:
            schema["oneOf"] = [{"required": [name]} for name in self.one_of]
        return schema

    def describe_params(self, os: OsFamily) -> str:
        """`service (required), timeout (default 60)`: for messages that list what is allowed."""
        words = []
        for p in self.params_for(os):
            if p.required:
                words.append(f"{p.name} (required)")
            elif p.name in self.one_of:
                words.append(f"{p.name} (this or {' or '.join(n for n in self.one_of if n != p.name)})")
            elif p.default is not None:
                words.append(f"{p.name} (default {p.default!r})")
            else:
                words.append(f"{p.name} (optional)")
        return ", ".join(words)


def _service(required: bool = True) -> Param:
    return Param(
        name="service",
        kind="service",
        required=required,
        description="the service's name: a systemd unit (nginx, nginx.service) or a Windows service name",
    )


def _timeout(default: int, what: str, maximum: int = 3600) -> Param:
    return Param(
        name="timeout", kind="seconds", default=default, minimum=1, maximum=maximum, description=what
    )


_FORCE = Param(
    name="force",
    kind="flag",
    default=False,
    os=("windows",),
    description="also stop the services that depend on it (Stop-Service -Force)",
)
_BACKUP = Param(
    name="backup",
    kind="path",
    os=("linux",),
    description="a config file or directory (e.g. /etc/nginx) copied to PATH.bak-TIMESTAMP first",
)

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="service_status",
            description="Report whether a service is running, stopped, failed, starting or stopping.",
            os=_BOTH,
            params=(_service(),),
            idempotent=True,
            changes=False,
        ),
        Operation(
            name="service_start",
            description="Start a service if it is not running, and wait until it runs.",
            os=_BOTH,
            params=(_service(), _timeout(60, "seconds to wait for the service to run")),
            idempotent=True,
            changes=True,
        ),
        Operation(
            name="service_stop",
            description="Stop a service if it runs, and wait until it has stopped.",
            os=_BOTH,
            params=(_service(), _timeout(60, "seconds to wait for the service to stop"), _FORCE),
            idempotent=True,
            changes=True,
        ),
        Operation(
            name="service_restart",
            description="Restart a service (start it if stopped) and wait until it runs again."
            " Not idempotent: each run interrupts the service's clients again.",
            os=_BOTH,
            params=(_service(), _timeout(60, "seconds to wait for each of stop and start"), _FORCE),
            idempotent=False,
            changes=True,
        ),
        Operation(
            name="process_check",
            description="Report whether a process of that executable name runs, how many and their pids.",
            os=_BOTH,
            params=(
                Param(
                    name="process",
                    kind="process",
                    required=True,
                    description="the executable's name, e.g. nginx or stationcontroller.exe",
                ),
            ),
            idempotent=True,
            changes=False,
        ),
        Operation(
            name="install_file",
            description="Put an uploaded file in place if its SHA-256 matches, keeping the old file"
            " as TARGET.bak-TIMESTAMP; a mismatch leaves the target untouched.",
            os=_BOTH,
            params=(
                Param(
                    name="temp_path",
                    kind="path",
                    required=True,
                    description="where the new file is on the host (the upload's temporary path)",
                ),
                Param(name="target", kind="path", required=True, description="the file to replace or create"),
                Param(name="sha256", kind="sha256", required=True, description="the new file's SHA-256"),
                Param(
                    name="mode",
                    kind="mode",
                    os=("linux",),
                    description="octal mode for the new file (default: the old file's, or 0644)",
                ),
            ),
            idempotent=True,
            changes=True,
        ),
        Operation(
            name="package_install",
            description="Install a package if missing (or not at the pinned version) with the host's"
            " package manager: apt-get, dnf, yum or zypper; a pinned version older than the installed"
            " one is a downgrade. Each host says its version before and after.",
            os=("linux",),
            params=(
                Param(name="package", kind="package", required=True, description="the package's name"),
                Param(
                    name="version",
                    kind="version",
                    description="the version to install on every host (a pin; older than the installed"
                    " one: a downgrade)",
                ),
                _BACKUP,
                _timeout(600, "seconds the package manager may take"),
            ),
            idempotent=True,
            changes=True,
        ),
        Operation(
            name="package_update",
            description="Upgrade a package to the newest version its repositories offer (installing"
            " it if missing), after an optional config backup. Each host says its version before and"
            " after.",
            os=("linux",),
            params=(
                Param(name="package", kind="package", required=True, description="the package's name"),
                _BACKUP,
                _timeout(600, "seconds the package manager may take"),
            ),
            idempotent=True,
            changes=True,
        ),
        Operation(
            name="run_command",
            description="Run one program with its arguments, each passed as one word (no shell"
            " parses them). Not idempotent: what it does is the program's business.",
            os=_BOTH,
            params=(
                Param(
                    name="argv",
                    kind="argv",
                    required=True,
                    description="the program (a name on PATH or an absolute path) and its arguments",
                ),
                Param(name="cwd", kind="path", description="the directory to run it in"),
                Param(
                    name="timeout",
                    kind="seconds",
                    minimum=1,
                    maximum=86400,
                    os=("linux",),
                    description="seconds after which the command is stopped (default: no limit)",
                ),
            ),
            idempotent=False,
            changes=True,
        ),
        Operation(
            name="wait_healthy",
            description="Wait until a URL answers with a success status, or a service runs, polling"
            " every interval until the timeout.",
            os=_BOTH,
            params=(
                Param(name="url", kind="url", description="an http(s) URL that answers 2xx/3xx when healthy"),
                _service(required=False),
                _timeout(60, "seconds to wait in all"),
                Param(
                    name="interval",
                    kind="seconds",
                    default=2,
                    minimum=1,
                    maximum=300,
                    description="seconds between probes",
                ),
            ),
            idempotent=True,
            changes=False,
            one_of=("url", "service"),
        ),
    )
}

_Template = Callable[..., Script]

_TEMPLATES: dict[OsFamily, dict[str, _Template]] = {
    "linux": {name: getattr(scripts_linux, name) for name in OPERATIONS},
    "windows": {
        name: getattr(scripts_windows, name) for name in OPERATIONS if "windows" in OPERATIONS[name].os
    },
}

# The Linux operations that run something privileged, so `sudo` applies to them.
_PRIVILEGED = frozenset(OPERATIONS) - {"process_check"}


def render(operation: str, os: OsFamily, params: Mapping[str, Any], *, sudo: bool = False) -> Script:
    """The script for `operation` on a host of `os` with `params` (validated: an unknown
    operation, a parameter it does not take, a missing one or a refused value is a
    ScriptInputError that lists what is allowed). `sudo` prefixes Linux's privileged commands
    with `sudo -n`."""
    op = OPERATIONS.get(operation)
    if op is None:
        raise ScriptInputError(
            f"there is no fleet operation {operation!r}",
            hint=f"choose one of: {', '.join(sorted(OPERATIONS))}",
        )
    if os not in op.os:
        raise ScriptInputError(
            f"{operation} does not run on {os} hosts", hint=f"it runs on: {', '.join(op.os)}"
        )
    if sudo and os == "windows":
        raise ScriptInputError(
            "sudo applies to Linux hosts only",
            hint="a Windows script runs with the rights of the account WinRM logs in as",
        )
    allowed = {p.name for p in op.params_for(os)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ScriptInputError(
            f"{operation} on {os} does not take {', '.join(map(repr, unknown))}",
            hint=f"its parameters are: {op.describe_params(os)}",
        )
    missing = [p.name for p in op.params_for(os) if p.required and p.name not in params]
    if missing:
        raise ScriptInputError(
            f"{operation} needs {', '.join(missing)}", hint=f"its parameters are: {op.describe_params(os)}"
        )
    given = [name for name in op.one_of if params.get(name) is not None]
    if op.one_of and len(given) != 1:
        raise ScriptInputError(
            f"{operation} needs exactly one of {' and '.join(op.one_of)}, not {len(given)}",
            hint=f"its parameters are: {op.describe_params(os)}",
        )
    arguments = {name: value for name, value in params.items() if value is not None}
    if os == "linux" and operation in _PRIVILEGED:
        arguments["sudo"] = sudo
    return _TEMPLATES[os][operation](**arguments)

"""The fleet operations as tools of the server `hosts`, so they are planned, shown, checked, called
and audited like any MCP server's tools.

Each operation of `script_catalog.OPERATIONS` becomes one tool whose arguments are the operation's
parameters (for Linux and Windows hosts alike: each host's script takes those of its OS) plus where
it runs (`targets`: a group of the inventory, or host names) and how many failed hosts it tolerates
(`max_failed_percent`). `install_file` also takes the local file to copy (`source`): the tool
uploads it and then runs the operation with the upload's path and checksum.

`package_install`'s `version` is one version for every target, or a version per host
(`{"web01": "1.24.0-1"}`): then the hosts it runs on are its keys, each installing its own version (a
downgrade where it is older), and `targets` may be left out. That is how the undo of `package_update`
puts back what each host had: the update's answer holds `previous_versions` in that shape. A version
per host is for Linux hosts only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.errors import ScriptInputError
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.script_catalog import OPERATIONS, Operation
from opsmith.domain.scripts import VERSION_PATTERN, package_version

__all__ = [
    "HOSTS_SERVER",
    "HOST_NAME_PATTERN",
    "PACKAGE_OPERATIONS",
    "PER_HOST_VERSION",
    "host_tools",
    "host_versions",
]

# Arguments of every host tool that are not the script's: they say where and how it runs.
TARGETS = "targets"
MAX_FAILED = "max_failed_percent"
SOURCE = "source"  # install_file: the file on this machine to upload
EXPECT = "expect"  # what each host's result must say (`{"state": "stopped"}`), or the host failed
FLEET_ARGUMENTS = frozenset({TARGETS, MAX_FAILED, SOURCE, EXPECT})

# The operations whose `version` may be a version per host ({host: version}), which then names the
# hosts it runs on instead of (or as well as) `targets`. One argument, not a second `versions`: the
# planner fills a tool's `version` from the request ("to the latest version"), and would add it to an
# undo that gives a version per host under another name.
PER_HOST_VERSION = frozenset({"package_install"})
# The operations whose answer says each host's package version before and after.
PACKAGE_OPERATIONS = frozenset({"package_install", "package_update"})
MAX_VERSIONS = 100_000  # as many hosts as `targets` may name

# The inventory's rule for host names (names, IPv4 and IPv6 addresses, a zone after '%'); a test
# keeps it the same as domain.inventory's.
HOST_NAME_PATTERN = r"^[A-Za-z0-9_:][A-Za-z0-9_.:%\-]{0,253}$"

# Filled in by the tool from the upload, never by a caller.
_UPLOADED = frozenset({"temp_path", "sha256"})

# Stopping a service and running an arbitrary program may take something down.
_DESTRUCTIVE = frozenset({"service_stop", "run_command"})

_TARGETS_SCHEMA: dict[str, Any] = {
    "description": "where it runs: a group of the inventory (its nested groups too), or host names",
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 200},
        # Empty is allowed: "stop it where it runs" may find it running nowhere.
        {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100_000},
    ],
}


def _per_host_version(one: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "the version to install: one for every target (a pin), or a version per host"
        ' ({"web01": "1.24.0-1"}, Linux hosts only) that runs on exactly those hosts, `targets` then'
        " left out or naming the same hosts; older than the installed one: a downgrade",
        "anyOf": [
            {k: v for k, v in one.items() if k != "description"},
            {
                "type": "object",
                "propertyNames": {"pattern": HOST_NAME_PATTERN},
                "additionalProperties": {"type": "string", "pattern": VERSION_PATTERN},
                "maxProperties": MAX_VERSIONS,
            },
        ],
    }


# What the tool adds to its operation's description: what its answer holds for an undo.
_NOTES = {
    "package_install": " `version` may be a version per host ({host: version}, Linux only): how the"
    " undo of package_update puts back each host's previous version.",
    "package_update": " The answer's `previous_versions` ({host: version before}) names the hosts whose"
    " version it changed, in the shape package_install's `version` takes to put them back; hosts"
    " where the package was absent before are in `installed_hosts`, and such an undo leaves the"
    " package installed there (removing it could remove what depends on it).",
}


def host_versions(value: object, *, field: str = "version") -> dict[str, str]:
    """A version per host (`{"web01": "1.24.0-1"}`), each host name and version checked: a
    ScriptInputError names the bad key or value and what is allowed."""
    if not isinstance(value, Mapping):
        raise ScriptInputError(
            f"{field} must be an object mapping host names to versions, not {type(value).__name__}",
            hint=f'give {field} as {{"HOST": "VERSION"}}, e.g. {{"web01": "1.24.0-1"}}',
        )
    if len(value) > MAX_VERSIONS:
        raise ScriptInputError(
            f"{field} names {len(value):,} hosts, more than {MAX_VERSIONS:,}",
            hint="split the call into several",
        )
    checked: dict[str, str] = {}
    for host, version in value.items():
        if not isinstance(host, str) or not re.fullmatch(HOST_NAME_PATTERN, host):
            shown = repr(host) if not isinstance(host, str) or len(host) <= 80 else repr(host[:80]) + "…"
            raise ScriptInputError(
                f"{field}: {shown} is not a host name",
                hint="use the inventory's host names as keys: letters, digits and _ . : % -, starting with"
                " a letter, digit, _ or :, e.g. 'web01'",
            )
        checked[host] = package_version(version, field=f"{field}[{host!r}]")
    return checked


def host_tools() -> list[ToolSpec]:
    """Every fleet operation as a tool of the server `hosts`, in name order."""
    return [_tool(op) for _, op in sorted(OPERATIONS.items())]


def _tool(op: Operation) -> ToolSpec:
    properties: dict[str, Any] = {}
    required: list[str] = [TARGETS]
    for os in op.os:
        schema = op.input_schema(os)
        for name, prop in schema["properties"].items():
            if op.name == "install_file" and name in _UPLOADED:
                continue
            # One schema for both systems: a pattern that differs by OS is left to the script's own
            # validation, which knows each host's OS.
            if name in properties and properties[name].get("pattern") != prop.get("pattern"):
                properties[name] = {k: v for k, v in properties[name].items() if k != "pattern"}
                continue
            properties.setdefault(name, prop)
        required += [n for n in schema["required"] if n not in required and not _uploaded(op, n)]
    properties[TARGETS] = _TARGETS_SCHEMA
    if op.name in PER_HOST_VERSION:
        properties["version"] = _per_host_version(properties["version"])
        required.remove(TARGETS)  # a version per host names the hosts instead; the tool refuses neither
    properties[MAX_FAILED] = {
        "type": "number",
        "minimum": 0,
        "maximum": 100,
        "description": "fail the call when more than this share of the hosts failed"
        " (default: fleet.max_failed_percent)",
    }
    properties[EXPECT] = {
        "type": "object",
        "description": 'fields each host\'s result must have (e.g. {"state": "stopped"});'
        " a host whose result differs counts as failed",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    }
    if op.name == "install_file":
        properties[SOURCE] = {
            "type": "string",
            "minLength": 1,
            "description": "the file on the opsmith machine to copy to every host"
            " (uploaded, then checked by SHA-256)",
        }
        required.append(SOURCE)
    systems = " and ".join(
        "Linux (bash over SSH)" if os == "linux" else "Windows (PowerShell over WinRM)" for os in op.os
    )
    return ToolSpec(
        server=HOSTS_SERVER,
        name=op.name,
        title=op.name.replace("_", " ").capitalize() + " on hosts",
        description=f"{op.description} On every host of an inventory group at once: {systems}."
        + _NOTES.get(op.name, ""),
        input_schema={
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
        output_schema=None,
        hints=ToolHints(
            read_only=not op.changes,
            destructive=op.name in _DESTRUCTIVE if op.changes else False,
            idempotent=op.idempotent,
            open_world=False,
        ),
    )


def _uploaded(op: Operation, name: str) -> bool:
    return op.name == "install_file" and name in _UPLOADED

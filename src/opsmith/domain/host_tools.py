"""The fleet operations as tools of the server `hosts`, so they are planned, shown, checked, called
and audited like any MCP server's tools.

Each operation of `script_catalog.OPERATIONS` becomes one tool whose arguments are the operation's
parameters (for Linux and Windows hosts alike: each host's script takes those of its OS) plus where
it runs (`targets`: a group of the inventory, or host names) and how many failed hosts it tolerates
(`max_failed_percent`). `install_file` also takes the local file to copy (`source`): the tool
uploads it and then runs the operation with the upload's path and checksum.
"""

from __future__ import annotations

from typing import Any

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.script_catalog import OPERATIONS, Operation

__all__ = ["HOSTS_SERVER", "host_tools"]

# Arguments of every host tool that are not the script's: they say where and how it runs.
TARGETS = "targets"
MAX_FAILED = "max_failed_percent"
SOURCE = "source"  # install_file: the file on this machine to upload
EXPECT = "expect"  # what each host's result must say (`{"state": "stopped"}`), or the host failed
FLEET_ARGUMENTS = frozenset({TARGETS, MAX_FAILED, SOURCE, EXPECT})

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
        description=f"{op.description} On every host of an inventory group at once: {systems}.",
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

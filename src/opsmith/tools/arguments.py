"""Check a tool call's arguments against the tool's JSON schema before anything is sent."""

from __future__ import annotations

from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from opsmith.domain.catalog import ToolSpec
from opsmith.errors import ToolArgumentsError


def check_arguments(tool: ToolSpec, arguments: dict[str, Any]) -> None:
    """Raise ToolArgumentsError naming the first offending argument and what the schema wants."""
    schema = tool.input_schema or {"type": "object"}
    try:
        validator_cls = validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        raise ToolArgumentsError(
            f"{tool.qualified_name} publishes an invalid input schema: {exc.message}",
            hint="report this to the server's maintainers; opsmith cannot check arguments against it",
        ) from None
    error = schema_errors.best_match(validator_cls(schema).iter_errors(arguments))
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path)
    subject = f"argument {where!r}" if where else "arguments"
    raise ToolArgumentsError(f"{tool.qualified_name}: {subject}: {error.message}", hint=_expected(schema))


def _expected(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    parts = []
    for name, prop in props.items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        kind = "|".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{name}: {kind}{' (required)' if name in required else ''}")
    return "the tool expects " + (", ".join(parts) if parts else "no arguments")

"""Check a tool call's arguments against the tool's JSON schema before anything is sent."""

from __future__ import annotations

import difflib
import functools
import json
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from opsmith.domain.catalog import ToolSpec, accepts_undeclared
from opsmith.errors import ToolArgumentsError


def check_arguments(tool: ToolSpec, arguments: dict[str, Any]) -> None:
    """Raise ToolArgumentsError naming the first offending argument and what the schema wants."""
    schema = tool.input_schema or {"type": "object"}
    validator = _validator(json.dumps(schema, sort_keys=True))
    if isinstance(validator, schema_errors.SchemaError):
        raise ToolArgumentsError(
            f"{tool.qualified_name} publishes an invalid input schema: {validator.message}",
            hint="report this to the server's maintainers; opsmith cannot check arguments against it",
        )
    error = schema_errors.best_match(validator.iter_errors(arguments))
    if error is None:
        _refuse_undeclared(tool, schema, arguments)
        return
    where = "/".join(str(p) for p in error.absolute_path)
    subject = f"argument {where!r}" if where else "arguments"
    raise ToolArgumentsError(f"{tool.qualified_name}: {subject}: {error.message}", hint=_expected(schema))


def _refuse_undeclared(tool: ToolSpec, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    # JSON Schema lets unnamed properties through unless told otherwise; a server would then act on
    # (or silently ignore) an argument nobody reviewed, so only named ones are sent.
    if accepts_undeclared(schema):
        return
    declared = list(schema.get("properties") or {})
    extra = [name for name in arguments if name not in declared]
    if not extra:
        return
    near = difflib.get_close_matches(extra[0], declared, n=2)
    raise ToolArgumentsError(
        f"{tool.qualified_name} does not take the argument{'s' if len(extra) > 1 else ''} "
        + ", ".join(repr(name) for name in extra),
        hint=(f"did you mean {' or '.join(near)}? " if near else "") + _expected(schema),
    )


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    # Checking a schema costs far more than a call's validation: do it once per distinct schema.
    schema = json.loads(schema_json)
    validator_cls = validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        return exc
    return validator_cls(schema)


def _expected(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    parts = []
    for name, prop in props.items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        kind = "|".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{name}: {kind}{' (required)' if name in required else ''}")
    return "the tool expects " + (", ".join(parts) if parts else "no arguments")

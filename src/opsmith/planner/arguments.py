"""Fill a tool's arguments from the playbook, the request and the configuration; check them.

Only properties the tool's input schema declares are filled. Values that come from earlier
steps' outputs (`${steps.ID.path}`) are known only at run time: they count as present, and their
type is checked when the engine fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jsonschema import validators

from opsmith.domain.catalog import accepts_undeclared
from opsmith.planner.templates import RUNTIME_REF, Unfilled, render

# Common argument names across MCP servers, and which fact of the request fills them.
ALIASES: dict[str, str] = {
    "app": "subject",
    "application": "subject",
    "app_name": "subject",
    "project": "subject",
    "project_key": "subject",
    "deployment": "subject",
    "deployment_name": "subject",
    "namespace": "namespace",
    "environment": "environment",
    "env": "environment",
    "service_name": "service_name",
    "service": "service_name",
    "replicas": "replicas",
    "branch": "branch",
    "version": "version",
    "tag": "version",
}


@dataclass
class FilledArguments:
    args: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # playbook arguments the tool does not declare


def fill_arguments(
    schema: dict[str, Any], templates: dict[str, Any], facts: dict[str, Any], overrides: dict[str, Any]
) -> FilledArguments:
    """Arguments for one call: overrides > playbook templates > request facts by alias.

    Only declared arguments are sent: a playbook's argument the tool does not declare is dropped
    (and reported), an override it does not declare is a problem of the plan."""
    props: dict[str, Any] = schema.get("properties") or {}
    open_schema = accepts_undeclared(schema)
    args: dict[str, Any] = {}
    problems: list[str] = []
    dropped: list[str] = []
    for name, template in templates.items():
        if name not in props and not open_schema:
            dropped.append(name)
            continue
        try:
            args[name] = render(template, facts)
        except Unfilled:
            continue  # the request did not say it: left for an alias, a default or --set
    for name in props:
        if name not in args and ALIASES.get(name) in facts and facts[ALIASES[name]] is not None:
            args[name] = facts[ALIASES[name]]
    for name, value in overrides.items():
        if name in props or open_schema:
            args[name] = value
        else:
            problems.append(f"{name}: not an argument of this tool (it takes {', '.join(props) or 'none'})")
    args = {name: _coerce(value, props.get(name, {})) for name, value in args.items()}
    required = [r for r in schema.get("required", []) if r not in args]
    problems += check(schema, args)
    return FilledArguments(args=args, missing=required, problems=problems, dropped=dropped)


def check(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Schema violations of the plan-time arguments; runtime references are checked later."""
    deferred = {name for name, value in args.items() if _is_deferred(value)}
    instance = {name: value for name, value in args.items() if name not in deferred}
    validator = validators.validator_for(schema)(schema)
    problems = []
    for error in validator.iter_errors(instance):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" or (path and path[0] in deferred):
            continue
        where = ".".join(path) or "arguments"
        problems.append(f"{where}: {error.message}")
    return sorted(problems)


def _is_deferred(value: Any) -> bool:
    if isinstance(value, str):
        return bool(RUNTIME_REF.search(value))
    if isinstance(value, dict):
        return any(_is_deferred(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_deferred(v) for v in value)
    return False


def _coerce(value: Any, prop: dict[str, Any]) -> Any:
    """Rendered templates are text; give numbers and booleans the type the schema asks for."""
    if not isinstance(value, str) or _is_deferred(value):
        return value
    kinds = _types(prop)
    text = value.strip()
    if "integer" in kinds and _is_int(text):
        return int(text)
    if "number" in kinds and _is_float(text):
        return float(text)
    if "boolean" in kinds and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _types(prop: dict[str, Any]) -> set[str]:
    kinds: set[str] = set()
    raw = prop.get("type")
    if isinstance(raw, str):
        kinds.add(raw)
    elif isinstance(raw, list):
        kinds.update(k for k in raw if isinstance(k, str))
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        if isinstance(option, dict):
            kinds |= _types(option)
    return kinds


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

"""Fill a tool's arguments from the playbook, the request and the configuration; check them.

Only properties the tool's input schema declares are filled. Playbooks and `--set` name
arguments the opsmith way (`label_selector`); a tool that spells them its own way
(`labelSelector`, `ns`) gets them under its names (see `argnames`), and the result says what was
renamed. Values that come from earlier steps' outputs (`${steps.ID.path}`) are known only at run
time: they count as present, and their type is checked when the engine fills them in.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import validators

from opsmith.domain.catalog import accepts_undeclared
from opsmith.planner import argnames
from opsmith.planner.templates import RUNTIME_REF, Unfilled, render

# Common argument names across MCP servers, and which fact of the request fills them. Matched
# by key (`appName` and `app-name` are `app_name`) and through argnames.SYNONYMS (`ns`).
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

_FACT_BY_KEY: dict[str, str] = {argnames.normalise(name): fact for name, fact in ALIASES.items()}


@dataclass
class FilledArguments:
    args: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # playbook arguments the tool does not take
    # Why a dropped argument was left out although the tool takes something like it.
    why_dropped: dict[str, str] = field(default_factory=dict)
    renamed: list[str] = field(default_factory=list)  # "label_selector -> labelSelector"
    inferred: list[str] = field(default_factory=list)  # "name <- subject": facts not under an alias


def fill_arguments(
    schema: dict[str, Any],
    templates: dict[str, Any],
    facts: dict[str, Any],
    overrides: dict[str, Any],
    *,
    object_facts: dict[str, Any] | None = None,
    defaults: bool = True,
) -> FilledArguments:
    """Arguments for one call: overrides > playbook templates > request facts by alias.

    Only declared arguments are sent, under the tool's own names: a playbook's argument the tool
    does not take is dropped (and reported), an override it does not take is a problem of the
    plan. `object_facts` fill parameters by name when the step acts on something else than the
    application (a check of the service names the service). `defaults`: a required parameter
    nothing else fills takes the default its schema states (off for partial fills merged later)."""
    props: dict[str, Any] = schema.get("properties") or {}
    open_schema = accepts_undeclared(schema)
    args: dict[str, Any] = {}
    playbook = argnames.place(list(templates), props, open_schema=open_schema)
    for name, target in playbook.placed.items():
        try:
            args[target] = render(templates[name], facts)
        except Unfilled:
            continue  # the request did not say it: left for an alias, a default or --set
    given = argnames.place(list(overrides), props, open_schema=open_schema)
    for name, target in given.placed.items():
        args[target] = overrides[name]
    # Facts only fill what is still empty; last, so a generic `name` sees every selector given.
    inferred = _fill_from_facts(args, props, facts if object_facts is None else object_facts)
    problems = [f"{name}: {why}" for name, why in given.unplaced.items()]
    problems += [f"{name}: not an argument of this tool ({_nearest(name, props)})" for name in given.unknown]
    args = {name: _coerce(value, props.get(name, {})) for name, value in args.items()}
    if defaults:
        inferred += schema_defaults(schema, args)
    required = [r for r in schema.get("required", []) if r not in args]
    problems += check(schema, args)
    return FilledArguments(
        args=args,
        missing=required,
        problems=problems,
        dropped=[name for name in templates if name not in playbook.placed],
        why_dropped=dict(playbook.unplaced),
        renamed=playbook.renamed + given.renamed,
        inferred=inferred,
    )


def schema_defaults(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Fill required parameters still empty with the default their schema states: the value the
    server itself means when it is left out; said as "param <- the schema's default"."""
    props: dict[str, Any] = schema.get("properties") or {}
    filled = []
    for name in schema.get("required", []):
        if name not in args and isinstance(props.get(name), dict) and "default" in props[name]:
            args[name] = props[name]["default"]
            filled.append(f"{name} <- the schema's default")
    return filled


def _fill_from_facts(args: dict[str, Any], props: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """Fill the parameters still empty from the request's facts; the ones not named exactly as
    an alias, as "param <- fact"."""
    inferred = []
    for name in props:
        fact = _fact_for(name)
        if name in args or fact is None or facts.get(fact) is None or not _may_hold(name, fact, props, args):
            continue
        args[name] = facts[fact]
        if name not in ALIASES:
            inferred.append(f"{name} <- {fact}")
    return inferred


def _fact_for(name: str) -> str | None:
    key = argnames.normalise(name)
    if key in _FACT_BY_KEY:
        return _FACT_BY_KEY[key]
    found = {_FACT_BY_KEY[other] for other in argnames.synonyms(key) if other in _FACT_BY_KEY}
    return found.pop() if len(found) == 1 else None


def _may_hold(name: str, fact: str, props: dict[str, Any], args: dict[str, Any]) -> bool:
    """Whether a generic parameter (`name`, `count`) is the one the fact belongs in.

    A wrong value is worse than none: the plan shows a missing argument and `--set` fills it,
    but nothing takes a wrongly filled one out again."""
    kind = argnames.generic(name)
    if kind is None:
        return True
    if any(argnames.canonical(given) in kind.not_with for given in args):
        return False
    said = argnames.says(name, props[name])
    if said is not None:
        return said
    return kind.alone_means and not any(_more_specific(other, name, fact) for other in props)


def _more_specific(other: str, name: str, fact: str) -> bool:
    """Whether the tool's parameter `other` is a more specific home for what `name` would get
    (`podName` or `fullname` next to `name`, `deploymentName` next to `name`)."""
    key, mine = argnames.normalise(other), argnames.normalise(name)
    if key == mine:
        return False
    return key.endswith(mine) or (argnames.generic(other) is None and _fact_for(other) == fact)


def _nearest(name: str, props: dict[str, Any]) -> str:
    near = argnames.nearest(name, list(props))
    return f"nearest: {', '.join(near)}" if near else "it takes none"


def check(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Schema violations of the plan-time arguments; runtime references are checked later."""
    deferred = {name for name, value in args.items() if _is_deferred(value)}
    instance = {name: value for name, value in args.items() if name not in deferred}
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except TypeError:  # not JSON (a schema written in YAML may hold dates): not worth caching
        validator = validators.validator_for(schema)(schema)
    problems = []
    for error in validator.iter_errors(instance):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" or (path and path[0] in deferred):
            continue
        where = ".".join(path) or "arguments"
        problems.append(f"{where}: {error.message}")
    return sorted(problems)


@functools.lru_cache(maxsize=512)
def _validator(schema_text: str) -> Any:
    # Building a validator resolves the schema's references from scratch: it cost more than the
    # rest of the check, and a plan checks the same few tools' schemas every time.
    schema = json.loads(schema_text)
    return validators.validator_for(schema)(schema)


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
    # A whole number is also a JSON Schema number: "3" replicas go out as 3, not 3.0.
    if ("integer" in kinds or "number" in kinds) and _is_int(text):
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

"""The arguments of a call a binding chose: the binding's templates, then the playbook's own
arguments for this step where the tool declares them (an undo's `rollback_args` say what to go
back to), then `--set` values, in rising order of precedence; the binding's fixed values last, as
they are what makes the tool serve the capability.

Nothing is filled from the request's facts by name alone: the binding's templates say which fact
goes where, so `kubectl_get` of pods never receives the application as a pod `name`.
"""

from __future__ import annotations

from typing import Any

import yaml

from opsmith.domain.binding import Binding
from opsmith.planner.arguments import FilledArguments, check, fill_arguments, schema_defaults
from opsmith.planner.templates import Unfilled, render


def bound_arguments(
    binding: Binding,
    schema: dict[str, Any],
    step_args: dict[str, Any],
    facts: dict[str, Any],
    overrides: dict[str, Any],
) -> FilledArguments:
    known = {k: v for k, v in facts.items() if v is not None}  # an unknown fact stays unfilled
    used = {k: v for k, v in step_args.items() if k not in binding.ignore}
    playbook = _rendered({binding.rename.get(k, k): v for k, v in used.items()}, known)
    from_binding = _rendered(binding.args, {**known, "step_args": playbook})
    # Partial fills, merged below; a schema default must never stand in for a value given later.
    given = fill_arguments(schema, playbook, {}, {}, defaults=False)
    templated = fill_arguments(schema, from_binding, {}, {}, defaults=False)
    asked = fill_arguments(schema, {}, {}, overrides, defaults=False)
    problems = list(asked.problems)
    for name in sorted(set(asked.args) & set(binding.fixed)):
        problems.append(
            f"{name}: fixed to {binding.fixed[name]!r} by the binding (it is what makes"
            f" {binding.tool} serve {binding.capability}); not changed by --set"
        )
    args = {**templated.args, **given.args, **asked.args, **binding.fixed}
    ignored = [k for k in step_args if k in binding.ignore]
    inferred = schema_defaults(schema, args)
    problems += _documents(binding, args)
    problems += check(schema, args)
    # A template of the binding the request cannot fill is missing even where the tool would run
    # without it: the binding says the call needs it.
    unfilled = [n for n in binding.args if binding.rename.get(n, n) not in from_binding]
    required = list(dict.fromkeys([r for r in schema.get("required", []) if r not in args] + unfilled))
    return FilledArguments(
        args=args,
        missing=required,
        problems=sorted(set(problems)),
        dropped=[*given.dropped, *templated.dropped, *ignored],
        why_dropped={
            **templated.why_dropped,
            **given.why_dropped,
            **dict.fromkeys(ignored, f"{binding.tool} does not use it for {binding.capability}"),
        },
        renamed=[*given.renamed, *asked.renamed],
        inferred=inferred,
    )


def _rendered(templates: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, template in templates.items():
        try:
            values[name] = render(template, context)
        except Unfilled:
            continue  # the request did not say it: left for --set, or reported missing
    return values


def _documents(binding: Binding, args: dict[str, Any]) -> list[str]:
    """Arguments the binding renders as YAML (a manifest) must parse as a mapping."""
    problems = []
    for name in binding.yaml_args:
        text = args.get(name)
        if text is None:
            continue
        try:
            document = yaml.safe_load(str(text))
        except yaml.YAMLError as exc:
            problems.append(f"{name}: the rendered manifest is not valid YAML: {exc}")
            continue
        if not isinstance(document, dict):
            problems.append(f"{name}: the rendered manifest is not a YAML mapping")
    return problems


__all__ = ["bound_arguments"]

"""Runtime references: `${steps.ID.path}` in a step's arguments, replaced by what step ID returned.

A whole-string reference keeps the value's type (an int stays an int, a dict stays a dict); a
reference inside longer text is written as text. Anything that cannot be resolved is an error
before the call, never a literal "${...}" sent to a tool.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from opsmith.domain.evidence import lookup
from opsmith.engine.errors import UnresolvedReference

__all__ = ["RUNTIME_REF", "referenced_steps", "resolve"]

# The planner's pattern (opsmith.planner.templates.RUNTIME_REF), compiled here so that the engine
# core depends on the domain only; a test keeps the two identical.
RUNTIME_REF = re.compile(r"\$\{steps\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_.\-]+)\}")

# evidence.lookup answers a private sentinel for an absent path; asking it once for a path that
# cannot exist gives us that sentinel through its public behaviour.
_ABSENT = lookup({}, "absent")

Outputs = Mapping[str, Mapping[str, Any] | None]


def resolve(
    args: Mapping[str, Any],
    outputs: Outputs,
    *,
    step_id: str,
    known_steps: Collection[str] | None = None,
) -> dict[str, Any]:
    """`args` with every reference replaced; `outputs` holds the outputs of steps that succeeded.

    `known_steps` (the plan's step ids), when given, tells a step that has not produced output
    yet from one that does not exist. Raises `UnresolvedReference` naming `step_id`, the
    argument, the reference and what the referenced output had.
    """
    return {key: _resolve(value, outputs, step_id, f"args.{key}", known_steps) for key, value in args.items()}


def referenced_steps(value: Any) -> list[str]:
    """Ids of the steps `value` refers to, first appearance first, each once."""
    found: dict[str, None] = {}
    if isinstance(value, str):
        found.update((m.group(1), None) for m in RUNTIME_REF.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.update((s, None) for s in referenced_steps(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.update((s, None) for s in referenced_steps(item))
    return list(found)


def _resolve(value: Any, outputs: Outputs, step_id: str, where: str, known: Collection[str] | None) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, outputs, step_id, where, known)
    if isinstance(value, Mapping):
        return {k: _resolve(v, outputs, step_id, f"{where}.{k}", known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v, outputs, step_id, f"{where}[{i}]", known) for i, v in enumerate(value)]
    return value


def _resolve_text(
    text: str, outputs: Outputs, step_id: str, where: str, known: Collection[str] | None
) -> Any:
    whole = RUNTIME_REF.fullmatch(text)
    if whole:
        # A copy, so that a tool call that changes its arguments cannot change a stored output.
        return copy.deepcopy(_value(whole, outputs, step_id, where, known))
    return RUNTIME_REF.sub(lambda m: _as_text(_value(m, outputs, step_id, where, known)), text)


def _value(
    match: re.Match[str], outputs: Outputs, step_id: str, where: str, known: Collection[str] | None
) -> Any:
    ref_step, path = match.group(1), match.group(2)
    reference = match.group(0)
    prefix = f"step {step_id}: {where} refers to {reference}"
    if ref_step not in outputs:
        if known is not None and ref_step not in known:
            raise UnresolvedReference(
                f"{prefix}, but the plan has no step {ref_step!r}",
                hint=f"use one of the plan's steps ({', '.join(known) or 'none'}) and re-plan",
            )
        raise UnresolvedReference(
            f"{prefix}, but step {ref_step} has not succeeded, so it has no output",
            hint=f"make {step_id} depend on {ref_step} so that it runs after it",
        )
    output = outputs[ref_step]
    if output is None:
        raise UnresolvedReference(
            f"{prefix}, but step {ref_step} returned no output",
            hint=f"check what {ref_step}'s tool returns, or remove the reference",
        )
    value = lookup(dict(output), path)
    if value is _ABSENT:
        raise UnresolvedReference(
            f"{prefix}, but step {ref_step}'s output has no {path} (it had: {_keys(output)})",
            hint="fix the path in the plan's arguments to one the output has, and re-plan",
        )
    return value


def _as_text(value: Any) -> str:
    """Strings as they are; anything else as JSON, so True reads 'true' and a dict stays parseable."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _keys(output: Mapping[str, Any]) -> str:
    return ", ".join(sorted(str(k) for k in output)) or "no keys"

"""A step's conditions at run time: `when` (on earlier outputs) decides whether it runs at all,
`expect` (on its own output) whether what it saw is a success. Data, checked by the evidence
language (opsmith.domain.evidence): no expression is ever evaluated as code.

Two things the language carries beyond one comparison at one path:
- `*` in a path stands for every item of a list (or every value of a mapping): `pods.*.ready`
  with `== true` holds when each pod is ready. There must be at least one item, since a check
  over nothing proves nothing; say `total == 0` where no items is what is wanted.
- a value may be a runtime reference, `${steps.ID.path}`, read from what step ID returned (the
  image a deploy step set, say). It is resolved from the run's outputs; a reference that cannot
  be resolved leaves the condition unmet, never compared against the literal text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from opsmith.domain.evidence import Condition, holds, lookup
from opsmith.domain.plan import Step
from opsmith.engine.references import RUNTIME_REF

__all__ = ["unmet_expectations", "unmet_when"]

Outputs = Mapping[str, Mapping[str, Any] | None]

EVERY = "*"
_ABSENT = lookup({}, "absent")
_SHOWN = 3  # failing items named in a message; the rest are counted


class _Unresolved(Exception):
    pass


def unmet_when(step: Step, outputs: Outputs) -> list[str]:
    """Each `when` condition of `step` that does not hold, with what was found instead."""
    unmet = []
    for condition in step.when:
        if condition.step not in outputs:
            unmet.append(f"{condition.describe()}: {condition.step} did not succeed")
            continue
        problem = _check(condition, outputs[condition.step], outputs)
        if problem is not None:
            unmet.append(problem)
    return unmet


def unmet_expectations(
    step: Step, output: Mapping[str, Any] | None, outputs: Outputs | None = None
) -> list[str]:
    """Each `expect` condition of `step` its output does not meet, with the value it had.

    `outputs` (the outputs of the steps that succeeded) resolves references in the conditions'
    values; without it a condition that holds a reference is unmet, as it cannot be checked.
    """
    problems = (_check(c, output, outputs) for c in step.expect)
    return [p for p in problems if p is not None]


def _check(condition: Condition, output: Mapping[str, Any] | None, outputs: Outputs | None) -> str | None:
    """None when `condition` holds on `output`, else what was expected and what was found."""
    try:
        resolved = condition.model_copy(update={"value": _resolve(condition.value, outputs)})
    except _Unresolved as why:
        return f"{condition.describe()}: cannot be checked: {why}"
    failures = list(_failures(resolved, output or {}, ""))
    if not failures:
        return None
    return f"{resolved.describe()} (found {_listed(failures)})"


def _failures(condition: Condition, data: Any, where: str) -> Iterator[str]:
    """What breaks `condition` in `data`: one line per failing value, named by its full path."""
    head, star, rest = _split(condition.path)
    if not star:
        if not holds(condition, data):
            seen = _seen(lookup(data, condition.path))
            # At the top a plain path is the condition's own: its value alone says what was found.
            yield f"{where}{condition.path}={seen}" if where else seen
        return
    items = lookup(data, head) if head else data
    if not isinstance(items, list | dict) or not items:
        found = "no items" if isinstance(items, list | dict) else _seen(items)
        yield f"{where}{head or EVERY}={found}"
        return
    pairs = items.items() if isinstance(items, dict) else enumerate(items)
    for key, item in pairs:
        prefix = f"{where}{head}.{key}." if head else f"{where}{key}."
        if rest:
            for failure in _failures(condition.model_copy(update={"path": rest}), item, prefix):
                yield failure + _named(item)
        elif not holds(condition.model_copy(update={"path": "item"}), {"item": item}):
            yield f"{prefix.rstrip('.')}={_seen(item)}"


def _split(path: str) -> tuple[str, bool, str]:
    """`pods.*.ready` -> ("pods", True, "ready"); a path without `*` -> (path, False, "")."""
    parts = path.split(".")
    if EVERY not in parts:
        return path, False, ""
    index = parts.index(EVERY)
    return ".".join(parts[:index]), True, ".".join(parts[index + 1 :])


def _named(item: Any) -> str:
    """Which item failed, for a person: its name and what it reports about itself, if it says."""
    if not isinstance(item, dict):
        return ""
    name, message = item.get("name") or item.get("pod"), item.get("message")
    said = [str(part) for part in (name, message) if part]
    if name and message and str(name) in str(message):
        said = [str(message)]  # a pod's message names the pod already
    return f" ({': '.join(said)[:300]})" if said else ""


def _listed(failures: list[str]) -> str:
    shown = "; ".join(failures[:_SHOWN])
    more = len(failures) - _SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


def _seen(value: Any) -> str:
    return "absent" if value is _ABSENT else repr(value)


def _resolve(value: Any, outputs: Outputs | None) -> Any:
    """`value` with its `${steps.ID.path}` references read from `outputs`; a whole-string
    reference keeps the referenced value's type."""
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    if not isinstance(value, str) or RUNTIME_REF.search(value) is None:
        return value
    whole = RUNTIME_REF.fullmatch(value)
    if whole:
        return _referenced(whole.group(1), whole.group(2), outputs)
    return RUNTIME_REF.sub(lambda m: _as_text(_referenced(m.group(1), m.group(2), outputs)), value)


def _referenced(step_id: str, path: str, outputs: Outputs | None) -> Any:
    reference = f"${{steps.{step_id}.{path}}}"
    if outputs is None:
        raise _Unresolved(f"{reference} needs the outputs of earlier steps, and none were given")
    if step_id not in outputs or outputs[step_id] is None:
        raise _Unresolved(f"{reference}: step {step_id} has no output (it did not succeed)")
    found = lookup(dict(outputs[step_id] or {}), path)
    if found is _ABSENT:
        raise _Unresolved(f"{reference}: the output of {step_id} has no {path}")
    return found


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)

"""Evidence: what in a step's output proves a compliance requirement, as data the engine checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Operator = Literal["==", "!=", "<", "<=", ">", ">=", "exists", "truthy"]


class Condition(BaseModel):
    """`path` is a dotted path into the step's structured output, e.g. `quality_gate.status`."""

    model_config = ConfigDict(frozen=True)

    path: str
    op: Operator
    value: Any = None

    def describe(self) -> str:
        if self.op in ("exists", "truthy"):
            return f"{self.path} {self.op}"
        return f"{self.path} {self.op} {self.value!r}"


class StepCondition(Condition):
    """A condition on the output of another step, named by `step` (a playbook's `when:`)."""

    step: str

    def describe(self) -> str:
        return f"{self.step}.{super().describe()}"


_MISSING = object()


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path, or a sentinel when any part is absent."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def holds(condition: Condition, data: Any) -> bool:
    """Whether one condition holds on a step's output; comparisons of unlike types are False."""
    value = lookup(data, condition.path)
    if condition.op == "exists":
        return value is not _MISSING and value is not None
    if value is _MISSING:
        return False
    if condition.op == "truthy":
        return bool(value)
    try:
        return bool(_COMPARE[condition.op](value, condition.value))
    except TypeError:
        return False


_COMPARE: dict[str, Any] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def schema_has_path(schema: dict[str, Any] | None, path: str) -> bool:
    """Whether an output JSON schema declares the dotted path (following local $refs)."""
    if not schema:
        return False
    defs = schema.get("$defs", {})
    node: Any = schema
    for part in path.split("."):
        node = _deref(node, defs)
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and part in props:
            node = props[part]
            continue
        extra = node.get("additionalProperties") if isinstance(node, dict) else None
        if isinstance(extra, dict):
            node = extra
            continue
        return False
    return True


def _deref(node: Any, defs: dict[str, Any]) -> Any:
    for _ in range(20):
        if (
            isinstance(node, dict)
            and isinstance(node.get("$ref"), str)
            and node["$ref"].startswith("#/$defs/")
        ):
            node = defs.get(node["$ref"].removeprefix("#/$defs/"), {})
            continue
        if isinstance(node, dict) and "anyOf" in node:
            options = [o for o in node["anyOf"] if isinstance(o, dict) and o.get("type") != "null"]
            if len(options) == 1:
                node = options[0]
                continue
        return node
    return node

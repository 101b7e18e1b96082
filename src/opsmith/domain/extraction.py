"""Read the fields a playbook checks (`ready`, `image`, `errors`...) out of a real tool's output.

Real MCP servers answer in their own shapes: mcp-server-kubernetes returns kubectl's JSON or YAML
as text, a log tool returns plain lines. A binding says, per field, how to read it, as a sandboxed
Jinja2 expression over:

  data   the structured content, or the JSON/YAML the text holds (None when it holds neither);
  text   the text content;
  args   the arguments the call was made with (what was asked for, e.g. the image deployed);
  and every field read before it, in the binding's order.

A field may also be a list read item by item: `{each: EXPR, fields: {name: EXPR over item}}`.
`lines_matching(text, pattern)` gives the lines a regular expression finds; `from_yaml(text)` the
document a text holds (a manifest the call sent). A field that cannot
be read is absent, never guessed; a check on it then fails with "found nothing".
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment


class Each(BaseModel):
    """A list field: one entry per item of `each`, with `fields` read from each `item`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    each: str
    fields: dict[str, str] = Field(min_length=1)


FieldSpec = str | Each


def _lines_matching(text: object, pattern: str) -> list[str]:
    found = re.compile(pattern)
    return [line for line in str(text or "").splitlines() if found.search(line)]


@functools.cache
def _env() -> SandboxedEnvironment:
    # Built on first use: Jinja2 costs a tenth of a second to import, and most commands read a
    # configuration with bindings without ever evaluating one.
    from jinja2 import ChainableUndefined, Undefined
    from jinja2.sandbox import SandboxedEnvironment

    class _Missing(ChainableUndefined):
        """What the output lacks: falsy, so `status.readyReplicas or 0` reads a default the binding
        chose, but never counted, iterated or printed, so `pods | length` of unread pods is not 0."""

        __iter__ = __len__ = __str__ = Undefined._fail_with_undefined_error

    env = SandboxedEnvironment(undefined=_Missing, autoescape=False)
    env.globals["lines_matching"] = _lines_matching
    env.globals["from_yaml"] = lambda text: parsed(str(text or ""))
    return env


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Callable[..., Any]:
    return _env().compile_expression(expression, undefined_to_none=True)


def check_expression(expression: str) -> str | None:
    """Why the expression cannot be compiled, or None; bindings are checked when they are loaded.

    Only the syntax is checked here, with Jinja2's own parser, when it is loaded anyway."""
    from jinja2 import TemplateError

    try:
        _compiled(expression)
    except TemplateError as exc:
        return str(exc)
    return None


def parsed(text: str) -> Any:
    """The JSON or YAML document a text holds, or None when it holds no mapping or list."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            value = yaml.safe_load(stripped)
        except yaml.YAMLError:
            return None
    return value if isinstance(value, dict | list) else None


def extract(
    spec: Mapping[str, FieldSpec],
    *,
    structured: Mapping[str, Any] | None,
    text: str,
    args: Mapping[str, Any],
) -> dict[str, Any]:
    """The fields `spec` reads; a field whose expression fails or gives nothing is left out."""
    data: Any = dict(structured) if structured is not None else parsed(text)
    context: dict[str, Any] = {"data": data, "text": text, "args": dict(args)}
    unread = set(spec) | ({"data"} if data is None else set())
    read: dict[str, Any] = {}
    for name, field in spec.items():
        # What is computed from an unread field is unread too: no pods read must not count 0 not ready.
        if _names(field) & unread:
            continue
        value = _read(field, context)
        if value is not None:
            read[name] = context[name] = value
            unread.discard(name)
    return read


def _names(field: FieldSpec) -> set[str]:
    expressions = [field] if isinstance(field, str) else [field.each, *field.fields.values()]
    return set().union(*(_variables(e) for e in expressions))


@functools.lru_cache(maxsize=1024)
def _variables(expression: str) -> frozenset[str]:
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_env().parse("{{ (" + expression + ") }}")))


def _read(field: FieldSpec, context: dict[str, Any]) -> Any:
    from jinja2 import TemplateError

    try:
        if isinstance(field, str):
            return _plain(_compiled(field)(**context))
        items = _compiled(field.each)(**context)
        if not isinstance(items, list | tuple):
            return None
        rows = []
        for item in items:
            row = {k: _plain(_compiled(e)(**context, item=item)) for k, e in field.fields.items()}
            rows.append({k: v for k, v in row.items() if v is not None})
        return rows
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError):
        # A tool's output without the expected shape: the field is unread, and a check on it fails.
        return None


def _plain(value: Any) -> Any:
    """Filters give generators and markup; what is stored and compared is plain JSON."""
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set) or hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return str(value)


__all__ = ["Each", "FieldSpec", "check_expression", "extract", "parsed"]

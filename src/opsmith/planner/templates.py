"""Argument templates: `{{ ... }}` filled at plan time (sandboxed Jinja2), `${steps.ID.path}` at run time."""

from __future__ import annotations

import functools
import re
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

RUNTIME_REF = re.compile(r"\$\{steps\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_.\-]+)\}")

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class _Shown(ChainableUndefined):
    """In titles and names, what the request did not say shows as '?'."""

    def __str__(self) -> str:
        return "?"


_TEXT_ENV = SandboxedEnvironment(undefined=_Shown, autoescape=False)


def render_text(template: str, context: dict[str, Any]) -> str:
    """A title or step name: never fails, unknown parts show as '?'."""
    try:
        return _compiled_text(template).render(context)
    except TemplateError:
        return template


class Unfilled(Exception):
    """A template referred to something the request and configuration do not provide."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@functools.lru_cache(maxsize=2048)
def _compiled(text: str) -> Template:
    return _ENV.from_string(text)


@functools.lru_cache(maxsize=2048)
def _compiled_text(text: str) -> Template:
    return _TEXT_ENV.from_string(text)


def check_syntax(text: str) -> str | None:
    """The syntax error of a template, or None."""
    try:
        _ENV.parse(text)
    except TemplateError as exc:
        return str(exc)
    return None


def render(value: Any, context: dict[str, Any]) -> Any:
    """Fill plan-time templates in a value (recursively); runtime references are left as they are."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _compiled(value).render(context)
        except TemplateError as exc:
            raise Unfilled(str(exc)) from exc
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def runtime_refs(value: Any) -> list[tuple[str, str]]:
    """(step id, path) of every `${steps.ID.path}` reference inside a value."""
    if isinstance(value, str):
        return RUNTIME_REF.findall(value)
    if isinstance(value, dict):
        return [ref for v in value.values() for ref in runtime_refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in runtime_refs(v)]
    return []


def rename_refs(value: Any, renames: dict[str, str]) -> Any:
    """Point `${steps.X...}` at renamed steps (used when a step is repeated per subject)."""
    if isinstance(value, str):
        return RUNTIME_REF.sub(
            lambda m: f"${{steps.{renames.get(m.group(1), m.group(1))}.{m.group(2)}}}", value
        )
    if isinstance(value, dict):
        return {k: rename_refs(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [rename_refs(v, renames) for v in value]
    return value

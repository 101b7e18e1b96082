"""The one redaction of secrets, for every path that shows or stores what opsmith saw.

Two rules, applied together at any depth of plain JSON data (and to plain text):
- every occurrence of a known secret value (one substituted from the environment into a server's
  configuration, at least 4 characters long) is replaced by "***", inside any string, key or value;
- the whole value of a key that looks secret (token, password, api_key, authorization...) is
  replaced, whatever its type.

Tool results (text and structured content), errors, server logs, run state, events and audit
entries all go through `Redactor`, so what one path hides no other path shows. Pure: stdlib only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from opsmith.domain.audit import jsonable

__all__ = ["REDACTED", "Redactor", "is_secret_key", "redact", "redact_text"]

REDACTED = "***"

# Substrings of a key (lower-cased, '-' read as '_') that mark its value as a secret.
_SECRET_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "private_key",
)
# Shorter secrets would redact ordinary words and digits everywhere ("on", "42").
_MIN_SECRET_LENGTH = 4


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    # Cached: the same few keys ("step", "tool", "args") come back in every audit entry.
    normal = key.lower().replace("-", "_")
    return any(part in normal for part in _SECRET_KEY_PARTS)


class Redactor:
    """Knows the secret values of one context (a server, a command) and hides them everywhere."""

    __slots__ = ("_known",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._known = tuple(
            sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._known

    def text(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def data(self, value: Any) -> Any:
        """A redacted copy of plain JSON data (dict/list/str/number/bool/None)."""
        kind = type(value)
        if kind is int or kind is bool or value is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                self.text(str(k)): REDACTED if is_secret_key(str(k)) else self.data(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.data(v) for v in value]
        return value


def redact(details: Mapping[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """A redacted copy of `details`, made plain JSON first so a secret inside an object's text form
    is caught as well."""
    result = Redactor(secrets).data(jsonable(dict(details)))
    assert isinstance(result, dict)
    return result


def redact_text(text: str, secrets: Iterable[str]) -> str:
    return Redactor(secrets).text(text)

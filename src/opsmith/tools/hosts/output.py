"""The tail of a remote command's output, kept while it streams in, with the credential's secrets
hidden: a chatty command on many hosts holds a few kilobytes per host, never all it printed."""

from __future__ import annotations

from opsmith.domain.hosts import TAIL_CHARS, tail
from opsmith.domain.redaction import Redactor

__all__ = ["OutputTail"]


class OutputTail:
    """The end of one output stream. Text is dropped from the front as more comes in, never from
    inside a secret (so no fragment of one survives redaction); `value` is redacted and cut to
    `limit` characters, marked "…" when anything was dropped."""

    def __init__(self, redactor: Redactor, limit: int = TAIL_CHARS) -> None:
        self._redactor = redactor
        self._limit = limit
        longest = max((len(s) for s in redactor.secrets), default=0)
        # Room for the tail, for what redaction removes from it, and for a secret across the cut.
        self._cap = 2 * limit + 2 * longest
        self._text = ""
        self._dropped = False

    def add(self, chunk: str) -> None:
        self._text += chunk
        if len(self._text) > self._cap:
            self._text = self._text[self._cut(len(self._text) - self._cap) :]
            self._dropped = True

    def value(self) -> str:
        text = self._redactor.text(self._text)
        if self._dropped:
            return "…" + text[-(self._limit - 1) :]
        return tail(text, self._limit)

    def _cut(self, cut: int) -> int:
        # Move the cut past every secret that crosses it. The text never starts inside a secret
        # (by the same rule at every cut), and a secret crossing the cut ends within the kept text.
        moved = True
        while moved:
            moved = False
            for secret in self._redactor.secrets:
                start = self._text.find(secret, max(0, cut - len(secret) + 1))
                if start != -1 and start < cut:
                    cut = start + len(secret)
                    moved = True
        return cut

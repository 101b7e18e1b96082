"""Helpers of the canary tests: a secret is planted where opsmith will see it, then looked for in
every output and every byte opsmith stored, in every form a leak would take."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path

# What a child process keeps of this one's environment: enough to run, nothing that configures
# opsmith (an OPSMITH_* variable of the developer's shell would change what is tested).
_KEPT = ("HOME", "PATH", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of an `opsmith` child process, with `extra` added."""
    return {**{k: os.environ[k] for k in _KEPT if k in os.environ}, **extra}


def everything_stored(project: Path) -> bytes:
    """Every byte opsmith wrote under its state directory: the database (and its WAL) and logs."""
    state = project / ".opsmith"
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())


def leaked_forms(plain: str) -> list[bytes]:
    """The forms a leaked value would take in stored bytes or output: itself, in UTF-16, in hex,
    and in base64 at each of its three alignments (the value inside a longer base64 text)."""
    data = plain.encode("utf-8")
    forms = [data, plain.encode("utf-16-le"), data.hex().encode(), data.hex().upper().encode()]
    for skip in range(3):
        for encoded in (base64.b64encode(data[skip:]), base64.urlsafe_b64encode(data[skip:])):
            forms.append(encoded[: len(encoded) // 4 * 4 - 4])  # whole quads, not the padded end
    return list(dict.fromkeys(form for form in forms if len(form) >= 8))


def leaks(plains: Iterable[str], haystacks: Iterable[str | bytes]) -> list[str]:
    """Which of `plains` appear, in any of their forms, in any of `haystacks`; with where."""
    found = []
    texts = [h.encode("utf-8", "surrogateescape") if isinstance(h, str) else h for h in haystacks]
    for plain in plains:
        forms = leaked_forms(plain)
        for index, text in enumerate(texts):
            for form in forms:
                if form in text:
                    at = text.index(form)
                    found.append(
                        f"{plain[:12]}… as {form[:16]!r} in #{index}: {text[max(0, at - 80) : at + 80]!r}"
                    )
    return found

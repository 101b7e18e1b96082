"""Text as every database opsmith runs on can hold it."""

from __future__ import annotations

NUL = "\x00"
REPLACEMENT = "\ufffd"  # the replacement character: what stands for a NUL that cannot be stored


def without_nul(value: str) -> str:
    """`value` with U+FFFD in place of each NUL (PostgreSQL's text cannot hold one)."""
    return value.replace(NUL, REPLACEMENT) if NUL in value else value

"""Keyed signatures (HMAC-SHA256) over what decides whether something may run: plans, approvals,
audit entries and the audit head's witness.

Hashes alone prove nothing against someone who can write the database: they recompute them. A
signature needs the key, which opsmith keeps outside the database (a 0600 key file, or
OPSMITH_AUDIT_KEY); whoever can write the database but not read the key can neither forge an
approval, nor make a plan runnable, nor rewrite or hide an audit entry.

Each signature covers a `kind` as well as the content, so one kind's signature is never valid as
another's. Pure: stdlib only; the key is loaded by the composition root.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from opsmith.domain.audit import canonical_json

__all__ = ["PREFIX", "Seal"]

PREFIX = "hmac-sha256:"
_MIN_KEY_BYTES = 32


class Seal:
    """Signs and checks with one key. Never prints or exposes the key."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"a signing key needs at least {_MIN_KEY_BYTES} bytes")
        # Keyed once and copied per signature: every audit entry and witness head is signed.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Seal(<key hidden>)"

    def sign(self, kind: str, content: Mapping[str, Any]) -> str:
        mac = self._keyed.copy()
        mac.update(canonical_json({"kind": kind, "content": content}).encode("utf-8"))
        return PREFIX + mac.hexdigest()

    def valid(self, kind: str, content: Mapping[str, Any], signature: str) -> bool:
        # compare_digest: a forger learns nothing from how long a wrong guess took to refuse.
        return bool(signature) and hmac.compare_digest(self.sign(kind, content), signature)

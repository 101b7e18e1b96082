"""Small helpers shared by the world's services: hashing, JSON, version parsing, name checks."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from opsmith.sandbox.errors import SandboxError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest_of(value: Any) -> str:
    return "sha256:" + sha256_hex(canonical_json(value))


def one_of(kind: str, value: str, known: list[str]) -> str:
    if value not in known:
        listing = ", ".join(known) if known else "none"
        raise SandboxError(f"unknown {kind} {value!r}; known {kind}s: {listing}")
    return value


_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def resolve_spec(spec: str) -> str:
    """Without a lockfile the sandbox installs the lowest version a range allows."""
    cleaned = spec.strip().lstrip("^~=v").split(" ")[0].lstrip(">=")
    major, minor, patch = parse_version(cleaned)
    return f"{major}.{minor}.{patch}"


def version_matches(version: str, constraint: str) -> bool:
    current = parse_version(version)
    for comparator in constraint.split():
        match = re.match(r"^(<=|>=|<|>|=)?(.+)$", comparator)
        if not match:
            raise ValueError(f"bad comparator {comparator!r}")
        op, bound_text = match.group(1) or "=", match.group(2)
        bound = parse_version(bound_text)
        ok = {
            "<": current < bound,
            "<=": current <= bound,
            ">": current > bound,
            ">=": current >= bound,
            "=": current == bound,
        }[op]
        if not ok:
            return False
    return True

"""Bearer tokens: how a person is known to `opsmith serve`. Pure: the service draws the randomness.

A token reads `osm_<id>_<secret>`: `id` (12 hex characters) names the stored row and may be shown
and logged; `secret` (`secrets.token_urlsafe(32)`, 43 characters) exists only in the text handed
out once at creation. The store keeps a hash of the secret, never the secret, and nothing that
leaves this package for a face (`TokenInfo`) carries either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from opsmith.domain.errors import AuthenticationError

__all__ = ["PREFIX", "TokenInfo", "hash_secret", "parse_token", "secret_matches", "token_text"]

PREFIX = "osm_"
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
# token_urlsafe(32): 32 random bytes in unpadded URL-safe base64, always 43 characters.
_TOKEN = re.compile(r"osm_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
FORMAT_HINT = "a token reads osm_<12 hex characters>_<43 characters>, as `opsmith token create` printed it"


class TokenInfo(BaseModel):
    """What may be shown about a token: never its secret, nor the secret's hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    user: str
    role: str
    name: str = ""
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def token_text(token_id: str, secret: str) -> str:
    return f"{PREFIX}{token_id}_{secret}"


def parse_token(text: str) -> tuple[str, str]:
    """(id, secret) of a token's text; AuthenticationError for anything else, which never quotes it."""
    found = _TOKEN.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise AuthenticationError("the bearer token is malformed", reason="malformed", hint=FORMAT_HINT)
    return found["id"], found["secret"]


def hash_secret(secret: str) -> str:
    # A fast hash is right here, unlike for passwords: the secret is 256 random bits, so there is
    # no dictionary to try and no point in slowing each check down; sha256 cannot be brute-forced.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    # compare_digest: how long a refusal takes tells a guesser nothing about the stored hash. Bytes:
    # on str it raises for non-ASCII, and a hash rewritten in the database may be anything.
    return hmac.compare_digest(hash_secret(secret).encode("ascii"), stored_hash.encode("utf-8"))

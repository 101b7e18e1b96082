"""The credential vault's values and rules, pure: what may be said about a stored secret, which names
and kinds it takes, the id of a key, and the errors the vault raises.

A secret's value never leaves the vault except as a `Credential` (its parts `SecretStr`) handed to
an adapter that logs in; everything shown to people is a `SecretInfo`, which has no field for it.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import get_args

from pydantic import BaseModel, ConfigDict

from opsmith.domain.errors import ConfigError, NotFoundError, OperationError, UsageError
from opsmith.domain.hosts import CredentialKind

__all__ = [
    "KINDS",
    "MAX_SECRET_CHARS",
    "MAX_USERNAME_CHARS",
    "NAME_PATTERN",
    "KeyRotation",
    "SecretInfo",
    "UnknownSecretError",
    "VaultError",
    "VaultKeyError",
    "check_kind",
    "check_name",
    "is_encrypted_private_key",
    "key_id",
    "unknown_secret",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
KINDS: tuple[CredentialKind, ...] = get_args(CredentialKind)
# Far above any password, key or certificate chain, far below what would bloat a row.
MAX_SECRET_CHARS = 65536
MAX_USERNAME_CHARS = 256
_NAME_HINT = "a secret's name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_KEY_ID_LABEL = b"opsmith-vault-key-id"


class UnknownSecretError(NotFoundError):
    """A secret name the vault does not hold."""


class VaultKeyError(ConfigError):
    """The vault's secrets were encrypted with another key than the one opsmith was given (a changed
    OPSMITH_SECRET_KEY, a replaced or missing key file): nothing is wrong with the secrets."""


class VaultError(OperationError):
    """A stored secret could not be decrypted with the key it names: its row was changed or moved
    outside opsmith (a ciphertext copied onto another name, a flipped byte)."""


class SecretInfo(BaseModel):
    """What may be shown about a stored secret: never its value, nor its passphrase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: CredentialKind
    username: str | None = None
    created_at: datetime
    updated_at: datetime
    updated_by: str
    key_id: str  # which key encrypted it (see `key_id`): not secret, tells keys apart


class KeyRotation(BaseModel):
    """What a key rotation did: how many secrets were re-encrypted, from which key to which."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int
    names: list[str]
    from_key_ids: list[str]  # the keys the secrets were under (one, but for an empty vault)
    to_key_id: str
    # The new key came from OPSMITH_SECRET_KEY_NEW: the person must now make it OPSMITH_SECRET_KEY.
    swap_variables: bool = False


def key_id(key: bytes) -> str:
    """A short public name of a key: which key encrypted a row, without revealing anything of it
    (an HMAC under the key itself, so it cannot be computed without the key either)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def check_name(name: str) -> str:
    """`name` if it is a valid secret name, else UsageError. The name is not quoted back: a name
    that breaks the pattern is often a pasted value (spaces, symbols), so only its flaw is said."""
    if NAME_PATTERN.fullmatch(name):
        return name
    if not name:
        flaw = "it is empty"
    elif len(name) > 128:
        flaw = f"it has {len(name)} characters"
    elif not name[0].isascii() or not name[0].isalnum():
        flaw = "it does not start with a letter or digit"
    else:
        flaw = "it holds a character other than letters, digits, '.', '_' or '-'"
    raise UsageError(f"that is not a valid secret name: {flaw}", hint=_NAME_HINT)


def check_kind(kind: str) -> CredentialKind:
    for known in KINDS:
        if kind == known:
            return known
    raise UsageError(f"unknown secret kind {kind[:40]!r}", hint=f"use one of: {', '.join(KINDS)}")


def unknown_secret(name: str, known: Iterable[str]) -> UnknownSecretError:
    """The error for a name the vault does not hold, naming the nearest names it does."""
    names = sorted(known)
    if not names:
        return UnknownSecretError(
            f"no secret named {name!r}: the vault is empty",
            hint="store one with `opsmith secrets set NAME --kind KIND`",
        )
    nearest = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if nearest:
        hint = f"did you mean {', '.join(map(repr, nearest))}? `opsmith secrets list` shows them all"
    else:
        hint = "`opsmith secrets list` shows the names it holds"
    return UnknownSecretError(f"no secret named {name!r} in the vault", hint=hint)


def is_encrypted_private_key(text: str) -> bool:
    """Whether a private key's text says it is protected by a passphrase (PEM, OpenSSH or PuTTY
    format); False for anything else, so an unreadable key fails later on its own merits."""
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text or "Proc-Type: 4,ENCRYPTED" in text:
        return True
    putty = re.search(r"^Encryption:[ \t]*(\S+)", text, re.MULTILINE)
    if putty and text.startswith("PuTTY-User-Key-File-"):
        return putty.group(1) != "none"
    return _openssh_cipher(text) not in (None, b"none")


_OPENSSH = re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----", re.DOTALL)
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


def _openssh_cipher(text: str) -> bytes | None:
    # The format (PROTOCOL.key in OpenSSH): the magic, then the cipher's name as a uint32-length string.
    found = _OPENSSH.search(text)
    if found is None:
        return None
    try:
        blob = base64.b64decode("".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not blob.startswith(_OPENSSH_MAGIC):
        return None
    start = len(_OPENSSH_MAGIC) + 4
    length = int.from_bytes(blob[len(_OPENSSH_MAGIC) : start], "big")
    cipher = blob[start : start + length]
    return cipher if len(cipher) == length and length > 0 else None

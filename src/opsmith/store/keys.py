"""The signing key, kept outside the database: a file only its owner can read, made on first use,
or OPSMITH_AUDIT_KEY. Whoever can write the database but not read this key can forge nothing."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from opsmith.domain.errors import ConfigError
from opsmith.domain.seal import Seal

ENV_KEY = "OPSMITH_AUDIT_KEY"
_KEY_BYTES = 32


def load_seal(key_file: Path, environ: Mapping[str, str]) -> Seal:
    """The seal of this installation; the key file is created (mode 0600) if there is none."""
    given = environ.get(ENV_KEY)
    if given is not None:
        if len(given) < 2 * _KEY_BYTES:
            raise ConfigError(
                f"{ENV_KEY} is too short ({len(given)} characters; at least {2 * _KEY_BYTES} are needed)",
                hint="set it to 32 random bytes in hex, e.g. from `openssl rand -hex 32`",
            )
        return Seal(given.encode("utf-8"))
    try:
        if not key_file.exists():
            _create(key_file)
        return Seal(_read(key_file))
    except OSError as exc:
        raise ConfigError(
            f"cannot use the signing key file {key_file}: {exc.strerror or exc}",
            hint=f"check the permissions of {key_file.parent}, or set {ENV_KEY}",
        ) from exc


def _create(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: two processes starting at once
    # never read a half-written key, and the second keeps the first one's key (link fails).
    temporary = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, key_file)
    finally:
        temporary.unlink(missing_ok=True)


def _read(key_file: Path) -> bytes:
    info = key_file.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the signing key file {key_file} is open to other users (mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"chmod 600 {key_file}",
        )
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"the signing key file {key_file} belongs to another user (uid {info.st_uid})",
            hint="run opsmith as the account that owns its state, or set " + ENV_KEY,
        )
    text = key_file.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(
            f"the signing key file {key_file} does not hold a hex key",
            hint="restore it from a backup; a new key makes every existing signature invalid",
        ) from exc
    if len(key) < _KEY_BYTES:
        raise ConfigError(
            f"the signing key in {key_file} is too short ({len(key)} bytes)",
            hint="restore it from a backup; a new key makes every existing signature invalid",
        )
    return key

"""Keys kept outside the database: each a file only its owner can read, made on first use, or given
in an environment variable. Whoever can write the database but not read these keys can forge
nothing (the signing key) and read nothing (the vault key, see `opsmith.store.vault_keys`)."""

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
KEY_BYTES = 32


class KeyFile:
    """One key in a file: created whole or not at all (mode 0600), and refused when it is open to
    other users or belongs to another account. `what` names it in messages ("signing key"), `env_var`
    is the variable that would replace it, `lost` says what to do when it is unreadable."""

    def __init__(self, path: Path, *, what: str, env_var: str, lost: str) -> None:
        self.path = path
        self.what = what
        self.env_var = env_var
        self.lost = lost

    def load(self) -> bytes:
        """The key, the file made first (with a new random key) when there is none."""
        try:
            if not self.path.exists():
                self.create()
            return self.read()
        except OSError as exc:
            raise self.unusable(exc) from exc

    def unusable(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"cannot use the {self.what} file {self.path}: {exc.strerror or exc}",
            hint=f"check the permissions of {self.path.parent}, or set {self.env_var}",
        )

    def create(self, key: bytes | None = None) -> bool:
        """Write `key` (default: new random bytes) unless the file exists; True when it was this
        call that wrote it. The file and its directory entry are on disk when this returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: two processes starting at once
        # never read a half-written key, and the second keeps the first one's key (link fails).
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write((key or secrets.token_bytes(KEY_BYTES)).hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                return False
            _sync_directory(self.path.parent)
            return True
        finally:
            temporary.unlink(missing_ok=True)

    def read(self) -> bytes:
        info = self.path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the {self.what} file {self.path} is open to other users"
                f" (mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"chmod 600 {self.path}",
            )
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"the {self.what} file {self.path} belongs to another user (uid {info.st_uid})",
                hint="run opsmith as the account that owns its state, or set " + self.env_var,
            )
        text = self.path.read_text(encoding="ascii", errors="replace").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError as exc:
            raise ConfigError(
                f"the {self.what} file {self.path} does not hold a hex key", hint=self.lost
            ) from exc
        if len(key) < KEY_BYTES:
            raise ConfigError(
                f"the {self.what} in {self.path} is too short ({len(key)} bytes)", hint=self.lost
            )
        return key

    def replace_with(self, staged: KeyFile) -> None:
        """Move `staged`'s file over this one, atomically and durably."""
        os.replace(staged.path, self.path)
        _sync_directory(self.path.parent)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            _sync_directory(self.path.parent)


def load_seal(key_file: Path, environ: Mapping[str, str]) -> Seal:
    """The seal of this installation; the key file is created (mode 0600) if there is none."""
    given = environ.get(ENV_KEY)
    if given is not None:
        if len(given) < 2 * KEY_BYTES:
            raise ConfigError(
                f"{ENV_KEY} is too short ({len(given)} characters; at least {2 * KEY_BYTES} are needed)",
                hint="set it to 32 random bytes in hex, e.g. from `openssl rand -hex 32`",
            )
        return Seal(given.encode("utf-8"))
    lost = "restore it from a backup; a new key makes every existing signature invalid"
    return Seal(KeyFile(key_file, what="signing key", env_var=ENV_KEY, lost=lost).load())


def _sync_directory(directory: Path) -> None:
    # A renamed or linked file survives a power cut only once its directory's entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

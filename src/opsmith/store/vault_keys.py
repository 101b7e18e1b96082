"""Where the vault's key comes from: OPSMITH_SECRET_KEY, else a key file made on first use.

The vault key is its own key, never the signing key: a different variable, a different file
(`STATE_DIR/secret.key`, next to `integrity.key`), and opsmith refuses to be given the same one for
both. Either source can hold a second key for a rotation under way (`secret.key.next`, or
OPSMITH_SECRET_KEY_NEW); rows name the key that encrypted them, so both are tried by their id. Why
the files change in the order they do is told in `opsmith.store.vault`.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opsmith.domain.errors import ConfigError
from opsmith.domain.vault import key_id
from opsmith.store.keys import ENV_KEY as AUDIT_ENV_KEY
from opsmith.store.keys import KEY_BYTES, KeyFile

ENV_KEY = "OPSMITH_SECRET_KEY"
ENV_NEW_KEY = "OPSMITH_SECRET_KEY_NEW"
_MAKE_ONE = "e.g. from `openssl rand -hex 32`"
_LOST = "restore it from a backup: what it encrypted cannot be read without it"


@dataclass(frozen=True)
class Keyring:
    """The keys at hand: `current` encrypts an empty vault's first row (None while there is no key
    file yet); `others` are only tried by id (a staged next key)."""

    current: bytes | None
    others: tuple[bytes, ...] = ()

    @property
    def current_id(self) -> str | None:
        return None if self.current is None else key_id(self.current)

    def by_id(self) -> dict[str, bytes]:
        keys = [*self.others, *([self.current] if self.current is not None else [])]
        return {key_id(key): key for key in keys}


class KeySource(Protocol):
    """Loads the vault's keys and, for a rotation, makes and installs the next one."""

    from_environment: bool
    wrong_key_hint: str

    def load(self, *, create: bool) -> Keyring: ...

    def new_key(self) -> bytes: ...

    def locked(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """Held exclusively while the key files change (a rotation, the end of an interrupted one),
        shared while a secret is written: no write ever runs during a rotation."""
        ...

    def staged(self) -> bool: ...

    def stage(self, key: bytes) -> None: ...

    def promote(self) -> None: ...

    def unstage(self) -> None: ...


def key_source(key_file: Path, environ: Mapping[str, str], *, signing_key_file: Path) -> KeySource:
    """OPSMITH_SECRET_KEY when it is set, else the key file (made on first use)."""
    if environ.get(ENV_KEY) is not None:
        return EnvironmentKeys(environ)
    if key_file.resolve() == signing_key_file.resolve():
        raise ConfigError(
            f"secret_key_file and key_file are the same file ({key_file})",
            hint="the vault needs its own key: unset secret_key_file to use STATE_DIR/secret.key",
        )
    return FileKeys(key_file)


def parse_key(text: str, variable: str) -> bytes:
    """32 bytes from 64 hex characters; ConfigError (never quoting `text`) for anything else."""
    text = text.strip()
    if len(text) != 2 * KEY_BYTES:
        raise ConfigError(
            f"{variable} must be {2 * KEY_BYTES} hex characters (32 bytes), not {len(text)}",
            hint=f"set it to a new key, {_MAKE_ONE}",
        )
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(
            f"{variable} holds a character that is not a hex digit",
            hint=f"use only 0-9 and a-f, {_MAKE_ONE}",
        ) from exc


class EnvironmentKeys:
    """The key in OPSMITH_SECRET_KEY; a rotation's new key in OPSMITH_SECRET_KEY_NEW, which the person
    makes OPSMITH_SECRET_KEY afterwards. Nothing here writes a file: the variables are theirs."""

    from_environment = True
    wrong_key_hint = (
        f"set {ENV_KEY} to the key the vault was encrypted with (or, after a rotation, keep the new key"
        f" in {ENV_NEW_KEY} until {ENV_KEY} holds it)"
    )

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._current = parse_key(environ[ENV_KEY], ENV_KEY)
        given_new = environ.get(ENV_NEW_KEY)
        self._new = None if given_new is None else parse_key(given_new, ENV_NEW_KEY)
        if environ.get(AUDIT_ENV_KEY, "").strip() == environ[ENV_KEY].strip():
            raise ConfigError(
                f"{ENV_KEY} is the same as {AUDIT_ENV_KEY}",
                hint=f"the vault needs its own key: set {ENV_KEY} to a new one, {_MAKE_ONE}",
            )

    def load(self, *, create: bool) -> Keyring:
        return Keyring(self._current, () if self._new is None else (self._new,))

    def new_key(self) -> bytes:
        if self._new is None:
            raise ConfigError(
                f"the vault key comes from {ENV_KEY}, so its new key must come from {ENV_NEW_KEY}, which is"
                " not set",
                hint=f"set {ENV_NEW_KEY} to a new key ({_MAKE_ONE}) and run `opsmith secrets rotate` again",
            )
        if self._new == self._current:
            raise ConfigError(
                f"{ENV_NEW_KEY} is the same key as {ENV_KEY}",
                hint=f"set {ENV_NEW_KEY} to a new key, {_MAKE_ONE}",
            )
        return self._new

    def locked(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def staged(self) -> bool:
        return False

    def stage(self, key: bytes) -> None:
        pass

    def promote(self) -> None:
        pass

    def unstage(self) -> None:
        pass


class FileKeys:
    """The key in a file only its owner can read; a rotation's new key first in `<file>.next`."""

    from_environment = False

    def __init__(self, path: Path) -> None:
        self.key = KeyFile(path, what="vault key", env_var=ENV_KEY, lost=_LOST)
        staged = path.with_name(path.name + ".next")
        self.next = KeyFile(staged, what="next vault key", env_var=ENV_KEY, lost=_LOST)
        self._lock_path = path.with_name(path.name + ".lock")
        self.wrong_key_hint = (
            f"restore {path} from a backup, or set {ENV_KEY} to the key the vault was encrypted with"
        )

    def load(self, *, create: bool) -> Keyring:
        try:
            # The next key first: were a rotation to move it over the key file between the two reads,
            # one of them still finds it.
            staged = self.next.read() if self.next.path.exists() else None
            if create and not self.key.path.exists():
                self.key.create()
            current = self.key.read() if self.key.path.exists() else None
        except OSError as exc:
            raise self.key.unusable(exc) from exc
        return Keyring(current, () if staged is None else (staged,))

    def new_key(self) -> bytes:
        return secrets.token_bytes(KEY_BYTES)

    @contextlib.contextmanager
    def locked(self, *, shared: bool = False) -> Iterator[None]:
        try:
            self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self._lock_path, "a")  # noqa: SIM115 (held across the yield)
        except OSError as exc:
            raise self.key.unusable(exc) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staged(self) -> bool:
        return self.next.path.exists()

    def stage(self, key: bytes) -> None:
        # Never over an existing one: the vault's recovery removes a stale `.next` (holding the
        # lock) and keeps one that rows still need, which a new rotation must not replace.
        try:
            placed = self.next.create(key)
        except OSError as exc:
            raise self.next.unusable(exc) from exc
        if not placed:
            raise ConfigError(
                f"cannot rotate: some secrets are under the key in {self.next.path}, some under"
                f" {self.key.path}'s",
                hint="keep both files and store each secret again (`opsmith secrets set`); then rotate",
            )

    def promote(self) -> None:
        try:
            self.key.replace_with(self.next)
        except OSError as exc:
            raise self.key.unusable(exc) from exc

    def unstage(self) -> None:
        try:
            self.next.remove()
        except OSError as exc:
            raise self.next.unusable(exc) from exc

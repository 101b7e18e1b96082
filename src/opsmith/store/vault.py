"""The credential vault: secrets encrypted at rest with AES-256-GCM, under a key kept outside the
database (`opsmith.store.vault_keys`).

Each value (with its passphrase) is encrypted under a fresh random 96-bit nonce, and the row's
name, kind and username are the associated data: a ciphertext copied onto another row does not
decrypt there. Each row names the key that encrypted it by its id, so a wrong key is said as such
("encrypted with another key") and a rotation under way can read rows under either key.

All rows are under one key. A write encrypts with the key the other rows are under (read in the
same write-locked transaction), or for an empty vault with the key file read afresh, never with
whatever key this process loaded at start: a process that started before another one rotated
never adds a row under the retired key. Writes hold the key files' lock shared, so none runs
during a rotation.

Rotation, and why it is safe to kill at any point (file key; the file changes are made holding an
exclusive lock on `secret.key.lock`, so no two processes change them at once, and no write runs):
1. the new key is written whole to `secret.key.next` (mode 0600), fsynced with its directory;
2. every row is re-encrypted under it in ONE transaction, committed;
3. `secret.key.next` is renamed over `secret.key` (atomic), and the directory fsynced.
Killed before 2 commits, the rows are all under the old key, which `secret.key` still holds; the
next process to load the keys sees `.next`, finds no row under it and removes it. Killed between
2 and 3, the rows are all under the new key, which `.next` holds; the next load finds rows under
it and finishes step 3. Reversing 1 and 2 would leave, after a crash, rows under a key no file holds;
reversing 2 and 3, an old key gone while rows still need it. With OPSMITH_SECRET_KEY the new key
comes from OPSMITH_SECRET_KEY_NEW and nothing is written: both are tried by id until the person
makes the new key OPSMITH_SECRET_KEY.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, LargeBinary, Row, String, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from opsmith.domain.audit import canonical_json
from opsmith.domain.errors import OpsmithError
from opsmith.domain.hosts import Credential, CredentialKind
from opsmith.domain.vault import (
    KeyRotation,
    SecretInfo,
    VaultError,
    VaultKeyError,
    check_kind,
    check_name,
    key_id,
    unknown_secret,
)
from opsmith.store.database import Database
from opsmith.store.models import Base
from opsmith.store.vault_keys import Keyring, KeySource

_VERSION = b"\x01"  # the layout of a sealed value: this byte, the nonce, the ciphertext with its tag
_NONCE_BYTES = 12
Names = list[str]


class SecretRow(Base):
    """A secret, encrypted; the metadata beside it is what `opsmith secrets list` shows."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(256), nullable=True)
    key_id: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(128))


_INFO = (
    SecretRow.name,
    SecretRow.kind,
    SecretRow.username,
    SecretRow.key_id,
    SecretRow.created_at,
    SecretRow.updated_at,
    SecretRow.updated_by,
)


class SecretRepository:
    """The vault over the database. `keys` is called once, at first need: a command that never
    touches a secret never reads (nor makes) a key, nor fails over a malformed one."""

    def __init__(
        self,
        database: Database,
        keys: Callable[[], KeySource],
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._db = database
        self._make_source = keys
        self._source: KeySource | None = None
        self._ring: Keyring | None = None
        self._guard = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))

    def put(
        self,
        name: str,
        kind: CredentialKind,
        username: str | None,
        secret: str,
        passphrase: str | None,
        by: str,
    ) -> SecretInfo:
        """Store the secret under `name`, replacing one stored there."""
        check_name(name)
        check_kind(kind)
        self._settle()
        now = self._clock()
        with self._keys().locked(shared=True), _locked_write(self._db) as connection:
            key = self._write_key(_key_ids(connection, excluding=name))
            values = {
                "kind": kind,
                "username": username,
                "key_id": key_id(key),
                "sealed": _seal(key, name, kind, username, {"secret": secret, "passphrase": passphrase}),
                "updated_at": now,
                "updated_by": by,
            }
            created = connection.execute(select(SecretRow.created_at).where(SecretRow.name == name)).scalar()
            if created is None:
                connection.execute(insert(SecretRow).values(name=name, created_at=now, **values))
            else:
                connection.execute(update(SecretRow).where(SecretRow.name == name).values(**values))
        return SecretInfo(
            name=name,
            kind=kind,
            username=username,
            created_at=now if created is None else _aware(created),
            updated_at=now,
            updated_by=by,
            key_id=key_id(key),
        )

    def list(self) -> list[SecretInfo]:
        """Every secret's metadata, by name; no key is needed, none is read."""
        with self._db.transaction() as connection:
            rows = connection.execute(select(*_INFO).order_by(SecretRow.name)).all()
        return [_info(row) for row in rows]

    def get(self, name: str) -> Credential:
        """The secret decrypted, for an adapter that logs in with it; UnknownSecretError if none."""
        check_name(name)
        self._settle()
        with self._db.transaction() as connection:
            row = connection.execute(select(SecretRow).where(SecretRow.name == name)).first()
            if row is None:
                raise unknown_secret(name, connection.execute(select(SecretRow.name)).scalars())
        plain = _open(self._key(row.key_id), row.name, row.kind, row.username, row.sealed)
        return Credential(
            name=row.name,
            kind=check_kind(row.kind),
            username=row.username,
            secret=plain.get("secret") or "",
            passphrase=plain.get("passphrase"),
        )

    def delete(self, name: str) -> SecretInfo:
        """Remove the secret; UnknownSecretError if there is none. Needs no key: a secret whose key
        is lost can still be removed (and stored again)."""
        check_name(name)
        with _locked_write(self._db) as connection:
            row = connection.execute(select(*_INFO).where(SecretRow.name == name)).first()
            if row is None:
                raise unknown_secret(name, connection.execute(select(SecretRow.name)).scalars())
            connection.execute(delete(SecretRow).where(SecretRow.name == name))
        return _info(row)

    def rotate(self) -> KeyRotation:
        """Re-encrypt every secret under a new key in one transaction (see the module's docstring)."""
        source = self._keys()
        with source.locked():
            self._finish_rotation()
            self._load(create=False)
            new = source.new_key()
            source.stage(new)
            try:
                before, names = self._reencrypt(new)
            except BaseException:
                # Whether the commit happened is read back from the rows, never assumed; with the
                # database out of reach, `.next` stays for the next process to decide.
                with contextlib.suppress(OpsmithError):
                    self._finish_rotation()
                raise
            source.promote()
            self._ring = Keyring(new)
        return KeyRotation(
            count=len(names),
            names=names,
            from_key_ids=before,
            to_key_id=key_id(new),
            swap_variables=source.from_environment,
        )

    def _reencrypt(self, new: bytes) -> tuple[Names, Names]:
        new_id = key_id(new)
        with _locked_write(self._db) as connection:
            rows = connection.execute(select(SecretRow).order_by(SecretRow.name)).all()
            for row in rows:
                plain = _open(self._key(row.key_id), row.name, row.kind, row.username, row.sealed)
                sealed = _seal(new, row.name, row.kind, row.username, plain)
                connection.execute(
                    update(SecretRow).where(SecretRow.name == row.name).values(key_id=new_id, sealed=sealed)
                )
        return sorted({row.key_id for row in rows}), [row.name for row in rows]

    # -- keys ---------------------------------------------------------------------------------------

    def _keys(self) -> KeySource:
        if self._source is None:
            self._source = self._make_source()
        return self._source

    def _settle(self) -> None:
        """Load the keys once, finishing (or undoing) a rotation that was killed halfway."""
        if self._ring is not None:
            return
        source = self._keys()
        if source.staged():
            with source.locked():
                self._finish_rotation()
        self._load(create=False)

    def _finish_rotation(self) -> None:
        # Called holding the lock exclusively: no rotation is under way, so a `.next` left is a
        # killed one's, and the rows say how far it got (its transaction is all or nothing).
        source = self._keys()
        if not source.staged():
            return
        ring = source.load(create=False)
        staged_id = key_id(ring.others[0])
        with self._db.transaction() as connection:
            in_use = _key_ids(connection)
        if ring.current_id not in in_use:
            source.promote()  # it committed, or no row needs the old key
        elif staged_id not in in_use:
            source.unstage()  # it never committed: the rows are under the old key still
        self._ring = None

    def _load(self, *, create: bool) -> Keyring:
        with self._guard:
            self._ring = self._keys().load(create=create)
            return self._ring

    def _key(self, wanted: str) -> bytes:
        """The key of id `wanted`; the keys are read again once when it is not held (another
        process rotated since they were read)."""
        ring = self._ring or self._load(create=False)
        key = ring.by_id().get(wanted)
        if key is None:
            ring = self._load(create=False)
            key = ring.by_id().get(wanted)
        if key is None:
            raise self._wrong_key(wanted, ring)
        return key

    def _write_key(self, others: set[str]) -> bytes:
        """The key to encrypt a row with: the one the other rows are under; for an empty vault,
        the current key read afresh (made if there is none), as a rotation may have replaced it."""
        if not others:
            current = self._load(create=True).current
            assert current is not None  # made just now if there was none
            return current
        held = self._ring.current_id if self._ring is not None else None
        return self._key(held if held in others else sorted(others)[0])

    def _wrong_key(self, wanted: str, ring: Keyring) -> VaultKeyError:
        held = ", ".join(sorted(ring.by_id())) or "none: there is no key file"
        return VaultKeyError(
            f"this vault was encrypted with another key (key id {wanted}) than the one opsmith was given"
            f" (key id {held})",
            hint=self._keys().wrong_key_hint,
        )


@contextlib.contextmanager
def _locked_write(database: Database) -> Iterator[Connection]:
    """A transaction holding the vault's write lock from its start: SQLite's (BEGIN IMMEDIATE), or
    on PostgreSQL a table lock writers take in turn, so a write reads the other rows' key and
    commits wholly before a rotation's transaction, or wholly after it."""
    with database.transaction(immediate=True) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE secrets IN SHARE ROW EXCLUSIVE MODE")
        yield connection


def _key_ids(connection: Connection, *, excluding: str | None = None) -> set[str]:
    query = select(SecretRow.key_id).distinct()
    if excluding is not None:
        query = query.where(SecretRow.name != excluding)
    return set(connection.execute(query).scalars())


def _bound(name: str, kind: str, username: str | None) -> bytes:
    # The associated data: what the value is for. Authenticated with it, never encrypted.
    return canonical_json({"v": 1, "name": name, "kind": kind, "username": username}).encode("utf-8")


def _seal(key: bytes, name: str, kind: str, username: str | None, plain: dict[str, Any]) -> bytes:
    # cryptography is loaded by what encrypts or decrypts, not by every command that wires a vault.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    data = json.dumps(plain, ensure_ascii=True).encode("ascii")
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, data, _bound(name, kind, username))


def _open(key: bytes, name: str, kind: str, username: str | None, sealed: bytes) -> dict[str, Any]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = bytes(sealed)
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        if sealed[:1] != _VERSION:
            raise ValueError("not a layout opsmith writes")
        plain = json.loads(AESGCM(key).decrypt(nonce, body, _bound(name, kind, username)))
    except (InvalidTag, ValueError) as exc:
        raise VaultError(
            f"the stored secret {name!r} does not decrypt with its key: its row was changed outside"
            " opsmith (a value copied from another secret, or altered)",
            hint=f"store it again with `opsmith secrets set {name} --kind {kind}`",
        ) from exc
    if not isinstance(plain, dict):
        raise VaultError(
            f"the stored secret {name!r} decrypts to something opsmith did not write",
            hint=f"store it again with `opsmith secrets set {name} --kind {kind}`",
        )
    return plain


def _info(row: Row[Any]) -> SecretInfo:
    return SecretInfo(
        name=row.name,
        kind=check_kind(row.kind),
        username=row.username,
        key_id=row.key_id,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        updated_by=row.updated_by,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

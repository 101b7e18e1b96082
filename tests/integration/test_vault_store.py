"""The credential vault over the real store (SQLite and PostgreSQL) and real key files: values
encrypted at rest (the database's bytes never hold them), bound to their row, under a key a wrong
one is told from, re-encrypted in one transaction by a rotation that a crash at any point leaves
recoverable."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import ConfigError
from opsmith.domain.vault import VaultError, VaultKeyError, key_id
from opsmith.store.database import Database
from opsmith.store.keys import KeyFile
from opsmith.store.vault import SecretRepository
from opsmith.store.vault_keys import ENV_KEY, ENV_NEW_KEY, key_source
from tests.bothdbs import execute, is_postgres
from tests.canary import leaked_forms

pytestmark = pytest.mark.integration

CANARY = "vault-canary-5d1e9b7a3c"
KEY_A = "a1" * 32
KEY_B = "b2" * 32


class Vaults:
    """Vaults over one state directory, as separate processes would open it."""

    def __init__(self, state: Path, url: str | None = None) -> None:
        self.state = state
        self.url = url or f"sqlite:///{state / 'opsmith.db'}"
        self._databases: list[Database] = []
        self._pair: tuple[SecretRepository, SecretRepository] | None = None

    def pair(self) -> tuple[SecretRepository, SecretRepository]:
        """One writer and one reader, kept for every example of a property test."""
        if self._pair is None:
            self._pair = (self.open(), self.open())
        return self._pair

    def open(self, environ: Mapping[str, str] | None = None) -> SecretRepository:
        database = Database(self.url)
        self._databases.append(database)
        given = dict(environ or {})
        return SecretRepository(
            database,
            lambda: key_source(self.key_file, given, signing_key_file=self.state / "integrity.key"),
        )

    @property
    def key_file(self) -> Path:
        return self.state / "secret.key"

    @property
    def next_file(self) -> Path:
        return self.state / "secret.key.next"

    @contextlib.contextmanager
    def raw(self) -> Iterator[_Raw]:
        yield _Raw(self.url)

    def stored_bytes(self) -> bytes:
        """The database file and its write-ahead log, as a disk thief would read them; on PostgreSQL
        every row of the table as the server renders it."""
        if is_postgres(self.url):
            return "".join(
                row[0] for row in execute(self.url, "SELECT CAST(s AS TEXT) FROM secrets s")
            ).encode()
        files = [self.state / "opsmith.db", self.state / "opsmith.db-wal"]
        return b"".join(path.read_bytes() for path in files if path.exists())

    def key_ids(self) -> dict[str, str]:
        with self.raw() as connection:
            return dict(connection.execute("SELECT name, key_id FROM secrets").fetchall())

    def close(self) -> None:
        for database in self._databases:
            database.dispose()


class _Raw:
    """SQL by hand, outside opsmith, with sqlite3's `?` placeholders on either database."""

    def __init__(self, url: str) -> None:
        self._url = url

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Rows:
        names = {f"p{n}": value for n, value in enumerate(params)}
        for name in names:
            sql = sql.replace("?", f":{name}", 1)
        return _Rows(execute(self._url, sql, **names))


class _Rows(list[tuple[Any, ...]]):
    def fetchone(self) -> tuple[Any, ...]:
        return self[0]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)


@pytest.fixture
def vaults(tmp_path: Path, database_url: str) -> Iterator[Vaults]:
    found = Vaults(tmp_path / "state", None if not is_postgres(database_url) else database_url)
    yield found
    found.close()


def _write_key(path: Path, key_hex: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key_hex + "\n")


# -- encryption -----------------------------------------------------------------------------------

_TEXTS = st.text(min_size=1, max_size=200) | st.binary(min_size=1, max_size=200).map(
    lambda b: b.decode("latin-1")
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=_TEXTS, passphrase=st.none() | _TEXTS, username=st.none() | st.text(min_size=1, max_size=50))
def test_any_value_round_trips(
    vaults: Vaults, secret: str, passphrase: str | None, username: str | None
) -> None:
    # PostgreSQL's text holds no NUL character: a username with one is refused there (StoreError).
    assume(not (is_postgres(vaults.url) and username and "\x00" in username))
    writer, reader = vaults.pair()
    info = writer.put("any", "password", username, secret, passphrase, "ada")
    found = reader.get("any")
    assert found.secret.get_secret_value() == secret
    assert (found.passphrase.get_secret_value() if found.passphrase else None) == passphrase
    assert (found.name, found.kind, found.username) == ("any", "password", username)
    assert info.key_id == key_id(bytes.fromhex(vaults.key_file.read_text()))


def test_the_stored_bytes_never_hold_a_value_in_any_encoding(vaults: Vaults) -> None:
    vault = vaults.open()
    vault.put("web", "password", "deploy", CANARY, CANARY + "-phrase", "ada")
    vault.put("web", "password", "deploy", CANARY + "-2", None, "ada")  # the replaced row too
    if not is_postgres(vaults.url):
        assert (vaults.state / "opsmith.db-wal").exists(), "the log is read while it holds the writes"
    stored = vaults.stored_bytes()
    assert b"deploy" in stored, "the metadata is stored in the clear, so the search would find text"
    for plain in (CANARY, CANARY + "-phrase", CANARY + "-2"):
        found = [form for form in leaked_forms(plain) if form in stored]
        assert found == [], found
    assert vault.get("web").secret.get_secret_value() == CANARY + "-2"


def test_two_encryptions_of_one_value_differ(vaults: Vaults) -> None:
    vault = vaults.open()
    vault.put("a", "token", None, CANARY, None, "ada")
    vault.put("b", "token", None, CANARY, None, "ada")
    with vaults.raw() as connection:
        sealed = [row[0] for row in connection.execute("SELECT sealed FROM secrets ORDER BY name")]
    assert sealed[0] != sealed[1] and sealed[0][1:13] != sealed[1][1:13]  # fresh nonces


def test_a_ciphertext_moved_onto_another_row_does_not_decrypt(vaults: Vaults) -> None:
    vault = vaults.open()
    vault.put("web", "password", "deploy", CANARY, None, "ada")
    vault.put("db", "password", "deploy", "another password", None, "ada")
    with vaults.raw() as connection:
        connection.execute(
            "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE name = 'web') WHERE name = 'db'"
        )
    with pytest.raises(VaultError, match="'db' does not decrypt with its key") as caught:
        vaults.open().get("db")
    assert CANARY not in str(caught.value) and caught.value.hint is not None
    assert isinstance(caught.value.__cause__, Exception)
    # Its kind and username are bound too: what the value is for cannot be changed beside it.
    with vaults.raw() as connection:
        connection.execute("UPDATE secrets SET kind = 'token' WHERE name = 'web'")
    with pytest.raises(VaultError):
        vaults.open().get("web")
    vault.put("web", "password", "deploy", CANARY, None, "ada")
    with vaults.raw() as connection:
        connection.execute("UPDATE secrets SET username = 'root' WHERE name = 'web'")
    with pytest.raises(VaultError):
        vaults.open().get("web")


# -- keys -----------------------------------------------------------------------------------------


def test_the_key_file_is_made_at_the_first_write_only_for_its_owner(vaults: Vaults) -> None:
    vault = vaults.open()
    assert vault.list() == [] and not vaults.key_file.exists(), "listing needs no key"
    vault.put("web", "password", None, CANARY, None, "ada")
    info = vaults.key_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert len(bytes.fromhex(vaults.key_file.read_text())) == 32
    assert not (vaults.state / "integrity.key").exists(), "the vault's key is its own"


def test_a_key_file_open_to_others_is_refused(vaults: Vaults) -> None:
    vaults.open().put("web", "password", None, CANARY, None, "ada")
    vaults.key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="open to other users") as caught:
        vaults.open().get("web")
    assert caught.value.hint == f"chmod 600 {vaults.key_file}"


def test_a_wrong_key_is_said_to_be_another_key(vaults: Vaults) -> None:
    vaults.open().put("web", "password", None, CANARY, None, "ada")
    stored_id = vaults.key_ids()["web"]
    wrong = vaults.open({ENV_KEY: KEY_A})
    with pytest.raises(VaultKeyError, match="this vault was encrypted with another key") as caught:
        wrong.get("web")
    error = str(caught.value)
    assert stored_id in error and key_id(bytes.fromhex(KEY_A)) in error
    assert KEY_A not in error and vaults.key_file.read_text().strip() not in error
    assert caught.value.hint is not None and ENV_KEY in caught.value.hint
    # Nor does it add a row under its own key beside those it cannot read.
    with pytest.raises(VaultKeyError):
        wrong.put("db", "password", None, "x" * 8, None, "ada")
    assert vaults.key_ids() == {"web": stored_id}
    # A lost key's secret can still be removed, and one stored again under the key at hand.
    wrong.delete("web")
    assert wrong.put("db", "password", None, "x" * 8, None, "ada").key_id == key_id(bytes.fromhex(KEY_A))


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("abc123", "must be 64 hex characters (32 bytes), not 6"),
        ("z" * 64, "holds a character that is not a hex digit"),
        ("a1" * 40, "not 80"),
    ],
)
def test_a_malformed_secret_key_variable_is_a_config_error_that_quotes_nothing(
    vaults: Vaults, given: str, says: str
) -> None:
    vault = vaults.open({ENV_KEY: given})
    assert vault.list() == [], "a command that needs no secret is not stopped by it"
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        vault.put("web", "password", None, CANARY, None, "ada")
    assert given not in str(caught.value) and "openssl rand -hex 32" in (caught.value.hint or "")


def test_the_vault_key_is_never_the_signing_key(vaults: Vaults, tmp_path: Path) -> None:
    same = vaults.open({ENV_KEY: KEY_A, "OPSMITH_AUDIT_KEY": KEY_A})
    with pytest.raises(ConfigError, match="OPSMITH_SECRET_KEY is the same as OPSMITH_AUDIT_KEY"):
        same.put("web", "password", None, CANARY, None, "ada")
    with pytest.raises(ConfigError, match="secret_key_file and key_file are the same file"):
        key_source(tmp_path / "k", {}, signing_key_file=tmp_path / "k")


# -- rotation -------------------------------------------------------------------------------------


def _fill(vault: SecretRepository) -> None:
    vault.put("a", "password", "deploy", CANARY + "-a", None, "ada")
    vault.put("b", "token", None, CANARY + "-b", None, "ada")
    vault.put("c", "password", None, CANARY + "-c", "phrase-c", "ada")


def _values(vault: SecretRepository) -> dict[str, str]:
    return {info.name: vault.get(info.name).secret.get_secret_value() for info in vault.list()}


def test_a_rotation_re_encrypts_every_row_under_a_new_key_file(vaults: Vaults) -> None:
    vault = vaults.open()
    _fill(vault)
    old_text = vaults.key_file.read_text()
    rotation = vault.rotate()
    new_text = vaults.key_file.read_text()
    assert new_text != old_text and stat.S_IMODE(vaults.key_file.stat().st_mode) == 0o600
    assert not vaults.next_file.exists()
    assert (rotation.count, rotation.names, rotation.swap_variables) == (3, ["a", "b", "c"], False)
    assert rotation.from_key_ids == [key_id(bytes.fromhex(old_text))]
    assert rotation.to_key_id == key_id(bytes.fromhex(new_text))
    assert set(vaults.key_ids().values()) == {rotation.to_key_id}
    assert _values(vaults.open()) == {"a": CANARY + "-a", "b": CANARY + "-b", "c": CANARY + "-c"}
    passphrase = vaults.open().get("c").passphrase
    assert passphrase is not None and passphrase.get_secret_value() == "phrase-c"
    with pytest.raises(VaultKeyError):
        vaults.open({ENV_KEY: old_text.strip()}).get("a")


def test_a_rotation_that_fails_midway_changes_nothing(vaults: Vaults) -> None:
    vault = vaults.open()
    _fill(vault)
    old_text, before = vaults.key_file.read_text(), vaults.key_ids()
    with vaults.raw() as connection:
        # Row 'b' cannot be re-encrypted: one flipped byte of its tag. 'a' comes before it.
        (sealed,) = connection.execute("SELECT sealed FROM secrets WHERE name = 'b'").fetchone()
        connection.execute(
            "UPDATE secrets SET sealed = ? WHERE name = 'b'", (sealed[:-1] + bytes([sealed[-1] ^ 1]),)
        )
    with pytest.raises(VaultError, match="'b' does not decrypt"):
        vault.rotate()
    assert vaults.key_ids() == before and vaults.key_file.read_text() == old_text
    assert not vaults.next_file.exists()
    fresh = vaults.open()
    assert fresh.get("a").secret.get_secret_value() == CANARY + "-a"
    assert fresh.get("c").secret.get_secret_value() == CANARY + "-c"


def test_killed_after_the_next_key_was_written_but_before_the_commit(vaults: Vaults) -> None:
    vault = vaults.open()
    _fill(vault)
    old_text, before = vaults.key_file.read_text(), vaults.key_ids()
    # What step 1 of a rotation leaves when the process dies before its transaction commits.
    staged = KeyFile(vaults.next_file, what="next vault key", env_var=ENV_KEY, lost="")
    assert staged.create(os.urandom(32))
    fresh = vaults.open()
    assert _values(fresh) == {"a": CANARY + "-a", "b": CANARY + "-b", "c": CANARY + "-c"}
    assert not vaults.next_file.exists(), "the unused next key was removed"
    assert vaults.key_file.read_text() == old_text and vaults.key_ids() == before
    assert fresh.rotate().count == 3


def test_killed_after_the_commit_but_before_the_rename(vaults: Vaults) -> None:
    vault = vaults.open()
    _fill(vault)
    old_text = vaults.key_file.read_text()
    rotation = vault.rotate()
    new_text = vaults.key_file.read_text()
    # Put the files back as step 3 found them: the rows are under the new key, still in `.next`.
    _write_key(vaults.next_file, new_text.strip())
    _write_key(vaults.key_file, old_text.strip())
    fresh = vaults.open()
    assert _values(fresh) == {"a": CANARY + "-a", "b": CANARY + "-b", "c": CANARY + "-c"}
    assert vaults.key_file.read_text() == new_text and not vaults.next_file.exists()
    assert set(vaults.key_ids().values()) == {rotation.to_key_id}


def test_a_process_that_loaded_the_old_key_writes_under_the_new_one(vaults: Vaults) -> None:
    first, second = vaults.open(), vaults.open()
    first.put("a", "password", None, CANARY, None, "ada")
    assert second.get("a").secret.get_secret_value() == CANARY  # `second` holds the old key now
    rotation = first.rotate()
    assert second.put("b", "password", None, "b-secret-value", None, "ada").key_id == rotation.to_key_id
    assert second.get("a").secret.get_secret_value() == CANARY
    assert vaults.open().get("b").secret.get_secret_value() == "b-secret-value"


def test_an_empty_vault_rotates_and_its_first_secret_takes_the_new_key(vaults: Vaults) -> None:
    first, second = vaults.open(), vaults.open()
    first.put("a", "password", None, CANARY, None, "ada")
    second.get("a")
    first.delete("a")
    rotation = first.rotate()
    assert (rotation.count, rotation.from_key_ids) == (0, [])
    assert second.put("b", "password", None, CANARY, None, "ada").key_id == rotation.to_key_id


def test_with_the_key_in_the_environment_the_new_one_comes_from_the_environment(vaults: Vaults) -> None:
    _fill(vaults.open({ENV_KEY: KEY_A}))
    with pytest.raises(ConfigError, match=f"{ENV_NEW_KEY}, which is not set") as caught:
        vaults.open({ENV_KEY: KEY_A}).rotate()
    assert "openssl rand -hex 32" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="the same key"):
        vaults.open({ENV_KEY: KEY_A, ENV_NEW_KEY: KEY_A}).rotate()
    rotation = vaults.open({ENV_KEY: KEY_A, ENV_NEW_KEY: KEY_B}).rotate()
    assert rotation.swap_variables and rotation.to_key_id == key_id(bytes.fromhex(KEY_B))
    assert not vaults.key_file.exists() and not vaults.next_file.exists(), "no key is written to a file"
    expected = {"a": CANARY + "-a", "b": CANARY + "-b", "c": CANARY + "-c"}
    # Until the variables are swapped both keys are at hand; afterwards the new one alone is.
    assert _values(vaults.open({ENV_KEY: KEY_A, ENV_NEW_KEY: KEY_B})) == expected
    assert _values(vaults.open({ENV_KEY: KEY_B})) == expected
    with pytest.raises(VaultKeyError):
        vaults.open({ENV_KEY: KEY_A}).get("a")

"""The credential vault's rules and use cases, over in-memory fakes: names and kinds it takes, who
may store, list, rotate and remove, that keys and certificates are checked without being quoted,
and that no value reaches the audit trail."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import UsageError
from opsmith.domain.identity import Identity
from opsmith.domain.vault import (
    KINDS,
    NAME_PATTERN,
    UnknownSecretError,
    check_kind,
    check_name,
    is_encrypted_private_key,
    key_id,
    unknown_secret,
)
from opsmith.services.access import AccessRefused
from opsmith.services.secrets import (
    credential,
    delete_secret,
    list_secrets,
    needs_passphrase,
    rotate_key,
    set_secret,
)
from tests.fakes import FakeTools, FakeWorld, fake_app

RBAC = """
rbac:
  users: {vic: viewer, bob: deployer, ada: admin}
"""
ADA = Identity(user="ada", role="admin", source="config")
BOB = Identity(user="bob", role="deployer", source="config")
VIC = Identity(user="vic", role="viewer", source="config")
STRANGER = Identity(user="mallory", role="viewer", source="os-user")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world() -> FakeWorld:
    return fake_app(RBAC, FakeTools(specs=[]))


def audit_json(world: FakeWorld) -> str:
    return json.dumps([e.model_dump(mode="json") for e in world.audit.chain])


_PRIVATE = ed25519.Ed25519PrivateKey.generate()
OPENSSH_KEY = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()
ENCRYPTED_KEY = _PRIVATE.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"pass phrase 1"),
).decode()


def _certificate() -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "winrm.example.test")])
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_PRIVATE.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(_PRIVATE, None)
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


CERTIFICATE = _certificate()


# -- names, kinds, key ids ------------------------------------------------------------------------

_FLAWS = re.compile(
    r"that is not a valid secret name: (it is empty|it has \d+ characters|it does not start with a letter"
    r" or digit|it holds a character other than letters, digits, '\.', '_' or '-')"
)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_is_a_valid_name_or_an_error_that_quotes_none_of_it(text: str) -> None:
    try:
        assert check_name(text) == text
    except UsageError as error:
        # One of a few fixed sentences: a pasted value is never echoed back.
        assert _FLAWS.fullmatch(error.message), error.message
        assert not NAME_PATTERN.fullmatch(text)
    else:
        assert NAME_PATTERN.fullmatch(text) and len(text) <= 128


@given(st.from_regex(NAME_PATTERN, fullmatch=True))
def test_every_name_of_the_pattern_is_valid(name: str) -> None:
    assert check_name(name) == name


def test_names_at_the_edges() -> None:
    assert check_name("a") == "a" and check_name("x" * 128) == "x" * 128
    for bad, flaw in [
        ("", "empty"),
        ("x" * 129, "129 characters"),
        ("-db", "start with"),
        ("é", "start with"),
        ("db password", "a character other"),
        ("db/password", "a character other"),
    ]:
        with pytest.raises(UsageError, match=flaw):
            check_name(bad)


def test_the_kinds_are_the_credentials_kinds() -> None:
    assert KINDS == ("password", "ssh_key", "token", "certificate")
    assert [check_kind(kind) for kind in KINDS] == list(KINDS)
    with pytest.raises(UsageError, match="unknown secret kind 'pgp'") as caught:
        check_kind("pgp")
    assert caught.value.hint == "use one of: password, ssh_key, token, certificate"


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_a_key_id_is_short_stable_and_tells_keys_apart(one: bytes, other: bytes) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", key_id(one))
    assert key_id(one) == key_id(bytes(one))
    assert (key_id(one) == key_id(other)) == (one == other)
    assert one.hex()[:16] not in key_id(one)


def test_an_unknown_name_names_the_nearest_ones() -> None:
    error = unknown_secret("web-pasword", ["web-password", "db-password", "api-token"])
    assert isinstance(error, UnknownSecretError) and isinstance(error, UsageError)
    assert error.message == "no secret named 'web-pasword' in the vault"
    assert error.hint is not None and error.hint.startswith("did you mean 'web-password'")
    assert "api-token" not in error.hint
    assert "shows the names" in (unknown_secret("zzz", ["web-password"]).hint or "")
    assert "vault is empty" in unknown_secret("web", []).message


# -- is a private key encrypted? --------------------------------------------------------------------


def _openssh_with_cipher(cipher: bytes) -> str:
    blob = b"openssh-key-v1\x00" + len(cipher).to_bytes(4, "big") + cipher + b"\x00\x00\x00\x04none"
    body = base64.b64encode(blob).decode()
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def test_encrypted_keys_are_told_from_plain_ones_in_every_format() -> None:
    assert not is_encrypted_private_key(OPENSSH_KEY)
    assert is_encrypted_private_key(ENCRYPTED_KEY)
    assert is_encrypted_private_key(_openssh_with_cipher(b"aes256-ctr"))
    assert not is_encrypted_private_key(_openssh_with_cipher(b"none"))
    legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n"
    assert is_encrypted_private_key(legacy)
    putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: aes256-cbc\nComment: k\n"
    assert is_encrypted_private_key(putty)
    assert not is_encrypted_private_key(putty.replace("aes256-cbc", "none"))
    assert needs_passphrase("ssh_key", ENCRYPTED_KEY) and not needs_passphrase("password", ENCRYPTED_KEY)


@settings(max_examples=300, deadline=None)
@given(st.text() | st.builds(lambda b: _openssh_with_cipher(b)[:-30], st.binary(max_size=40)))
def test_any_text_is_encrypted_or_not_and_never_an_error(text: str) -> None:
    assert is_encrypted_private_key(text) in (True, False)


# -- who may do what --------------------------------------------------------------------------------


def test_an_admin_stores_a_secret_and_the_audit_trail_has_its_name_not_its_value(world: FakeWorld) -> None:
    info = set_secret(world.app, ADA, "web-password", "password", PASSWORD, "deploy", via="test")
    assert (info.name, info.kind, info.username, info.updated_by) == (
        "web-password",
        "password",
        "deploy",
        "ada",
    )
    assert info.key_id == world.vault.key_id and info.created_at == world.clock.now()
    assert "secret" not in info.model_dump() and PASSWORD not in info.model_dump_json()
    assert credential(world.app, "web-password").secret.get_secret_value() == PASSWORD

    assert world.audit.actions() == [("ada", "secret.set", "web-password")]
    assert world.audit.chain[0].details == {
        "name": "web-password",
        "kind": "password",
        "username": "deploy",
        "key_id": info.key_id,
        "replaced": False,
        "via": "test",
    }
    world.clock.advance(60)
    again = set_secret(world.app, ADA, "web-password", "password", PASSWORD + "!", via="test")
    assert again.created_at == info.created_at and again.updated_at == world.clock.now()
    assert world.audit.chain[-1].details["replaced"] is True
    assert PASSWORD not in audit_json(world)


def test_nobody_but_an_admin_stores_rotates_or_removes_and_nothing_changes(world: FakeWorld) -> None:
    set_secret(world.app, ADA, "web-password", "password", PASSWORD, via="test")
    before = (dict(world.vault.rows), world.vault.key_id, len(world.audit.chain))
    for who in (BOB, VIC):
        with pytest.raises(AccessRefused, match="may not admin") as caught:
            set_secret(world.app, who, "web-password", "password", "overwritten", via="test")
        assert caught.value.hint is not None and "admin" in caught.value.hint
        with pytest.raises(AccessRefused):
            rotate_key(world.app, who, via="test")
        with pytest.raises(AccessRefused):
            delete_secret(world.app, who, "web-password", via="test")
    assert (dict(world.vault.rows), world.vault.key_id, len(world.audit.chain)) == before
    assert "overwritten" not in audit_json(world)


def test_anyone_configured_lists_the_metadata_and_a_stranger_nothing(world: FakeWorld) -> None:
    set_secret(world.app, ADA, "web-password", "password", PASSWORD, via="test")
    set_secret(world.app, ADA, "deploy-key", "ssh_key", OPENSSH_KEY, "deploy", via="test")
    listed = list_secrets(world.app, VIC)
    assert [(i.name, i.kind) for i in listed] == [("deploy-key", "ssh_key"), ("web-password", "password")]
    assert list_secrets(world.app, BOB) == listed
    dumped = json.dumps([i.model_dump(mode="json") for i in listed])
    assert PASSWORD not in dumped and "PRIVATE KEY" not in dumped
    with pytest.raises(AccessRefused, match="mallory is not a configured user") as caught:
        list_secrets(world.app, STRANGER)
    assert caught.value.hint == "ask an admin to add you under rbac.users"


def test_without_rbac_the_local_admin_does_everything() -> None:
    world = fake_app("", FakeTools(specs=[]))
    local = Identity(user="owner", role="admin", source="embedded-admin")
    set_secret(world.app, local, "api", "token", "tok-123456", via="test")
    assert [i.name for i in list_secrets(world.app, local)] == ["api"]


def test_a_rotation_is_audited_with_key_ids_and_names_only(world: FakeWorld) -> None:
    set_secret(world.app, ADA, "a", "password", PASSWORD, via="test")
    set_secret(world.app, ADA, "b", "token", "tok-abcdef", via="test")
    old = world.vault.key_id
    rotation = rotate_key(world.app, ADA, via="test")
    assert (rotation.count, rotation.names, rotation.from_key_ids) == (2, ["a", "b"], [old])
    assert rotation.to_key_id == world.vault.key_id != old
    assert {i.key_id for i in list_secrets(world.app, ADA)} == {rotation.to_key_id}
    assert world.audit.actions()[-1] == ("ada", "secret.rotate", "vault")
    assert world.audit.chain[-1].details == {
        "count": 2,
        "names": ["a", "b"],
        "from_key_ids": [old],
        "to_key_id": rotation.to_key_id,
        "via": "test",
    }
    assert credential(world.app, "a").secret.get_secret_value() == PASSWORD


def test_a_removed_secret_is_gone_and_its_removal_audited(world: FakeWorld) -> None:
    set_secret(world.app, ADA, "web-password", "password", PASSWORD, via="test")
    removed = delete_secret(world.app, ADA, "web-password", via="test")
    assert removed.name == "web-password" and world.vault.rows == {}
    assert world.audit.actions()[-1] == ("ada", "secret.delete", "web-password")
    with pytest.raises(UnknownSecretError, match="no secret named 'web-password'"):
        delete_secret(world.app, ADA, "web-password", via="test")


def test_an_executor_takes_a_credential_by_name_and_an_unknown_one_names_the_nearest(
    world: FakeWorld,
) -> None:
    set_secret(world.app, ADA, "deploy-key", "ssh_key", ENCRYPTED_KEY, "deploy", "pass phrase 1", via="test")
    found = credential(world.app, "deploy-key")
    assert (found.kind, found.username) == ("ssh_key", "deploy")
    assert found.passphrase is not None and found.passphrase.get_secret_value() == "pass phrase 1"
    assert "pass phrase 1" not in repr(found) and "PRIVATE" not in found.model_dump_json()
    with pytest.raises(UnknownSecretError) as caught:
        credential(world.app, "deploy-kee")
    assert caught.value.hint is not None and "'deploy-key'" in caught.value.hint
    with pytest.raises(UsageError, match="not a valid secret name"):
        credential(world.app, "deploy key")


# -- the value is checked, never quoted ------------------------------------------------------------


def test_an_ssh_key_must_be_a_private_key_that_opens_with_its_passphrase(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match="is encrypted, and no passphrase was given"):
        set_secret(world.app, ADA, "k", "ssh_key", ENCRYPTED_KEY, via="test")
    with pytest.raises(UsageError, match="not a private key opsmith can use") as caught:
        set_secret(world.app, ADA, "k", "ssh_key", ENCRYPTED_KEY, passphrase="wrong phrase", via="test")
    assert "wrong phrase" not in str(caught.value) and "BEGIN" not in str(caught.value)
    with pytest.raises(UsageError, match="not a private key"):
        set_secret(world.app, ADA, "k", "ssh_key", "ssh-ed25519 AAAA... a public key", via="test")
    assert world.vault.rows == {} and world.audit.chain == []
    set_secret(world.app, ADA, "k", "ssh_key", OPENSSH_KEY, via="test")
    assert world.vault.rows["k"][0].kind == "ssh_key"


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["ssh_key", "certificate"]), text=st.text(min_size=1))
def test_a_value_that_is_no_key_nor_certificate_is_refused_without_being_quoted(kind: str, text: str) -> None:
    world = fake_app(RBAC, FakeTools(specs=[]))
    value = f"zq9-{text}"  # a marker no message holds, so a quoted value shows
    with pytest.raises(UsageError) as caught:
        set_secret(world.app, ADA, "k", kind, value, via="test")
    assert value not in str(caught.value) and value not in (caught.value.hint or "")
    assert world.vault.rows == {}


def test_a_certificate_must_be_pem_x509(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match=r"not a PEM X\.509 certificate"):
        set_secret(world.app, ADA, "c", "certificate", CERTIFICATE.replace("CERTIFICATE", "CERT"), via="test")
    info = set_secret(world.app, ADA, "c", "certificate", CERTIFICATE, via="test")
    assert info.kind == "certificate"


def test_empty_values_stray_passphrases_and_long_usernames_are_refused(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match="is empty"):
        set_secret(world.app, ADA, "p", "password", " \n", via="test")
    with pytest.raises(UsageError, match="a password takes no passphrase"):
        set_secret(world.app, ADA, "p", "password", PASSWORD, passphrase="extra", via="test")
    with pytest.raises(UsageError, match="more than 65536 characters"):
        set_secret(world.app, ADA, "p", "token", "x" * 65537, via="test")
    with pytest.raises(UsageError, match="a username has 1 to 256 characters"):
        set_secret(world.app, ADA, "p", "password", PASSWORD, "u" * 257, via="test")
    with pytest.raises(UsageError, match="unknown secret kind"):
        set_secret(world.app, ADA, "p", "pgp", PASSWORD, via="test")
    assert world.vault.rows == {} and world.audit.chain == []

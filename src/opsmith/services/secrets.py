"""The credential vault's use cases: admins store, rotate and remove secrets, anyone known lists
them (names and metadata only), and the executors take a credential out to log in with.

A value exists in what the caller passed and in what `credential` returns, nowhere else: the
audit trail records names, kinds and key ids, and is given the values to redact as a second guard.
"""

from __future__ import annotations

from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.errors import UsageError
from opsmith.domain.hosts import Credential, CredentialKind
from opsmith.domain.identity import Action, Identity
from opsmith.domain.redaction import redact_text
from opsmith.domain.vault import (
    MAX_SECRET_CHARS,
    MAX_USERNAME_CHARS,
    KeyRotation,
    SecretInfo,
    check_kind,
    check_name,
    is_encrypted_private_key,
)
from opsmith.services.access import AccessRefused, require

_ADMIN_HINT = "storing, rotating and removing secrets are admin actions"


def set_secret(
    app: App,
    identity: Identity,
    name: str,
    kind: str,
    value: str,
    username: str | None = None,
    passphrase: str | None = None,
    *,
    via: str = "cli",
) -> SecretInfo:
    """Store (or replace) a secret, encrypted. Admin only. An ssh_key must be a private key that
    opens with `passphrase`, a certificate a PEM X.509 certificate; no error quotes the value."""
    name, checked_kind = check_set(app, identity, name, kind)
    _check_value(name, checked_kind, value, passphrase)
    if username is not None and not 0 < len(username) <= MAX_USERNAME_CHARS:
        raise UsageError(f"a username has 1 to {MAX_USERNAME_CHARS} characters", hint="fix --username")
    info = app.vault.put(name, checked_kind, username, value, passphrase, identity.user)
    app.audit.append(
        identity.user,
        "secret.set",
        name,
        {
            "name": name,
            "kind": checked_kind,
            "username": username,
            "key_id": info.key_id,
            "replaced": info.created_at != info.updated_at,
            "via": via,
        },
        secrets=[s for s in (value, passphrase) if s],
    )
    return info


def check_set(app: App, identity: Identity, name: str, kind: str) -> tuple[str, CredentialKind]:
    """What `set_secret` checks before it looks at the value (the identity's right, the name, the
    kind), for a face to check before it asks a person to type a secret."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    return check_name(name), check_kind(kind)


def list_secrets(app: App, identity: Identity) -> list[SecretInfo]:
    """Every stored secret's name, kind, username and key id, by name; never a value. Anyone
    known to the configuration may look (a host's credential name is no secret)."""
    if identity.source == "os-user":
        raise AccessRefused(
            f"{identity.user} is not a configured user, so may not see the vault's names",
            hint="ask an admin to add you under rbac.users",
        )
    return app.vault.list()


def delete_secret(app: App, identity: Identity, name: str, *, via: str = "cli") -> SecretInfo:
    """Remove a secret. Admin only; works without the key (to clear a secret whose key is lost)."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    info = app.vault.delete(check_name(name))
    app.audit.append(
        identity.user,
        "secret.delete",
        name,
        {"name": name, "kind": info.kind, "key_id": info.key_id, "via": via},
    )
    return info


def rotate_key(app: App, identity: Identity, *, via: str = "cli") -> KeyRotation:
    """Re-encrypt every secret under a new key, in one transaction. Admin only. With the key in
    OPSMITH_SECRET_KEY the new one is OPSMITH_SECRET_KEY_NEW, which the person then makes the key."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    rotation = app.vault.rotate()
    app.audit.append(
        identity.user,
        "secret.rotate",
        "vault",
        {
            "count": rotation.count,
            "names": rotation.names,
            "from_key_ids": rotation.from_key_ids,
            "to_key_id": rotation.to_key_id,
            "via": via,
        },
    )
    return rotation


def rotation_report(rotation: KeyRotation) -> dict[str, Any]:
    """A rotation as every face shows it (`opsmith secrets rotate --json`, the API): what was done,
    and under `next` what the person must do now (None when nothing)."""
    from opsmith.store.vault_keys import ENV_KEY, ENV_NEW_KEY

    swap = f"now set {ENV_KEY} to the value of {ENV_NEW_KEY}, then unset {ENV_NEW_KEY}"
    return {**rotation.model_dump(mode="json"), "next": swap if rotation.swap_variables else None}


def credential(app: App, name: str) -> Credential:
    """The credential `name` decrypted, for an executor about to log in. Internal: no face offers
    it, so it takes no identity (the run that needs it was approved and is checked on its own)."""
    return app.vault.get(check_name(name))


def needs_passphrase(kind: str, value: str) -> bool:
    """Whether the value is an ssh_key protected by a passphrase (so a face should ask for it)."""
    return kind == "ssh_key" and is_encrypted_private_key(value)


def _check_value(name: str, kind: str, value: str, passphrase: str | None) -> None:
    if not value.strip():
        raise UsageError(f"the value given for secret {name!r} is empty", hint="give the secret's value")
    if len(value) > MAX_SECRET_CHARS or len(passphrase or "") > MAX_SECRET_CHARS:
        raise UsageError(
            f"the value given for secret {name!r} has more than {MAX_SECRET_CHARS} characters",
            hint="give only the secret itself",
        )
    if passphrase is not None and kind != "ssh_key":
        raise UsageError(
            f"a {kind} takes no passphrase, only an ssh_key does", hint="leave the passphrase out"
        )
    if kind == "ssh_key":
        _check_private_key(name, value, passphrase)
    elif kind == "certificate":
        _check_certificate(name, value)


def _check_private_key(name: str, value: str, passphrase: str | None) -> None:
    import asyncssh  # what the SSH adapter reads keys with: a key it reads here, it reads there

    if passphrase is None and is_encrypted_private_key(value):
        raise UsageError(
            f"the ssh_key for secret {name!r} is encrypted, and no passphrase was given",
            hint="give its passphrase (`--passphrase-file PATH`, or at the prompt)",
        )
    try:
        asyncssh.import_private_key(value, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
        reason = redact_text(str(exc), [s for s in (value, passphrase) if s])
        raise UsageError(
            f"the value given for secret {name!r} is not a private key opsmith can use: {reason}",
            hint="give an OpenSSH, PEM or PuTTY private key, with its passphrase if it has one",
        ) from exc


def _check_certificate(name: str, value: str) -> None:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(value.encode("utf-8"))
    except ValueError as exc:
        raise UsageError(
            f"the value given for secret {name!r} is not a PEM X.509 certificate",
            hint="give the certificate's PEM text, from its -----BEGIN CERTIFICATE----- line",
        ) from exc

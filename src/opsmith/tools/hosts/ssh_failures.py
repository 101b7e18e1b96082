"""Translate what asyncssh and the socket layer raise into a HostFailure and one line a person reads:
what happened on which host, and what to do about it. Reasons name hosts, users, files and key
fingerprints, never a secret (the runner redacts them once more anyway)."""

from __future__ import annotations

import importlib.util

import asyncssh

from opsmith.domain.hosts import Credential, HostFailure
from opsmith.tools.hosts.known_hosts import host_pattern

__all__ = [
    "HostKeyProblem",
    "connect_failure",
    "host_key_changed",
    "host_key_unknown",
    "key_import_failure",
]

_OPENSSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----"


class HostKeyProblem:
    """What the host-key check saw, for the reason of a refused connection."""

    __slots__ = ("fingerprint", "known_hosts", "verdict")

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts
        self.verdict: HostFailure | None = None
        self.fingerprint: str | None = None


def host_key_unknown(where: str, address: str, port: int, fingerprint: str | None, known_hosts: str) -> str:
    key = f"host key {fingerprint}" if fingerprint else "its host key"
    scan = f"ssh-keyscan -p {port} {address}" if port != 22 else f"ssh-keyscan {address}"
    return (
        f"{where}: {key} is not recorded in {known_hosts} and strict host key checking is on; "
        f"check the fingerprint with the host's owner and add it (`{scan} >> {known_hosts}`), "
        "or set fleet.trust_on_first_use: true"
    )


def host_key_changed(where: str, address: str, port: int, fingerprint: str | None, known_hosts: str) -> str:
    key = f"host key {fingerprint}" if fingerprint else "the host key it offers"
    return (
        f"{where}: {key} differs from the one recorded in {known_hosts}; not connecting, as this may "
        "be a man-in-the-middle. If the host was reinstalled, check its new key with its owner and "
        f"replace the old line (`ssh-keygen -R '{host_pattern(address, port)}' -f {known_hosts}`)"
    )


def connect_failure(
    exc: BaseException,
    *,
    where: str,
    address: str,
    port: int,
    user: str,
    credential: Credential,
    timeout: float,
    host_key: HostKeyProblem,
    known_keys: bool,
) -> tuple[HostFailure, str]:
    """The failure of opening and logging in to one host (nothing was run there)."""
    if isinstance(exc, TimeoutError):
        return HostFailure.UNREACHABLE, (
            f"{where}: no SSH login within {timeout:g}s; check that the host is up and reachable "
            "(address, port, firewall), or raise fleet.connect_timeout"
        )
    if isinstance(exc, ConnectionRefusedError):
        return HostFailure.UNREACHABLE, (
            f"{where}: connection refused; check that sshd runs there and that the inventory's "
            "address and port are right"
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        known_hosts = host_key.known_hosts
        if host_key.verdict is HostFailure.HOST_KEY_UNKNOWN:
            reason = host_key_unknown(where, address, port, host_key.fingerprint, known_hosts)
            return HostFailure.HOST_KEY_UNKNOWN, reason
        # A recorded key that differs, or one asyncssh refused itself (marked @revoked).
        return HostFailure.HOST_KEY_CHANGED, host_key_changed(
            where, address, port, host_key.fingerprint, known_hosts
        )
    if isinstance(exc, asyncssh.KeyExchangeFailed) and known_keys:
        # Only the recorded key types are offered to a known host: none of them matched.
        return HostFailure.HOST_KEY_CHANGED, (
            f"{where}: the host offers none of the key types recorded for it in "
            f"{host_key.known_hosts} ({exc.reason}); not connecting. If the host was reinstalled, "
            "check its new key with its owner and replace the old line"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        what = "password" if credential.kind == "password" else "key"
        return HostFailure.AUTH_REJECTED, (
            f"{where}: the server refused credential {credential.name!r} for user {user!r}; check "
            f"that its {what} is accepted for that user (authorized_keys, password) and the user name "
            f"(store it again with `opsmith secrets set {credential.name}`)"
        )
    if isinstance(exc, asyncssh.ConnectionLost):
        return HostFailure.UNREACHABLE, (
            f"{where}: the server closed the connection before the login completed ({exc.reason}); "
            "check its sshd log (MaxStartups, AllowUsers, load)"
        )
    if isinstance(exc, asyncssh.DisconnectError):
        return HostFailure.PROTOCOL, f"{where}: SSH handshake failed: {exc.reason}; check its sshd log"
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return HostFailure.UNREACHABLE, (
            f"{where}: cannot connect: {detail}; check the address and the network path to it"
        )
    return HostFailure.PROTOCOL, f"{where}: SSH connection failed: {type(exc).__name__}: {exc}"


def key_import_failure(credential: Credential, exc: ValueError) -> str:
    """Why the private key of an ssh_key credential cannot be used (before any connection)."""
    secret = credential.secret.get_secret_value()
    base = f"cannot use the private key of credential {credential.name!r}: {exc}"
    if (
        isinstance(exc, asyncssh.KeyEncryptionError)
        and secret.lstrip().startswith(_OPENSSH_KEY)
        and importlib.util.find_spec("bcrypt") is None
    ):
        return (
            f"{base}; decrypting OpenSSH-format keys needs the bcrypt package, which is not installed: "
            "install it, or store the key encrypted as PKCS#8 (`ssh-keygen -p -m PKCS8`, RSA or ECDSA)"
        )
    if credential.passphrase is None:
        return (
            f"{base}; if the key is encrypted, store it with its passphrase "
            f"(`opsmith secrets set {credential.name}`)"
        )
    return (
        f"{base}; check the key and the passphrase stored with it "
        f"(store them again with `opsmith secrets set {credential.name}`)"
    )

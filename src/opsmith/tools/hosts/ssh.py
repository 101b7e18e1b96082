"""The SSH adapter: commands and files on many Linux hosts at once, over asyncssh.

Every call answers a `HostResult` and never raises for a host (only cancellation propagates): a
host that is down, refuses the key, hangs or drops the connection is its own result, and the others
go on. Limits:
- `forks` host operations at once, like Ansible's -f: each holds a slot for its connect and its
  command (idle kept connections hold none);
- `handshakes` of them at once in key exchange and authentication, the costly part of a cold
  connection: thousands at once make logins fail (asyncssh's maintainer, ronf/asyncssh#573).

One connection is kept per (address, port, user, credential) and reused by later commands; a lock
per key has concurrent first commands to one host open it once. The credential is part of the key so
that a changed or wrong credential is tried at once, never hidden behind a login made with another.
A connection found dead is opened again, once, on the next command. Host keys are checked strictly
against one known_hosts file; with trust-on-first-use a host with no recorded key has the key it
offers recorded, and a key that differs from a recorded one is refused either way. Secrets never
leave in a result: every reason and output tail is redacted with the credential's secret values.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.encryption import get_default_encryption_algs

from opsmith.domain.hosts import Credential, Host, HostFailure, HostResult
from opsmith.domain.redaction import Redactor
from opsmith.errors import OpsmithError
from opsmith.tools.hosts.known_hosts import KnownHostsError, KnownHostsFile, recorded_keys
from opsmith.tools.hosts.output import OutputTail
from opsmith.tools.hosts.shell import sudo_command
from opsmith.tools.hosts.ssh_failures import (
    HostKeyProblem,
    connect_failure,
    host_key_changed,
    key_import_failure,
)
from opsmith.tools.hosts.ssh_settings import SshSettings

__all__ = ["RemoteCommand", "SshExecutor", "SshSettings"]

_log = logging.getLogger(__name__)

_READ_SIZE = 65536
# After a timeout: how long the channel may take to close once signalled and closed. A command
# that outlives it (sshd refuses signals to root logins and forced commands) keeps its channel open,
# so the whole connection is dropped instead, and the call still returns.
_CLOSE_GRACE = 1.0
# A backstop over asyncssh's own connect_timeout, which covers TCP, key exchange and login.
_CONNECT_MARGIN = 1.0


@dataclass(frozen=True)
class RemoteCommand:
    """One host's command for `SshExecutor.run_many`: the arguments of `run` besides the host."""

    command: str
    stdin: str | bytes | None = None
    timeout: float | None = None  # seconds; None: the settings' command_timeout
    sudo: bool = False


CredentialFor = Callable[[Host], Credential]
CommandFor = Callable[[Host], "str | RemoteCommand"]
OnResult = Callable[[HostResult], None]
_Key = tuple[str, int, str, Credential]  # address, port, user, credential: one kept connection


class _Failed(Exception):
    """A host operation that ended without an exit code; becomes its HostResult."""

    def __init__(self, failure: HostFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


class _NotSent(Exception):
    """The server would not open a channel on a connection: nothing was sent to the host."""


class _Slot:
    """The kept connection of one (address, port, user, credential), and the lock that opens it once."""

    __slots__ = ("connection", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.connection: asyncssh.SSHClientConnection | None = None


class _HostKeyCheck(asyncssh.SSHClient):
    """Called by asyncssh for a host key the known_hosts file does not list for the host."""

    def __init__(
        self, known: asyncssh.SSHKnownHosts, trust_on_first_use: bool, problem: HostKeyProblem
    ) -> None:
        self._known = known
        self._trust = trust_on_first_use
        self.problem = problem
        self.learned: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.problem.fingerprint = key.get_fingerprint()
        if recorded_keys(self._known, host, port, addr):
            self.problem.verdict = HostFailure.HOST_KEY_CHANGED
            return False
        if self._trust:
            self.learned = key
            return True
        self.problem.verdict = HostFailure.HOST_KEY_UNKNOWN
        return False


@dataclass(frozen=True)
class _Target:
    """One host as a call reaches it: who logs in where, and what hides the credential's secrets."""

    host: Host
    credential: Credential
    user: str
    redactor: Redactor

    @property
    def key(self) -> _Key:
        return (self.host.address, self.host.effective_port, self.user, self.credential)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host.address}:{self.host.effective_port}"


class SshExecutor:
    """Runs commands and puts files on hosts over SSH, under the limits of its `SshSettings`.

    Use it as an async context manager, or call `close()`: kept connections stay open until then.
    One executor per event loop (its limits and locks belong to the loop that first uses them).
    """

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._forks = asyncio.Semaphore(settings.forks)
        self._handshakes = asyncio.Semaphore(settings.handshakes)
        self._known_hosts = KnownHostsFile(settings.known_hosts)
        self._slots: dict[_Key, _Slot] = {}
        self._keys: dict[Credential, asyncssh.SSHKey | str] = {}
        self._key_locks: dict[Credential, asyncio.Lock] = {}

    async def __aenter__(self) -> SshExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(
        self,
        host: Host,
        credential: Credential,
        command: str,
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        sudo: bool = False,
    ) -> HostResult:
        """Run `command` on `host` through its login shell: its exit code and output tails, or the
        failure that kept it from one. `sudo` runs it as root with `sudo -n`; a password credential's
        password goes to sudo on stdin, if sudo asks for one (never in argv)."""
        limit = self.settings.command_timeout if timeout is None else timeout
        feed = stdin.encode() if isinstance(stdin, str) else stdin or b""
        if sudo:
            with_password = credential.kind == "password"
            command = sudo_command(command, password=with_password)
            if with_password:
                feed = credential.secret.get_secret_value().encode() + b"\n" + feed

        async def execute(
            target: _Target, connection: asyncssh.SSHClientConnection, started: float
        ) -> HostResult:
            return await self._execute(target, connection, command, feed, limit, started)

        return await self._on_host(host, credential, execute)

    async def put_file(
        self,
        host: Host,
        credential: Credential,
        source: bytes | Path,
        remote_path: str,
        mode: int = 0o644,
        *,
        timeout: float | None = None,
    ) -> HostResult:
        """Write `source` (bytes, or a local file) to `remote_path` over SFTP, then set `mode`. The
        file is created readable by its owner only, so it is never readable by others before its
        mode is set. Exit code 0 on success; 1 with the SFTP error when the host refused it."""
        limit = self.settings.command_timeout if timeout is None else timeout
        if isinstance(source, Path):
            try:
                data = await asyncio.to_thread(source.read_bytes)
            except OSError as exc:
                return HostResult(
                    host=host.name,
                    failure=HostFailure.REFUSED,
                    reason=f"cannot read local file {source}: {exc.strerror or exc}; nothing was sent",
                )
        else:
            data = source

        async def upload(
            target: _Target, connection: asyncssh.SSHClientConnection, started: float
        ) -> HostResult:
            return await self._upload(target, connection, data, remote_path, mode, limit, started)

        return await self._on_host(host, credential, upload)

    async def run_many(
        self,
        hosts: Sequence[Host],
        credential_for: CredentialFor,
        command_for: CommandFor,
        *,
        on_result: OnResult | None = None,
        timeout: float | None = None,
    ) -> list[HostResult]:
        """Run each host's command on all `hosts` at once, under the limits: results in host order.
        `on_result` is called as each host finishes (for progress); one host's failure, or an error
        from `credential_for`/`command_for` for it (a REFUSED result), stops no other. `timeout`
        applies to commands given as plain strings."""
        results: list[HostResult | None] = [None] * len(hosts)

        async def one(index: int, host: Host) -> None:
            result = await self._one(host, credential_for, command_for, timeout)
            results[index] = result
            if on_result is not None:
                try:
                    on_result(result)
                except Exception:
                    _log.exception("on_result failed for host %s", host.name)

        async with asyncio.TaskGroup() as group:
            for index, host in enumerate(hosts):
                group.create_task(one(index, host))
        return [result for result in results if result is not None]

    async def close(self) -> None:
        """Close every kept connection (bounded: a connection that does not close is aborted)."""
        connections = [slot.connection for slot in self._slots.values() if slot.connection is not None]
        self._slots.clear()
        for connection in connections:
            connection.close()
        if connections:
            waits = [asyncio.ensure_future(c.wait_closed()) for c in connections]
            _, pending = await asyncio.wait(waits, timeout=_CLOSE_GRACE)
            for wait in pending:
                wait.cancel()
            for connection in connections:
                if not connection.is_closed():
                    connection.abort()

    # -- one host ---------------------------------------------------------------------------------

    async def _one(
        self, host: Host, credential_for: CredentialFor, command_for: CommandFor, timeout: float | None
    ) -> HostResult:
        try:
            credential = credential_for(host)
            spec = command_for(host)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, OpsmithError) else f"{type(exc).__name__}: {exc}"
            return HostResult(host=host.name, failure=HostFailure.REFUSED, reason=f"nothing sent: {detail}")
        if isinstance(spec, str):
            spec = RemoteCommand(spec, timeout=timeout)
        return await self.run(
            host, credential, spec.command, stdin=spec.stdin, timeout=spec.timeout, sudo=spec.sudo
        )

    async def _on_host(
        self,
        host: Host,
        credential: Credential,
        action: Callable[[_Target, asyncssh.SSHClientConnection, float], Awaitable[HostResult]],
    ) -> HostResult:
        redactor = Redactor(credential.secret_values())
        async with self._forks:
            started = time.monotonic()
            try:
                target = _Target(host, credential, _user(host, credential), redactor)
                connection, fresh = await self._connection(target)
                try:
                    return _redacted(await action(target, connection, started), redactor)
                except _NotSent as exc:
                    if fresh:
                        raise _Failed(HostFailure.UNREACHABLE, _no_session(target, exc)) from exc
                # The kept connection died unnoticed: open it again, once.
                self._forget(target, connection)
                connection, _ = await self._connection(target)
                try:
                    return _redacted(await action(target, connection, started), redactor)
                except _NotSent as exc:
                    raise _Failed(HostFailure.UNREACHABLE, _no_session(target, exc)) from exc
            except _Failed as failed:
                return _failure(host, failed.failure, failed.reason, redactor, started)
            except Exception as exc:
                _log.error("unexpected SSH error on host %s: %s", host.name, redactor.text(repr(exc)))
                reason = f"unexpected error: {type(exc).__name__}: {exc}"
                return _failure(host, HostFailure.PROTOCOL, reason, redactor, started)

    async def _connection(self, target: _Target) -> tuple[asyncssh.SSHClientConnection, bool]:
        """The kept connection to the target (True when opened just now)."""
        slot = self._slots.get(target.key)
        if slot is None:
            slot = self._slots[target.key] = _Slot()
        async with slot.lock:
            if slot.connection is not None and not slot.connection.is_closed():
                return slot.connection, False
            slot.connection = None
            slot.connection = await self._open(target)
            return slot.connection, True

    def _forget(self, target: _Target, connection: asyncssh.SSHClientConnection) -> None:
        slot = self._slots.get(target.key)
        if slot is not None and slot.connection is connection:
            slot.connection = None
        connection.abort()

    async def _open(self, target: _Target) -> asyncssh.SSHClientConnection:
        host, port = target.host, target.host.effective_port
        try:
            known = await self._known_hosts.load()
        except KnownHostsError as exc:
            raise _Failed(HostFailure.REFUSED, f"{exc}; fix or remove that file") from exc
        login = await self._login(target)
        problem = HostKeyProblem(str(self.settings.known_hosts))
        check = _HostKeyCheck(known, self.settings.trust_on_first_use, problem)
        timeout = self.settings.connect_timeout
        async with self._handshakes:
            try:
                async with asyncio.timeout(timeout + _CONNECT_MARGIN):
                    connection = await asyncssh.connect(
                        host.address,
                        port,
                        username=target.user,
                        known_hosts=known,
                        client_factory=lambda: check,
                        connect_timeout=timeout,
                        keepalive_interval=self.settings.keepalive_interval,
                        encryption_algs=PREFERRED_CIPHERS,
                        **login,
                        **_NO_LOCAL_FILES,
                    )
            except (OSError, asyncssh.Error) as exc:
                failure = connect_failure(
                    exc,
                    where=target.where,
                    address=host.address,
                    port=port,
                    user=target.user,
                    credential=target.credential,
                    timeout=timeout,
                    host_key=problem,
                    known_keys=bool(recorded_keys(known, host.address, port)),
                )
                raise _Failed(*failure) from exc
        if check.learned is not None and not await self._record(target, check.learned):
            connection.abort()
            reason = host_key_changed(
                target.where, host.address, port, problem.fingerprint, str(self.settings.known_hosts)
            )
            raise _Failed(HostFailure.HOST_KEY_CHANGED, reason)
        return connection

    async def _record(self, target: _Target, key: asyncssh.SSHKey) -> bool:
        try:
            recorded = await self._known_hosts.record(target.host.address, target.host.effective_port, key)
        except (OSError, KnownHostsError) as exc:
            # The key was trusted for this connection; only remembering it failed.
            _log.warning(
                "cannot record the host key of %s in %s: %s", target.where, self.settings.known_hosts, exc
            )
            return True
        if recorded:
            _log.info(
                "trusted on first use: recorded host key %s of %s in %s",
                key.get_fingerprint(),
                target.where,
                self.settings.known_hosts,
            )
        return recorded

    async def _login(self, target: _Target) -> dict[str, Any]:
        credential = target.credential
        if credential.kind == "password":
            return {
                "password": credential.secret.get_secret_value(),
                "client_keys": None,
                "preferred_auth": "keyboard-interactive,password",
            }
        if credential.kind == "ssh_key":
            return {"client_keys": [await self._private_key(credential)], "preferred_auth": "publickey"}
        raise _Failed(
            HostFailure.REFUSED,
            f"credential {credential.name!r} is a {credential.kind} credential; SSH logs in with an "
            "ssh_key or a password credential",
        )

    async def _private_key(self, credential: Credential) -> asyncssh.SSHKey:
        # Decrypting a key is costly (a KDF); done once per credential, off the event loop.
        cached = self._keys.get(credential)
        if cached is None:
            async with self._key_locks.setdefault(credential, asyncio.Lock()):
                cached = self._keys.get(credential)
                if cached is None:
                    cached = self._keys[credential] = await asyncio.to_thread(_import_key, credential)
        if isinstance(cached, str):
            raise _Failed(HostFailure.AUTH_REJECTED, cached)
        return cached

    # -- what runs on a connection ----------------------------------------------------------------

    async def _execute(
        self,
        target: _Target,
        connection: asyncssh.SSHClientConnection,
        command: str,
        feed: bytes,
        limit: float,
        started: float,
    ) -> HostResult:
        stdout, stderr = OutputTail(target.redactor), OutputTail(target.redactor)
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(limit):
                try:
                    process = await connection.create_process(command, encoding=None, request_pty=False)
                except asyncssh.ChannelOpenError as exc:
                    raise _NotSent(exc.reason) from exc
                await _exchange(process, feed, stdout, stderr)
                await process.wait_closed()
        except TimeoutError as exc:
            if process is not None:
                await self._stop(target, connection, process)
            raise _Failed(
                HostFailure.TIMED_OUT,
                f"{target.where}: the command did not finish within {limit:g}s; opsmith signalled it and "
                "closed its channel. It may have done part of its work, and may still run where sshd "
                "refuses signals (root logins): check the host, or give it a longer timeout",
            ) from exc
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError) as exc:
            raise _Failed(HostFailure.CONNECTION_LOST, _lost(target, exc)) from exc
        except asyncio.CancelledError:
            if process is not None:
                process.close()  # the caller gave up on it: do not leave its channel open
            raise
        if process.exit_status is None and process.exit_signal is None:
            if connection.is_closed():
                raise _Failed(HostFailure.CONNECTION_LOST, _lost(target, None))
            raise _Failed(HostFailure.PROTOCOL, f"{target.where}: the channel closed with no exit status")
        reason = None
        if process.exit_signal is not None:
            name, core, message, _ = process.exit_signal
            reason = (
                f"killed by signal {name}"
                + (" (core dumped)" if core else "")
                + (f": {message}" if message else "")
            )
        return HostResult(
            host=target.host.name,
            exit_code=process.returncode,
            stdout=stdout.value(),
            stderr=stderr.value(),
            duration_ms=_since(started),
            reason=reason,
        )

    async def _stop(
        self,
        target: _Target,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
    ) -> None:
        with suppress(Exception):
            process.kill()
        process.close()
        try:
            async with asyncio.timeout(_CLOSE_GRACE):
                await process.wait_closed()
        except TimeoutError:
            self._forget(target, connection)

    async def _upload(
        self,
        target: _Target,
        connection: asyncssh.SSHClientConnection,
        data: bytes,
        remote_path: str,
        mode: int,
        limit: float,
        started: float,
    ) -> HostResult:
        try:
            async with asyncio.timeout(limit):
                try:
                    sftp = await connection.start_sftp_client()
                except asyncssh.ChannelOpenError as exc:
                    raise _NotSent(exc.reason) from exc
                async with sftp:
                    async with sftp.open(remote_path, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as remote:
                        await remote.write(data)
                    await sftp.chmod(remote_path, mode)
        except TimeoutError as exc:
            raise _Failed(
                HostFailure.TIMED_OUT,
                f"{target.where}: writing {remote_path} did not finish within {limit:g}s; it may be "
                "partly written: check the host, or give it a longer timeout",
            ) from exc
        except asyncssh.SFTPError as exc:
            return HostResult(
                host=target.host.name,
                exit_code=1,
                stderr=f"sftp: {exc.reason}",
                duration_ms=_since(started),
                reason=f"{target.where}: cannot write {remote_path}: {exc.reason}; check that its "
                f"directory exists and that {target.user} may write there",
            )
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError) as exc:
            raise _Failed(HostFailure.CONNECTION_LOST, _lost(target, exc)) from exc
        return HostResult(
            host=target.host.name,
            exit_code=0,
            stdout=f"wrote {len(data)} bytes to {remote_path} (mode {mode:04o})",
            duration_ms=_since(started),
        )


# asyncssh's own ciphers, AES-GCM first: its chacha20-poly1305 (its first choice) makes four cipher
# objects a packet in Python, AES-GCM one call, which takes about 40% off the client's CPU a command
# (and x86-64 and ARMv8 servers have AES instructions, where GCM is constant-time). A server without
# GCM gets the others, in asyncssh's order.
PREFERRED_CIPHERS = sorted(
    (alg.decode() for alg in get_default_encryption_algs()),
    key=lambda alg: not alg.endswith("-gcm@openssh.com"),
)

# asyncssh otherwise reads the local user's ~/.ssh (config, keys, agent, certificates) and tries
# GSSAPI: opsmith logs in with the vault's credential and checks keys against its own file only.
_NO_LOCAL_FILES: dict[str, Any] = {
    "config": [],
    "agent_path": None,
    "agent_identities": None,
    "x509_trusted_certs": None,
    "x509_trusted_cert_paths": [],
    "gss_auth": False,
    "gss_kex": False,
    "host_based_auth": False,
}


async def _exchange(
    process: asyncssh.SSHClientProcess[bytes], feed: bytes, stdout: OutputTail, stderr: OutputTail
) -> None:
    """Write stdin and read both outputs together (a command may fill its output before reading)."""
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_feed(process, feed))
            group.create_task(_drain(process.stdout, stdout))
            group.create_task(_drain(process.stderr, stderr))
    except ExceptionGroup as group:
        raise group.exceptions[0] from None


async def _feed(process: asyncssh.SSHClientProcess[bytes], feed: bytes) -> None:
    try:
        if feed:
            process.stdin.write(feed)
            await process.stdin.drain()
        process.stdin.write_eof()
    except BrokenPipeError:
        pass  # the command ended without reading all of its stdin


async def _drain(stream: asyncssh.SSHReader[bytes], into: OutputTail) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await stream.read(_READ_SIZE):
        into.add(decoder.decode(chunk))
    into.add(decoder.decode(b"", final=True))


def _import_key(credential: Credential) -> asyncssh.SSHKey | str:
    """The private key, or why it cannot be used (kept, so a wrong passphrase is tried once)."""
    passphrase = credential.passphrase.get_secret_value() if credential.passphrase else None
    try:
        return asyncssh.import_private_key(credential.secret.get_secret_value(), passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        return key_import_failure(credential, exc)


def _user(host: Host, credential: Credential) -> str:
    user = host.user or credential.username
    if not user:
        raise _Failed(
            HostFailure.REFUSED,
            f"no user to log in as on {host.name}: set the host's user in the inventory "
            f"(ansible_user) or a username on credential {credential.name!r}",
        )
    return user


def _no_session(target: _Target, exc: _NotSent) -> str:
    return (
        f"{target.where}: logged in, but the server refused a session ({exc}); nothing was run. "
        "Check its sshd log and MaxSessions"
    )


def _lost(target: _Target, exc: BaseException | None) -> str:
    detail = ""
    if exc is not None:
        detail = f" ({exc.reason if isinstance(exc, asyncssh.Error) else exc or type(exc).__name__})"
    return (
        f"{target.where}: the connection ended while the command ran{detail}; it may have done part "
        "of its work: check the host before running it again"
    )


def _failure(host: Host, failure: HostFailure, reason: str, redactor: Redactor, started: float) -> HostResult:
    return HostResult(
        host=host.name, failure=failure, reason=redactor.text(reason), duration_ms=_since(started)
    )


def _redacted(result: HostResult, redactor: Redactor) -> HostResult:
    if result.reason is None:
        return result
    return result.model_copy(update={"reason": redactor.text(result.reason)})


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)

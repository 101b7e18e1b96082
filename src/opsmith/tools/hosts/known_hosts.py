"""The known_hosts file that SSH host keys are checked against, in OpenSSH's format.

It is read once and again only when it changed on disk (one parse for a fleet, not one per host).
Under trust-on-first-use a new host's key is appended as one line, under a lock: an asyncio lock in
this process and an flock for other processes (two opsmith workers meeting the same new host), with
the file read again under the lock so a key another process recorded meanwhile is seen, not doubled.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import asyncssh

__all__ = ["KnownHostsFile", "host_pattern", "known_hosts_line", "lookup_port", "recorded_keys", "same_key"]

DEFAULT_SSH_PORT = 22

_Stamp = tuple[int, int, int] | None


def host_pattern(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare on port 22, `[address]:port` elsewhere."""
    return address if port == DEFAULT_SSH_PORT else f"[{address}]:{port}"


def known_hosts_line(address: str, port: int, key: asyncssh.SSHKey) -> str:
    """One known_hosts line, as `ssh` would record it: `[127.0.0.1]:2222 ssh-ed25519 AAAA...`."""
    kind, data, *_ = key.export_public_key("openssh").decode().split()
    return f"{host_pattern(address, port)} {kind} {data}"


def lookup_port(port: int) -> int | None:
    # asyncssh matches port 22 as "no port", like OpenSSH's bare host names.
    return None if port == DEFAULT_SSH_PORT else port


def recorded_keys(
    known: asyncssh.SSHKnownHosts, host: str, port: int, addr: str = ""
) -> list[asyncssh.SSHKey]:
    """The keys recorded for the host, CA keys counted too (either means "known"). `addr`, the IP
    address the host name resolved to, when known, finds the lines recorded under it as well."""
    host_keys, ca_keys, *_ = known.match(host, addr, lookup_port(port))
    return list({key.public_data: key for key in [*host_keys, *ca_keys]}.values())


def same_key(one: asyncssh.SSHKey, other: asyncssh.SSHKey) -> bool:
    return bool(one.public_data == other.public_data)


class KnownHostsError(ValueError):
    """The known_hosts file cannot be read or parsed; the message names the file and the problem.
    It never leaves the SSH adapter: the hosts it concerns get a failed HostResult saying so."""


class KnownHostsFile:
    """One known_hosts file: its parsed content, reloaded on change, and appended to under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: tuple[_Stamp, asyncssh.SSHKnownHosts] | None = None
        self._lock = asyncio.Lock()
        # One parse at a time: the first hundred hosts of a cold fan-out all miss the cache at once,
        # and each would parse the whole file (bench/fanout.py counted 100 parses for 200 hosts).
        self._parsing = asyncio.Lock()

    async def load(self) -> asyncssh.SSHKnownHosts:
        """The recorded keys as they are on disk now; empty when there is no file. KnownHostsError
        when it cannot be read or parsed."""
        stamp = _stamp(self.path)
        if self._loaded is not None and self._loaded[0] == stamp:
            return self._loaded[1]
        async with self._parsing:
            stamp = _stamp(self.path)  # another caller may have parsed it while this one waited
            if self._loaded is not None and self._loaded[0] == stamp:
                return self._loaded[1]
            known = await asyncio.to_thread(self._read)
            self._loaded = (stamp, known)
            return known

    async def record(self, address: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Record `key` for the host unless some key is recorded for it already. True when `key` is
        the host's recorded key afterwards; False when another process recorded a different one
        first (then the host is not what it was on first use)."""
        async with self._lock:
            recorded = await asyncio.to_thread(self._append, address, port, key)
        self._loaded = None
        return recorded

    def _read(self) -> asyncssh.SSHKnownHosts:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise KnownHostsError(f"cannot read known_hosts file {self.path}: {exc}") from exc
        return _parse(text, self.path)

    def _append(self, address: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            content = _read_all(fd)
            keys = recorded_keys(_parse(content.decode("utf-8", "replace"), self.path), address, port)
            if keys:
                return any(same_key(key, recorded) for recorded in keys)
            line = known_hosts_line(address, port, key) + "\n"
            if content and not content.endswith(b"\n"):
                line = "\n" + line
            # One write of one short line on an O_APPEND descriptor: readers see it whole or not at all.
            os.write(fd, line.encode())
            os.fsync(fd)
            return True
        finally:
            os.close(fd)  # releases the flock


def _parse(text: str, path: Path) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise KnownHostsError(f"known_hosts file {path} is malformed: {exc}") from exc


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _stamp(path: Path) -> _Stamp:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)

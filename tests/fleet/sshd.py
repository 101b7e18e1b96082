"""A loopback fleet of real OpenSSH servers for tests: one `/usr/sbin/sshd -D` per port on 127.0.0.1.

Every server has its own throwaway ed25519 host key and lets in the throwaway client keys of this
fleet (one plain, one locked with a passphrase) as the account the tests run as. Besides the good
hosts it builds the hosts a fleet operation must survive:

    down       a port nobody listens on (a socket is bound there but never listens, so no other
               process takes it meanwhile): connecting is refused
    rejects    a real sshd whose AuthorizedKeysFile holds another key: authentication fails
    changed    a real sshd whose key the fleet's known_hosts records differently
    hangs      a real sshd whose ForceCommand is `sleep 600`: every command outlives its timeout
    unknown    a real, good sshd that the fleet's known_hosts does not list

`known_hosts` records the good hosts, `rejects` and `hangs` as OpenSSH does (`[127.0.0.1]:PORT
ssh-ed25519 AAAA...`). Root's ~/.bashrc on these machines runs `pyenv init` (0.15 s a command); the
servers set SHLVL=1 for sessions (`SetEnv`), so bash, started by sshd, does not read it.

Everything is stopped on exit, the sessions the servers forked and the commands that outlived them
included: terminated, then killed after a bound. Each sshd also gets SIGTERM if the test process
dies without stopping it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
from pydantic import SecretStr

from opsmith.domain.hosts import Credential, Host

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
STUB_BIN = Path(__file__).resolve().parent / "bin"  # systemctl and service stand-ins
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
ADDRESS = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for the whole fleet to accept connections
STOP_TIMEOUT = 3.0  # seconds between SIGTERM and SIGKILL, and after SIGKILL
PORT_ATTEMPTS = 3  # a free port picked may be taken before sshd binds it: pick another
PASSPHRASE = "fleet passphrase: correct horse battery staple"
KEY_CREDENTIAL = "fleet-key"
LOCKED_KEY_CREDENTIAL = "fleet-locked-key"
_PR_SET_PDEATHSIG = 1


@dataclass
class Sshd:
    """One server of the fleet: where it listens, its files, and its process."""

    name: str
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def stub_state(self) -> Path:
        """Where the stand-in systemctl keeps this host's units and their pids."""
        return self.directory / "services"

    def public_key(self) -> str:
        """`ssh-ed25519 AAAA...` of its host key."""
        return _public(self.host_key)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class SshdFleet:
    """`good` real sshd and the special hosts (see the module docstring), started on enter."""

    def __init__(self, root: Path, *, good: int = 20) -> None:
        self.root = root
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.known_hosts = root / "known_hosts"
        self._servers = {f"good-{i:02d}": Sshd(f"good-{i:02d}", root / f"good-{i:02d}") for i in range(good)}
        for name in ("rejects", "changed", "hangs", "unknown"):
            self._servers[name] = Sshd(name, root / name)
        self._down: socket.socket | None = None
        self._down_port = 0
        self.key: Credential | None = None
        self.locked_key: Credential | None = None

    # -- the hosts --------------------------------------------------------------------------------

    def host(self, name: str, *, credential: str = KEY_CREDENTIAL) -> Host:
        port = self._down_port if name == "down" else self._servers[name].port
        return Host(name=name, address=ADDRESS, port=port, user=self.user, credential=credential)

    def project_config(
        self, hosts: list[Host], *, group: str, environment: str, users: dict[str, str]
    ) -> dict[str, Any]:
        """An opsmith.yaml for a project whose inventory is one group of these hosts, trusting the
        fleet's known_hosts, with the fleet key as the group's credential, and `users` in rbac
        (the OS user is always an admin)."""
        return {
            "rbac": {"allow_as": True, "users": {**users, self.user: "admin"}},
            "mcpServers": {},
            "fleet": {"known_hosts": str(self.known_hosts), "connect_timeout": 3, "command_timeout": 30},
            "inventory": {
                "groups": {
                    group: {
                        "vars": {"environment": environment, "opsmith_credential": KEY_CREDENTIAL},
                        "hosts": {
                            h.name: {"address": h.address, "port": h.port, "user": h.user} for h in hosts
                        },
                    }
                }
            },
        }

    @property
    def good(self) -> list[Host]:
        return [self.host(name) for name in self._servers if name.startswith("good-")]

    @property
    def down(self) -> Host:
        return self.host("down")

    @property
    def rejects(self) -> Host:
        return self.host("rejects")

    @property
    def changed(self) -> Host:
        return self.host("changed")

    @property
    def hangs(self) -> Host:
        return self.host("hangs")

    @property
    def unknown(self) -> Host:
        return self.host("unknown")

    def credential(self, host: Host | None = None) -> Credential:
        """The plain client key (what `credential_for` answers for every host of this fleet)."""
        del host
        assert self.key is not None, "the fleet is not started"
        return self.key

    def server(self, name: str) -> Sshd:
        return self._servers[name]

    def declare_units(self, *units: str, hosts: list[Host] | None = None, settings: str = "") -> None:
        """Make `units` known to the stand-in systemctl of `hosts` (all by default), stopped;
        `settings`: lines of the unit's file, e.g. `fail_stop=1`."""
        for server in self._servers.values() if hosts is None else [self._servers[h.name] for h in hosts]:
            directory = server.stub_state / "units"
            directory.mkdir(parents=True, exist_ok=True)
            for unit in units:
                (directory / unit).write_text(settings)

    def start_unit(self, host: Host, unit: str) -> bool:
        """Start `unit` on `host` as its own systemctl would; whether it runs then."""
        return self._systemctl(host, "start", unit).returncode == 0 and self.unit_running(host, unit)

    def _systemctl(self, host: Host, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(STUB_BIN / "systemctl"), *args],
            env={**os.environ, "OPSMITH_STUB_STATE": str(self._servers[host.name].stub_state)},
            capture_output=True,
            timeout=10,
            check=False,
        )

    def stop_units(self) -> None:
        """Stop whatever the stand-in systemctl started on any host (its processes outlive the
        sessions that started them, as a real service does)."""
        killed: list[psutil.Process] = []
        for server in self._servers.values():
            for pid_file in (server.stub_state / "run").glob("*.pid"):
                with contextlib.suppress(ValueError, OSError, psutil.Error):
                    process = psutil.Process(int(pid_file.read_text().strip()))
                    process.kill()
                    killed.append(process)
                pid_file.unlink(missing_ok=True)
        # Not our children: once killed they may stay zombies until whoever adopted them reaps them.
        deadline = time.monotonic() + STOP_TIMEOUT
        while killed and time.monotonic() < deadline:
            killed = [p for p in killed if _lives(p)]
            if killed:
                time.sleep(0.02)

    def unit_running(self, host: Host, unit: str) -> bool:
        """What the host's stand-in systemctl says of `unit`: is it active?"""
        return self._systemctl(host, "is-active", unit).returncode == 0

    def sessions(self, name: str) -> list[psutil.Process]:
        """The processes the host's sshd forked for its open connections."""
        process = self._servers[name].process
        if process is None:
            return []
        try:
            return [p for p in psutil.Process(process.pid).children(recursive=True) if p.is_running()]
        except psutil.NoSuchProcess:
            return []

    # -- start and stop ---------------------------------------------------------------------------

    def __enter__(self) -> SshdFleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if not SSHD.is_file():
            raise AssertionError(f"{SSHD} is missing: run scripts/setup (it installs openssh-server)")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        for server in self._servers.values():
            server.directory.mkdir(exist_ok=True)
        client, locked, other, decoy = (self.root / n for n in ("client", "locked", "other", "decoy"))
        # The locked key is ECDSA in encrypted PKCS#8: ssh-keygen writes locked ed25519 keys only in
        # OpenSSH's format, which asyncssh decrypts only with the optional bcrypt package.
        _keygen(
            [(client, "", ()), (locked, PASSPHRASE, ("-t", "ecdsa", "-m", "PKCS8"))]
            + [(path, "", ()) for path in (other, decoy)]
            + [(s.host_key, "", ()) for s in self._servers.values()]
        )
        self.key = _credential(KEY_CREDENTIAL, self.user, client, None)
        self.locked_key = _credential(LOCKED_KEY_CREDENTIAL, self.user, locked, PASSPHRASE)
        allowed = self.root / "authorized_keys"
        allowed.write_text(f"{_public(client)}\n{_public(locked)}\n")
        refused = self.root / "other_authorized_keys"
        refused.write_text(f"{_public(other)}\n")
        for server in self._servers.values():
            keys = refused if server.name == "rejects" else allowed
            force = "sleep 600" if server.name == "hangs" else None
            server.config.write_text(_config(server, keys, force))
        self._down, self._down_port = _bound_not_listening()
        self._launch_all()
        recorded = [
            f"[{ADDRESS}]:{s.port} {_public(decoy) if s.name == 'changed' else s.public_key()}"
            for s in self._servers.values()
            if s.name != "unknown"
        ]
        self.known_hosts.write_text("\n".join(recorded) + "\n")

    def stop(self) -> None:
        self.stop_units()
        processes: list[psutil.Process] = []
        for server in self._servers.values():
            if server.process is None:
                continue
            try:
                listener = psutil.Process(server.process.pid)
                processes += [listener, *listener.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        processes += _strays({s.port for s in self._servers.values() if s.port})
        for process in processes:
            _signal(process, signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT)
        for process in alive:
            _signal(process, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=STOP_TIMEOUT)
        for server in self._servers.values():
            if server.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.process.wait(timeout=STOP_TIMEOUT)
                server.process = None
        if self._down is not None:
            self._down.close()
            self._down = None

    def _launch_all(self) -> None:
        servers = list(self._servers.values())
        for server in servers:
            self._launch(server)
        attempts = dict.fromkeys((s.name for s in servers), 1)
        pending = servers
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            waiting = []
            for server in pending:
                assert server.process is not None
                if server.process.poll() is not None:
                    # Most likely another process bound the port between our pick and sshd's bind.
                    if attempts[server.name] >= PORT_ATTEMPTS:
                        raise AssertionError(f"sshd {server.name} exited at start:\n{server.log_text()}")
                    attempts[server.name] += 1
                    self._launch(server)
                    waiting.append(server)
                elif not _accepts(server.port):
                    waiting.append(server)
            pending = waiting
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"{s.name} (port {s.port}): {s.log_text()}" for s in pending)
                raise AssertionError(f"{len(pending)} sshd not accepting after {START_TIMEOUT}s:\n{logs}")
            if pending:
                time.sleep(0.02)

    def _launch(self, server: Sshd) -> None:
        server.port = _free_port()
        server.log.unlink(missing_ok=True)
        server.process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(server.config), "-p", str(server.port), "-E", str(server.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )


def _config(server: Sshd, authorized_keys: Path, force_command: str | None) -> str:
    lines = [
        f"ListenAddress {ADDRESS}",
        f"HostKey {server.host_key}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"PidFile {server.directory / 'sshd.pid'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "MaxStartups 1000:30:1000",
        "MaxSessions 100",
        "LogLevel ERROR",
        f"Subsystem sftp {SFTP_SERVER}",
        # bash started by sshd reads ~/.bashrc only at SHLVL < 2; root's runs `pyenv init` (0.15 s).
        # Every host is this machine: the stand-in systemctl (tests/fleet/bin) keeps each host's
        # services in that host's own directory, so hosts are as separate as real ones.
        f"SetEnv SHLVL=1 PATH={STUB_BIN}:/usr/local/bin:/usr/bin:/bin OPSMITH_STUB_STATE={server.stub_state}",
    ]
    if force_command:
        lines.append(f"ForceCommand {force_command}")
    return "\n".join(lines) + "\n"


def _keygen(keys: list[tuple[Path, str, tuple[str, ...]]]) -> None:
    """Generate every key at once (each ssh-keygen is its own process); ed25519 unless told."""
    for path, _, _ in keys:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".pub").unlink(missing_ok=True)
    running = [
        subprocess.Popen(
            [
                SSH_KEYGEN,
                "-q",
                *(options or ("-t", "ed25519")),
                "-N",
                passphrase,
                "-C",
                path.name,
                "-f",
                str(path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for path, passphrase, options in keys
    ]
    for process, (path, _, _) in zip(running, keys, strict=True):
        _, err = process.communicate(timeout=START_TIMEOUT)
        if process.returncode != 0:
            raise AssertionError(f"ssh-keygen for {path} failed: {err.decode(errors='replace')}")


def _public(private_key: Path) -> str:
    kind, data, *_ = private_key.with_name(private_key.name + ".pub").read_text().split()
    return f"{kind} {data}"


def _credential(name: str, user: str, private_key: Path, passphrase: str | None) -> Credential:
    return Credential(
        name=name,
        kind="ssh_key",
        username=user,
        secret=SecretStr(private_key.read_text()),
        passphrase=SecretStr(passphrase) if passphrase else None,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return int(sock.getsockname()[1])


def _bound_not_listening() -> tuple[socket.socket, int]:
    # Bound, so nobody else takes the port; never listening, so every connection is refused.
    sock = socket.socket()
    sock.bind((ADDRESS, 0))
    return sock, int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((ADDRESS, port)) == 0


def _strays(ports: set[int]) -> list[psutil.Process]:
    """Commands of the fleet's sessions that outlived their session process (a command whose
    connection was closed keeps running, reparented): sshd gave each SSH_CONNECTION naming its port."""
    found = []
    for process in psutil.process_iter():
        try:
            parts = process.environ().get("SSH_CONNECTION", "").split()
        except (psutil.Error, OSError):
            continue
        if len(parts) == 4 and parts[2] == ADDRESS and parts[3].isdigit() and int(parts[3]) in ports:
            found.append(process)
    return found


def _lives(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(process: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(sig)


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process dies without stopping the fleet, the kernel
    # sends each sshd SIGTERM, so no listener outlives the session.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

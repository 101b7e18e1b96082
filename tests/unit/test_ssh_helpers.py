"""The SSH adapter's pure parts: sudo command lines, known_hosts lines and the file's lock, output
tails with secrets hidden, failure reasons, the `fleet:` settings, and what is refused before any
connection is made."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
import subprocess
from pathlib import Path

import asyncssh
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from opsmith.config import parse_config
from opsmith.domain.hosts import TAIL_CHARS, Credential, Host, HostFailure, tail
from opsmith.domain.redaction import Redactor
from opsmith.errors import ConfigError
from opsmith.tools.hosts.known_hosts import (
    KnownHostsError,
    KnownHostsFile,
    host_pattern,
    known_hosts_line,
    recorded_keys,
)
from opsmith.tools.hosts.output import OutputTail
from opsmith.tools.hosts.shell import SUDO_PASSWORD_REFUSED, sudo_command
from opsmith.tools.hosts.ssh import SshExecutor
from opsmith.tools.hosts.ssh_failures import HostKeyProblem, connect_failure, key_import_failure
from opsmith.tools.hosts.ssh_settings import SshSettings

ED25519 = asyncssh.generate_private_key("ssh-ed25519")
OTHER = asyncssh.generate_private_key("ssh-ed25519")
KEY = Credential(name="deploy", kind="ssh_key", username="ops", secret=SecretStr("-----BEGIN x-----"))

# -- sudo ------------------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_sudo_without_a_password_wraps_the_command_as_one_argument(command: str) -> None:
    assert shlex.split(sudo_command(command, password=False)) == ["sudo", "-n", "--", "sh", "-c", command]


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_sudo_with_a_password_passes_the_command_as_one_argument(command: str) -> None:
    words = shlex.split(sudo_command(command, password=True))
    assert words[:2] == ["sh", "-c"] and words[3:] == ["opsmith-sudo", command]


# A stand-in for sudo on PATH, for the script's logic: it records its argv, wants PASSWORD unless
# NOPASSWD is set, caches a good password for the next call (as sudo does per parent process), and
# runs the command with the stdin it was given.
FAKE_SUDO = """#!/bin/sh
printf '%s\\n' "$*" >> "$SUDO_LOG"
case "$1" in
  -n) shift
      if [ -z "$NOPASSWD" ] && [ ! -e "$SUDO_CACHE" ]; then echo 'a password is required' >&2; exit 1; fi
      [ "$1" = true ] && exit 0
      shift; exec "$@" ;;
  -S) IFS= read -r given
      if [ "$given" = "$PASSWORD" ]; then : > "$SUDO_CACHE"; exit 0; fi
      exit 1 ;;
esac
exit 2
"""
PASSWORD = "sudo password 123"


def sh_with_fake_sudo(
    tmp_path: Path, line: str, stdin: bytes, nopasswd: bool = False
) -> tuple[int, str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "sudo"
    fake.write_text(FAKE_SUDO)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SUDO_LOG": str(tmp_path / "argv.log"),
        "SUDO_CACHE": str(tmp_path / "cache"),
        "PASSWORD": PASSWORD,
        "NOPASSWD": "1" if nopasswd else "",
    }
    done = subprocess.run(
        ["sh", "-c", line], input=stdin, capture_output=True, env=env, timeout=10, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_a_sudo_password_goes_to_sudo_alone_and_the_command_keeps_its_stdin(tmp_path: Path) -> None:
    line = sudo_command("cat; echo ran as sudo", password=True)
    code, out, _ = sh_with_fake_sudo(tmp_path, line, f"{PASSWORD}\nthe command's input\n".encode())
    assert (code, out) == (0, "the command's input\nran as sudo\n")
    assert PASSWORD not in (tmp_path / "argv.log").read_text(), "never in any argv"


def test_no_password_is_given_where_sudo_asks_none(tmp_path: Path) -> None:
    line = sudo_command("cat", password=True)
    code, out, _ = sh_with_fake_sudo(tmp_path, line, f"{PASSWORD}\ninput\n".encode(), nopasswd=True)
    assert (code, out) == (0, "input\n"), "the password line never reaches the command"
    assert "-S" not in (tmp_path / "argv.log").read_text()


def test_a_refused_sudo_password_stops_before_the_command_and_reads_no_more_stdin(tmp_path: Path) -> None:
    line = sudo_command("echo never", password=True)
    code, out, err = sh_with_fake_sudo(tmp_path, line, b"wrong\nline two is not a password\n")
    assert code == SUDO_PASSWORD_REFUSED and out == "" and "refused the password" in err
    assert "line two" not in (tmp_path / "argv.log").read_text()


# -- known_hosts ----------------------------------------------------------------------------------

addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
)


@settings(max_examples=50)
@given(addresses, st.integers(min_value=1, max_value=65535))
@example("192.0.2.1", 22)
@example("other.host", 2222)
def test_a_recorded_line_matches_its_host_and_port_only(address: str, port: int) -> None:
    line = known_hosts_line(address, port, ED25519)
    assert line.startswith(f"{address} " if port == 22 else f"[{address}]:{port} ")
    assert line.split()[1] == "ssh-ed25519"
    known = asyncssh.import_known_hosts(line + "\n")
    assert [k.public_data for k in recorded_keys(known, address, port)] == [ED25519.public_data]
    # Another name and address, never the recorded one (hypothesis does draw 192.0.2.1 and other.host).
    other_name, other_ip = (
        ("another.host", "192.0.2.2")
        if address in ("other.host", "192.0.2.1")
        else ("other.host", "192.0.2.1")
    )
    assert recorded_keys(known, other_name, port, other_ip) == []


def test_host_pattern_is_openssh_s() -> None:
    assert host_pattern("10.0.0.5", 22) == "10.0.0.5"
    assert host_pattern("127.0.0.1", 2222) == "[127.0.0.1]:2222"


@pytest.mark.anyio
async def test_recording_appends_one_line_once_and_refuses_a_different_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "known_hosts"
    path.parent.mkdir()
    path.write_text(known_hosts_line("10.0.0.1", 2200, OTHER))  # no final newline
    one, two = KnownHostsFile(path), KnownHostsFile(path)  # as two processes: the flock decides
    results = await asyncio.gather(one.record("10.0.0.2", 22, ED25519), two.record("10.0.0.2", 22, ED25519))
    assert results == [True, True]
    assert path.read_text().splitlines() == [
        known_hosts_line("10.0.0.1", 2200, OTHER),
        known_hosts_line("10.0.0.2", 22, ED25519),
    ]
    assert await one.record("10.0.0.2", 22, OTHER) is False, "another key is recorded for that host"
    assert len(path.read_text().splitlines()) == 2

    fresh = tmp_path / "new" / "known_hosts"
    assert await KnownHostsFile(fresh).record("10.0.0.4", 2222, ED25519) is True
    assert fresh.read_text() == known_hosts_line("10.0.0.4", 2222, ED25519) + "\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600, "created readable by its owner only"


@pytest.mark.anyio
async def test_the_file_is_read_again_when_it_changes_and_a_malformed_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    known = KnownHostsFile(path)
    assert recorded_keys(await known.load(), "10.0.0.3", 22) == [], "no file: nothing known"
    path.write_text(known_hosts_line("10.0.0.3", 22, ED25519) + "\n")
    assert [k.public_data for k in recorded_keys(await known.load(), "10.0.0.3", 22)] == [ED25519.public_data]
    path.write_text("junk\n")  # one word: neither a host nor a key
    with pytest.raises(KnownHostsError, match=str(path)):
        await known.load()


# -- output tails ---------------------------------------------------------------------------------

secrets_st = st.lists(st.text(alphabet="abcxyz", min_size=4, max_size=12), max_size=3)
chunks_st = st.lists(st.text(alphabet="abcxyz \n", max_size=300), max_size=40)


@settings(max_examples=200)
@given(secrets_st, chunks_st, st.integers(min_value=8, max_value=64))
def test_an_output_tail_never_shows_a_secret_and_keeps_the_end(
    secrets: list[str], chunks: list[str], limit: int
) -> None:
    redactor = Redactor(secrets)
    kept = OutputTail(redactor, limit=limit)
    for chunk in chunks:
        kept.add(chunk)
    value = kept.value()
    assert len(value) <= limit
    for secret in secrets:
        assert secret not in value
    whole = "".join(chunks)
    if not secrets:
        assert value == tail(whole, limit)
    if len(whole) <= 2 * limit:
        assert value == tail(redactor.text(whole), limit)


def test_a_long_output_keeps_its_last_characters_marked() -> None:
    kept = OutputTail(Redactor([]))
    for index in range(1000):
        kept.add(f"line {index}\n")
    assert kept.value().endswith("line 999\n") and kept.value().startswith("…")
    assert len(kept.value()) == TAIL_CHARS


# -- failure reasons ------------------------------------------------------------------------------


def reason_of(
    exc: BaseException, verdict: HostFailure | None = None, known_keys: bool = False
) -> tuple[HostFailure, str]:
    problem = HostKeyProblem("/state/known_hosts")
    problem.verdict, problem.fingerprint = verdict, "SHA256:abc"
    return connect_failure(
        exc,
        where="ops@10.0.0.9:2222",
        address="10.0.0.9",
        port=2222,
        user="ops",
        credential=KEY,
        timeout=7,
        host_key=problem,
        known_keys=known_keys,
    )


def test_each_connect_failure_has_its_kind_and_says_what_to_do() -> None:
    failure, reason = reason_of(TimeoutError())
    assert failure is HostFailure.UNREACHABLE and "7s" in reason and "fleet.connect_timeout" in reason
    failure, reason = reason_of(ConnectionRefusedError(111, "Connection refused"))
    assert failure is HostFailure.UNREACHABLE and "connection refused" in reason
    failure, reason = reason_of(OSError(113, "No route to host"))
    assert failure is HostFailure.UNREACHABLE and "No route to host" in reason
    failure, reason = reason_of(asyncssh.PermissionDenied("Permission denied"))
    assert failure is HostFailure.AUTH_REJECTED and "opsmith secrets set deploy" in reason
    failure, reason = reason_of(asyncssh.HostKeyNotVerifiable("not trusted"), HostFailure.HOST_KEY_UNKNOWN)
    assert failure is HostFailure.HOST_KEY_UNKNOWN
    assert "ssh-keyscan -p 2222 10.0.0.9 >> /state/known_hosts" in reason and "SHA256:abc" in reason
    failure, reason = reason_of(asyncssh.HostKeyNotVerifiable("not trusted"), HostFailure.HOST_KEY_CHANGED)
    assert failure is HostFailure.HOST_KEY_CHANGED and "ssh-keygen -R '[10.0.0.9]:2222'" in reason
    failure, _ = reason_of(asyncssh.KeyExchangeFailed("No matching host key format"), known_keys=True)
    assert failure is HostFailure.HOST_KEY_CHANGED
    failure, _ = reason_of(asyncssh.KeyExchangeFailed("No matching cipher"))
    assert failure is HostFailure.PROTOCOL
    assert not any(f.may_have_run for f in (HostFailure.UNREACHABLE, HostFailure.AUTH_REJECTED))


def test_a_key_that_does_not_decrypt_is_explained_without_its_passphrase() -> None:
    locked = asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_private_key(
        "pkcs8-pem", passphrase="right passphrase"
    )
    credential = KEY.model_copy(
        update={"secret": SecretStr(locked.decode()), "passphrase": SecretStr("wrong passphrase")}
    )
    with pytest.raises(asyncssh.KeyImportError) as refused:
        asyncssh.import_private_key(locked, "wrong passphrase")
    reason = key_import_failure(credential, refused.value)
    assert "credential 'deploy'" in reason and "passphrase" in reason
    assert "wrong passphrase" not in reason and "right passphrase" not in reason


# -- settings -------------------------------------------------------------------------------------


def test_fleet_settings_default_and_resolve_known_hosts_under_the_state_dir() -> None:
    config = parse_config("state_dir: /srv/opsmith\n", source="x.yaml")
    assert config.known_hosts_file == Path("/srv/opsmith/known_hosts")
    ssh = config.fleet.ssh_settings(config.known_hosts_file)
    assert (ssh.forks, ssh.handshakes, ssh.connect_timeout, ssh.command_timeout) == (100, 20, 10.0, 300.0)
    assert ssh.trust_on_first_use is False and ssh.known_hosts == Path("/srv/opsmith/known_hosts")
    few = parse_config("fleet: {forks: 5, known_hosts: /etc/ssh/ssh_known_hosts}\n", source="x.yaml")
    assert few.fleet.ssh_settings(few.known_hosts_file).handshakes == 5, "handshakes never above forks"
    assert few.known_hosts_file == Path("/etc/ssh/ssh_known_hosts")


def test_fleet_settings_that_cannot_work_are_refused_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match=r"fleet: .*handshakes \(30\) must be at most forks \(10\)"):
        parse_config("fleet: {forks: 10, handshakes: 30}\n", source="x.yaml")
    with pytest.raises(ConfigError, match="did you mean 'forks'"):
        parse_config("fleet: {fork: 10}\n", source="x.yaml")
    with pytest.raises(ConfigError, match="handshakes"):
        SshSettings(known_hosts=Path("k"), forks=2, handshakes=3)
    with pytest.raises(ConfigError, match="command_timeout"):
        SshSettings(known_hosts=Path("k"), command_timeout=0)


# -- refused before connecting --------------------------------------------------------------------

# Port 9 on TEST-NET-1 (RFC 5737): never contacted, since each of these is refused first.
NOWHERE = Host(name="web-1", address="192.0.2.1", port=9)


@pytest.mark.anyio
async def test_what_cannot_log_in_is_refused_before_any_connection(tmp_path: Path) -> None:
    executor = SshExecutor(SshSettings(known_hosts=tmp_path / "known_hosts", connect_timeout=0.5))
    token = Credential(name="api", kind="token", username="ops", secret=SecretStr("tok-123456"))
    nobody = KEY.model_copy(update={"username": None})

    def credential_for(host: Host) -> Credential:
        raise ConfigError(
            "no credential named 'web' in the vault", hint="add it with opsmith secrets set web"
        )

    async with executor:
        by_kind = await executor.run(NOWHERE, token, "true")
        no_user = await executor.run(NOWHERE, nobody, "true")
        no_credential = await executor.run_many([NOWHERE], credential_for, lambda h: "true")
    assert by_kind.failure is HostFailure.REFUSED and "token credential" in (by_kind.reason or "")
    assert "tok-123456" not in by_kind.model_dump_json()
    assert no_user.failure is HostFailure.REFUSED and "ansible_user" in (no_user.reason or "")
    [refused] = no_credential
    assert refused.failure is HostFailure.REFUSED and "opsmith secrets set web" in (refused.reason or "")
    assert not HostFailure.REFUSED.may_have_run

"""The SSH adapter against a real loopback fleet of OpenSSH servers (tests/fleet/sshd.py): many hosts
at once, each host's own failure, strict host keys and trust on first use, kept connections, SFTP,
stdin, the forks limit, locked keys, and no secret in any result."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from opsmith.domain.hosts import TAIL_CHARS, Credential, Host, HostFailure, HostResult
from opsmith.tools.hosts.shells import BASH_STDIN
from opsmith.tools.hosts.ssh import RemoteCommand, SshExecutor
from opsmith.tools.hosts.ssh_settings import SshSettings
from tests.fleet.sshd import PASSPHRASE, SshdFleet

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 1.5
# What a call may take beyond its timeouts: closing a timed-out channel (1 s) and a loaded machine.
MARGIN = 3.0

Executors = Callable[..., SshExecutor]


@pytest.fixture
async def executors(sshd_fleet: SshdFleet) -> AsyncIterator[Executors]:
    """Makes executors on the fleet's known_hosts (settings overridable), all closed after the test."""
    made: list[SshExecutor] = []

    def make(**overrides: object) -> SshExecutor:
        settings: dict[str, object] = {
            "known_hosts": sshd_fleet.known_hosts,
            "connect_timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
        }
        executor = SshExecutor(SshSettings(**{**settings, **overrides}))  # type: ignore[arg-type]
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.close()


def secrets_absent(results: list[HostResult], *credentials: Credential) -> None:
    for result in results:
        shown = result.model_dump_json()
        for credential in credentials:
            for secret in credential.secret_values():
                assert secret not in shown
                for line in secret.splitlines():
                    assert len(line) < 16 or line not in shown, f"part of a secret in {result.host}'s result"


# -- many hosts at once ---------------------------------------------------------------------------


async def test_a_command_runs_on_every_good_host_at_once(sshd_fleet: SshdFleet, executors: Executors) -> None:
    hosts = sshd_fleet.good
    assert len(hosts) >= 20
    seen: list[str] = []
    results = await executors().run_many(
        hosts, sshd_fleet.credential, lambda host: "uname -r", on_result=lambda r: seen.append(r.host)
    )
    assert [r.host for r in results] == [h.name for h in hosts], "results come in host order"
    assert sorted(seen) == sorted(h.name for h in hosts), "one callback per finished host"
    for result in results:
        assert result.ok, result
        assert result.exit_code == 0 and result.stdout == os.uname().release + "\n"
        assert result.failure is None and result.duration_ms > 0


async def test_each_bad_host_fails_its_own_way_within_its_timeouts_and_stops_no_other(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    good = sshd_fleet.good[:6]
    bad = {
        sshd_fleet.down.name: HostFailure.UNREACHABLE,
        sshd_fleet.rejects.name: HostFailure.AUTH_REJECTED,
        sshd_fleet.changed.name: HostFailure.HOST_KEY_CHANGED,
        sshd_fleet.hangs.name: HostFailure.TIMED_OUT,
        sshd_fleet.unknown.name: HostFailure.HOST_KEY_UNKNOWN,
    }
    specials = [sshd_fleet.host(name) for name in bad]
    hosts = [host for pair in zip(good, specials, strict=False) for host in pair] + good[len(specials) :]
    started = time.monotonic()
    results = await executors().run_many(hosts, sshd_fleet.credential, lambda host: "echo alive")
    elapsed = time.monotonic() - started

    # A bound, not a speed claim: every host is worked on at once, so the slowest bounds the call.
    assert elapsed < CONNECT_TIMEOUT + COMMAND_TIMEOUT + MARGIN
    by_host = {r.host: r for r in results}
    for host in good:
        assert by_host[host.name].ok and by_host[host.name].stdout == "alive\n"
    for name, failure in bad.items():
        result = by_host[name]
        assert result.failure is failure, result
        assert result.exit_code is None and not result.ok
        assert result.reason and f":{sshd_fleet.host(name).port}" in result.reason, (
            "the reason names the host"
        )
    assert "connection refused" in by_host["down"].reason
    assert "refused credential 'fleet-key'" in by_host["rejects"].reason
    assert "differs from the one recorded" in by_host["changed"].reason
    assert "ssh-keygen -R" in by_host["changed"].reason
    assert f"within {COMMAND_TIMEOUT:g}s" in by_host["hangs"].reason
    assert "trust_on_first_use" in by_host["unknown"].reason
    assert "ssh-keyscan" in by_host["unknown"].reason
    assert not HostFailure.HOST_KEY_CHANGED.may_have_run and HostFailure.TIMED_OUT.may_have_run
    secrets_absent(results, sshd_fleet.credential())


async def test_a_timed_out_command_returns_within_its_timeout_and_the_next_one_runs(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    executor = executors()
    host = sshd_fleet.good[0]
    started = time.monotonic()
    result = await executor.run(host, sshd_fleet.credential(), "sleep 600", timeout=1.0)
    assert result.failure is HostFailure.TIMED_OUT
    assert time.monotonic() - started < CONNECT_TIMEOUT + 1.0 + MARGIN
    again = await executor.run(host, sshd_fleet.credential(), "echo next")
    assert again.ok and again.stdout == "next\n"


async def test_a_connection_dropped_mid_command_is_connection_lost(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    executor = executors()
    host = sshd_fleet.good[1]
    running = asyncio.ensure_future(executor.run(host, sshd_fleet.credential(), "sleep 5; echo done"))
    deadline = time.monotonic() + 5
    while not any("sleep" in " ".join(p.cmdline()) for p in sshd_fleet.sessions(host.name)):
        assert time.monotonic() < deadline, "the command never started"
        await asyncio.sleep(0.05)
    sessions = sshd_fleet.sessions(host.name)
    for process in sessions:
        if process.name() == "sshd":
            process.kill()  # the session's sshd: its connection ends
    result = await asyncio.wait_for(running, 5)
    assert result.failure is HostFailure.CONNECTION_LOST and result.failure.may_have_run
    assert "connection ended while the command ran" in (result.reason or "")
    for process in sessions:
        if process.is_running():
            process.kill()  # the command, orphaned


# -- host keys ------------------------------------------------------------------------------------


async def test_strict_checking_refuses_a_host_with_no_recorded_key(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    before = sshd_fleet.known_hosts.read_text()
    result = await executors().run(sshd_fleet.unknown, sshd_fleet.credential(), "echo never")
    assert result.failure is HostFailure.HOST_KEY_UNKNOWN
    assert sshd_fleet.known_hosts.read_text() == before, "nothing is recorded under strict checking"


async def test_trust_on_first_use_records_the_key_and_the_next_connection_checks_against_it(
    sshd_fleet: SshdFleet, executors: Executors, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "state" / "known_hosts"
    known_hosts.parent.mkdir()
    shutil.copy(sshd_fleet.known_hosts, known_hosts)
    unknown = sshd_fleet.unknown
    pattern = f"[127.0.0.1]:{unknown.port}"

    # Two executors (as two opsmith processes would) meet the new host at once: one line recorded.
    first, second = (
        executors(known_hosts=known_hosts, trust_on_first_use=True),
        executors(known_hosts=known_hosts, trust_on_first_use=True),
    )
    results = await asyncio.gather(
        *(ex.run(unknown, sshd_fleet.credential(), "echo hello") for ex in (first, second, first))
    )
    assert all(r.ok for r in results), results
    lines = [line for line in known_hosts.read_text().splitlines() if line.startswith(pattern + " ")]
    assert lines == [f"{pattern} {sshd_fleet.server('unknown').public_key()}"]

    # A strict executor now knows the host through the recorded key.
    strict = executors(known_hosts=known_hosts)
    assert (await strict.run(unknown, sshd_fleet.credential(), "echo known")).ok

    # A changed key stays refused with trust on first use, and nothing is recorded for it.
    before = known_hosts.read_text()
    changed = await first.run(sshd_fleet.changed, sshd_fleet.credential(), "echo never")
    assert changed.failure is HostFailure.HOST_KEY_CHANGED
    assert known_hosts.read_text() == before


# -- kept connections -----------------------------------------------------------------------------


async def ssh_connection(executor: SshExecutor, host: Host, credential: Credential) -> str:
    # sshd gives each session SSH_CONNECTION "client-ip client-port server-ip server-port": the same
    # client port means the same TCP connection.
    result = await executor.run(host, credential, "echo $SSH_CONNECTION")
    assert result.ok, result
    return result.stdout.strip()


async def test_the_connection_is_kept_and_reused_opened_once_and_reopened_when_dead(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    executor, host, credential = executors(), sshd_fleet.good[2], sshd_fleet.credential()

    # Concurrent first commands to a new host open one connection.
    first = await asyncio.gather(*(ssh_connection(executor, host, credential) for _ in range(5)))
    assert len(set(first)) == 1
    assert await ssh_connection(executor, host, credential) == first[0], "a later command reuses it"

    for process in sshd_fleet.sessions(host.name):
        process.kill()  # the server side of the kept connection dies
    reopened = await ssh_connection(executor, host, credential)
    assert reopened != first[0], "a dead connection is opened again on the next command"

    await executor.close()
    assert await ssh_connection(executor, host, credential) not in (first[0], reopened)


# -- files, stdin, output -------------------------------------------------------------------------


async def test_a_file_put_over_sftp_reads_back_with_its_sha256_and_mode(
    sshd_fleet: SshdFleet, executors: Executors, tmp_path: Path
) -> None:
    executor, host, credential = executors(), sshd_fleet.good[3], sshd_fleet.credential()
    data = os.urandom(300_000)
    target = tmp_path / "upload.bin"
    put = await executor.put_file(host, credential, data, str(target), 0o750)
    assert put.ok, put
    check = await executor.run(host, credential, f"sha256sum {target}; stat -c %a {target}")
    assert check.ok and check.stdout.split() == [hashlib.sha256(data).hexdigest(), str(target), "750"]

    local = tmp_path / "local.txt"
    local.write_text("from a local file\n")
    from_path = await executor.put_file(host, credential, local, str(tmp_path / "copy.txt"))
    assert from_path.ok and (tmp_path / "copy.txt").read_text() == "from a local file\n"

    refused = await executor.put_file(host, credential, b"x", str(tmp_path / "no" / "such" / "dir"))
    assert refused.exit_code == 1 and refused.failure is None and "directory exists" in (refused.reason or "")


async def test_stdin_reaches_the_command(sshd_fleet: SshdFleet, executors: Executors) -> None:
    executor, host, credential = executors(), sshd_fleet.good[4], sshd_fleet.credential()
    text = await executor.run(host, credential, "cat", stdin="line one\nline two\n")
    assert text.ok and text.stdout == "line one\nline two\n"
    big = os.urandom(1_000_000)
    counted = await executor.run(host, credential, "sha256sum", stdin=big)
    assert counted.ok and counted.stdout.split()[0] == hashlib.sha256(big).hexdigest()
    nothing = await executor.run(host, credential, "wc -c")
    assert nothing.ok and nothing.stdout.strip() == "0", "no stdin: the command reads end of file"


async def test_no_state_of_one_script_is_seen_by_the_next_on_the_same_connection(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    # Scripts go to BASH_STDIN as Shells sends them, both on the one kept connection: a variable,
    # a function, a cd, a umask and an EXIT trap set by the first must be gone for the second.
    executor, host, credential = executors(), sshd_fleet.good[5], sshd_fleet.credential()
    setter = (
        "export OPSMITH_LEAK=set; opsmith_leak() { :; }; cd /tmp; umask 0077\n"
        "trap 'echo trap-from-first' EXIT\necho first-ran\n"
    )
    first = await executor.run(host, credential, BASH_STDIN, stdin=setter)
    assert first.ok and first.stdout == "first-ran\ntrap-from-first\n", first
    probe = (
        'printf "var=%s\\n" "${OPSMITH_LEAK-unset}"; type opsmith_leak >/dev/null 2>&1 && echo fn=set\n'
        'printf "cwd=%s umask=%s\\n" "$PWD" "$(umask)"; trap -p EXIT; echo second-ran\n'
    )
    second = await executor.run(host, credential, BASH_STDIN, stdin=probe)
    lines = second.stdout.splitlines()
    assert second.ok and lines[0] == "var=unset" and lines[-1] == "second-ran", second
    assert "fn=set" not in lines and "trap-from-first" not in second.stdout
    assert lines[1] != "cwd=/tmp umask=0077", second.stdout


async def test_exit_codes_output_tails_and_redaction(sshd_fleet: SshdFleet, executors: Executors) -> None:
    executor, host, credential = executors(), sshd_fleet.good[5], sshd_fleet.credential()
    failed = await executor.run(host, credential, "echo out; echo oops >&2; exit 3")
    assert (failed.exit_code, failed.stdout, failed.stderr, failed.failure) == (3, "out\n", "oops\n", None)
    assert not failed.ok

    chatty = await executor.run(host, credential, "head -c 200000 /dev/zero | tr '\\0' x")
    assert len(chatty.stdout) == TAIL_CHARS and chatty.stdout.startswith("…x")

    # The command prints the private key it logged in with: the result never holds it.
    key_file = sshd_fleet.root / "client"
    leaked = await executor.run(host, credential, f"cat {key_file}; cat {key_file} >&2")
    assert leaked.ok and "***" in leaked.stdout and "***" in leaked.stderr
    secrets_absent([leaked], credential)


async def test_sudo_runs_the_command_as_root(sshd_fleet: SshdFleet, executors: Executors) -> None:
    assert shutil.which("sudo"), "sudo is not installed: run scripts/setup"
    result = await executors().run(sshd_fleet.good[6], sshd_fleet.credential(), "id -u", sudo=True)
    assert result.ok, result
    assert result.stdout == "0\n"


# -- limits ---------------------------------------------------------------------------------------


async def test_forks_bounds_the_commands_in_flight(sshd_fleet: SshdFleet, executors: Executors) -> None:
    hosts = sshd_fleet.good[:6]
    command = "date +%s.%N; sleep 0.3; date +%s.%N"
    results = await executors(forks=2, handshakes=1).run_many(hosts, sshd_fleet.credential, lambda h: command)
    assert all(r.ok for r in results), results
    spans = [tuple(float(t) for t in r.stdout.split()) for r in results]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    assert peak == 2, f"at most forks=2 commands at once, and that many: {spans}"


# -- credentials ----------------------------------------------------------------------------------


async def test_a_passphrase_protected_key_logs_in_and_a_wrong_passphrase_is_refused_unshown(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    locked = sshd_fleet.locked_key
    assert locked is not None and locked.passphrase is not None
    executor, host = executors(), sshd_fleet.good[7]
    assert (await executor.run(host, locked, "echo unlocked")).stdout == "unlocked\n"

    wrong = locked.model_copy(update={"passphrase": SecretStr("not the passphrase at all")})
    refused = await executor.run(host, wrong, "echo never")
    assert refused.failure is HostFailure.AUTH_REJECTED
    assert "credential 'fleet-locked-key'" in (refused.reason or "") and "passphrase" in (
        refused.reason or ""
    )
    assert "not the passphrase at all" not in refused.model_dump_json()
    assert PASSPHRASE not in refused.model_dump_json()

    missing = locked.model_copy(update={"passphrase": None})
    unlocked = await executor.run(host, missing, "echo never")
    assert unlocked.failure is HostFailure.AUTH_REJECTED and "with its passphrase" in (unlocked.reason or "")
    secrets_absent([refused, unlocked], locked, wrong)


async def test_a_bad_credential_for_one_host_is_that_hosts_result(
    sshd_fleet: SshdFleet, executors: Executors
) -> None:
    hosts = sshd_fleet.good[:3]

    def credential_for(host: Host) -> Credential:
        if host.name == hosts[1].name:
            raise LookupError("no secret for this host")
        return sshd_fleet.credential()

    results = await executors().run_many(hosts, credential_for, lambda h: RemoteCommand("echo ok", timeout=5))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].failure is HostFailure.REFUSED and "no secret for this host" in (
        results[1].reason or ""
    )

"""The WinRM executor through the real pypsrp client, over real HTTP(S) and TLS, against the test
WS-Management endpoint (tests/fleet/wsman.py) and the simulated Windows hosts behind it."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from opsmith.config import WinrmConfig, parse_config
from opsmith.domain.hosts import TAIL_CHARS, Credential, Host, HostFailure, HostResult
from opsmith.errors import ConfigError
from opsmith.tools.hosts.winrm import _CHUNK_BYTES, WinrmExecutor
from tests.fleet.wsman import Certificates, SimulatedWindows, WsmanEndpoint, ntlm_user_file, unreachable_port

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

USER = "opsadmin"
PASSWORD = "Fleet-pass: correct horse 42"
CREDENTIAL = Credential(name="win-admin", kind="password", username=USER, secret=SecretStr(PASSWORD))
WRONG = Credential(name="win-admin", kind="password", username=USER, secret=SecretStr("not the password"))
SERVICE = "StationController"
STATUS = f"(Get-Service -Name '{SERVICE}').Status"
BINARY = r"C:\Program Files\Station\stationcontroller.exe"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("winrm-tls"))


@pytest.fixture(autouse=True)
def ntlm_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyspnego's NTLM acceptor (the endpoint's side) reads its users from this file.
    monkeypatch.setenv("NTLM_USER_FILE", str(ntlm_user_file(tmp_path, {USER: PASSWORD})))


@pytest.fixture
def windows() -> SimulatedWindows:
    return SimulatedWindows(services={SERVICE: "Running"})


@pytest.fixture
def endpoint(windows: SimulatedWindows, certificates: Certificates) -> Iterator[WsmanEndpoint]:
    with WsmanEndpoint(windows, users={USER: PASSWORD}, certificates=certificates) as running:
        yield running


def executor(certificates: Certificates | None, **settings: object) -> WinrmExecutor:
    if certificates is not None:
        settings.setdefault("ca_bundle", certificates.ca_file)
    return WinrmExecutor(WinrmConfig.model_validate(settings))


def host_on(port: int, name: str = "win01", **fields: object) -> Host:
    return Host.model_validate(
        {"name": name, "address": "127.0.0.1", "port": port, "os": "windows", "connection": "winrm", **fields}
    )


async def settled(executor: WinrmExecutor, endpoints: list[WsmanEndpoint], within: float = 10.0) -> None:
    """Until every worker thread, abandoned ones too, has ended and cleaned up after itself."""
    with anyio.fail_after(within):
        while executor.threads_busy or any(e.open_shells for e in endpoints):
            await anyio.sleep(0.05)


# -- a script runs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["basic", "ntlm", "negotiate"])
async def test_script_runs_over_verified_https(
    transport: str, certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    script = (
        f"{STATUS}\nStop-Service -Name '{SERVICE}'\n{STATUS}\nWrite-Error 'stopped by {PASSWORD}'\nexit 4"
    )
    result = await executor(certificates, transport=transport).run(host_on(endpoint.port), CREDENTIAL, script)

    assert (result.failure, result.reason) == (None, None)
    assert result.exit_code == 4
    assert result.stdout == "Running\nStopped\n"
    # PowerShell's CLIXML on stderr is read back as its text, and the password is redacted.
    assert result.stderr == "stopped by ***\n"
    # The script went on the command's stdin (one Send, End="true"), not on its command line.
    assert endpoint.actions == ["Create", "Command", "Send", "Receive", "Signal", "Delete"]
    assert endpoint.codepages == [65001]
    assert (endpoint.open_shells, endpoint.unsignalled) == (0, 0)


async def test_long_output_in_pieces_is_joined_as_utf8(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    line = "Zürich: größer, ½ € " * 20
    result = await executor(certificates).run(
        host_on(endpoint.port), CREDENTIAL, f"Write-Output '{line}'\n" * 6
    )

    assert result.ok, result
    assert result.stdout == f"{line}\n" * 6  # 2.6 KB of UTF-8, sent in 1 KiB pieces


async def test_psrp_hosts_run_over_winrs_too(certificates: Certificates, endpoint: WsmanEndpoint) -> None:
    host = host_on(endpoint.port, connection="psrp")
    result = await executor(certificates).run(host, CREDENTIAL, "Write-Output 'over WinRS'")

    assert (result.exit_code, result.stdout) == (0, "over WinRS\n")
    assert "Command" in endpoint.actions


# -- what is refused, and why --------------------------------------------------------------------------


async def test_a_certificate_from_an_unknown_ca_is_refused(
    certificates: Certificates, endpoint: WsmanEndpoint, tmp_path: Path
) -> None:
    other = Certificates.make(tmp_path / "other", name="some other CA")
    for chosen in (executor(None, ca_bundle=other.ca_file), executor(None)):  # another CA; certifi's
        result = await chosen.run(host_on(endpoint.port), CREDENTIAL, "exit 0")

        assert result.failure is HostFailure.REFUSED
        assert result.reason is not None
        assert "did not verify" in result.reason and "winrm.ca_bundle" in result.reason
        assert not result.failure.may_have_run
    assert endpoint.requests == 0  # not one HTTP request (so no credential) went over it


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
async def test_a_bad_password_is_auth_rejected(
    transport: str, certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    result = await executor(certificates, transport=transport).run(host_on(endpoint.port), WRONG, "exit 0")

    assert result.failure is HostFailure.AUTH_REJECTED
    assert result.reason is not None and USER in result.reason
    assert "not the password" not in result.reason
    assert endpoint.rejected >= 1
    assert endpoint.actions == []  # nothing reached the shell


async def test_basic_over_plain_http_is_refused_before_anything_is_sent(windows: SimulatedWindows) -> None:
    with pytest.raises(ConfigError, match=r"basic.*https"):
        parse_config("winrm: {transport: basic, scheme: http}", source="opsmith.yaml")

    with WsmanEndpoint(windows, users={USER: PASSWORD}, auth=["basic"]) as plain:
        chosen = executor(None, transport="basic")
        result = await chosen.run(
            host_on(plain.port, vars={"ansible_winrm_scheme": "http"}), CREDENTIAL, "exit 0"
        )

        assert result.failure is HostFailure.REFUSED
        assert result.reason is not None and "plain HTTP" in result.reason
        assert plain.requests == 0


async def test_an_unreachable_host_fails_fast() -> None:
    with unreachable_port() as port:
        started = time.monotonic()
        result = await executor(None, connect_timeout=5).run(host_on(port), CREDENTIAL, "exit 0")

    assert result.failure is HostFailure.UNREACHABLE
    assert result.reason is not None and "refused" in result.reason.lower()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("action", "failure"),
    [("Create", HostFailure.UNREACHABLE), ("Receive", HostFailure.CONNECTION_LOST)],
)
async def test_a_dropped_connection_says_whether_the_command_may_have_run(
    action: str, failure: HostFailure, certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    endpoint.drop = action
    chosen = executor(certificates, transport="ntlm")
    result = await chosen.run(host_on(endpoint.port), CREDENTIAL, "Write-Output 'hello'")

    assert result.failure is failure, result.reason
    assert failure.may_have_run == (action == "Receive")
    endpoint.drop = None
    await settled(chosen, [endpoint])  # what was created is ended and deleted all the same
    assert endpoint.unsignalled == 0


# -- the deadline, the threads, the event loop ----------------------------------------------------------


async def test_a_hanging_host_times_out_at_the_hard_deadline_while_the_others_succeed(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    silent = WsmanEndpoint(SimulatedWindows(), users={USER: PASSWORD}, certificates=certificates)
    forever = WsmanEndpoint(SimulatedWindows(), users={USER: PASSWORD}, certificates=certificates)
    silent.stall = True  # Receive is never answered: pypsrp sits in a read (and would retry it)
    forever.hang = True  # the command never finishes: Receive answers the OperationTimeout fault
    with silent, forever:
        hosts = [
            host_on(endpoint.port, "good1"),
            host_on(silent.port, "silent"),
            host_on(forever.port, "forever"),
            host_on(endpoint.port, "good2"),
        ]
        chosen = executor(certificates, deadline=2, max_threads=4)
        started = time.monotonic()
        results = await chosen.run_many(
            hosts, lambda host: CREDENTIAL, lambda host: f"Write-Output '{host.name}'"
        )
        elapsed = time.monotonic() - started

        assert [r.host for r in results] == ["good1", "silent", "forever", "good2"]
        assert [r.stdout for r in results if r.ok] == ["good1\n", "good2\n"]
        for late in results[1:3]:
            assert late.failure is HostFailure.TIMED_OUT
            assert late.reason is not None and "2s deadline" in late.reason
            assert 1.9 <= late.duration_ms / 1000 < 2.8
        assert elapsed < 3.0
        # The abandoned threads end soon after (every request bounded), having ended the command
        # and deleted the shell on both hosts.
        await settled(chosen, [silent, forever], within=8)
        assert (silent.unsignalled, forever.unsignalled) == (0, 0)


async def test_the_limiter_is_not_held_by_an_abandoned_thread(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    silent = WsmanEndpoint(SimulatedWindows(), users={USER: PASSWORD}, certificates=certificates)
    silent.stall = True
    with silent:
        chosen = executor(certificates, deadline=1, max_threads=1)
        stuck = await chosen.run(host_on(silent.port, "silent"), CREDENTIAL, "exit 0")
        assert stuck.failure is HostFailure.TIMED_OUT
        assert chosen.threads_busy == 1  # still inside pypsrp, waiting for its read to time out

        started = time.monotonic()
        result = await chosen.run(host_on(endpoint.port), CREDENTIAL, "Write-Output 'next'")

        assert result.ok and time.monotonic() - started < 1  # the only slot was free at once
        await settled(chosen, [silent])


async def test_the_event_loop_keeps_running_during_a_slow_command(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    gaps: list[float] = []
    results: list[HostResult] = []

    async def slow() -> None:
        script = "Start-Sleep -Seconds 1.5\nWrite-Output 'slept'"
        results.append(
            await executor(certificates, operation_timeout=1).run(host_on(endpoint.port), CREDENTIAL, script)
        )

    async def ticker() -> None:
        last = time.monotonic()
        while not results:
            await anyio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        group.start_soon(ticker)

    [result] = results
    assert result.stdout == "slept\n" and result.duration_ms >= 1500
    assert endpoint.actions.count("Receive") >= 2  # it long-polled through OperationTimeout faults
    assert len(gaps) > 40 and max(gaps) < 0.2  # a blocked loop would show one gap of 1.5 s


async def test_clixml_error_records_and_plain_stderr_text_both_come_back(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    script = (
        "[Console]::Error.WriteLine('plain text from the script')\n"
        f"Write-Error 'an error record, {PASSWORD}'\nexit 2"
    )
    result = await executor(certificates).run(host_on(endpoint.port), CREDENTIAL, script)

    assert (result.failure, result.exit_code) == (None, 2)
    # The CLIXML decoded first, then the text written as it is; the password redacted in both.
    assert result.stderr == "an error record, ***\nplain text from the script\n"


async def test_stderr_of_both_kinds_is_kept_only_as_a_bounded_tail(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    script = (
        "Write-Error 'the first record'\n$n = 0\n"
        "while ($n -lt 3000) { [Console]::Error.WriteLine('plain line {0:d4} of the script' -f $n); $n++ }"
    )
    result = await executor(certificates).run(host_on(endpoint.port), CREDENTIAL, script)

    assert result.failure is None and result.exit_code == 1
    assert len(result.stderr) <= TAIL_CHARS and result.stderr.startswith("…")
    assert result.stderr.endswith("plain line 2999 of the script\n")


async def test_a_script_longer_than_any_command_line_runs_whole_from_stdin(
    certificates: Certificates, endpoint: WsmanEndpoint, windows: SimulatedWindows
) -> None:
    # 400 statements: about 45,000 characters once encoded, five times what cmd.exe takes.
    script = "".join(f"Write-Output 'line {n:03}'\n" for n in range(400)) + "exit 5"
    result = await executor(certificates).run(host_on(endpoint.port), CREDENTIAL, script)

    assert (result.failure, result.reason, result.exit_code) == (None, None, 5)
    assert result.stdout.splitlines()[-1] == "line 399" and len(result.stdout.splitlines()) == 400
    assert windows.stdins[-1].isascii() and windows.unsupported == [] and endpoint.errors == []
    assert (endpoint.open_shells, endpoint.unsignalled) == (0, 0)


# -- put_file -------------------------------------------------------------------------------------------


async def test_put_file_arrives_in_chunks_and_its_hash_verifies(
    certificates: Certificates, endpoint: WsmanEndpoint, windows: SimulatedWindows
) -> None:
    windows.files[BINARY.lower()] = b"the old build"
    data = os.urandom(2 * _CHUNK_BYTES + 1000)
    result = await executor(certificates).put_file(host_on(endpoint.port), CREDENTIAL, data, BINARY)

    assert result.ok, result
    assert result.stdout.strip() == hashlib.sha256(data).hexdigest().upper()
    assert windows.file(BINARY) == data  # replaced
    assert windows.chunks == [_CHUNK_BYTES, _CHUNK_BYTES, 1000]
    # Each part's script is longer than one Send carries: its stdin came in several, End on the last.
    assert endpoint.actions.count("Send") > endpoint.actions.count("Command") == 4
    assert list(windows.files) == [BINARY.lower()]  # no part file left behind
    assert endpoint.actions.count("Create") == 1  # one shell for all the commands
    assert (endpoint.open_shells, endpoint.unsignalled) == (0, 0)


async def test_put_file_that_arrives_corrupted_is_not_put_in_place(
    certificates: Certificates, endpoint: WsmanEndpoint, windows: SimulatedWindows
) -> None:
    windows.corrupt_writes = True
    result = await executor(certificates).put_file(host_on(endpoint.port), CREDENTIAL, b"x" * 3000, BINARY)

    assert not result.ok and result.exit_code == 3
    assert result.reason is not None and "SHA256 of the copy is" in result.reason
    assert windows.files == {}


async def test_put_file_refuses_a_relative_path(certificates: Certificates, endpoint: WsmanEndpoint) -> None:
    result = await executor(certificates).put_file(
        host_on(endpoint.port), CREDENTIAL, b"data", r"Temp\app.exe"
    )

    assert result.failure is HostFailure.REFUSED
    assert endpoint.requests == 0


async def test_put_file_takes_a_local_file(
    certificates: Certificates, endpoint: WsmanEndpoint, windows: SimulatedWindows, tmp_path: Path
) -> None:
    local = tmp_path / "stationcontroller.exe"
    local.write_bytes(b"MZ" + os.urandom(100))
    chosen = executor(certificates)

    result = await chosen.put_file(host_on(endpoint.port), CREDENTIAL, local, BINARY)
    missing = await chosen.put_file(host_on(endpoint.port), CREDENTIAL, tmp_path / "absent.exe", BINARY)

    assert result.ok and windows.file(BINARY) == local.read_bytes()
    assert missing.failure is HostFailure.REFUSED
    assert missing.reason is not None and "cannot read local file" in missing.reason


# -- a fleet --------------------------------------------------------------------------------------------


async def test_25_windows_hosts_stop_a_service_take_a_new_binary_and_start_again(
    certificates: Certificates,
) -> None:
    fleet = [SimulatedWindows(services={SERVICE: "Running"}) for _ in range(25)]
    endpoints = [WsmanEndpoint(w, users={USER: PASSWORD}, certificates=certificates).start() for w in fleet]
    try:
        hosts = [host_on(e.port, f"cis{n:02}") for n, e in enumerate(endpoints, start=1)]
        chosen = executor(certificates, max_threads=10)
        seen: list[str] = []
        build = os.urandom(3000)  # one chunk

        stopped = await chosen.run_many(
            hosts,
            lambda host: CREDENTIAL,
            lambda host: f"{STATUS}\nStop-Service -Name '{SERVICE}'",
            on_result=lambda result: seen.append(result.host),
        )
        copied: dict[str, HostResult] = {}

        async def copy(host: Host) -> None:
            copied[host.name] = await chosen.put_file(host, CREDENTIAL, build, BINARY)

        async with anyio.create_task_group() as group:
            for host in hosts:
                group.start_soon(copy, host)
        started = await chosen.run_many(
            hosts, lambda host: CREDENTIAL, lambda host: f"Start-Service -Name '{SERVICE}'\n{STATUS}"
        )

        assert [r.host for r in stopped] == [h.name for h in hosts] and sorted(seen) == sorted(
            h.name for h in hosts
        )
        assert all(r.ok and r.stdout == "Running\n" for r in stopped)
        assert all(r.ok for r in copied.values()) and len(copied) == 25
        assert all(r.ok and r.stdout == "Running\n" for r in started)
        assert all(w.file(BINARY) == build and w.services[SERVICE] == "Running" for w in fleet)
        assert sum(e.open_shells + e.unsignalled for e in endpoints) == 0
    finally:
        for running in endpoints:
            running.stop()


async def test_a_host_without_a_credential_does_not_stop_the_others(
    certificates: Certificates, endpoint: WsmanEndpoint
) -> None:
    def credential_for(host: Host) -> Credential:
        if host.name == "orphan":
            raise ConfigError("host orphan names no credential", hint="set its credential")
        return CREDENTIAL

    hosts = [
        host_on(endpoint.port, "win01"),
        host_on(endpoint.port, "orphan"),
        host_on(endpoint.port, "win03"),
    ]
    results = await executor(certificates).run_many(hosts, credential_for, lambda host: "Write-Output 'ok'")

    assert [r.failure for r in results] == [None, HostFailure.REFUSED, None]
    assert results[1].reason is not None and "names no credential" in results[1].reason

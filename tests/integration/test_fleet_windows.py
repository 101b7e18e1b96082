"""Issue 14, a mixed-OS stop from the CLI: one inventory group holding Linux hosts (real sshd) and
Windows hosts (each its own WS-Management endpoint over verified HTTPS, tests/fleet/wsman.py), planned,
approved and run through the same planner, playbook and engine as any fleet request. Each step is one
answer covering every host, bash over SSH on the Linux ones and PowerShell over WinRM on the Windows
ones; a stop one Windows host refuses is undone on every host where it had changed something.

Before that, each Windows script opsmith renders runs as it is, through the real WinRM executor, in
the simulated host's PowerShell (tests/fleet/powershell.py), so what the fleet run relies on is seen
working script by script; and what that interpreter does not know fails loudly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from opsmith.cli.app import main
from opsmith.config import WinrmConfig
from opsmith.domain import scripts_windows
from opsmith.domain.errors import ScriptInputError
from opsmith.domain.hosts import Credential, Host
from opsmith.domain.scripts import Script, parse_result
from opsmith.tools.hosts.winrm import WinrmExecutor
from tests.canary import everything_stored, leaks
from tests.fleet.powershell import UNSUPPORTED_EXIT
from tests.fleet.sshd import SshdFleet
from tests.fleet.wsman import ADDRESS, Certificates, SimulatedWindows, WsmanEndpoint, ntlm_user_file
from tests.integration import test_fleet_run as fleet_run
from tests.integration.test_fleet_run import UNIT, documents, planned_and_approved, project_with

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_orphans")]

USER = "opsadmin"
PASSWORD = "Win-fleet: correct horse 1234 staple"
WIN_CREDENTIAL = "win-admin"
UPLOAD = "C:\\Windows\\Temp\\opsmith-upload-0123456789abcdef"  # where provider.py puts an upload
CREDENTIAL = Credential(name=WIN_CREDENTIAL, kind="password", username=USER, secret=SecretStr(PASSWORD))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("fleet-winrm-tls"))


@pytest.fixture(autouse=True)
def ntlm_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The endpoints' NTLM acceptor (pyspnego, in this process) reads its users from this file.
    monkeypatch.setenv("NTLM_USER_FILE", str(ntlm_user_file(tmp_path, {USER: PASSWORD})))


@contextmanager
def windows_hosts(
    certificates: Certificates, *names: str
) -> Iterator[dict[str, tuple[SimulatedWindows, WsmanEndpoint]]]:
    """A simulated Windows host with UNIT running, behind its own endpoint, for each name."""
    with ExitStack() as stack:
        found = {}
        for name in names:
            host = SimulatedWindows(services={UNIT: "Running"})
            endpoint = stack.enter_context(
                WsmanEndpoint(host, users={USER: PASSWORD}, certificates=certificates)
            )
            found[name] = (host, endpoint)
        yield found


def mixed_project(
    tmp_path: Path,
    fleet: SshdFleet,
    linux: list[Host],
    windows: dict[str, tuple[SimulatedWindows, WsmanEndpoint]],
    certificates: Certificates,
) -> Path:
    """test_fleet_run's project, its group joined by the Windows hosts and WinRM trusting the test CA."""
    project = project_with(tmp_path, fleet, linux)
    path = project / "opsmith.yaml"
    config = yaml.safe_load(path.read_text())
    config["winrm"] = {"ca_bundle": str(certificates.ca_file), "connect_timeout": 3, "deadline": 20}
    hosts = config["inventory"]["groups"]["data_processing"]["hosts"]
    for name, (_, endpoint) in windows.items():
        hosts[name] = {
            "address": ADDRESS,
            "port": endpoint.port,
            "os": "windows",
            "connection": "winrm",
            "credential": WIN_CREDENTIAL,
        }
    path.write_text(yaml.safe_dump(config))
    return project


class InProcess:
    """The CLI run in this process, in place of test_fleet_run's `run` (same signature), so that its
    helpers drive it too: a command costs ~0.1 s here against ~2 s of imports as its own process.
    What `opsmith` prints is kept in `said`."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def __call__(
        self, project: Path, user: str, *args: str, stdin: str | None = None
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv, given = sys.argv, sys.stdin
        sys.argv, sys.stdin = ["opsmith", "--as", user, *args], io.StringIO(stdin or "")
        try:
            with contextlib.chdir(project), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main()  # the console script's entry: it ends in sys.exit with the exit code
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        finally:
            sys.argv, sys.stdin = argv, given
        self.said += [out.getvalue(), err.getvalue()]
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    runner = InProcess()
    monkeypatch.setattr(fleet_run, "run", runner)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield runner
    # The CLI sends log records to a file under the project; later tests must not inherit that.
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def stored_password(cli: InProcess, project: Path) -> None:
    code, _, err = cli(
        project,
        "ada",
        "secrets",
        "set",
        WIN_CREDENTIAL,
        "--kind",
        "password",
        "--username",
        USER,
        stdin=PASSWORD,
    )
    assert code == 0, err


# -- each Windows script, through the real executor --------------------------------------------------


def windows_scripts(target: str) -> list[tuple[Script, dict[str, Any]]]:
    """Every operation's script for a Windows host, with what its result line must say when run in
    order on a host where UNIT runs and `target`'s upload waits in C:\\Windows\\Temp."""
    digest = hashlib.sha256(b"MZ the new build").hexdigest()
    return [
        (scripts_windows.service_status(UNIT), {"state": "running", "detail": "Running"}),
        (scripts_windows.service_stop(UNIT), {"was_running": True, "state": "stopped", "changed": True}),
        (scripts_windows.service_stop(UNIT), {"was_running": False, "changed": False}),
        (scripts_windows.service_start(UNIT), {"was_running": False, "state": "running", "changed": True}),
        (scripts_windows.service_restart(UNIT), {"was_running": True, "state": "running", "changed": True}),
        (scripts_windows.wait_healthy(service=UNIT, timeout=5, interval=1), {"healthy": True, "probes": 1}),
        (
            scripts_windows.process_check("dataprocessor.exe"),
            {"running": True, "count": 2, "pids": [4100, 4104]},
        ),
        (scripts_windows.install_file(UPLOAD, target, digest), {"changed": True, "backup": None}),
        (
            scripts_windows.install_file(UPLOAD, target, "0" * 64),
            {"error": f"the new file {UPLOAD} is not there"},
        ),
    ]


@pytest.mark.anyio
async def test_every_windows_script_runs_as_rendered_over_winrm(certificates: Certificates) -> None:
    target = "C:\\Program Files\\Data Processor\\dataprocessor.exe"
    windows = SimulatedWindows(
        services={UNIT: "Running"},
        processes={"dataprocessor": [4100, 4104]},
        directories={"c:\\program files\\data processor"},
        files={UPLOAD.lower(): b"MZ the new build"},
    )
    executor = WinrmExecutor(WinrmConfig(ca_bundle=certificates.ca_file, deadline=20))
    host = Host(name="win-01", address=ADDRESS, os="windows", connection="winrm")
    with WsmanEndpoint(windows, users={USER: PASSWORD}, certificates=certificates) as endpoint:
        host = host.model_copy(update={"port": endpoint.port})
        for script, expected in windows_scripts(target):
            result = await executor.run(host, CREDENTIAL, script.text, timeout=20)

            answer = parse_result(result.stdout)
            assert result.failure is None, result.reason  # fits the command line, and ran
            assert answer is not None, (script.operation, result.stdout, result.stderr)
            assert answer["op"] == script.operation and answer.items() >= expected.items(), answer
            assert result.exit_code == (0 if answer["ok"] else 4), answer
    assert windows.unsupported == [] and endpoint.errors == []
    assert windows.services[UNIT] == "Running" and windows.file(target) == b"MZ the new build"
    assert windows.file(UPLOAD) is None  # moved in place


@pytest.mark.anyio
async def test_a_256_character_service_name_and_long_paths_run_end_to_end_over_winrm(
    certificates: Certificates,
) -> None:
    name = "Svc_" + "x" * 251 + "1"  # as long as validation allows
    directory = "C:\\" + "\\".join(["folder-" + "d" * 120] * 6)
    target, upload, data = f"{directory}\\app.exe", "C:\\Windows\\Temp\\" + "u" * 200, b"MZ long"
    scripts = [
        (scripts_windows.service_stop(name, timeout=5), {"state": "stopped", "changed": True}),
        (scripts_windows.service_start(name, timeout=5), {"state": "running", "changed": True}),
        (scripts_windows.service_status(name), {"state": "running", "service": name}),
        (
            scripts_windows.install_file(upload, target, hashlib.sha256(data).hexdigest()),
            {"changed": True, "target": target},
        ),
    ]
    # Those that change something are past what cmd.exe takes once encoded: as -EncodedCommand they
    # could not even start.
    assert len(name) == 256
    assert all(len(script.encoded()) > 8191 for script, _ in scripts if script.changes)
    windows = SimulatedWindows(
        services={name: "Running"}, directories={directory.lower()}, files={upload.lower(): data}
    )
    executor = WinrmExecutor(WinrmConfig(ca_bundle=certificates.ca_file, deadline=20))
    with WsmanEndpoint(windows, users={USER: PASSWORD}, certificates=certificates) as endpoint:
        host = Host(name="win-01", address=ADDRESS, os="windows", connection="winrm", port=endpoint.port)
        for script, expected in scripts:
            result = await executor.run(host, CREDENTIAL, script.text, timeout=20)

            answer = parse_result(result.stdout)
            assert (result.failure, result.exit_code) == (None, 0), (result.reason, result.stderr)
            assert answer is not None and answer["op"] == script.operation, result.stdout
            assert answer.items() >= expected.items(), answer
        assert endpoint.actions.count("Send") >= len(scripts)
    assert windows.unsupported == [] and endpoint.errors == []
    assert windows.services[name] == "Running" and windows.file(target) == data


def test_a_stop_that_takes_a_while_is_polled_until_the_service_has_stopped() -> None:
    windows = SimulatedWindows(services={UNIT: "Running"}, pending_seconds=1.2)

    ran = windows(scripts_windows.service_stop(UNIT, timeout=5).text)

    answer = parse_result(ran.stdout)
    assert ran.exit_code == 0 and answer is not None and answer["state"] == "stopped", ran
    assert 1.2 <= ran.seconds <= 2.0  # StopPending through three polls of 0.5 s (the host's time)
    late = windows(scripts_windows.service_start(UNIT, timeout=1).text)  # StartPending for 1.2 s
    answer = parse_result(late.stdout)
    assert late.exit_code == 3 and answer is not None, late
    assert (
        answer["error"] == f"service {UNIT} did not reach Running within 1s" and answer["state"] == "starting"
    )


def test_a_service_that_refuses_to_stop_fails_as_on_windows() -> None:
    windows = SimulatedWindows(services={UNIT: "Running"}, refuse_stop={UNIT})

    ran = windows(scripts_windows.service_stop(UNIT).text)

    answer = parse_result(ran.stdout)
    assert ran.exit_code == 1 and answer is not None and not answer["ok"]
    assert answer["error"] == (
        f"Service '{UNIT} ({UNIT})' cannot be stopped due to the following error: Cannot stop {UNIT}"
        " service on computer '.'."
    )
    # Windows PowerShell 5.1's ConvertTo-Json writes a quote as \u0027: read back, it is the text.
    assert "\\u0027" in ran.stdout and windows.services[UNIT] == "Running"
    assert windows.unsupported == []


# Any character a Windows file name may hold: quotes of every kind, $, `, braces, letters of any
# script, and those outside the BMP (two UTF-16 units, escaped as a surrogate pair).
FILE_NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='<>:"/\\|?*'),
    min_size=1,
    max_size=16,
)


@settings(max_examples=40, deadline=None)
@given(FILE_NAMES)
def test_a_file_lands_at_any_path_windows_allows_and_the_result_says_which(name: str) -> None:
    target, data = f"C:\\data\\{name}x", b"MZ build 42"
    try:
        script = scripts_windows.install_file(UPLOAD, target, hashlib.sha256(data).hexdigest())
    except ScriptInputError:
        assume(False)  # a name opsmith refuses before anything is sent
        return
    windows = SimulatedWindows(directories={"c:\\data"}, files={UPLOAD.lower(): data})

    ran = windows(script.text)

    answer = parse_result(ran.stdout)
    assert ran.exit_code == 0 and answer is not None, (ran.stdout, ran.stderr)
    assert answer["target"] == target
    assert answer["ok"] and answer["changed"] and windows.file(target) == data
    assert ran.stdout.isascii()  # whatever the path, the result line survives any code page


@pytest.mark.parametrize(
    ("script", "named"),
    [
        ("Write-Output 'a'\nRestart-Computer -Force", "Restart-Computer"),
        ("if ($false) { Get-ChildItem -LiteralPath 'C:\\' }", "Get-ChildItem"),  # in a branch never taken
        ("try { Stop-Service -Name 'x' -PassThru } catch { exit 0 }", "-PassThru"),  # no catch hides it
        ("$x = [Environment]::MachineName", "[Environment]"),
        ("$x = 'a'.Substring(1)", ".Substring"),
        ("$x = 1 -shl 2", "-shl"),
        ("& 'C:\\tool.exe' 2>&1", "call operator"),
    ],
)
def test_what_the_simulated_host_cannot_run_fails_loudly(script: str, named: str) -> None:
    windows = SimulatedWindows(services={"x": "Running"})

    ran = windows(script)

    assert ran.exit_code == UNSUPPORTED_EXIT and named in ran.stderr, ran.stderr
    assert f"unsupported statement `{script.splitlines()[-1]}`" in ran.stderr  # which one, in full
    assert windows.unsupported == [ran.stderr] and windows.services == {"x": "Running"}
    assert ran.stdout == ""  # parsed whole first: nothing ran


# -- the fleet run, from the CLI -----------------------------------------------------------------------


def test_a_service_is_stopped_on_the_linux_and_windows_hosts_of_one_group(
    tmp_path: Path, sshd_fleet: SshdFleet, certificates: Certificates, cli: InProcess
) -> None:
    linux = sshd_fleet.good[15:18]
    sshd_fleet.declare_units(UNIT, hosts=linux)
    with windows_hosts(certificates, "win-01", "win-02") as windows:
        project = mixed_project(tmp_path, sshd_fleet, linux, windows, certificates)
        try:
            for host in linux:
                assert sshd_fleet.start_unit(host, UNIT)
            stored_password(cli, project)
            plan = planned_and_approved(project, sshd_fleet)
            every = sorted([*(h.name for h in linux), *windows])
            assert sorted(plan["steps"][0]["targets"]) == every, "planned over the 5 hosts of the group"

            code, out, err = cli(project, "bob", "run", plan["id"], "--json")
            assert code == 0, (out, err)
            result = json.loads(out)
            assert result["status"] == "succeeded", result
            assert not any(sshd_fleet.unit_running(h, UNIT) for h in linux)
            assert all(host.services[UNIT] == "Stopped" for host, _ in windows.values())

            status = json.loads(cli(project, "vic", "status", result["run_id"], "--json")[1])
            steps = {s["step_id"]: s for s in status["steps"]}
            assert list(steps) == ["status", "stop", "verify"]
            oses = {**{h.name: "linux" for h in linux}, **dict.fromkeys(windows, "windows")}
            for step in steps.values():  # one answer per step: a row for every host, with its OS
                assert {row["host"]: row["os"] for row in step["output"]["hosts"]} == oses, step["step_id"]
            assert sorted(steps["stop"]["output"]["changed_hosts"]) == every
            assert steps["verify"]["output"]["succeeded"] == 5
            verify = {row["host"]: row["result"] for row in steps["verify"]["output"]["hosts"]}
            assert {r["state"] for r in verify.values()} == {"stopped"}
            # Each said so in its own words, over its own connection: systemd's and Windows'.
            assert {verify[h.name]["detail"] for h in linux} == {"inactive"}
            assert {verify[h]["detail"] for h in windows} == {"Stopped"}
            for host, endpoint in windows.values():  # status, stop and verify, each over WinRM
                assert len(host.scripts) == 3 and host.unsupported == [] and endpoint.errors == []
                assert endpoint.open_shells == 0
            events = documents(cli(project, "vic", "logs", result["run_id"], "--json")[1])
            stop = [e for e in events if e["type"] == "step.progress" and e["step_id"] == "stop"]
            assert stop and stop[-1]["data"]["completed"] == 5 and stop[-1]["data"]["failed"] == 0
            assert cli(project, "ada", "audit", "verify")[0] == 0

            assert leaks([PASSWORD], [*cli.said, json.dumps(plan), everything_stored(project)]) == []
        finally:
            sshd_fleet.stop_units()


def test_a_stop_one_windows_host_refuses_is_undone_on_every_host_it_changed(
    tmp_path: Path, sshd_fleet: SshdFleet, certificates: Certificates, cli: InProcess
) -> None:
    linux = sshd_fleet.good[15:18]
    sshd_fleet.declare_units(UNIT, hosts=linux)
    with windows_hosts(certificates, "win-01", "win-02") as windows:
        stubborn, _ = windows["win-02"]
        stubborn.refuse_stop.add(UNIT)
        project = mixed_project(tmp_path, sshd_fleet, linux, windows, certificates)
        try:
            for host in linux:
                assert sshd_fleet.start_unit(host, UNIT)
            stored_password(cli, project)
            plan = planned_and_approved(project, sshd_fleet)

            code, out, err = cli(project, "bob", "run", plan["id"], "--json")
            assert code == 1, (out, err)
            result = json.loads(out)
            assert result["status"] == "rolled_back", result
            failure = result["failure"]
            assert "1 failed" in failure and "win-02: failed: Service 'dataprocessor" in failure, failure
            assert "cannot be stopped due to the following error" in failure, failure  # Windows' reason
            # Stopped on four hosts while the fifth refused: the undo started it again on those four.
            assert all(sshd_fleet.unit_running(h, UNIT) for h in linux)
            assert all(host.services[UNIT] == "Running" for host, _ in windows.values())
            status = json.loads(cli(project, "vic", "status", result["run_id"], "--json")[1])
            stop = {s["step_id"]: s for s in status["steps"]}["stop"]
            assert stop["status"] == "failed" and stop["undo"] == "done", stop
            assert sorted(stop["output"]["changed_hosts"]) == sorted([*(h.name for h in linux), "win-01"])
            assert [row["host"] for row in stop["output"]["hosts"] if not row["ok"]] == ["win-02"]
            # win-01: status, stop and its undo; win-02: status and the stop it refused.
            assert [len(host.scripts) for host, _ in windows.values()] == [3, 2]
            assert all(host.unsupported == [] for host, _ in windows.values())
            assert leaks([PASSWORD], [*cli.said, everything_stored(project)]) == []
        finally:
            sshd_fleet.stop_units()

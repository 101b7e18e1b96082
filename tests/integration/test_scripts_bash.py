"""The Linux fleet scripts run by real bash, here, the way an SSH adapter sends them (`bash -s`,
the script on stdin), against real processes: the systemctl stub in tests/fleet/bin (which starts
and stops real background processes), pgrep and ps, real files, a real HTTP server, and shims for
package managers and sudo that record how they were called (so no real package manager runs).

Every run is bounded by a timeout; every service started is stopped at teardown.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain import scripts_linux
from opsmith.domain.script_catalog import render
from opsmith.domain.scripts import Script, ScriptExit, parse_result, sh_quote

pytestmark = pytest.mark.integration

FLEET_BIN = Path(__file__).resolve().parent.parent / "fleet" / "bin"
SYSTEM_BIN = Path("/usr/bin")


@dataclass(frozen=True)
class Ran:
    code: int
    result: dict[str, Any] | None
    stdout: str
    stderr: str

    @property
    def got(self) -> dict[str, Any]:
        assert self.result is not None, f"no result line; stdout={self.stdout!r} stderr={self.stderr!r}"
        return self.result


class Host:
    """This machine as a fleet host: a PATH, a stub state directory, a working directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "stub"
        (self.state / "units").mkdir(parents=True)
        self.cwd = root / "cwd"
        self.cwd.mkdir()
        self.path = f"{FLEET_BIN}:{os.environ['PATH']}"
        self.extra: dict[str, str] = {}

    def unit(self, name: str, *settings: str) -> None:
        (self.state / "units" / name).write_text("".join(f"{s}\n" for s in settings))

    def env(self) -> dict[str, str]:
        # Built from nothing, so no proxy or locale of the test runner reaches the scripts.
        return {
            "PATH": self.path,
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "OPSMITH_STUB_STATE": str(self.state),
            **self.extra,
        }

    def run(self, script: Script, *, timeout: float = 30) -> Ran:
        assert script.shell == "bash"
        done = subprocess.run(
            ["bash", "-s"],
            input=script.text,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, parse_result(done.stdout), done.stdout, done.stderr)

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FLEET_BIN / "systemctl"), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=15,
            check=False,
        )

    def pid(self, unit: str) -> int:
        return int((self.state / "run" / f"{unit}.pid").read_text())

    def bin_without(self, *names: str) -> Path:
        """A directory of links to every program of /usr/bin but `names` (to take one away)."""
        directory = self.root / f"bin-without-{'-'.join(names)}"
        directory.mkdir()
        for program in SYSTEM_BIN.iterdir():
            if program.name not in names:
                (directory / program.name).symlink_to(program)
        return directory

    def stop_all(self) -> None:
        for pid_file in (self.state / "run").glob("*.pid"):
            pid = int(pid_file.read_text())
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm == pid_file.stem[:15]:
                os.kill(pid, 15)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    machine = Host(tmp_path)
    yield machine
    machine.stop_all()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def pgrep(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, timeout=5, check=False)
    return [int(pid) for pid in found.stdout.split() if running(int(pid))]


# -- quoting ---------------------------------------------------------------------------------------

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@settings(max_examples=100, deadline=None)
@given(ANY_TEXT)
def test_a_quoted_word_reaches_bash_exactly(text: str) -> None:
    printed = subprocess.run(
        ["bash", "-c", "printf %s " + sh_quote(text)], capture_output=True, timeout=10, check=True
    )
    assert printed.stdout.decode("utf-8") == text


# -- services --------------------------------------------------------------------------------------


def test_a_service_started_stopped_and_restarted_through_systemctl(host: Host) -> None:
    host.unit("webapp")
    status = host.run(scripts_linux.service_status("webapp"))
    assert status.code == 0
    assert status.got == {
        "op": "service_status",
        "service": "webapp",
        "ok": True,
        "manager": "systemd",
        "state": "stopped",
        "detail": "inactive",
    }

    started = host.run(scripts_linux.service_start("webapp.service", timeout=10))
    assert started.code == 0, started.stderr
    assert started.got["state"] == "running" and started.got["changed"] is True
    assert started.got["was_running"] is False
    first = host.pid("webapp")
    assert pgrep("webapp") == [first]

    again = host.run(scripts_linux.service_start("webapp", timeout=10))
    assert again.got["changed"] is False and again.got["was_running"] is True
    assert pgrep("webapp") == [first]

    restarted = host.run(scripts_linux.service_restart("webapp", timeout=10))
    assert restarted.code == 0 and restarted.got["was_running"] is True
    second = host.pid("webapp")
    assert second != first and pgrep("webapp") == [second] and not running(first)

    stopped = host.run(scripts_linux.service_stop("webapp", timeout=10))
    assert stopped.code == 0
    assert {k: stopped.got[k] for k in ("was_running", "state", "changed")} == {
        "was_running": True,
        "state": "stopped",
        "changed": True,
    }
    assert pgrep("webapp") == [] and not running(second)
    assert host.run(scripts_linux.service_stop("webapp")).got["changed"] is False


def test_the_stub_answers_like_systemd(host: Host) -> None:
    host.unit("webapp")
    assert (
        host.systemctl("is-active", "webapp").returncode,
        host.systemctl("status", "webapp").returncode,
    ) == (3, 3)
    assert host.systemctl("start", "webapp").returncode == 0
    active = host.systemctl("is-active", "webapp")
    assert (active.returncode, active.stdout) == (0, "active\n")
    assert "Active: active (running)" in host.systemctl("status", "webapp").stdout
    shown = host.systemctl("show", "-p", "LoadState", "-p", "MainPID", "webapp").stdout
    assert shown == f"LoadState=loaded\nMainPID={host.pid('webapp')}\n"
    unknown = host.systemctl("status", "ghost")
    assert (unknown.returncode, unknown.stderr) == (4, "Unit ghost.service could not be found.\n")
    assert host.systemctl("is-active", "ghost").returncode == 3  # what systemd answers, too
    assert host.systemctl("start", "ghost").returncode == 5
    assert host.systemctl("show", "-p", "LoadState", "--value", "ghost").stdout == "not-found\n"


def test_an_unknown_service_is_exit_4_with_a_reason(host: Host) -> None:
    ran = host.run(scripts_linux.service_start("nosuchunit"))
    assert ran.code == ScriptExit.NOT_FOUND
    assert ran.got["ok"] is False and "nosuchunit is not known to systemd" in ran.got["error"]
    assert "opsmith: service nosuchunit" in ran.stderr


def test_a_service_that_fails_to_start_says_so(host: Host) -> None:
    host.unit("broken", "fail_start=1")
    ran = host.run(scripts_linux.service_start("broken", timeout=5))
    assert ran.code == ScriptExit.FAILED
    assert ran.got["state"] == "failed" and "start of service broken failed" in ran.got["error"]


def test_without_systemctl_the_service_command_is_used(host: Host) -> None:
    host.unit("legacyd")
    shim = host.root / "shim"
    shim.mkdir()
    (shim / "service").symlink_to(FLEET_BIN / "service")
    host.path = f"{shim}:{host.bin_without('systemctl')}"
    assert (
        subprocess.run(
            ["bash", "-c", "command -v systemctl"],
            env=host.env(),
            capture_output=True,
            timeout=5,
            check=False,
        ).returncode
        != 0
    )

    started = host.run(scripts_linux.service_start("legacyd", timeout=10))
    assert started.code == 0, started.stderr
    assert started.got["manager"] == "service" and started.got["state"] == "running"
    assert pgrep("legacyd") == [host.pid("legacyd")]
    status = host.run(scripts_linux.service_status("legacyd"))
    assert (status.got["state"], status.got["detail"]) == ("running", "status exit 0")
    stopped = host.run(scripts_linux.service_stop("legacyd", timeout=10))
    assert stopped.code == 0 and stopped.got["state"] == "stopped" and pgrep("legacyd") == []


def test_sudo_runs_the_service_manager_without_a_password(host: Host) -> None:
    host.unit("webapp")
    calls = host.root / "sudo.log"
    shims = host.root / "sudo-shim"
    shims.mkdir()
    # A sudo that records its arguments and runs the command after `-n --`, as NOPASSWD would.
    write_program(
        shims / "sudo",
        f'echo "$*" >> {sh_quote(str(calls))}\n[ "$1" = -n ] || exit 1\nshift\n'
        '[ "$1" = -- ] && shift\nexec "$@"\n',
    )
    host.path = f"{shims}:{host.path}"
    ran = host.run(render("service_start", "linux", {"service": "webapp"}, sudo=True))
    assert ran.code == 0, ran.stderr
    assert calls.read_text().splitlines() == ["-n true", "-n -- systemctl start webapp"]


def test_sudo_that_wants_a_password_is_refused_up_front(host: Host) -> None:
    host.unit("webapp")
    shims = host.root / "sudo-shim"
    shims.mkdir()
    write_program(shims / "sudo", 'echo "sudo: a password is required" >&2\nexit 1\n')
    host.path = f"{shims}:{host.path}"
    ran = host.run(scripts_linux.service_stop("webapp", sudo=True))
    assert ran.code == ScriptExit.UNSUPPORTED
    assert "asks this account for a password" in ran.got["error"]


# -- processes -------------------------------------------------------------------------------------


def test_the_process_check_finds_a_running_service_and_not_a_stopped_one(host: Host) -> None:
    host.unit("dataprocessor")
    assert host.systemctl("start", "dataprocessor").returncode == 0
    pid = host.pid("dataprocessor")
    found = host.run(scripts_linux.process_check("dataprocessor"))
    assert found.code == 0 and found.got["running"] is True
    assert found.got["pids"] == [pid] and found.got["count"] == 1

    assert host.systemctl("stop", "dataprocessor").returncode == 0
    gone = host.run(scripts_linux.process_check("dataprocessor"))
    assert gone.code == 0
    assert (gone.got["running"], gone.got["count"], gone.got["pids"]) == (False, 0, [])
    assert host.run(scripts_linux.process_check("neverstarted")).got["running"] is False


def test_a_name_longer_than_the_kernel_keeps_is_found_and_confirmed(host: Host) -> None:
    host.unit("stationcontroller.exe")
    host.unit("stationcontrollerX")  # the same first 15 characters: must not count
    assert host.systemctl("start", "stationcontroller.exe", "stationcontrollerX").returncode == 0
    found = host.run(scripts_linux.process_check("stationcontroller.exe"))
    assert found.got["pids"] == [host.pid("stationcontroller.exe")]


def test_the_process_check_falls_back_to_ps(host: Host) -> None:
    host.unit("dataprocessor")
    assert host.systemctl("start", "dataprocessor").returncode == 0
    host.path = str(host.bin_without("pgrep"))
    found = host.run(scripts_linux.process_check("dataprocessor"))
    assert found.got["pids"] == [host.pid("dataprocessor")]


def test_a_dot_in_a_process_name_is_not_a_regex_wildcard(host: Host) -> None:
    host.unit("a1b")
    assert host.systemctl("start", "a1b").returncode == 0
    assert host.run(scripts_linux.process_check("a.b")).got["running"] is False


# -- files -----------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(host: Host, data: bytes, name: str = "upload.tmp") -> Path:
    temp = host.root / name
    temp.write_bytes(data)
    return temp


def test_install_file_keeps_a_backup_and_verifies(host: Host) -> None:
    target = host.root / "app" / "app.conf"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    target.chmod(0o640)
    temp = upload(host, b"new\n")

    ran = host.run(scripts_linux.install_file(str(temp), str(target), sha(b"new\n")))
    assert ran.code == 0, ran.stderr
    assert ran.got["changed"] is True
    backup = Path(ran.got["backup"])
    assert backup.parent == target.parent and backup.name.startswith("app.conf.bak-")
    assert backup.read_bytes() == b"old\n" and target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the old file's mode
    assert not temp.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["app.conf", backup.name]

    again = host.run(scripts_linux.install_file(str(upload(host, b"new\n")), str(target), sha(b"new\n")))
    assert again.code == 0 and again.got == {**again.got, "changed": False, "backup": None}


def test_a_checksum_mismatch_leaves_the_target_untouched(host: Host) -> None:
    target = host.root / "app.conf"
    target.write_bytes(b"old\n")
    temp = upload(host, b"tampered\n")
    ran = host.run(scripts_linux.install_file(str(temp), str(target), sha(b"expected\n")))
    assert ran.code == ScriptExit.CHECKSUM
    assert ran.got["actual"] == sha(b"tampered\n") and ran.got["changed"] is False
    assert "was not touched" in ran.got["error"]
    assert target.read_bytes() == b"old\n" and temp.exists()
    assert sorted(p.name for p in host.root.iterdir() if p.name.startswith("app.conf")) == ["app.conf"]


def test_a_new_file_gets_the_mode_asked_for(host: Host) -> None:
    target = host.root / "run.sh"
    ran = host.run(
        scripts_linux.install_file(
            str(upload(host, b"#!/bin/sh\n")), str(target), sha(b"#!/bin/sh\n"), mode="0750"
        )
    )
    assert ran.code == 0 and ran.got["backup"] is None
    assert stat.S_IMODE(target.stat().st_mode) == 0o750


def test_a_missing_directory_or_upload_is_exit_4(host: Host) -> None:
    missing_dir = host.run(
        scripts_linux.install_file(str(upload(host, b"x")), str(host.root / "no" / "f"), sha(b"x"))
    )
    assert missing_dir.code == ScriptExit.NOT_FOUND and "does not exist" in missing_dir.got["error"]
    missing_upload = host.run(
        scripts_linux.install_file(str(host.root / "gone"), str(host.root / "f"), sha(b"x"))
    )
    assert missing_upload.code == ScriptExit.NOT_FOUND and "is not there" in missing_upload.got["error"]


NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x7f"),
    min_size=1,
    max_size=24,
).filter(lambda name: name not in (".", ".."))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_any_file_name_survives_into_the_result_line(host: Host, name: str) -> None:
    directory = host.root / "names" / hashlib.sha1(name.encode()).hexdigest()
    directory.mkdir(parents=True)
    target = directory / name
    target.write_bytes(b"old")
    ran = host.run(scripts_linux.install_file(str(upload(host, b"new", "n.tmp")), str(target), sha(b"new")))
    assert ran.code == 0, ran.stderr
    assert ran.got["target"] == str(target)
    assert ran.got["backup"].startswith(str(target) + ".bak-")  # encoded by bash at run time
    assert Path(ran.got["backup"]).read_bytes() == b"old" and target.read_bytes() == b"new"


# -- injection -------------------------------------------------------------------------------------

SNEAKY = "it's here'; touch PWNED; echo '"


def test_a_quote_in_a_path_is_data_not_code(host: Host) -> None:
    directory = host.root / "x"
    directory.mkdir()
    target = directory / SNEAKY
    temp = upload(host, b"payload", "up'; touch PWNED; '.tmp")
    ran = host.run(scripts_linux.install_file(str(temp), str(target), sha(b"payload")))
    assert ran.code == 0, ran.stderr
    assert target.read_bytes() == b"payload" and ran.got["target"] == str(target)
    assert list(host.root.rglob("PWNED")) == [] and not (host.cwd / "PWNED").exists()


@pytest.mark.parametrize(
    "word", [SNEAKY, "$(touch PWNED)", "`touch PWNED`", "a\nb; touch PWNED", '"; touch PWNED; "', "*", ""]
)
def test_a_command_argument_arrives_intact_and_runs_nothing(host: Host, word: str) -> None:
    show = "import json, sys; print(json.dumps(sys.argv[1:]))"
    ran = host.run(
        scripts_linux.run_command([sys.executable, "-c", show, word, "second arg"], cwd=str(host.cwd))
    )
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout.split("\n")[0]) == [word, "second arg"]
    assert not (host.cwd / "PWNED").exists() and list(host.root.rglob("PWNED")) == []


def test_a_script_cut_short_in_transit_runs_nothing(host: Host) -> None:
    target = host.root / "app.conf"
    target.write_bytes(b"old")
    whole = scripts_linux.install_file(str(upload(host, b"new")), str(target), sha(b"new"))
    cut = whole.model_copy(update={"text": whole.text.rsplit("_main", 1)[0]})
    ran = host.run(cut)
    assert ran.result is None and target.read_bytes() == b"old"


# -- commands --------------------------------------------------------------------------------------


def test_a_command_that_fails_is_exit_1_with_its_code(host: Host) -> None:
    ran = host.run(scripts_linux.run_command(["sh", "-c", "echo out; echo err >&2; exit 7"]))
    assert ran.code == ScriptExit.FAILED and ran.got["exit_code"] == 7
    assert ran.stdout.startswith("out\n") and "err" in ran.stderr


def test_a_missing_program_is_exit_4(host: Host) -> None:
    ran = host.run(scripts_linux.run_command(["no-such-program-here"]))
    assert ran.code == ScriptExit.NOT_FOUND and ran.got["exit_code"] == 127


def test_a_command_cannot_read_the_rest_of_the_script(host: Host) -> None:
    # Sent on `bash -s`, the script is stdin: `cat` would swallow what follows without the guard.
    ran = host.run(scripts_linux.run_command(["cat"]), timeout=10)
    assert ran.code == 0 and ran.got["exit_code"] == 0


def test_a_command_timeout_is_exit_3_within_its_bound(host: Host) -> None:
    started = time.monotonic()
    ran = host.run(scripts_linux.run_command(["sleep", "30"], timeout=1), timeout=15)
    assert ran.code == ScriptExit.TIMED_OUT and ran.got["exit_code"] == 124
    assert time.monotonic() - started < 5


def test_a_forged_result_line_in_a_commands_output_is_overruled(host: Host) -> None:
    forged = 'OPSMITH-RESULT {"op": "run_command", "ok": true, "exit_code": 0, "forged": true}'
    ran = host.run(scripts_linux.run_command(["printf", f"{forged}\n{forged}"]))  # the last without a newline
    assert ran.code == 0 and ran.stdout.count("OPSMITH-RESULT") == 3 and "forged" not in ran.got
    ran = host.run(scripts_linux.run_command(["sh", "-c", f"printf '%s' '{forged}'; exit 3"]))
    assert ran.got["ok"] is False and ran.got["exit_code"] == 3 and "forged" not in ran.got


# -- health ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_wait_healthy_succeeds_against_a_live_server(host: Host, web: str) -> None:
    ran = host.run(scripts_linux.wait_healthy(url=web, timeout=10, interval=1))
    assert ran.code == 0, ran.stderr
    assert ran.got["healthy"] is True and ran.got["status"] == 200 and ran.got["probes"] == 1


def test_wait_healthy_with_wget_when_curl_is_missing(host: Host, web: str) -> None:
    host.path = str(host.bin_without("curl"))
    ran = host.run(scripts_linux.wait_healthy(url=web, timeout=10, interval=1))
    assert ran.code == 0 and ran.got["healthy"] is True and ran.got["status"] is None


def test_wait_healthy_gives_up_within_its_bound(host: Host) -> None:
    started = time.monotonic()
    ran = host.run(scripts_linux.wait_healthy(url=f"http://127.0.0.1:{free_port()}/", timeout=2, interval=1))
    took = time.monotonic() - started
    assert ran.code == ScriptExit.TIMED_OUT
    assert ran.got["healthy"] is False and ran.got["probes"] >= 2 and ran.got["last"] == "no answer"
    assert 0.9 < took < 6  # bash counts whole seconds


def test_wait_healthy_sees_a_service_become_active(host: Host) -> None:
    host.unit("slowstart")
    later = subprocess.Popen(
        ["bash", "-c", f"sleep 1.5; exec {sh_quote(str(FLEET_BIN / 'systemctl'))} start slowstart"],
        env=host.env(),
    )
    try:
        ran = host.run(scripts_linux.wait_healthy(service="slowstart", timeout=15, interval=1))
    finally:
        later.wait(timeout=15)
    assert ran.code == 0, ran.stderr
    assert ran.got["healthy"] is True and ran.got["probes"] >= 2 and ran.got["last"] == "running (active)"


# -- packages --------------------------------------------------------------------------------------


def write_program(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


class Packages:
    """Fake package managers on PATH that record their argv and "install" into a state file, with
    the matching query tools (dpkg-query, rpm) reading it; the real ones are taken off PATH."""

    REAL = ("apt-get", "dnf", "yum", "zypper", "dpkg-query", "rpm")

    def __init__(self, host: Host, *managers: str, installed: str | None = None) -> None:
        self.log = host.root / "pm.log"
        self.version = host.root / "installed"
        if installed:
            self.version.write_text(installed)
        fakes = host.root / "fakes"
        fakes.mkdir()
        log, version = sh_quote(str(self.log)), sh_quote(str(self.version))
        for manager in managers:
            # Installs a pinned `nginx=V` / `nginx-V`, or the "latest" 1.26.0-1 for a bare `nginx`.
            write_program(
                fakes / manager,
                f'echo "{manager} DEBIAN_FRONTEND=${{DEBIAN_FRONTEND:-}} $*" >> {log}\n'
                '[ "${FAIL:-}" = 1 ] && exit 100\n'
                'for word in "$@"; do\n'
                "  case $word in\n"
                f'    nginx=*) echo "${{word#nginx=}}" > {version} ;;\n'
                f'    nginx-[0-9]*) echo "${{word#nginx-}}" > {version} ;;\n'
                f"    nginx) echo 1.26.0-1 > {version} ;;\n"
                "  esac\n"
                "done\n",
            )
        write_program(
            fakes / "dpkg-query",
            f'[ -f {version} ] && printf "install ok installed %s\\n" "$(cat {version})"\nexit 0\n',
        )
        write_program(
            fakes / "rpm",
            f"[ -f {version} ] && {{ cat {version}; exit 0; }}\n"
            'echo "package nginx is not installed"\nexit 1\n',
        )
        host.path = f"{fakes}:{host.bin_without(*self.REAL)}"

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_apt_get_comes_first_and_runs_non_interactively(host: Host) -> None:
    packages = Packages(host, "apt-get", "dnf", "yum", "zypper")
    ran = host.run(scripts_linux.package_install("nginx"))
    assert ran.code == 0, ran.stderr
    assert ran.got == {
        **ran.got,
        "manager": "apt-get",
        "version": "1.26.0-1",
        "previous": None,
        "changed": True,
        "backup": None,
    }
    assert packages.calls() == [
        "apt-get DEBIAN_FRONTEND=noninteractive -q update",
        "apt-get DEBIAN_FRONTEND=noninteractive -y -q --allow-downgrades -o Dpkg::Options::=--force-confdef"
        " -o Dpkg::Options::=--force-confold install nginx",
    ]


def test_an_installed_package_is_left_alone(host: Host) -> None:
    packages = Packages(host, "apt-get", installed="1.22.1-9")
    ran = host.run(scripts_linux.package_install("nginx"))
    assert ran.code == 0 and ran.got["changed"] is False and ran.got["version"] == "1.22.1-9"
    assert packages.calls() == []


def test_a_pinned_version_is_installed_and_checked(host: Host) -> None:
    packages = Packages(host, "apt-get", installed="1.22.1-9")
    ran = host.run(render("package_install", "linux", {"package": "nginx", "version": "1.24.0-2"}))
    assert ran.code == 0 and ran.got["version"] == "1.24.0-2" and ran.got["previous"] == "1.22.1-9"
    assert packages.calls()[-1].endswith("install nginx=1.24.0-2")
    assert (
        host.run(render("package_install", "linux", {"package": "nginx", "version": "1.24.0-2"})).got[
            "changed"
        ]
        is False
    )


def test_dnf_comes_before_yum(host: Host) -> None:
    packages = Packages(host, "yum", "dnf", installed="1.20.1-1.el9")
    ran = host.run(scripts_linux.package_update("nginx"))
    assert ran.code == 0, ran.stderr
    assert ran.got["manager"] == "dnf" and ran.got["version"] == "1.26.0-1"
    assert packages.calls() == ["dnf DEBIAN_FRONTEND= -y upgrade nginx"]


def test_zypper_runs_non_interactively(host: Host) -> None:
    packages = Packages(host, "zypper")
    ran = host.run(scripts_linux.package_install("nginx"))
    assert ran.code == 0 and ran.got["manager"] == "zypper"
    assert packages.calls() == [
        "zypper DEBIAN_FRONTEND= --non-interactive install --auto-agree-with-licenses nginx"
    ]


def test_no_package_manager_is_exit_2(host: Host) -> None:
    Packages(host)
    ran = host.run(scripts_linux.package_install("nginx"))
    assert ran.code == ScriptExit.UNSUPPORTED and "apt-get, dnf, yum and zypper" in ran.got["error"]


def test_an_update_backs_up_the_config_first(host: Host) -> None:
    config = host.root / "etc-nginx"
    config.mkdir()
    (config / "nginx.conf").write_text("worker_processes 4;\n")
    Packages(host, "apt-get", installed="1.22.1-9")
    ran = host.run(scripts_linux.package_update("nginx", backup=str(config)))
    assert ran.code == 0, ran.stderr
    assert ran.got["version"] == "1.26.0-1" and ran.got["previous"] == "1.22.1-9"
    backup = Path(ran.got["backup"])
    assert (
        backup.name.startswith("etc-nginx.bak-")
        and (backup / "nginx.conf").read_text() == "worker_processes 4;\n"
    )


def test_a_failing_package_manager_is_exit_1(host: Host) -> None:
    Packages(host, "apt-get")
    host.extra["FAIL"] = "1"
    ran = host.run(scripts_linux.package_install("nginx"))
    assert ran.code == ScriptExit.FAILED and "apt-get failed with exit code 100" in ran.got["error"]

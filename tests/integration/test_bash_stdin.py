"""`BASH_STDIN`, the remote command a bash script is sent to on its stdin, run here the way sshd runs
it: by a login shell's `-c` (bash, sh, dash, whichever are installed), with the script on a pipe,
on a socketpair (which /dev/stdin cannot open: the `bash -s` fallback), after a sudo password line
(`sudo_command`'s contract), and cut short in transit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from opsmith.domain import scripts_linux
from opsmith.domain.scripts import parse_result
from opsmith.tools.hosts.shell import sudo_command
from opsmith.tools.hosts.shells import BASH_STDIN

pytestmark = pytest.mark.integration

LOGIN_SHELLS = [s for s in ("bash", "sh", "dash") if shutil.which(s)]
# The script's result says what its command printed: every test can tell whether it ran.
SCRIPT = scripts_linux.run_command(["printf", "%s\n", "ran it"]).text.encode()


def _env(tmp_path: Path) -> dict[str, str]:
    # SHLVL=1, as the bench's sshd sets: a bash that thinks sshd started it reads no ~/.bashrc.
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SHLVL": "1", "LC_ALL": "C"}


def _run(argv: list[str], stdin: bytes | socket.socket, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    if isinstance(stdin, bytes):
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=10, env=_env(tmp_path))
    return subprocess.run(argv, stdin=stdin, capture_output=True, timeout=10, env=_env(tmp_path))


@pytest.mark.parametrize("login", LOGIN_SHELLS)
def test_a_script_on_a_pipe_runs_under_any_login_shell(login: str, tmp_path: Path) -> None:
    done = _run([login, "-c", BASH_STDIN], SCRIPT, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"ran it\n")
    assert parse_result(done.stdout.decode()) == {
        "op": "run_command",
        "program": "printf",
        "ok": True,
        "exit_code": 0,
    }


def test_a_script_on_a_socketpair_runs_through_bash_s(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(SCRIPT)
        ours.shutdown(socket.SHUT_WR)
        done = _run(["sh", "-c", BASH_STDIN], theirs, tmp_path)
    assert done.returncode == 0, done.stderr
    assert parse_result(done.stdout.decode()) is not None and done.stdout.startswith(b"ran it\n")


def test_what_the_script_runs_reads_none_of_the_script(tmp_path: Path) -> None:
    # `bash -s` would hand the line after `read` to it; `.` has read the pipe to its end first.
    script = b'IFS= read -r line\nprintf "read:%s\\n" "${line-}"\necho after\n'
    done = _run(["sh", "-c", BASH_STDIN], script, tmp_path)
    assert done.stdout == b"read:\nafter\n", done.stderr


def test_a_script_cut_short_before_its_last_line_runs_nothing(tmp_path: Path) -> None:
    last = SCRIPT.rindex(b"\n", 0, len(SCRIPT) - 1) + 1  # where `_main </dev/null` starts
    for cut in [*range(0, last, 97), last - 1, last]:
        done = _run(["sh", "-c", BASH_STDIN], SCRIPT[:cut], tmp_path)
        assert b"ran it" not in done.stdout and b"OPSMITH-RESULT" not in done.stdout, cut


@pytest.mark.skipif(shutil.which("sudo") is None or os.geteuid() != 0, reason="needs sudo, as root")
def test_the_sudo_password_line_goes_before_the_script_and_never_into_it(tmp_path: Path) -> None:
    # As root `sudo -n true` passes, so the password line is read and dropped: the script after it
    # runs as it is, and nothing the script runs can read the password.
    script = b'IFS= read -r line\nprintf "read:%s\\n" "${line-}"\necho after\n'
    command = sudo_command(BASH_STDIN, password=True)
    done = _run(["sh", "-c", command], b"hunter2-not-real\n" + script, tmp_path)
    assert done.stdout == b"read:\nafter\n", done.stderr
    done = _run(["sh", "-c", command], b"hunter2-not-real\n" + SCRIPT, tmp_path)
    assert done.returncode == 0 and parse_result(done.stdout.decode()) is not None, done.stderr
    assert b"hunter2" not in done.stdout + done.stderr

"""`Shells`, the HostShell adapter: a script goes to each host over its own connection, bash over
SSH to Linux hosts and PowerShell over WinRM to Windows ones. The executors are made at their first
use, so a fleet of Linux hosts never loads pypsrp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsmith.config import Config
from opsmith.domain.hosts import Credential, Host, HostFailure, HostResult
from opsmith.domain.scripts import Script
from opsmith.tools.hosts.ssh import SshExecutor

if TYPE_CHECKING:
    from opsmith.tools.hosts.winrm import WinrmExecutor

__all__ = ["BASH_STDIN", "Shells"]

# The remote command of a bash script, which is sent on its stdin: nothing of the script is ever a
# word of a command line. `bash -s` reads a pipe one byte a read (it may not read past what it has
# run), about 1.3 ms of the host's CPU for a 1.5 KB script; `.` reads the whole pipe in blocks up
# to EOF, then runs it, so the script's commands still cannot read the rest of it. Any other stdin
# (a socketpair, which /dev/stdin cannot open) goes to `bash -s`. A fresh bash, not the login
# shell, runs the script: whatever the login shell is, and whatever its startup files set.
# Constant, with no backslash, so that every login shell (csh and fish too) passes it as one word.
BASH_STDIN = "bash -c 'if [ -p /dev/stdin ]; then . /dev/stdin; else exec bash -s; fi'"


class Shells:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._ssh: SshExecutor | None = None
        self._winrm: WinrmExecutor | None = None

    async def run_script(
        self, host: Host, credential: Credential, script: Script, *, timeout: float
    ) -> HostResult:
        refused = _mismatch(host, script)
        if refused is not None:
            return refused
        if script.shell == "bash":
            return await self._ssh_executor().run(
                host, credential, BASH_STDIN, stdin=script.text, timeout=timeout
            )
        return await self._winrm_executor().run(host, credential, script.text, timeout=timeout)

    async def upload(
        self, host: Host, credential: Credential, data: bytes, remote_path: str, *, timeout: float
    ) -> HostResult:
        if host.connection == "ssh":
            return await self._ssh_executor().put_file(
                host, credential, data, remote_path, 0o600, timeout=timeout
            )
        return await self._winrm_executor().put_file(host, credential, data, remote_path, timeout=timeout)

    async def close(self) -> None:
        if self._ssh is not None:
            await self._ssh.close()
        if self._winrm is not None:
            await self._winrm.close()

    def _ssh_executor(self) -> SshExecutor:
        if self._ssh is None:
            self._ssh = SshExecutor(self._config.fleet.ssh_settings(self._config.known_hosts_file))
        return self._ssh

    def _winrm_executor(self) -> WinrmExecutor:
        if self._winrm is None:
            from opsmith.tools.hosts.winrm import WinrmExecutor  # pypsrp and requests: Windows only

            self._winrm = WinrmExecutor(self._config.winrm)
        return self._winrm


def _mismatch(host: Host, script: Script) -> HostResult | None:
    wanted = "bash" if host.connection == "ssh" else "powershell"
    if script.shell == wanted:
        return None
    how = "SSH" if host.connection == "ssh" else host.connection.upper()
    return HostResult(
        host=host.name,
        failure=HostFailure.REFUSED,
        reason=f"a {script.shell} script cannot run over {how} on this {host.os} host; nothing was sent"
        " (set the host's os and connection in the inventory: Linux over ssh, Windows over winrm or psrp)",
    )

"""PowerShell on Windows hosts over WinRM (pypsrp): one host or many at once, each within a hard
deadline.

How a script runs: a WinRS command shell is created on the host (WS-Management Create), and in it
`powershell.exe -NoProfile -NonInteractive -EncodedCommand <bootstrap>` (Command). The bootstrap is a
fixed two-line script that reads the real one from stdin and dot-sources it, so the script runs
whole and in the top scope exactly as if it had been the encoded command; the script itself goes
over the command's stdin (Send, in pieces, End="true" on the last), as base64 of its UTF-8 in
short lines (ASCII: no console code page can garble it). So no script is bound by cmd.exe's 8191
characters, through which WinRS starts every command line: a 256-character service name encodes
past that limit. Not `powershell -Command -`: that runs stdin a statement at a time as if typed at
a prompt, so a failing statement would not stop the script. Then stdout, stderr and exit code are
collected (Receive until CommandState Done), the command is ended (Signal Terminate, as MS-WSMV
asks) and the shell deleted (Delete) - the way Ansible's winrm connection runs PowerShell. The
shell uses code page 65001, so output is UTF-8; errors that PowerShell writes to stderr as CLIXML
are turned back into their text, followed by any plain text the script also wrote there.

Hosts with connection `psrp` are run the same way, over WinRS: the PSRP runspace protocol is not
used. WinRS reaches the same hosts, on the same port, with the same credentials; what only PSRP
gives (JEA endpoints, typed objects, streams other than stdout/stderr) is not offered.

TLS and authentication: HTTPS with the certificate verified (against `winrm.ca_bundle`, or
certifi's CAs) unless configured otherwise; plain HTTP only when `winrm.scheme` (or a host's
`ansible_winrm_scheme`) says so, and then NTLM/Kerberos/CredSSP encrypt the messages themselves and
Basic is refused: opsmith never sends a password in clear text (nor over TLS it does not verify).
Kerberos needs the `gssapi` package and CredSSP `requests-credssp`; without them those transports
are refused naming the package. No environment variable is read for proxies or CA bundles.

Threads and the deadline: pypsrp blocks (it is built on requests), so every call into it runs in a
worker thread, at most `winrm.max_threads` hosts at once. A host's deadline (`winrm.deadline`, or
the call's `timeout`) starts when it gets its slot. At the deadline the call returns TIMED_OUT
whatever the thread is doing; the thread is abandoned and its result ignored. Its limiter tokens
are given back at that moment (anyio releases them when the waiting task is cancelled), so a stuck
host never holds a slot another host needs: at worst, for a while, more threads run than
`max_threads`. And an abandoned thread cannot linger for long: pypsrp's own retries of a timed-out
Receive (five, with sleeps: minutes) are switched off, every request is bounded by what is left of
the deadline (3 s once it has passed), and past the deadline the thread only ends the command and
deletes the shell. So it ends a few seconds after the deadline: at most 3 requests of 3 s each, or
of 9 s where a new connection needs a fresh NTLM handshake (requests' read timeout is per read, so
only a host that trickles bytes can stretch that). `threads_busy` counts those still running.

Secrets: the credential's secret values are redacted from stdout, stderr and every reason.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import math
import re
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, TypeVar

import anyio
import requests
import requests.utils
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError
from pypsrp.shell import CommandState, Process, SignalCode, WinRS
from pypsrp.wsman import OptionSet, SelectorSet, WSMan

from opsmith.config import WinrmConfig
from opsmith.domain.hosts import Credential, Host, HostFailure, HostResult, tail
from opsmith.domain.redaction import Redactor
from opsmith.errors import ConfigError, OpsmithError

__all__ = ["WinrmExecutor"]

_log = logging.getLogger(__name__)

_TRANSPORTS = ("ntlm", "negotiate", "kerberos", "credssp", "basic")
# Transports whose Python packages are optional extras of pypsrp: (module, what to install).
_EXTRAS = {
    "kerberos": ("gssapi", "pip install 'pypsrp[kerberos]' (and the system's Kerberos libraries)"),
    "credssp": ("requests_credssp", "pip install 'pypsrp[credssp]'"),
}
_POWERSHELL = "powershell.exe"
_POWERSHELL_FLAGS = ("-NoProfile", "-NonInteractive", "-EncodedCommand")
_UTF8_CODEPAGE = 65001
# Without it PowerShell writes progress records to stderr as CLIXML, for every cmdlet that reports any.
_PREAMBLE = "$ProgressPreference = 'SilentlyContinue'"
# The command line's script: the real one from stdin (`$input`, its lines), dot-sourced so that it
# runs in this scope as if it were this script; `exit N` in it ends powershell.exe with N.
_BOOTSTRAP = (
    f"{_PREAMBLE}\n"
    ". ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString("
    "[Convert]::FromBase64String(@($input) -join ''))))"
)
_STDIN_LINE = 76  # base64 characters per line of stdin
# Bytes of stdin per Send: with the base64 the Send adds, well inside pypsrp's 150 KB envelope.
_SEND_BYTES = 32 * 1024
# Bytes of a file per put_file command (in its script as base64): a few Sends each.
_CHUNK_BYTES = 48 * 1024
# What a result keeps of each stream while it is received (a HostResult keeps only a tail anyway).
_KEEP_BYTES = 256 * 1024
# The shortest a request may be given, and what pypsrp adds to a request's OperationTimeout for its
# HTTP timeout: after the deadline every request takes at most 1 + 2 seconds.
_MIN_REQUEST_SECONDS = 1
_HTTP_SLACK_SECONDS = 2
_REASON_CHARS = 300
# PowerShell closes a single-quoted string at any of these, and reads two in a row as one.
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_E = TypeVar("_E", bound=BaseException)


class WinrmExecutor:
    """Runs PowerShell scripts on Windows hosts and copies files to them, over WinRM.

    Every method returns a HostResult and never raises for what a host does: unreachable, a
    rejected credential, a certificate that does not verify, the deadline, a protocol fault are
    each a `HostFailure` with a one-line reason saying what to do. One executor per event loop.
    """

    def __init__(self, settings: WinrmConfig) -> None:
        missing = _missing_extra(settings.transport)
        if missing:
            raise ConfigError(missing, hint="install it, or set winrm.transport to ntlm")
        self._settings = settings
        # Hosts being worked on; waiting for one does not count against a host's deadline.
        self._slots = anyio.CapacityLimiter(settings.max_threads)
        # The worker threads' own limiter, so they never take tokens of anyio's shared default one.
        self._threads = anyio.CapacityLimiter(settings.max_threads)
        self._busy = 0
        self._busy_lock = threading.Lock()

    async def __aenter__(self) -> WinrmExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to close: every call opens its own session and closes it (the same interface as
        the SSH executor, which keeps connections)."""

    @property
    def threads_busy(self) -> int:
        """Worker threads still inside pypsrp, abandoned ones (past their deadline) included."""
        with self._busy_lock:
            return self._busy

    async def run(
        self, host: Host, credential: Credential, script_text: str, *, timeout: float | None = None
    ) -> HostResult:
        """Run a PowerShell script on `host`: its exit code with the tails of stdout and stderr. The
        script travels on stdin, so its length is bound by nothing but time."""
        return await self._attempt(host, credential, timeout, _run_job(script_text))

    async def put_file(
        self,
        host: Host,
        credential: Credential,
        data: bytes | Path,
        remote_path: str,
        *,
        timeout: float | None = None,
    ) -> HostResult:
        """Write `data` (bytes, or a local file) to `remote_path` on `host`: an absolute path such
        as `C:\\Program Files\\App\\app.exe`.

        The bytes travel as base64 chunks, one PowerShell command each, into a part file beside the
        destination; the host then checks the part's SHA256, and only then copies it over the
        destination (replacing it) and removes the part. The result's stdout is that SHA256 (upper
        hex) and opsmith checks it too. Meant for small files (scripts, configs, a few MB at most):
        each command carries 48 KB.
        """
        problem = _remote_path_problem(remote_path)
        if problem:
            return _refused(host, problem)
        if isinstance(data, Path):
            source = data
            try:
                data = await anyio.Path(source).read_bytes()
            except OSError as exc:
                return _refused(host, f"cannot read local file {source}: {exc.strerror or exc}; nothing sent")
        part = f"{remote_path}.opsmith-{uuid.uuid4().hex[:8]}.part"
        job = _put_job(data, part, remote_path, _CHUNK_BYTES)
        return await self._attempt(host, credential, timeout, job)

    async def run_many(
        self,
        hosts: Sequence[Host],
        credential_for: Callable[[Host], Credential],
        script_for: Callable[[Host], str],
        *,
        on_result: Callable[[HostResult], None] | None = None,
        timeout: float | None = None,
    ) -> list[HostResult]:
        """Run each host's script on all `hosts` at once (at most `winrm.max_threads` at a time).

        Results come back in the order of `hosts`; `on_result` is called with each as it arrives.
        One host's failure never stops the others: a credential or script that cannot be had for a
        host (`credential_for` or `script_for` raised) is that host's REFUSED result, and an error
        in `on_result` is logged.
        """
        results: list[HostResult | None] = [None] * len(hosts)

        async def one(index: int, host: Host) -> None:
            try:
                credential, script = credential_for(host), script_for(host)
            except Exception as exc:
                detail = str(exc) if isinstance(exc, OpsmithError) else f"{type(exc).__name__}: {exc}"
                result = _refused(host, f"nothing sent: {detail}")
            else:
                result = await self.run(host, credential, script, timeout=timeout)
            results[index] = result
            if on_result is not None:
                try:
                    on_result(result)
                except Exception:
                    _log.exception("on_result failed for host %s", host.name)

        async with anyio.create_task_group() as group:
            for index, host in enumerate(hosts):
                group.start_soon(one, index, host)
        return [result for result in results if result is not None]

    async def _attempt(
        self, host: Host, credential: Credential, timeout: float | None, job: _Job
    ) -> HostResult:
        target = self._target(host, credential)
        if isinstance(target, HostResult):
            return target
        limit = timeout if timeout is not None else self._settings.deadline
        redactor = Redactor(credential.secret_values())
        async with self._slots:
            started = time.monotonic()
            deadline = _Deadline(started + limit)
            try:
                with anyio.move_on_after(limit):
                    outcome = await anyio.to_thread.run_sync(
                        self._work, target, deadline, job, abandon_on_cancel=True, limiter=self._threads
                    )
                    return outcome.result(host.name, started, redactor)
            finally:
                # The thread, if it is still running, stops at its next request and cleans up.
                deadline.stop.set()
        return HostResult(
            host=host.name,
            failure=HostFailure.TIMED_OUT,
            duration_ms=(time.monotonic() - started) * 1000,
            reason=f"{target.endpoint} did not finish within the {limit:g}s deadline; the command may"
            " still be running there (raise winrm.deadline, or the step's timeout, if it needs longer)",
        )

    def _target(self, host: Host, credential: Credential) -> _Target | HostResult:
        """Where and how to connect to `host`, or why opsmith refuses to."""
        settings = self._settings
        if host.connection == "ssh":
            return _refused(host, f"host {host.name} connects over ssh, not WinRM: use the SSH executor")
        transport = host.vars.get("ansible_winrm_transport", settings.transport)
        if transport not in _TRANSPORTS:
            return _refused(
                host, f"ansible_winrm_transport {transport!r} is not one of {', '.join(_TRANSPORTS)}"
            )
        scheme = host.vars.get("ansible_winrm_scheme", settings.scheme)
        if scheme not in ("https", "http"):
            return _refused(host, f"ansible_winrm_scheme {scheme!r} is neither https nor http")
        if transport == "basic" and scheme != "https":
            return _refused(
                host,
                "Basic auth over plain HTTP would send the password as it is: use https (port 5986),"
                " or the ntlm or kerberos transport",
            )
        if transport == "basic" and not settings.cert_validation:
            return _refused(host, "Basic auth over TLS that is not verified: set winrm.cert_validation")
        missing = _missing_extra(transport)
        if missing:
            return _refused(host, missing)
        if credential.kind != "password":
            return _refused(
                host, f"WinRM logs in with a password; credential {credential.name!r} is a {credential.kind}"
            )
        username = credential.username or host.user
        if not username:
            return _refused(
                host, f"no user name for {host.name}: set the credential's username or the host's user"
            )
        verify: bool | str = False
        if settings.cert_validation:
            verify = str(settings.ca_bundle) if settings.ca_bundle else requests.utils.DEFAULT_CA_BUNDLE_PATH
        return _Target(
            address=host.address,
            port=host.port or (5986 if scheme == "https" else 5985),
            scheme=scheme,
            path=settings.path,
            transport=transport,
            username=username,
            password=credential.secret.get_secret_value(),
            verify=verify,
        )

    def _work(self, target: _Target, deadline: _Deadline, job: _Job) -> _Outcome:
        """In a worker thread: open a shell on the host, do `job` in it, close it."""
        with self._busy_lock:
            self._busy += 1
        progress = _Progress()
        try:
            with self._wsman(target, deadline) as wsman:
                shell = WinRS(wsman, codepage=_UTF8_CODEPAGE)
                try:
                    shell.open()
                    return job(shell, deadline, progress)
                finally:
                    _quietly(shell.close)
        except _Expired:
            return _Outcome(failure=HostFailure.TIMED_OUT, reason=f"{target.endpoint}: the deadline passed")
        except Exception as exc:
            failure, reason = _failure(exc, target, progress)
            return _Outcome(failure=failure, reason=reason)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _wsman(self, target: _Target, deadline: _Deadline) -> _BoundedWSMan:
        settings = self._settings
        limit = max(_MIN_REQUEST_SECONDS, deadline.left())
        operation = max(_MIN_REQUEST_SECONDS, math.floor(min(settings.operation_timeout, limit)))
        return _BoundedWSMan(
            deadline,
            target.address,
            port=target.port,
            username=target.username,
            password=target.password,
            ssl=target.scheme == "https",
            path=target.path,
            auth=target.transport,
            cert_validation=target.verify,
            connection_timeout=math.ceil(min(settings.connect_timeout, limit)),
            operation_timeout=operation,
            read_timeout=operation + _HTTP_SLACK_SECONDS,
            encryption="auto",
            proxy=settings.proxy,
            no_proxy=settings.proxy is None,
            reconnection_retries=0,
        )


# -- the work done in a worker thread ------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    address: str
    port: int
    scheme: str
    path: str
    transport: str
    username: str
    password: str = field(repr=False)
    verify: bool | str  # pypsrp's cert_validation: a CA bundle path, or False

    @property
    def endpoint(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}/{self.path}"


@dataclass
class _Deadline:
    ends_at: float  # time.monotonic()
    stop: threading.Event = field(default_factory=threading.Event)

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def check(self) -> None:
        if self.stop.is_set() or self.left() <= 0:
            raise _Expired


class _Expired(Exception):
    """The deadline passed (or the caller gave up) between two requests."""


@dataclass
class _Progress:
    # Whether a Command request went out: from then on the script may have run.
    command_sent: bool = False


@dataclass(frozen=True)
class _Outcome:
    """What the thread came back with: an exit code and the raw streams, or a failure."""

    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    failure: HostFailure | None = None
    reason: str | None = None

    def result(self, host: str, started: float, redactor: Redactor) -> HostResult:
        stdout = _text(self.stdout)
        stderr = _stderr_text(_text(self.stderr))
        return HostResult(
            host=host,
            exit_code=self.exit_code,
            stdout=tail(redactor.text(stdout)),
            stderr=tail(redactor.text(stderr)),
            duration_ms=(time.monotonic() - started) * 1000,
            failure=self.failure,
            reason=_one_line(redactor.text(self.reason)) if self.reason else None,
        )


_Job = Callable[[WinRS, _Deadline, _Progress], _Outcome]


class _BoundedWSMan(WSMan):
    """pypsrp's WSMan, but every request ends by the host's deadline and none is retried by it."""

    def __init__(self, deadline: _Deadline, server: str, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._deadline = deadline
        self._longest = int(kwargs["read_timeout"])

    def invoke(
        self,
        action: str,
        resource_uri: str,
        resource: ET.Element | None,
        option_set: OptionSet | None = None,
        selector_set: SelectorSet | None = None,
        timeout: int | None = None,
        *,
        retries_on_read_timeout: int = 0,
    ) -> ET.Element:
        # pypsrp sends a Receive that timed out up to five more times, sleeping between tries
        # (minutes in all), which would keep an abandoned thread busy long after the deadline: here
        # the deadline is the retry policy, and a request may only take what is left of it.
        left = self._deadline.left()
        longest = timeout + _HTTP_SLACK_SECONDS if timeout else self._longest
        if left < longest:
            timeout = max(_MIN_REQUEST_SECONDS, math.floor(left) - _HTTP_SLACK_SECONDS)
        return super().invoke(
            action, resource_uri, resource, option_set, selector_set, timeout, retries_on_read_timeout=0
        )


def _run_job(script: str) -> _Job:
    def job(shell: WinRS, deadline: _Deadline, progress: _Progress) -> _Outcome:
        return _command(shell, script, deadline, progress)

    return job


def _command(shell: WinRS, script: str, deadline: _Deadline, progress: _Progress) -> _Outcome:
    """Run one script in `shell` to its exit code (the bootstrap, then the script on its stdin),
    then end the command (Signal Terminate)."""
    deadline.check()
    process = Process(shell, _POWERSHELL, _bootstrap_arguments())
    progress.command_sent = True
    process.begin_invoke()
    try:
        if process.id is None:
            raise WinRMError("the host answered the Command without a CommandId")
        data = _stdin(script)
        for at in range(0, len(data), _SEND_BYTES):
            deadline.check()
            _send_stdin(shell, process.id, data[at : at + _SEND_BYTES], end=at + _SEND_BYTES >= len(data))
        while process.state != CommandState.DONE:
            deadline.check()
            process.poll_invoke()
            process.stdout = process.stdout[-_KEEP_BYTES:]
            process.stderr = process.stderr[-_KEEP_BYTES:]
    finally:
        if process.id is not None:
            _quietly(process.signal, SignalCode.TERMINATE)
    if process.rc is None:
        return _Outcome(
            stdout=process.stdout,
            stderr=process.stderr,
            failure=HostFailure.PROTOCOL,
            reason="the host said the command was done but sent no exit code",
        )
    return _Outcome(exit_code=process.rc, stdout=process.stdout, stderr=process.stderr)


def _send_stdin(shell: WinRS, command_id: str, data: bytes, *, end: bool) -> None:
    """One Send of `data` to the command's stdin. Written here rather than with pypsrp's WinRS.send,
    which writes End="True": not one of xs:boolean's spellings, which MS-WSMV's schema asks for."""
    rsp = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
    send = ET.Element(f"{{{rsp}}}Send")
    stream = ET.SubElement(send, f"{{{rsp}}}Stream", Name="stdin", CommandId=command_id)
    if end:
        stream.attrib["End"] = "true"
    stream.text = base64.b64encode(data).decode("ascii")
    shell.wsman.send(shell.resource_uri, send, selector_set=shell._selector_set)


def _put_job(data: bytes, part: str, destination: str, size: int) -> _Job:
    chunks = [data[at : at + size] for at in range(0, len(data), size)] or [b""]
    expected = hashlib.sha256(data).hexdigest().upper()

    def job(shell: WinRS, deadline: _Deadline, progress: _Progress) -> _Outcome:
        for number, chunk in enumerate(chunks, start=1):
            script = _write_part_script(part, chunk, first=number == 1)
            written = _command(shell, script, deadline, progress)
            if written.exit_code != 0:
                _quietly(_command, shell, _remove_part_script(part), deadline, progress)
                return _failed_copy(written, f"writing part {number} of {len(chunks)} of {destination}")
        finished = _command(shell, _finish_script(part, destination, expected), deadline, progress)
        if finished.exit_code != 0:
            return _failed_copy(finished, f"checking and placing {destination}")
        reported = _text(finished.stdout).strip().upper()
        if reported != expected:
            return _Outcome(
                exit_code=finished.exit_code,
                stdout=finished.stdout,
                stderr=finished.stderr,
                failure=HostFailure.PROTOCOL,
                reason=f"the host reported SHA256 {reported[:64] or '(nothing)'} for {destination},"
                f" expected {expected}: copy it again",
            )
        return finished

    return job


def _failed_copy(outcome: _Outcome, doing: str) -> _Outcome:
    if outcome.failure is not None:
        return outcome
    last = _last_line(_stderr_text(_text(outcome.stderr)))
    return _Outcome(
        exit_code=outcome.exit_code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        reason=f"{doing} failed (exit {outcome.exit_code})" + (f": {last}" if last else ""),
    )


def _quietly(action: Callable[..., Any], *args: Any) -> None:
    # Clean-up after a failure or the deadline: the first error is the one worth reporting.
    try:
        action(*args)
    except Exception:
        return


# -- PowerShell text -------------------------------------------------------------------------------


def _bootstrap_arguments() -> list[str]:
    """powershell.exe's arguments: the bootstrap, as -EncodedCommand takes it (base64 of UTF-16LE)."""
    return [*_POWERSHELL_FLAGS, base64.b64encode(_BOOTSTRAP.encode("utf-16-le")).decode("ascii")]


def _stdin(script: str) -> bytes:
    """What the bootstrap reads on stdin: base64 of the script's UTF-8, in lines it joins again."""
    encoded = base64.b64encode(script.encode("utf-8")).decode("ascii")
    lines = [encoded[at : at + _STDIN_LINE] for at in range(0, len(encoded), _STDIN_LINE)]
    return "".join(f"{line}\r\n" for line in lines).encode("ascii")


def _quoted(text: str) -> str:
    """`text` as a PowerShell single-quoted string literal (nothing in it is expanded)."""
    return "'" + "".join(ch * 2 if ch in _SINGLE_QUOTES else ch for ch in text) + "'"


def _write_part_script(part: str, chunk: bytes, *, first: bool) -> str:
    mode = "Create" if first else "Append"
    return "\n".join(
        [
            "$ErrorActionPreference = 'Stop'",
            f"$path = {_quoted(part)}",
            f"$bytes = [Convert]::FromBase64String('{base64.b64encode(chunk).decode('ascii')}')",
            f"$file = [IO.File]::Open($path, '{mode}', 'Write')",
            "try { $file.Write($bytes, 0, $bytes.Length) } finally { $file.Dispose() }",
        ]
    )


def _finish_script(part: str, destination: str, sha256: str) -> str:
    return "\n".join(
        [
            "$ErrorActionPreference = 'Stop'",
            f"$path = {_quoted(part)}",
            "$stream = [IO.File]::OpenRead($path)",
            "try { $hash = [BitConverter]::ToString([Security.Cryptography.SHA256]::Create()"
            ".ComputeHash($stream)) -replace '-', '' } finally { $stream.Dispose() }",
            f"if ($hash -ne '{sha256}') {{ Remove-Item -LiteralPath $path -Force;"
            ' [Console]::Error.WriteLine("SHA256 of the copy is $hash"); exit 3 }',
            f"[IO.File]::Copy($path, {_quoted(destination)}, $true)",
            "Remove-Item -LiteralPath $path -Force",
            "Write-Output $hash",
        ]
    )


def _remove_part_script(part: str) -> str:
    return f"Remove-Item -LiteralPath {_quoted(part)} -Force -ErrorAction SilentlyContinue"


def _remote_path_problem(path: str) -> str | None:
    if not path or any(ch in path for ch in "\0\r\n"):
        return f"remote path {path!r} is empty or holds a NUL or a line break"
    if not PureWindowsPath(path).is_absolute() or path.endswith(("\\", "/")):
        return f"remote path {path!r} must be an absolute Windows file path, e.g. C:\\Temp\\app.exe"
    return None


_CLIXML_MARKER = "#< CLIXML"
_OBJS_OPEN, _OBJS_CLOSE = "<Objs", "</Objs>"
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _stderr_text(text: str) -> str:
    """PowerShell's stderr as text: the errors of its CLIXML documents (`#< CLIXML` then <Objs>
    documents) decoded first, then whatever plain text was written there too ([Console]::Error, a
    program's own stderr), as it is. Text without CLIXML is returned as it is."""
    if _CLIXML_MARKER not in text:
        return text
    errors: list[str] = []
    plain: list[str] = []
    at = 0
    # str.find, not a regular expression: a host's output must not make this slower than linear.
    while at < len(text):
        start = text.find(_OBJS_OPEN, at)
        end = text.find(_OBJS_CLOSE, start) if start >= 0 else -1
        if end < 0:
            plain.append(text[at:])
            break
        plain.append(text[at:start])
        document = text[start : end + len(_OBJS_CLOSE)]
        found = _clixml_errors(document)
        at = end + len(_OBJS_CLOSE)
        if found is None:
            plain.append(document)
        else:
            errors += found
            at += 1 if text.startswith("\n", at) else 0  # the line end PowerShell writes after one
    decoded = _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(errors)).replace("\r\n", "\n")
    rest = "".join(plain).replace(_CLIXML_MARKER + "\r\n", "").replace(_CLIXML_MARKER + "\n", "")
    rest = rest.replace(_CLIXML_MARKER, "")
    if not rest.strip():
        return decoded
    if decoded and not decoded.endswith("\n"):
        decoded += "\n"
    return decoded + rest.lstrip("\r\n")


def _clixml_errors(document: str) -> list[str] | None:
    """The error strings of one <Objs> document, or None if it is not XML."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return None
    return [
        element.text or ""
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "S" and element.get("S") == "Error"
    ]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").removeprefix("\ufeff").replace("\r\n", "\n")


# -- failures ----------------------------------------------------------------------------------------


def _failure(exc: Exception, target: _Target, progress: _Progress) -> tuple[HostFailure, str]:
    """The HostFailure and reason for what pypsrp (or requests under it) raised."""
    where = target.endpoint
    sent = progress.command_sent
    if isinstance(exc, requests.exceptions.SSLError):
        unverified = _find(exc, ssl.SSLCertVerificationError)
        if unverified is not None:
            return HostFailure.REFUSED, (
                f"the TLS certificate of {where} did not verify ({unverified.verify_message}):"
                " set winrm.ca_bundle to the PEM file of the CA that signed it"
            )
        return HostFailure.PROTOCOL, f"TLS with {where} failed: {_innermost(exc)} (is it HTTPS on that port?)"
    if isinstance(exc, AuthenticationError):
        return HostFailure.AUTH_REJECTED, (
            f"{where} rejected user {target.username!r} ({target.transport}): {exc};"
            " check the credential in the vault, or winrm.transport"
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return (
            HostFailure.UNREACHABLE,
            f"no connection to {where} in time: is the host up and WinRM listening?",
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        if sent:
            return HostFailure.TIMED_OUT, f"{where} stopped answering while the command ran; it may have run"
        return HostFailure.UNREACHABLE, f"{where} took the connection but did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        if sent:
            return HostFailure.CONNECTION_LOST, (
                f"the connection to {where} ended while the command ran ({_innermost(exc)}); it may have run"
            )
        return HostFailure.UNREACHABLE, f"cannot connect to {where}: {_innermost(exc)}"
    if isinstance(exc, WSManFaultError):
        return HostFailure.PROTOCOL, f"{where} answered a WS-Management fault {exc.code}: {exc.reason}"
    if isinstance(exc, WinRMTransportError):
        return HostFailure.PROTOCOL, f"{where} answered HTTP {exc.code} without a WS-Management fault"
    if isinstance(exc, WinRMError | ET.ParseError):
        return HostFailure.PROTOCOL, f"{where} answered something WinRM does not: {exc}"
    return HostFailure.PROTOCOL, f"talking to {where} failed: {type(exc).__name__}: {exc}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: requests' and urllib3's errors hold their causes in args and
    `.reason`, the others in __cause__ and __context__."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        inner = [a for a in current.args if isinstance(a, BaseException)]
        for item in [reason, *inner, current.__cause__, current.__context__]:
            if isinstance(item, BaseException):
                todo.append(item)


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _innermost(exc: BaseException) -> str:
    """The plainest words for what went wrong: an OS error's text, else the last message."""
    chain = list(_chain(exc))
    for error in chain:
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    for error in reversed(chain):
        if isinstance(error, ssl.SSLError) and error.reason:
            return str(error.reason).replace("_", " ").lower()
    return str(chain[-1]) or type(chain[-1]).__name__


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _refused(host: Host, reason: str) -> HostResult:
    return HostResult(host=host.name, failure=HostFailure.REFUSED, reason=reason)


def _missing_extra(transport: str) -> str | None:
    if transport not in _EXTRAS:
        return None
    module, install = _EXTRAS[transport]
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"WinRM transport {transport!r} needs the Python package {module!r}, not installed here ({install})"
    )

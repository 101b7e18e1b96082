"""PowerShell scripts for Windows hosts: services, processes, files, commands, health waits.

Each function validates its values (`opsmith.domain.scripts`) and returns a complete `Script`:

    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'
    $service = 'Spooler'          <- the values, each a single-quoted literal, and nothing else
    $timeout = [int]'30'
    $base = '{"op":...'           <- the start of the result line, ASCII JSON, quoted too
    <constant functions and body> <- reads the variables; never holds a value

Written for Windows PowerShell 5.1 (what every supported Windows has) and PowerShell 7: paths go
through `-LiteralPath` (so `[` and `]` in a name are not wildcards), messages are built with `-f`
(so no value is expanded in a double-quoted string), and the result line is ASCII JSON whatever
the console code page. Run it whole, as one script: the WinRM executor sends it on the stdin of a
fixed `powershell -EncodedCommand` bootstrap, so no length limit of a command line applies
(`Script.encoded()` gives the -EncodedCommand form, which cmd.exe caps at 8191 characters: a
service change for a 256-character name is past that). Every error ends in `catch` as exit 1 with a
result line saying what failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from opsmith.domain.errors import ScriptInputError
from opsmith.domain.scripts import (
    Script,
    absolute_path,
    command_argv,
    flag,
    health_url,
    process_name,
    ps_quote,
    result_base,
    seconds,
    service_name,
    sha256_hex,
)

__all__ = [
    "install_file",
    "process_check",
    "run_command",
    "service_restart",
    "service_start",
    "service_status",
    "service_stop",
    "wait_healthy",
]

Value = str | int | bool | None | Sequence[str]

# Out-Result records the outcome and unwinds to the end of the script, which prints it: output
# written inside a function called in an expression (`if (Wait-State ...)`) would become that
# function's return value instead of reaching stdout. So no body code calls it inside a try of
# its own, which would catch the unwinding. `ok` is whether the code is 0.
_PRELUDE = r"""
$outcome = $null
function Out-Result([int]$Code, $Fields) {
    $script:outcome = @($Code, $Fields)
    throw 'opsmith: result'
}
"""

_CATCH = r"""
} catch {
    if ($null -eq $outcome) { $outcome = @(1, [ordered]@{ error = $_.Exception.Message }) }
}
"""

# One line of result: the base, then each field as JSON, with anything outside printable ASCII
# escaped so no code page can garble it and no value can end the line.
_FINISH = r"""
if ($null -eq $outcome) { $outcome = @(1, [ordered]@{ error = 'the script ended without a result' }) }
$json = $base + ',"ok":' + (ConvertTo-Json -InputObject ($outcome[0] -eq 0) -Compress)
foreach ($key in $outcome[1].Keys) {
    $json += ',"' + $key + '":' + (ConvertTo-Json -InputObject $outcome[1][$key] -Compress)
}
$json = [regex]::Replace($json + '}', '[^\x20-\x7E]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
Write-Output ''
Write-Output ('OPSMITH-RESULT ' + $json)
exit $outcome[0]
"""

# Reading a service's state, which every service script needs; changing it is _SERVICE_CHANGE, left
# out of the scripts that only read (less to send, and their -EncodedCommand form fits cmd.exe).
_SERVICE = r"""
$names = @{
    Running = 'running'; Stopped = 'stopped'; Paused = 'paused'
    StartPending = 'starting'; ContinuePending = 'starting'
    StopPending = 'stopping'; PausePending = 'stopping'
}
function Read-State {
    $found = Get-Service -Name $service -ErrorAction SilentlyContinue
    if (-not $found) {
        Out-Result 4 ([ordered]@{ error = ('service {0} was not found' -f $service); state = 'unknown' })
    }
    $script:detail = $found.Status.ToString()
    $script:state = $names[$script:detail]
    if (-not $script:state) { $script:state = 'unknown' }
}
"""

_SERVICE_CHANGE = r"""
function Wait-State([string]$Want) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        Read-State
        if ($state -eq $Want) { return $true }
        if ($clock.Elapsed.TotalSeconds -ge $timeout) { return $false }
        Start-Sleep -Milliseconds 500
    }
}
function Out-Late([string]$Problem) {
    Out-Result 3 ([ordered]@{
        error = ($Problem -f $service, $timeout); state = $state; detail = $detail; changed = $true
    })
}
function Stop-Now {
    Stop-Service -Name $service -NoWait -Force:$force
    if (-not (Wait-State 'stopped')) { Out-Late 'service {0} did not stop within {1}s' }
}
function Start-Now {
    if ($state -eq 'stopping') { [void](Wait-State 'stopped') }
    if ($state -eq 'paused') { (Get-Service -Name $service).Continue() }
    elseif ($state -ne 'starting') { (Get-Service -Name $service).Start() }
    if (-not (Wait-State 'running')) { Out-Late 'service {0} did not reach Running within {1}s' }
}
function Out-Service([bool]$Was, [bool]$Changed) {
    Out-Result 0 ([ordered]@{ was_running = $Was; state = $state; detail = $detail; changed = $Changed })
}
"""

_STATUS = r"""
Read-State
Out-Result 0 ([ordered]@{ state = $state; detail = $detail })
"""

_START = r"""
Read-State
if ($state -eq 'running') { Out-Service $true $false }
Start-Now
Out-Service $false $true
"""

# The seed's shape: stop, then poll (Get-Service).Status until Stopped or the timeout.
_STOP = r"""
Read-State
if ($state -eq 'stopped') { Out-Service $false $false }
Stop-Now
Out-Service $true $true
"""

_RESTART = r"""
Read-State
$was = $state -eq 'running'
if ($state -ne 'stopped') { Stop-Now }
Start-Now
Out-Service $was $true
"""

_PROCESS = r"""
$found = @(Get-Process -Name $bare -ErrorAction SilentlyContinue)
$ids = @($found | Select-Object -First 50 | ForEach-Object { $_.Id })
Out-Result 0 ([ordered]@{ running = ($found.Count -gt 0); count = $found.Count; pids = $ids })
"""

# The new file is checked before the target is touched; the old one is kept as
# TARGET.bak-TIMESTAMP and put back if the copy does not verify.
_INSTALL = r"""
function Get-Sha([string]$Path) {
    (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
}
function Out-Refused([int]$Code, [string]$Problem) {
    Out-Result $Code ([ordered]@{ error = $Problem; changed = $false })
}
if (-not (Test-Path -LiteralPath $source -PathType Leaf)) {
    Out-Refused 4 ('the new file {0} is not there' -f $source)
}
$actual = Get-Sha $source
if ($actual -ne $sha) {
    Out-Result 5 ([ordered]@{
        error = ('checksum mismatch: {0} has SHA256 {1}, expected {2}; {3} was not touched' -f
            $source, $actual, $sha, $target)
        actual = $actual; changed = $false
    })
}
$dir = [IO.Path]::GetDirectoryName($target)
if (-not (Test-Path -LiteralPath $dir -PathType Container)) {
    Out-Refused 4 ('the directory {0} does not exist' -f $dir)
}
if (Test-Path -LiteralPath $target -PathType Container) {
    Out-Refused 1 ('{0} is a directory, not a file' -f $target)
}
$backup = $null
if (Test-Path -LiteralPath $target -PathType Leaf) {
    if ((Get-Sha $target) -eq $sha) {
        Remove-Item -LiteralPath $source -Force
        Out-Result 0 ([ordered]@{ changed = $false; backup = $null })
    }
    $backup = $target + '.bak-' + [DateTime]::UtcNow.ToString('yyyyMMdd\THHmmss\Z')
    if (Test-Path -LiteralPath $backup) { $backup = $backup + '-' + $PID }
    Copy-Item -LiteralPath $target -Destination $backup -Force
}
Copy-Item -LiteralPath $source -Destination $target -Force
if ((Get-Sha $target) -ne $sha) {
    if ($backup) { Copy-Item -LiteralPath $backup -Destination $target -Force }
    Out-Result 5 ([ordered]@{
        error = ('{0} did not verify after the copy; the old file was put back' -f $target)
        changed = $false; backup = $backup
    })
}
Remove-Item -LiteralPath $source -Force
Out-Result 0 ([ordered]@{ changed = $true; backup = $backup })
"""

# A native program's stderr must not become a terminating error (Windows PowerShell turns it into
# error records), so the preference is relaxed around the call; its output is passed on as text.
_RUN = r"""
function Out-Missing([string]$Problem) {
    Out-Result 4 ([ordered]@{ error = $Problem; exit_code = $null })
}
if ($cwd) {
    if (-not (Test-Path -LiteralPath $cwd -PathType Container)) {
        Out-Missing ('the directory {0} does not exist' -f $cwd)
    }
    Set-Location -LiteralPath $cwd
}
if ([IO.Path]::IsPathRooted($program)) { $known = Test-Path -LiteralPath $program -PathType Leaf }
else { $known = [bool](Get-Command -Name $program -ErrorAction SilentlyContinue) }
if (-not $known) { Out-Missing ('the program {0} was not found' -f $program) }
$global:LASTEXITCODE = $null
$ErrorActionPreference = 'Continue'
& $program @arguments 2>&1 | ForEach-Object { [string]$_ }
$succeeded = $?
$code = $LASTEXITCODE
$ErrorActionPreference = 'Stop'
if ($null -eq $code) { if ($succeeded) { $code = 0 } else { $code = 1 } }
if ($code -eq 0) { Out-Result 0 ([ordered]@{ exit_code = 0 }) }
Out-Result 1 ([ordered]@{ error = ('the command exited with code {0}' -f $code); exit_code = $code })
"""

# Windows PowerShell 5.1 offers only TLS 1.0 by default: TLS 1.2 is added for https URLs.
_WAIT_URL = r"""
function Test-Healthy([int]$Left) {
    $script:status = $null
    try {
        $tls12 = [Net.SecurityProtocolType]::Tls12
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor $tls12
        $reply = Invoke-WebRequest -Uri $url -UseBasicParsing -TimeoutSec $Left
        $script:status = [int]$reply.StatusCode
        $script:last = 'HTTP {0}' -f $script:status
        return ($script:status -lt 400)
    } catch {
        $script:last = $_.Exception.Message
        if ($_.Exception.Response) { $script:status = [int]$_.Exception.Response.StatusCode }
        return $false
    }
}
"""

_WAIT_SERVICE = r"""
function Test-Healthy([int]$Left) {
    Read-State
    $script:status = $null
    $script:last = '{0} ({1})' -f $state, $detail
    return ($state -eq 'running')
}
"""

_WAIT = r"""
$clock = [Diagnostics.Stopwatch]::StartNew()
$probes = 0
while ($true) {
    $probes++
    $left = [Math]::Max(1, [int]($timeout - $clock.Elapsed.TotalSeconds))
    $healthy = Test-Healthy $left
    $found = [ordered]@{
        healthy = $healthy; probes = $probes; waited = [int]$clock.Elapsed.TotalSeconds
        status = $status; last = $last
    }
    if ($healthy) { Out-Result 0 $found }
    $pause = $timeout - $clock.Elapsed.TotalSeconds
    if ($pause -le 0) {
        $found.Insert(0, 'error', ('not healthy within {0}s: {1}' -f $timeout, $last))
        Out-Result 3 $found
    }
    Start-Sleep -Milliseconds ([int](1000 * [Math]::Min($interval, $pause)))
}
"""


def _narrow(code: str) -> str:
    """The constant code with two-space indents: less to send to every host, and an -EncodedCommand
    form (8 characters per 3 of text, within cmd.exe's 8191) for more of the scripts."""
    return re.sub(r"(?m)^((?:    )+)", lambda found: "  " * (len(found[1]) // 4), code)


def _literal(value: Value) -> str:
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return f"[int]{ps_quote(str(value))}"
    if isinstance(value, str):
        return ps_quote(value)
    return "@(" + ", ".join(ps_quote(word) for word in value) + ")"


def _script(
    operation: str,
    values: Mapping[str, Value],
    result: Mapping[str, object],
    parts: Sequence[str],
    *,
    idempotent: bool,
    changes: bool,
    max_seconds: int,
) -> Script:
    lines = ["$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'"]
    lines += [f"${name} = {_literal(value)}" for name, value in values.items()]
    lines.append(f"$base = {ps_quote(result_base(operation, dict(result)))}")
    body = "".join(part.lstrip("\n") for part in parts[:-1])
    main = "    " + parts[-1].strip("\n").replace("\n", "\n    ")
    code = _PRELUDE.lstrip("\n") + body + "try {\n" + main + _CATCH + _FINISH.lstrip("\n")
    text = "\n".join(lines) + "\n" + _narrow(code)
    return Script(
        shell="powershell",
        operation=operation,
        text=text,
        idempotent=idempotent,
        changes=changes,
        max_seconds=max_seconds,
    )


def service_status(service: str) -> Script:
    """The state of a service (running, stopped, starting, stopping, paused), with Windows' own
    word in `detail`; exit 4 if there is no such service."""
    name = service_name(service, os="windows")
    return _script(
        "service_status",
        {"service": name, "timeout": 30, "force": False},
        {"service": name},
        [_SERVICE, _STATUS],
        idempotent=True,
        changes=False,
        max_seconds=30,
    )


def _service_change(
    operation: str, body: str, service: str, timeout: object, force: object, *, idempotent: bool, phases: int
) -> Script:
    name = service_name(service, os="windows")
    limit = seconds(timeout, field="timeout")
    return _script(
        operation,
        {"service": name, "timeout": limit, "force": flag(force, field="force")},
        {"service": name},
        [_SERVICE, _SERVICE_CHANGE, body],
        idempotent=idempotent,
        changes=True,
        max_seconds=phases * limit + 15,
    )


def service_start(service: str, *, timeout: int = 60) -> Script:
    """Start a service (nothing to do if it runs) and verify it reaches Running within `timeout`
    seconds (exit 3 if not)."""
    return _service_change("service_start", _START, service, timeout, False, idempotent=True, phases=1)


def service_stop(service: str, *, timeout: int = 60, force: bool = False) -> Script:
    """Stop a service and poll until it is Stopped, failing with exit 3 after `timeout` seconds.
    `force` also stops the services that depend on it (without it, such a service is not
    stopped: the error says so)."""
    return _service_change("service_stop", _STOP, service, timeout, force, idempotent=True, phases=1)


def service_restart(service: str, *, timeout: int = 60, force: bool = False) -> Script:
    """Stop (if running) and start a service, each within `timeout` seconds.

    Not idempotent: every run stops the service again and drops its connections."""
    return _service_change("service_restart", _RESTART, service, timeout, force, idempotent=False, phases=2)


def process_check(process: str) -> Script:
    """Whether a process of that name runs (`Get-Process`, which names processes without
    `.exe`): exit 0 either way, with `running`, `count` and up to 50 `pids`."""
    name = process_name(process)
    bare = name[:-4] if name.lower().endswith(".exe") else name
    return _script(
        "process_check",
        {"process": name, "bare": bare},
        {"process": name},
        [_PROCESS],
        idempotent=True,
        changes=False,
        max_seconds=30,
    )


def install_file(temp_path: str, target: str, sha256: str) -> Script:
    """Copy the file at `temp_path` (an upload, or a share path) over `target`, if its SHA-256 is
    `sha256`: checked first (exit 5 and the target untouched on a mismatch), the old target kept
    as `TARGET.bak-YYYYmmddTHHMMSSZ`, the copy verified with Get-FileHash. A target that already
    has the checksum is left alone."""
    source = absolute_path(temp_path, os="windows", field="temp_path")
    dest = absolute_path(target, os="windows", field="target")
    if source.lower() == dest.lower():
        raise ScriptInputError(
            f"temp_path and target are the same file ({dest!r})",
            hint="upload the new file to a temporary path; the script copies it into place",
        )
    digest = sha256_hex(sha256)
    return _script(
        "install_file",
        {"source": source, "target": dest, "sha": digest},
        {"target": dest},
        [_INSTALL],
        idempotent=True,
        changes=True,
        max_seconds=120,
    )


def run_command(argv: Sequence[str], *, cwd: str | None = None) -> Script:
    """Run one program with its arguments, each passed as one argument (no shell parses them);
    arguments Windows PowerShell 5.1 would garble are refused. Exit 0 if it succeeded, else 1
    with its `exit_code` (4 if the program is missing).

    Not idempotent: opsmith cannot know what the command does."""
    words = command_argv(argv, os="windows")
    where = None if cwd is None else absolute_path(cwd, os="windows", field="cwd")
    return _script(
        "run_command",
        {"program": words[0], "arguments": words[1:], "cwd": where},
        {"program": words[0]},
        [_RUN],
        idempotent=False,
        changes=True,
        max_seconds=3600,
    )


def wait_healthy(
    *, url: str | None = None, service: str | None = None, timeout: int = 60, interval: int = 2
) -> Script:
    """Poll until `url` answers below 400 (Invoke-WebRequest) or `service` is Running, every
    `interval` seconds; exit 3 when `timeout` passes first."""
    if (url is None) == (service is None):
        raise ScriptInputError(
            "wait_healthy needs exactly one of url and service",
            hint="give url='http://127.0.0.1:8080/health' or service='W3SVC'",
        )
    limit = seconds(timeout, field="timeout")
    every = seconds(interval, field="interval", maximum=300)
    values: dict[str, Value] = {"timeout": limit, "interval": every}
    if url is not None:
        link = health_url(url)
        values["url"] = link
        result: dict[str, object] = {"url": link}
        parts = [_WAIT_URL, _WAIT]
    else:
        name = service_name(service, os="windows")
        values.update(service=name, force=False)
        result = {"service": name}
        parts = [_SERVICE, _WAIT_SERVICE, _WAIT]
    return _script(
        "wait_healthy", values, result, parts, idempotent=True, changes=False, max_seconds=limit + 15
    )

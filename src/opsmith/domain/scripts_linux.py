"""Bash scripts for Linux hosts: services, processes, files, packages, commands, health waits.

Each function validates its values (`opsmith.domain.scripts`) and returns a complete `Script`:

    set -u
    svc='nginx'                   <- the values, each single-quoted, and nothing else
    limit='60'
    _base='{"op":...'             <- the start of the result line, ASCII JSON, quoted too
    <constant helpers and body>   <- reads the variables; never holds a value
    _main </dev/null

The body runs as one function called on the last line, so bash has read the whole script before
any of it runs (a script cut short in transit runs nothing), and no command in it can read the
rest of the script from stdin when it is sent to `bash -s` (or read whole by `. /dev/stdin`, as
`opsmith.tools.hosts.shells.BASH_STDIN` does). The commands' own stdout goes to
stderr, so stdout holds the result line (and, for `run_command`, the command's output before it).

`sudo=True` runs the privileged commands as `sudo -n -- ...`: never a password (sudo must allow
the account without one, which the script checks first and reports as exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opsmith.domain.errors import ScriptInputError
from opsmith.domain.scripts import (
    Script,
    absolute_path,
    command_argv,
    file_mode,
    health_url,
    package_name,
    package_version,
    process_name,
    result_base,
    seconds,
    service_name,
    sh_quote,
    sha256_hex,
)

__all__ = [
    "install_file",
    "package_install",
    "package_update",
    "process_check",
    "run_command",
    "service_restart",
    "service_start",
    "service_status",
    "service_stop",
    "wait_healthy",
]

_SUDO = "sudo -n -- "

# The helpers every script has: JSON strings, the result line, success and failure.
_PRELUDE = r"""
_js() {
  local s=$1 b='\' q='"'
  s=${s//"$b"/"$b$b"}
  s=${s//"$q"/"$b$q"}
  s=${s//$'\n'/"$b"n}
  s=${s//$'\r'/"$b"r}
  s=${s//$'\t'/"$b"t}
  printf '"%s"' "$(printf '%s' "$s" | LC_ALL=C tr -d '\000-\037\177')"
}
_emit() {
  local out=$_base k v
  while [ "$#" -ge 2 ]; do
    k=$1 v=$2
    shift 2
    case $v in
      s:*) v=$(_js "${v#s:}") ;;
      n:) v=null ;;
      n:*) v=$(_js "${v#n:}") ;;
      *) v=${v#r:} ;;
    esac
    out="$out,\"$k\":$v"
  done
  printf '\n%s %s}\n' OPSMITH-RESULT "$out"
}
_done() {
  _emit ok r:true "$@"
  exit 0
}
_fail() {
  local code=$1 msg=$2
  shift 2
  printf 'opsmith: %s\n' "$msg" >&2
  _emit ok r:false error "s:$msg" "$@"
  exit "$code"
}
_bounded() {
  if command -v timeout >/dev/null 2>&1; then timeout "$limit" "$@"; else "$@"; fi
}
PATH=${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin
"""

_SUDO_CHECK = r"""
  command -v sudo >/dev/null 2>&1 || _fail 2 "sudo is not installed on this host"
  sudo -n true >/dev/null 2>&1 || _fail 2 "sudo asks this account for a password, and opsmith never \
gives one: allow the commands without a password, or connect as an account that may run them"
"""

# Which service manager knows the service: systemd (when it answers), `service`, /etc/init.d.
_SERVICE = r"""
_svc_find() {
  local load
  if command -v systemctl >/dev/null 2>&1; then
    load=$(systemctl show -p LoadState "$svc" 2>/dev/null)
    case $load in
      LoadState=not-found) _fail 4 "service $svc is not known to systemd" state s:unknown ;;
      LoadState=?*) mgr=systemd; return 0 ;;
    esac
  fi
  if command -v service >/dev/null 2>&1; then mgr=service; return 0; fi
  if [ -x "/etc/init.d/$svc" ]; then mgr=initd; return 0; fi
  _fail 4 "service $svc was not found: systemd does not answer, there is no service command \
and no /etc/init.d/$svc" state s:unknown
}
_svc_state() {
  local rc
  if [ "$mgr" = systemd ]; then
    detail=$(systemctl is-active "$svc" 2>/dev/null)
    case $detail in
      active|reloading|refreshing) state=running ;;
      activating) state=starting ;;
      deactivating) state=stopping ;;
      failed) state=failed ;;
      inactive) state=stopped ;;
      *) state=unknown ;;
    esac
    return 0
  fi
  if [ "$mgr" = service ]; then
    @P@service "$svc" status >/dev/null 2>&1
  else
    @P@"/etc/init.d/$svc" status >/dev/null 2>&1
  fi
  rc=$?
  detail="status exit $rc"
  case $rc in
    0) state=running ;;
    4) state=unknown ;;
    *) state=stopped ;;
  esac
}
_svc_do() {
  case $mgr in
    systemd) _bounded @P@systemctl "$1" "$svc" ;;
    service) _bounded @P@service "$svc" "$1" ;;
    *) _bounded @P@"/etc/init.d/$svc" "$1" ;;
  esac
}
_svc_wait() {
  while :; do
    _svc_state
    [ "$state" = "$1" ] && return 0
    [ "$state" = failed ] && { [ "$1" = stopped ]; return; }
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5 2>/dev/null || sleep 1
  done
}
_svc_fail() {
  _fail "$1" "$2" manager s:"$mgr" state s:"$state" detail s:"$detail" changed r:"$3"
}
_svc_done() {
  _done manager s:"$mgr" was_running r:"$1" state s:"$state" detail s:"$detail" changed r:"$2"
}
_svc_change() {
  local rc
  deadline=$((SECONDS + limit))
  _svc_do "$1" >&2
  rc=$?
  if [ "$rc" -ne 0 ]; then
    _svc_state
    [ "$rc" -eq 124 ] && _svc_fail 3 "$1 of service $svc did not finish within ${limit}s" true
    _svc_fail 1 "$1 of service $svc failed with exit code $rc (its manager's message is on stderr)" false
  fi
  if ! _svc_wait "$2"; then
    [ "$state" = failed ] && _svc_fail 1 "service $svc failed after $1" true
    _svc_fail 3 "service $svc was not $2 within ${limit}s of $1" true
  fi
}
"""

_STATUS = r"""
_main() {
  @SUDO_CHECK@
  _svc_find
  _svc_state
  _done manager s:"$mgr" state s:"$state" detail s:"$detail"
}
"""

_START = r"""
_main() {
  @SUDO_CHECK@
  _svc_find
  _svc_state
  [ "$state" = running ] && _svc_done true false
  _svc_change start running
  _svc_done false true
}
"""

_STOP = r"""
_main() {
  @SUDO_CHECK@
  _svc_find
  _svc_state
  case $state in
    stopped|failed) _svc_done false false ;;
  esac
  _svc_change stop stopped
  _svc_done true true
}
"""

_RESTART = r"""
_main() {
  local was=false
  @SUDO_CHECK@
  _svc_find
  _svc_state
  [ "$state" = running ] && was=true
  _svc_change restart running
  _svc_done "$was" true
}
"""

# pgrep -x matches the kernel's process name, which it cuts to 15 characters: a longer name is
# looked up by its first 15 and confirmed by argv[0]. A zombie has exited (its parent has not yet
# collected it), so it does not count as running.
_PROCESS = r"""
_main() {
  local candidates pid st name count=0 pids=
  if command -v pgrep >/dev/null 2>&1; then
    candidates=$(pgrep -x -- "$pat" 2>/dev/null)
  else
    candidates=$(ps -e -o pid= -o comm= 2>/dev/null | awk -v n="$short" '$2 == n { print $1 }')
  fi
  for pid in $candidates; do
    [ "$pid" = "$$" ] && continue
    st=$(cat "/proc/$pid/stat" 2>/dev/null)
    st=${st##*) }
    [ "${st%% *}" = Z ] && continue
    if [ "$short" != "$proc" ] && [ -r "/proc/$pid/cmdline" ]; then
      name=$(tr '\0' '\n' < "/proc/$pid/cmdline" | head -n 1)
      [ "${name##*/}" = "$proc" ] || continue
    fi
    count=$((count + 1))
    [ "$count" -le 50 ] && pids="$pids${pids:+,}$pid"
  done
  if [ "$count" -gt 0 ]; then
    _done running r:true count r:$count pids "r:[$pids]"
  fi
  _done running r:false count r:0 pids "r:[]"
}
"""

_SHA = r"""
_sha() {
  local h
  h=$(@P@sha256sum -- "$1" 2>/dev/null) || return 1
  h=${h#\\}
  printf '%s' "${h%% *}"
}
"""

# The new file is checked before anything is touched, copied next to the target, given its
# mode, checked again, and renamed over the target (a rename is atomic: no reader ever sees half a
# file); the old file is kept as TARGET.bak-TIMESTAMP.
_INSTALL = r"""
_main() {
  local have dir staged backup= ts
  @SUDO_CHECK@
  command -v sha256sum >/dev/null 2>&1 || _fail 2 "sha256sum is not installed on this host" changed r:false
  @P@test -f "$src" || _fail 4 "the new file $src is not there" changed r:false
  have=$(_sha "$src")
  [ "$have" = "$sha" ] || _fail 5 "checksum mismatch: $src has sha256 ${have:-unreadable}, \
expected $sha; $target was not touched" actual n:"$have" changed r:false
  dir=${target%/*}
  [ -n "$dir" ] || dir=/
  @P@test -d "$dir" || _fail 4 "the directory $dir does not exist" changed r:false
  @P@test -d "$target" && _fail 1 "$target is a directory, not a file" changed r:false
  if @P@test -e "$target" && [ "$(_sha "$target")" = "$sha" ]; then
    @P@rm -f -- "$src"
    _done changed r:false backup r:null
  fi
  ts=$(date -u +%Y%m%dT%H%M%SZ)
  if @P@test -e "$target"; then
    backup="$target.bak-$ts"
    @P@test -e "$backup" && backup="$backup-$$"
    @P@cp -p -- "$target" "$backup" ||
      _fail 1 "could not back up $target to $backup; nothing was changed" changed r:false
  fi
  staged="$dir/.${target##*/}.opsmith-$$"
  @P@cp -- "$src" "$staged" ||
    _fail 1 "could not copy $src into $dir; $target was not touched" changed r:false backup n:"$backup"
  if [ -n "$mode" ]; then
    @P@chmod -- "$mode" "$staged"
  elif [ -n "$backup" ]; then
    @P@chmod --reference="$backup" -- "$staged" 2>/dev/null
    @P@chown --reference="$backup" -- "$staged" 2>/dev/null
  else
    @P@chmod -- 0644 "$staged"
  fi
  if [ "$(_sha "$staged")" != "$sha" ]; then
    @P@rm -f -- "$staged"
    _fail 5 "the copy in $dir does not have sha256 $sha; $target was not touched" \
      changed r:false backup n:"$backup"
  fi
  if ! @P@mv -f -- "$staged" "$target"; then
    @P@rm -f -- "$staged"
    _fail 1 "could not move the new file over $target" changed r:false backup n:"$backup"
  fi
  [ "$(_sha "$target")" = "$sha" ] ||
    _fail 5 "$target does not have sha256 $sha after the move" changed r:true backup n:"$backup"
  @P@rm -f -- "$src"
  _done changed r:true backup n:"$backup"
}
"""

# apt-get, dnf, yum, zypper, in that order (dnf before yum: where both exist, yum is dnf's alias).
# A pinned version older than the installed one is a downgrade: apt-get --allow-downgrades,
# zypper --oldpackage, and for dnf/yum `downgrade` when `install` left it where it was (dnf's install
# goes down to a pinned version itself; the yum of EL7 does not).
_PACKAGES = r"""
_pm_find() {
  for pm in apt-get dnf yum zypper; do
    command -v "$pm" >/dev/null 2>&1 && return 0
  done
  _fail 2 "no package manager found (looked for apt-get, dnf, yum and zypper)" changed r:false
}
_pm_version() {
  if [ "$pm" = apt-get ]; then
    dpkg-query -W -f='${Status} ${Version}\n' "$pkg" 2>/dev/null | awk '$3 == "installed" { print $4; exit }'
  else
    rpm -q --qf '%{VERSION}-%{RELEASE}\n' "$pkg" 2>/dev/null | grep -v 'not installed' | head -n 1
  fi
}
_pm_run() {
  local want=$pkg got
  case $pm in
    apt-get)
      [ -n "$version" ] && want="$pkg=$version"
      _bounded @P@env DEBIAN_FRONTEND=noninteractive apt-get -q update >&2 || return
      _bounded @P@env DEBIAN_FRONTEND=noninteractive apt-get -y -q --allow-downgrades \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "$want" >&2 ;;
    dnf|yum)
      [ -n "$version" ] && want="$pkg-$version"
      if [ "$1" = update ] && [ -n "$before" ]; then
        _bounded @P@"$pm" -y upgrade "$want" >&2
      else
        _bounded @P@"$pm" -y install "$want" >&2
        got=$?
        if [ "$got" -ne 124 ] && [ -n "$version" ] && [ -n "$before" ] && ! _pm_pinned "$(_pm_version)"; then
          _bounded @P@"$pm" -y downgrade "$want" >&2
          return
        fi
        return "$got"
      fi ;;
    zypper)
      if [ -n "$version" ]; then
        _bounded @P@zypper --non-interactive install --oldpackage --auto-agree-with-licenses \
          "$pkg=$version" >&2
      elif [ "$1" = update ] && [ -n "$before" ]; then
        _bounded @P@zypper --non-interactive update --auto-agree-with-licenses "$pkg" >&2
      else
        _bounded @P@zypper --non-interactive install --auto-agree-with-licenses "$pkg" >&2
      fi ;;
  esac
}
_pm_pinned() {
  case $1 in
    "$version"|"$version"-*|*:"$version"|*:"$version"-*) return 0 ;;
  esac
  return 1
}
_pm_backup() {
  [ -n "$keep" ] || return 0
  @P@test -e "$keep" || return 0
  backup="$keep.bak-$(date -u +%Y%m%dT%H%M%SZ)"
  @P@test -e "$backup" && backup="$backup-$$"
  @P@cp -a -- "$keep" "$backup" ||
    _fail 1 "could not back up $keep to $backup; the package was not touched" changed r:false
}
_pm_fail() {
  _fail "$1" "$2" manager s:"$pm" version n:"$after" previous n:"$before" backup n:"$backup"
}
_pm_main() {
  local before after rc backup=
  @SUDO_CHECK@
  _pm_find
  before=$(_pm_version)
  if [ "$1" = install ] && [ -n "$before" ]; then
    if [ -z "$version" ] || _pm_pinned "$before"; then
      _done manager s:"$pm" version s:"$before" previous s:"$before" changed r:false backup r:null
    fi
  fi
  _pm_backup
  _pm_run "$1"
  rc=$?
  after=$(_pm_version)
  [ "$rc" -eq 124 ] && _pm_fail 3 "$pm did not finish within ${limit}s"
  [ "$rc" -eq 0 ] || _pm_fail 1 "$pm failed with exit code $rc (its message is on stderr)"
  [ -n "$after" ] || _pm_fail 1 "$pkg is not installed after $pm ran"
  if [ -n "$version" ] && ! _pm_pinned "$after"; then
    _pm_fail 1 "$pkg is at version $after after $pm ran, not $version"
  fi
  if [ "$after" = "$before" ]; then changed=false; else changed=true; fi
  _done manager s:"$pm" version s:"$after" previous n:"$before" changed r:$changed backup n:"$backup"
}
"""

_PACKAGE_INSTALL = """
_main() {
  _pm_main install
}
"""

_PACKAGE_UPDATE = """
_main() {
  _pm_main update
}
"""

_RUN = r"""
_main() {
  local rc
  @SUDO_CHECK@
  if [ -n "$cwd" ]; then
    cd -- "$cwd" 2>/dev/null ||
      _fail 4 "the directory $cwd does not exist or cannot be entered" exit_code r:null
  fi
  if [ "$limit" -gt 0 ]; then
    _bounded @P@"${cmd[@]}"
  else
    @P@"${cmd[@]}"
  fi
  rc=$?
  [ "$limit" -gt 0 ] && [ "$rc" -eq 124 ] &&
    _fail 3 "the command did not finish within ${limit}s" exit_code r:$rc
  [ "$rc" -eq 0 ] && _done exit_code r:0
  [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ] &&
    _fail 4 "the program ${cmd[0]} was not found or may not be run" exit_code r:$rc
  _fail 1 "the command exited with code $rc" exit_code r:$rc
}
"""

# Polls until healthy or the deadline; each probe gets at most the time left, so the whole wait
# ends within about `limit` seconds.
_WAIT = r"""
_probe() {
  local left=$((deadline - SECONDS))
  [ "$left" -ge 1 ] || left=1
  if [ -z "$url" ]; then
    _svc_state
    last="$state ($detail)"
    [ "$state" = running ]
    return
  fi
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -g -s -o /dev/null -w '%{http_code}' --max-time "$left" "$url" 2>/dev/null)
    case $code in
      [1-5][0-9][0-9]) last="HTTP $code" ;;
      *) code=null last="no answer" ;;
    esac
    case $code in 2??|3??) return 0 ;; esac
    return 1
  fi
  code=null
  last="no healthy answer (wget)"
  wget -q -O /dev/null -T "$left" -t 1 "$url" >/dev/null 2>&1
}
_main() {
  local start=$SECONDS probes=0 code=null last= pause
  @SUDO_CHECK@
  deadline=$((SECONDS + limit))
  if [ -z "$url" ]; then
    _svc_find
  elif ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
    _fail 2 "neither curl nor wget is installed on this host" healthy r:false
  fi
  while :; do
    probes=$((probes + 1))
    if _probe; then
      _done healthy r:true probes r:$probes waited r:$((SECONDS - start)) status r:$code last s:"$last"
    fi
    pause=$((deadline - SECONDS))
    [ "$pause" -gt 0 ] || _fail 3 "not healthy within ${limit}s: $last" \
      healthy r:false probes r:$probes waited r:$((SECONDS - start)) status r:$code last s:"$last"
    [ "$pause" -gt "$interval" ] && pause=$interval
    sleep "$pause"
  done
}
"""


def _script(
    operation: str,
    values: Mapping[str, str | Sequence[str]],
    result: Mapping[str, object],
    parts: Sequence[str],
    *,
    sudo: bool,
    idempotent: bool,
    changes: bool,
    max_seconds: int,
) -> Script:
    lines = ["set -u"]
    for name, value in values.items():
        if isinstance(value, str):
            lines.append(f"{name}={sh_quote(value)}")
        else:
            lines.append(f"{name}=(" + " ".join(sh_quote(word) for word in value) + ")")
    lines.append(f"_base={sh_quote(result_base(operation, dict(result)))}")
    body = _PRELUDE + "".join(parts)
    body = body.replace("  @SUDO_CHECK@\n", _SUDO_CHECK.lstrip("\n") if sudo else "")
    body = body.replace("@P@", _SUDO if sudo else "")
    text = "\n".join(lines) + "\n" + body.lstrip("\n") + "_main </dev/null\n"
    return Script(
        shell="bash",
        operation=operation,
        text=text,
        idempotent=idempotent,
        changes=changes,
        max_seconds=max_seconds,
    )


def service_status(service: str, *, sudo: bool = False) -> Script:
    """The state of a service: running, stopped, failed, starting, stopping or unknown, with the
    manager's own word in `detail`. Exit 4 when no manager knows the service."""
    svc = service_name(service)
    return _script(
        "service_status",
        {"svc": svc, "limit": "30"},
        {"service": svc},
        [_SERVICE, _STATUS],
        sudo=sudo,
        idempotent=True,
        changes=False,
        max_seconds=30,
    )


def _service_change(
    operation: str, body: str, service: str, timeout: object, sudo: bool, *, idempotent: bool
) -> Script:
    svc = service_name(service)
    limit = seconds(timeout, field="timeout")
    return _script(
        operation,
        {"svc": svc, "limit": str(limit)},
        {"service": svc},
        [_SERVICE, body],
        sudo=sudo,
        idempotent=idempotent,
        changes=True,
        max_seconds=2 * limit + 10,
    )


def service_start(service: str, *, timeout: int = 60, sudo: bool = False) -> Script:
    """Start a service (nothing to do if it runs) and wait until it is running; exit 3 if it is
    not within `timeout` seconds, 1 if it failed."""
    return _service_change("service_start", _START, service, timeout, sudo, idempotent=True)


def service_stop(service: str, *, timeout: int = 60, sudo: bool = False) -> Script:
    """Stop a service (nothing to do if it is stopped) and wait until it is; exit 3 if it is not
    within `timeout` seconds."""
    return _service_change("service_stop", _STOP, service, timeout, sudo, idempotent=True)


def service_restart(service: str, *, timeout: int = 60, sudo: bool = False) -> Script:
    """Restart a service (start it if it was stopped) and wait until it is running.

    Not idempotent: every run stops the service again and drops its connections, so a restart
    repeated after a lost connection interrupts its clients a second time."""
    return _service_change("service_restart", _RESTART, service, timeout, sudo, idempotent=False)


def process_check(process: str) -> Script:
    """Whether a process of that executable name runs (`pgrep -x`, or `ps` without pgrep): exit 0
    either way, with `running`, `count` and up to 50 `pids`."""
    proc = process_name(process)
    # The kernel's name is the first 15 characters; pgrep reads its pattern as a regex, in which
    # `.` and `+` (the only special characters a process name may hold) must be escaped.
    short = proc[:15]
    pattern = "".join("\\" + c if c in ".+" else c for c in short)
    return _script(
        "process_check",
        {"proc": proc, "short": short, "pat": pattern},
        {"process": proc},
        [_PROCESS],
        sudo=False,
        idempotent=True,
        changes=False,
        max_seconds=30,
    )


def install_file(
    temp_path: str, target: str, sha256: str, *, mode: str | None = None, sudo: bool = False
) -> Script:
    """Put a file uploaded to `temp_path` in place at `target`, if its SHA-256 is `sha256`.

    A mismatch is refused before the target is touched (exit 5). The old target is kept as
    `TARGET.bak-YYYYmmddTHHMMSSZ` (in `backup` of the result); the new file takes `mode`, or the
    old file's mode and owner, or 0644. A target that already has the checksum is left alone, so
    running it again is harmless."""
    src = absolute_path(temp_path, field="temp_path")
    dest = absolute_path(target, field="target")
    if src == dest:
        raise ScriptInputError(
            f"temp_path and target are the same file ({dest!r})",
            hint="upload the new file to a temporary path; the script moves it into place",
        )
    digest = sha256_hex(sha256)
    octal = "" if mode is None else file_mode(mode)
    return _script(
        "install_file",
        {"src": src, "target": dest, "sha": digest, "mode": octal},
        {"target": dest},
        [_SHA, _INSTALL],
        sudo=sudo,
        idempotent=True,
        changes=True,
        max_seconds=120,
    )


def _package(
    operation: str,
    body: str,
    package: str,
    version: str | None,
    backup: str | None,
    timeout: object,
    sudo: bool,
) -> Script:
    pkg = package_name(package)
    pinned = "" if version is None else package_version(version)
    keep = "" if backup is None else absolute_path(backup, field="backup")
    limit = seconds(timeout, field="timeout")
    result: dict[str, object] = {"package": pkg}
    if pinned:
        result["requested"] = pinned
    return _script(
        operation,
        {"pkg": pkg, "version": pinned, "keep": keep, "limit": str(limit)},
        result,
        [_PACKAGES, body],
        sudo=sudo,
        idempotent=True,
        changes=True,
        max_seconds=2 * limit + 30,
    )


def package_install(
    package: str,
    *,
    version: str | None = None,
    backup: str | None = None,
    timeout: int = 600,
    sudo: bool = False,
) -> Script:
    """Install a package if it is missing (or not at the pinned `version`), with the host's own
    package manager (apt-get, dnf, yum or zypper, found in that order), non-interactively; a pinned
    version older than the installed one is installed as a downgrade. The result says the version
    before (`previous`) and after (`version`), as dpkg-query or rpm read them.
    `backup`: a config file or directory copied to `PATH.bak-TIMESTAMP` first."""
    return _package("package_install", _PACKAGE_INSTALL, package, version, backup, timeout, sudo)


def package_update(
    package: str, *, backup: str | None = None, timeout: int = 600, sudo: bool = False
) -> Script:
    """Upgrade a package to the newest version its repositories offer (installing it if missing),
    after copying `backup` (e.g. /etc/nginx) to `PATH.bak-TIMESTAMP`. The result says the version
    before (`previous`, null where it was absent) and after (`version`): what an undo puts back.

    Idempotent: run again, it finds the package current and changes nothing."""
    return _package("package_update", _PACKAGE_UPDATE, package, None, backup, timeout, sudo)


def run_command(
    argv: Sequence[str], *, cwd: str | None = None, timeout: int | None = None, sudo: bool = False
) -> Script:
    """Run one command, each word of `argv` passed as one argument whatever it holds (no shell
    parses them). Its output is the script's output, before the result line; exit 0 if it
    succeeded, else 1 (3 on `timeout`, 4 if the program is missing) with its `exit_code`.

    Not idempotent: opsmith cannot know what the command does."""
    words = command_argv(argv)
    where = "" if cwd is None else absolute_path(cwd, field="cwd")
    limit = 0 if timeout is None else seconds(timeout, field="timeout", maximum=86400)
    return _script(
        "run_command",
        {"cmd": words, "cwd": where, "limit": str(limit)},
        {"program": words[0]},
        [_RUN],
        sudo=sudo,
        idempotent=False,
        changes=True,
        max_seconds=limit + 10 if limit else 3600,
    )


def wait_healthy(
    *,
    url: str | None = None,
    service: str | None = None,
    timeout: int = 60,
    interval: int = 2,
    sudo: bool = False,
) -> Script:
    """Poll until `url` answers 2xx/3xx (curl, or wget) or `service` is running, every `interval`
    seconds; exit 3 when `timeout` passes first."""
    if (url is None) == (service is None):
        raise ScriptInputError(
            "wait_healthy needs exactly one of url and service",
            hint="give url='http://127.0.0.1:8080/health' or service='nginx'",
        )
    limit = seconds(timeout, field="timeout")
    every = seconds(interval, field="interval", maximum=300)
    if url is not None:
        link = health_url(url)
        values, result, parts = {"url": link, "svc": ""}, {"url": link}, [_WAIT]
    else:
        svc = service_name(service)
        values, result, parts = {"url": "", "svc": svc}, {"service": svc}, [_SERVICE, _WAIT]
    return _script(
        "wait_healthy",
        {**values, "limit": str(limit), "interval": str(every)},
        result,
        parts,
        sudo=sudo and service is not None,
        idempotent=True,
        changes=False,
        max_seconds=limit + 15,
    )

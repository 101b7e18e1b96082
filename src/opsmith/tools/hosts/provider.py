"""`HostTools`: the server `hosts`, a ToolProvider whose tools are the fleet operations, each run on
every host of its targets at once.

One call of `hosts/service_stop` with `targets: "Data Processing"`:
1. resolves the targets through the inventory (a group, loosely named, and the groups nested in it;
   or host names), and refuses an unknown group before anything runs;
2. renders each host's script for its OS (bash or PowerShell) and refuses bad values (a service
   named `nginx; rm -rf /`) before anything runs, on any host;
3. takes each host's credential out of the vault (a host without one, or with an unknown one, fails
   alone, with its reason);
4. runs every host at once (the executors bound how many: `fleet.forks`), retrying a host that could
   not be reached, reporting progress as hosts finish;
5. answers with every host's result; when more than `max_failed_percent` of the hosts failed, the
   call fails (a ToolCallError carrying the same results, for the run's record and its rollback).

`package_install` with a version per host ({host: version}) runs on those hosts, each with its own;
the package operations' answers hold each host's version before and after (`previous_versions`,
`current_versions`, `installed_hosts`), which is what the undo of an update puts back.

A host's failure never stops the others. What a host printed is kept as bounded tails; the vault's
values never reach a result (the executors redact them from what they report).

Each host's row goes out with the progress report of its end (`row`, shorter still: what a run keeps
of it, durably). A call given the rows of hosts an interrupted attempt finished (`finished`) leaves
those hosts alone and runs on the others; its answer holds every host's row, the recorded ones
included, and its failure policy and `expect` count them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import (
    OpsmithError,
    ToolArgumentsError,
    ToolCallError,
    UnknownToolError,
    UsageError,
)
from opsmith.domain.host_tools import (
    EXPECT,
    FLEET_ARGUMENTS,
    HOSTS_SERVER,
    MAX_FAILED,
    PACKAGE_OPERATIONS,
    PER_HOST_VERSION,
    SOURCE,
    TARGETS,
    host_tools,
    host_versions,
)
from opsmith.domain.hosts import Credential, Host, HostFailure, HostResult, tail
from opsmith.domain.inventory import Inventory
from opsmith.domain.results import ToolResult
from opsmith.domain.script_catalog import OPERATIONS, render
from opsmith.domain.scripts import Script, parse_result
from opsmith.domain.servers import Health, ServerStatus
from opsmith.ports import HostShell, Progress
from opsmith.tools.arguments import check_arguments

# What a call's answer keeps of each host's output: the whole answer of a 500-host call stays small.
OUTPUT_TAIL = 1000
# What a progress report's row keeps: a run records every host's row with its step, rewritten at
# each progress commit, so a row stays at a few hundred bytes (under 2 kB whatever the host said).
RECORDED_TAIL = 200
RECORDED_RESULT = 1000  # characters of a result's JSON kept whole; above, only its short scalars
RETRY_PAUSE = 0.5  # seconds before a host is tried again
_SUDO_VARS = ("opsmith_sudo", "ansible_become")


@dataclass(frozen=True)
class FleetPolicy:
    max_failed_percent: float = 0.0
    host_retries: int = 1
    command_timeout: float = 300.0


class HostTools:
    """The ToolProvider of the server `hosts` (see the module docstring)."""

    def __init__(
        self,
        *,
        inventory: Callable[[], Inventory],
        credential: Callable[[str], Credential],
        shell: HostShell,
        policy: FleetPolicy,
    ) -> None:
        self._inventory = inventory
        self._credential = credential
        self._shell = shell
        self._policy = policy
        self._catalog = Catalog(host_tools())
        self._started = time.time()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def statuses(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                name=HOSTS_SERVER,
                transport="ssh/winrm",
                health=Health.UP,
                tool_count=len(self._catalog.tools()),
                title="the fleet of the inventory",
            )
        ]

    async def close(self) -> None:
        await self._shell.close()

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
        finished: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ToolResult:
        spec = self._catalog.get(server, tool)
        if spec is None or server != HOSTS_SERVER:
            known = ", ".join(sorted(OPERATIONS))
            raise UnknownToolError(
                f"the server {HOSTS_SERVER!r} has no tool {tool!r}", hint=f"known: {known}"
            )
        # Before the schema: its words for a bad host name or version are a regex, ours say what is allowed.
        versions = _per_host(tool, arguments)
        check_arguments(spec, arguments)
        began = time.perf_counter()
        hosts = self._hosts(tool, arguments, versions)
        limit = _percent(arguments.get(MAX_FAILED, self._policy.max_failed_percent))
        params = {k: v for k, v in arguments.items() if k not in FLEET_ARGUMENTS}
        if versions is not None:
            del params["version"]  # each host's own goes into its script
        upload = _read_source(arguments[SOURCE]) if tool == "install_file" else None
        scripts = self._scripts(tool, hosts, params, upload, versions)
        deadline = timeout if timeout is not None else self._policy.command_timeout
        expect = arguments.get(EXPECT) or {}
        # Only the hosts of this call count: an inventory changed since the attempt that recorded
        # a row may have left that host out.
        carried = {h.name: _carried(h, finished[h.name]) for h in hosts if finished and h.name in finished}
        rows = await self._fan_out(tool, hosts, scripts, upload, deadline, progress, expect, carried)
        targets = arguments[TARGETS] if TARGETS in arguments else [h.name for h in hosts]
        answer = _answer(tool, targets, [rows[h.name] for h in hosts], limit, expect)
        answer["duration_ms"] = round((time.perf_counter() - began) * 1000, 1)
        text = _summary(answer)
        if answer["failed_percent"] > limit:
            raise ToolCallError(
                f"{HOSTS_SERVER}/{tool}: {text}; {_reasons(answer)}",
                hint="every host's result is in the output (in a run: `opsmith status RUN --json`)",
                output=answer,
            )
        return ToolResult(server=HOSTS_SERVER, tool=tool, structured=answer, text=text)

    # -- before anything runs

    def _hosts(
        self, tool: str, arguments: Mapping[str, Any], versions: Mapping[str, str] | None
    ) -> list[Host]:
        """Where the call runs: its targets, or the hosts of a version per host (which `targets`,
        when also given, must name exactly)."""
        if versions is None:
            if TARGETS not in arguments:
                raise ToolArgumentsError(
                    f"{HOSTS_SERVER}/{tool} needs targets, or a version per host",
                    hint='give targets (a group or host names), or version as {"web01": "1.24.0-1"}',
                )
            return self._targets(arguments[TARGETS])
        inventory = self._inventory()
        hosts = [inventory.host(name) for name in versions]
        windows = [h.name for h in hosts if h.os != "linux"]
        if windows:
            raise ToolArgumentsError(
                f"{HOSTS_SERVER}/{tool}: version names Windows hosts ({', '.join(windows[:5])}), and a"
                " version per host is for Linux hosts only",
                hint="leave the Windows hosts out of it; nothing was run on any host",
            )
        if TARGETS not in arguments:
            return hosts
        named = self._targets(arguments[TARGETS])
        extra = [h.name for h in named if h.name not in versions]
        unnamed = [name for name in versions if name not in {h.name for h in named}]
        if extra or unnamed:
            said = [f"targets has {', '.join(extra[:5])} without a version"] if extra else []
            said += [f"version has {', '.join(unnamed[:5])}, which targets does not name"] if unnamed else []
            raise ToolArgumentsError(
                f"{HOSTS_SERVER}/{tool}: targets and the version per host name different hosts:"
                f" {'; '.join(said)}",
                hint="leave targets out (the version's hosts are where it runs), or name the same hosts",
            )
        return named

    def _targets(self, targets: str | Sequence[str]) -> list[Host]:
        if not targets:
            return []
        hosts = self._inventory().resolve(targets)
        if isinstance(targets, str) and not hosts:
            raise UsageError(
                f"the group {targets!r} has no hosts", hint="`opsmith inventory show GROUP` lists them"
            )
        return hosts

    def _scripts(
        self,
        tool: str,
        hosts: Sequence[Host],
        params: Mapping[str, Any],
        upload: _Upload | None,
        versions: Mapping[str, str] | None,
    ) -> dict[str, Script]:
        """Each host's script, all rendered before any runs: a value one host's OS refuses stops the
        whole call while nothing has happened yet."""
        by_kind: dict[tuple[str, bool, str | None], Script] = {}
        scripts: dict[str, Script] = {}
        for host in hosts:
            sudo = host.os == "linux" and any(_truthy(host.vars.get(v)) for v in _SUDO_VARS)
            version = versions[host.name] if versions is not None else None
            kind = (host.os, sudo, version)
            if kind not in by_kind:
                values = dict(params)
                if upload is not None:
                    values |= {"temp_path": upload.path_for(host.os), "sha256": upload.sha256}
                if version is not None:
                    values["version"] = version
                by_kind[kind] = render(tool, host.os, values, sudo=sudo)
            scripts[host.name] = by_kind[kind]
        return scripts

    # -- on every host at once

    async def _fan_out(
        self,
        tool: str,
        hosts: Sequence[Host],
        scripts: Mapping[str, Script],
        upload: _Upload | None,
        deadline: float,
        progress: Progress | None,
        expect: Mapping[str, Any],
        carried: Mapping[str, dict[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        """Every host's row (`expect` applied), by name: the carried ones as they were recorded,
        the others from running the script there."""
        total = len(hosts)
        failed = sum(1 for row in carried.values() if not row["ok"])
        done = {"completed": len(carried), "failed": failed}
        idempotent = OPERATIONS[tool].idempotent

        def finished(row: dict[str, Any]) -> None:
            done["completed"] += 1
            done["failed"] += 0 if row["ok"] else 1
            if progress is not None:
                progress(
                    {
                        "total": total,
                        "completed": done["completed"],
                        "failed": done["failed"],
                        "pending": total - done["completed"],
                        "host": row["host"],
                        "row": _recorded(row),
                    }
                )

        async def one(host: Host) -> tuple[str, dict[str, Any]]:
            outcome = await self._on_host(host, scripts[host.name], upload, deadline, idempotent)
            row = _expected(_row(host, outcome), expect)
            finished(row)
            return host.name, row

        if progress is not None:
            progress(
                {
                    "total": total,
                    "completed": done["completed"],
                    "failed": done["failed"],
                    "pending": total - done["completed"],
                    "host": "",
                }
            )
        ran = await asyncio.gather(*(one(host) for host in hosts if host.name not in carried))
        return {**carried, **dict(ran)}

    async def _on_host(
        self, host: Host, script: Script, upload: _Upload | None, deadline: float, idempotent: bool
    ) -> _HostOutcome:
        try:
            credential = self._login(host)
        except OpsmithError as refused:
            return _HostOutcome(_refused(host, refused.message), attempts=0)
        attempts = 0
        while True:
            attempts += 1
            result = await self._attempt(host, credential, script, upload, deadline)
            if not _retry(result, idempotent) or attempts > self._policy.host_retries:
                return _HostOutcome(result, attempts)
            await asyncio.sleep(RETRY_PAUSE)

    def _login(self, host: Host) -> Credential:
        if not host.credential:
            raise UsageError(
                f"host {host.name!r} has no credential: set opsmith_credential (a vault secret's name)"
                " for it or its group, nothing was sent"
            )
        return self._credential(host.credential)

    async def _attempt(
        self, host: Host, credential: Credential, script: Script, upload: _Upload | None, deadline: float
    ) -> HostResult:
        if upload is not None:
            sent = await self._shell.upload(
                host, credential, upload.data, upload.path_for(host.os), timeout=deadline
            )
            if not sent.ok:
                return sent
        # The script bounds itself (its waits and polls); the call waits a little longer than it.
        limit = max(deadline, script.max_seconds + 30) if script.max_seconds else deadline
        return await self._shell.run_script(host, credential, script, timeout=limit)


@dataclass(frozen=True)
class _HostOutcome:
    result: HostResult
    attempts: int


@dataclass(frozen=True)
class _Upload:
    data: bytes
    sha256: str
    name: str  # one per call: two calls never write each other's upload

    def path_for(self, os: str) -> str:
        if os == "windows":
            return f"C:\\Windows\\Temp\\{self.name}"
        return f"/tmp/{self.name}"


def _read_source(source: str) -> _Upload:
    path = Path(source)
    if not path.is_absolute():
        raise ToolArgumentsError(
            f"source {source!r} is not an absolute path", hint="give the file's full path on this machine"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ToolArgumentsError(
            f"cannot read source {source}: {exc.strerror or exc}", hint="check the path and its permissions"
        ) from exc
    return _Upload(data, hashlib.sha256(data).hexdigest(), f"opsmith-upload-{secrets.token_hex(8)}")


def _per_host(tool: str, arguments: Mapping[str, Any]) -> dict[str, str] | None:
    """The version per host of a call that gives one, checked; None for one version or none."""
    version = arguments.get("version")
    if tool not in PER_HOST_VERSION or not isinstance(version, Mapping):
        return None
    return host_versions(version)


def _retry(result: HostResult, idempotent: bool) -> bool:
    """Try a host again when its command never started, or when it may have but running it again
    is harmless. A command that ran to an exit code said what it had to say."""
    if result.failure is None or result.failure in (HostFailure.REFUSED, HostFailure.AUTH_REJECTED):
        return False
    if result.failure in (HostFailure.HOST_KEY_UNKNOWN, HostFailure.HOST_KEY_CHANGED):
        return False  # a decision for a person, never for a retry
    return idempotent or not result.failure.may_have_run


def _refused(host: Host, reason: str) -> HostResult:
    return HostResult(host=host.name, failure=HostFailure.REFUSED, reason=reason)


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True


def _percent(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]  # the schema checked it is a number
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise ToolArgumentsError(f"{MAX_FAILED} must be from 0 to 100, got {value!r}")
    return number


def _answer(
    tool: str,
    targets: object,
    rows: Sequence[dict[str, Any]],
    limit: float,
    expect: Mapping[str, Any],
) -> dict[str, Any]:
    """The call's answer over every host's row, in the hosts' order; `expect` is applied again, so
    a recorded row is judged as a new one is (applying it twice changes nothing)."""
    rows = [_expected(row, expect) for row in rows]
    failed = [row["host"] for row in rows if not row["ok"]]
    total = len(rows)
    answer = {
        "operation": tool,
        "targets": targets,
        "total": total,
        "succeeded": total - len(failed),
        "failed": len(failed),
        "failed_percent": round(100 * len(failed) / total, 2) if total else 0.0,
        "max_failed_percent": limit,
        "failed_hosts": failed,
        "succeeded_hosts": [row["host"] for row in rows if row["ok"]],
        # Where the call changed something: what its undo takes back, also when the call failed
        # on other hosts (the output of a failed call is kept for its undo).
        "changed_hosts": [row["host"] for row in rows if _changed(row.get("result"))],
        # Where the service (or process) runs now, as each host said: what a later step acts on
        # ("stop it where it runs") and what an undo puts back.
        "running_hosts": [row["host"] for row in rows if _runs(row.get("result"))],
        "stopped_hosts": [row["host"] for row in rows if _stopped(row.get("result"))],
        "hosts": rows,
    }
    if tool in PACKAGE_OPERATIONS:
        answer |= _package_versions(rows)
    return answer


def _package_versions(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each host's package version now, and before where the call changed it: what an undo puts
    back (`previous_versions` is a `version` per host for package_install). From every host that
    reported, failed ones too: a package manager that failed may have changed the version first."""
    now: dict[str, str | None] = {}
    previous: dict[str, str] = {}
    installed: list[str] = []
    for row in rows:
        result = row.get("result")
        if not isinstance(result, dict) or "previous" not in result:
            continue
        before, after = result.get("previous"), result.get("version")
        now[row["host"]] = after if isinstance(after, str) else None
        if isinstance(before, str) and before != after:
            previous[row["host"]] = before
        elif before is None and isinstance(after, str):
            # Absent before: an undo leaves it (removing a package can remove what depends on it).
            installed.append(row["host"])
    return {"current_versions": now, "previous_versions": previous, "installed_hosts": installed}


def _runs(result: object) -> bool:
    if not isinstance(result, dict):
        return False
    return result.get("state") == "running" or result.get("running") is True


def _changed(result: object) -> bool:
    return isinstance(result, dict) and result.get("changed") is True


def _stopped(result: object) -> bool:
    if not isinstance(result, dict):
        return False
    return result.get("state") in ("stopped", "failed") or result.get("running") is False


def _expected(row: dict[str, Any], expect: Mapping[str, Any]) -> dict[str, Any]:
    """The row failed when the host's result does not say what `expect` asks."""
    if not expect or not row["ok"]:
        return row
    result = row["result"] if isinstance(row["result"], dict) else {}
    wrong = [
        f"{key}={result.get(key)!r}, expected {value!r}"
        for key, value in expect.items()
        if result.get(key) != value
    ]
    if not wrong:
        return row
    return {**row, "ok": False, "failure": "unexpected", "reason": "; ".join(wrong)}


def _row(host: Host, outcome: _HostOutcome) -> dict[str, Any]:
    result = outcome.result
    return {
        "host": result.host,
        "address": host.address,
        "os": host.os,
        "ok": result.ok,
        "exit_code": result.exit_code,
        "failure": result.failure.value if result.failure else None,
        "reason": result.reason,
        "result": parse_result(result.stdout) if result.exit_code is not None else None,
        "stdout": tail(result.stdout, OUTPUT_TAIL),
        "stderr": tail(result.stderr, OUTPUT_TAIL),
        "duration_ms": round(result.duration_ms, 1),
        "attempts": outcome.attempts,
    }


def _recorded(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a run keeps of a host's row: the same fields, its output's tails shorter, its reason and
    result bounded (an answer's rows already hold no secret: the executors redact the vault's values)."""
    return {
        **row,
        "reason": row["reason"][:300] if isinstance(row["reason"], str) else row["reason"],
        "result": _bounded(row["result"]),
        "stdout": tail(row["stdout"], RECORDED_TAIL),
        "stderr": tail(row["stderr"], RECORDED_TAIL),
    }


def _bounded(result: object) -> object:
    """A result as it is when its JSON is small; otherwise its short scalar fields only, which are
    what the answer reads (state, running, changed, previous, version)."""
    if not isinstance(result, dict) or len(json.dumps(result, default=str)) <= RECORDED_RESULT:
        return result
    kept: dict[str, Any] = {}
    size = 0
    for key, value in result.items():
        if isinstance(value, bool | int | float | None) or (isinstance(value, str) and len(value) < 200):
            size += len(json.dumps({key: value}))
            if size > RECORDED_RESULT:
                break
            kept[key] = value
    return {**kept, "truncated": True}


def _carried(host: Host, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded row as this call's row for `host`: it succeeded when `ok` is True and nothing
    else, and it has every field an answer reads, each of its type (a value of another type, which
    no attempt of opsmith's recorded, is left out)."""
    row: dict[str, Any] = {
        "host": host.name,
        "address": host.address,
        "os": host.os,
        "ok": recorded.get("ok") is True,
        "exit_code": None,
        "failure": None,
        "reason": None,
        "result": None,
        "stdout": "",
        "stderr": "",
        "duration_ms": 0.0,
        "attempts": 0,
    }
    for key, kinds in _ROW_TYPES.items():
        value = recorded.get(key)
        if isinstance(value, kinds) and not isinstance(value, bool):
            row[key] = value
    if not row["ok"] and row["failure"] is None and row["exit_code"] is None:
        row["failure"], row["reason"] = "unknown", row["reason"] or "recorded as failed"
    row["recorded"] = True  # from an earlier attempt: this call did not contact the host
    return row


_ROW_TYPES: dict[str, type | tuple[type, ...]] = {
    "exit_code": int,
    "failure": str,
    "reason": str,
    "result": dict,
    "stdout": str,
    "stderr": str,
    "duration_ms": (int, float),
    "attempts": int,
}


def _reasons(answer: Mapping[str, Any], shown: int = 3) -> str:
    """Why the first few hosts failed, one clause each."""
    failed = [row for row in answer["hosts"] if not row["ok"]]
    parts = []
    for row in failed[:shown]:
        # A script that caught its error may say it only in its result line (the Windows ones do).
        said = row["result"].get("error") if isinstance(row["result"], dict) else None
        last = row["stderr"].strip().splitlines() or [said or f"exit code {row['exit_code']}"]
        why = row["reason"] or last[-1]
        parts.append(f"{row['host']}: {row['failure'] or 'failed'}: {why}"[:300])
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return "; ".join(parts) + more


def _summary(answer: Mapping[str, Any]) -> str:
    text = f"{answer['succeeded']} of {answer['total']} hosts succeeded"
    if answer["failed"]:
        shown = ", ".join(answer["failed_hosts"][:5]) + ("…" if answer["failed"] > 5 else "")
        share = f"{answer['failed_percent']:g}%; allowed {answer['max_failed_percent']:g}%"
        text += f", {answer['failed']} failed ({share}): {shown}"
    return text

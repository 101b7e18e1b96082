"""Fleet fan-out benchmark: `uname -r` on 50, 200 and 500 real sshd on loopback, opsmith against peers.

The hosts: for each size N, one tests.fleet.sshd.SshdFleet of N real OpenSSH servers
(`/usr/sbin/sshd -D`, one per port, listening on 127.0.0.1 only), started once for all of that size's
measurements and stopped in a finally. They let in the fleet's throwaway ed25519 client key as this
user, and every tool checks their keys strictly against the fleet's known_hosts (none may learn a
key). The remote command is `uname -r`, run by the account's login shell (bash) that sshd starts:
each sshd sets SHLVL=1 for its sessions (SetEnv), so that bash reads no ~/.bashrc (root's runs
`pyenv init`, 0.15 s a command, which would swamp everything else). Every host is this machine, so
sshd's own CPU (key exchange, login, a forked session: about 30 ms a connection) shares the cores
with the client measured, as it would not in a real fleet.

What is timed, for each size, --runs times each (one count for all sizes, or one a size), in turn
(run 1 of every tool, then run 2, ..., so drift in the machine's load hits all alike; ansible, the
slowest, last in each round):

  opsmith HostTools    the fleet path of a run's step: HostTools.call("hosts", "run_command",
                       {"targets": "bench", "argv": ["uname", "-r"], "max_failed_percent": 100}),
                       built as the service builds it: an Ansible YAML inventory parsed by parse_yaml,
                       Shells over the Config of `fleet: {known_hosts, forks}`, a FleetPolicy from
                       that config. It renders the run_command script, sends it on stdin of each
                       host to bash (shells.BASH_STDIN: bash `.`s /dev/stdin, read in blocks, not the
                       byte a read of `bash -s`), parses each host's result line and answers the
                       per-host table. A host answered when its row is ok and its stdout holds this
                       machine's release.
  opsmith SshExecutor  the layer below alone: SshExecutor(settings).run_many(hosts, credential_for,
                       lambda host: "uname -r") with the settings of the same Config; a host answered
                       when it exited 0 and printed the release.
  SshExecutor + script the same SshExecutor sending each host what HostTools sends it (the rendered
                       run_command script on stdin of shells.BASH_STDIN, so a fresh bash runs it) with
                       nothing of HostTools around it: script/SshExecutor is the cost of the remote
                       script (a second bash, the fork that keeps the command's exit code, the
                       script's stdin), HostTools/script that of HostTools itself (arguments,
                       inventory, rendering, rows). A host answered when it exited 0 and printed the
                       release, then the script's result line.
                       Both opsmith rows offer asyncssh's ciphers with AES-GCM first (ssh.py
                       PREFERRED_CIPHERS), where asyncssh's default chacha20-poly1305 costs its
                       client about 40% more CPU a command.
  bare asyncssh        the floor for any asyncssh client: asyncssh.connect to each host (the key
                       imported once, the known_hosts parsed once, opsmith's cipher order, so the
                       ratio is of opsmith's work, not of a cipher), conn.run("uname -r"), all gathered,
                       at most --forks (100) hosts at once and 20 of them in key exchange and login
                       (opsmith's own limits, whose reason is ronf/asyncssh#573).
  ansible              `ansible all -i INVENTORY -m command -a 'uname -r' -f 50`, ansible-core from
                       bench/peers (a uv project and lock of its own), run by `uv run --frozen
                       --project bench/peers`. OpenSSH with ansible's usual ControlMaster=auto and
                       ControlPersist (a fresh control directory each run; its masters ended after),
                       no pipelining, interpreter_python set (no discovery), no cowsay. A host
                       answered when it printed `NAME | CHANGED | rc=0 >>` and then the release.
  pyinfra              `pyinfra -y --parallel 100 INVENTORY.py exec -- uname -r` (100: --forks),
                       from bench/peers too (paramiko), the inventory giving each host's ssh_hostname,
                       ssh_port, ssh_user, ssh_key and ssh_known_hosts_file, strict checking, no agent
                       and no key search. A host answered when it printed `[NAME] RELEASE`.

Cold is a fresh process's first call. The three in-process rows run in a child process of their
own for each run (`fanout.py --child TOOL --spec FILE`, which prints one JSON line), so every
connection is new and the peak RSS (getrusage's ru_maxrss, after both calls) is that tool's alone;
their seconds are timed in the child from just before the call to its answer. The interpreter's
start and the imports are left out of them and shown apart ("start s": from the child's creation to
its imports done). Warm is a second call right after, on the same HostTools / SshExecutor /
asyncssh connections: kept connections, no handshake. ansible and pyinfra have no warm mode: each
of their runs is one whole process tree from its spawn to its exit, interpreter start included.
Client CPU is the user+system CPU of the cold call (in the child) or of the peer's whole process
tree (getrusage of the reaped children).

Ratios are of the medians: ansible/opsmith and pyinfra/opsmith of the cold seconds (how many times
faster opsmith is), opsmith/asyncssh of cold and of warm (opsmith's cost over the floor), and warm
script/SshExecutor and HostTools/script, which split that cost between the hosts' side (the script
in a fresh bash) and HostTools' own work. Targets:
>= 10x faster than ansible, faster than pyinfra, within 1.3x of bare asyncssh, 500 hosts cold
<= 30 s, peak RSS <= 400 MB at 500 hosts.

Bounded: every child and peer process has a timeout (its process group is killed past it), no
measurement starts after --budget seconds (the table says how many runs each row had), a fleet that
cannot start is reported and the next size goes on, and each fleet is stopped in a finally. The
soft RLIMIT_NOFILE is raised to the hard limit first (500 sshd, and as many client sockets).

    uv run --frozen python bench/fanout.py [--sizes 50,200,500] [--runs 3 | --runs 3,3,1] [--budget 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

# Run as a script, bench/ is on sys.path and the repository root is not; the fleet lives in tests/.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEERS = ROOT / "bench" / "peers"
GROUP = "bench"
CREDENTIAL = "fleet-key"  # tests.fleet.sshd.KEY_CREDENTIAL, named here so children need not import it
HANDSHAKES = 20
ANSIBLE_FORKS = 50
IN_PROCESS = ("opsmith", "script", "executor", "asyncssh")
# The slowest last: when the budget runs out, what is cut is one ansible run.
TOOLS = (*IN_PROCESS, "pyinfra", "ansible")
LABELS = {
    "opsmith": "opsmith HostTools",
    "script": "SshExecutor + script",
    "executor": "opsmith SshExecutor",
    "asyncssh": "bare asyncssh",
    "ansible": f"ansible -f {ANSIBLE_FORKS}",
    "pyinfra": "pyinfra --parallel {forks}",
}
ANSIBLE_TARGET = 10.0  # times faster than ansible, cold
BARE_TARGET = 1.3  # opsmith / bare asyncssh, at most
COLD_500_TARGET = 30.0  # seconds for 500 hosts cold
RSS_500_TARGET = 400.0  # MB of opsmith's peak RSS at 500 hosts
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
T = TypeVar("T")


def child_timeout(size: int) -> float:
    return 60 + 0.2 * size


def ansible_timeout(size: int) -> float:
    return 120 + 1.0 * size  # about 0.55 s a host measured here at -f 50: a bound, well past it


def pyinfra_timeout(size: int) -> float:
    return 60 + 0.3 * size


# -- what every measurement answers --------------------------------------------------------------


@dataclass
class Sample:
    """One run of one tool on one fleet; seconds are None when the run did not finish."""

    cold: float | None = None
    warm: float | None = None
    answered: int = 0
    answered_warm: int | None = None
    cpu: float | None = None  # client CPU seconds of the cold call (or the peer's process tree)
    rss_mb: float | None = None
    start: float | None = None  # a child's interpreter start and imports
    retried: int = 0
    problem: str = ""


@dataclass
class Spec:
    """What a child is told about the fleet (written as JSON, passed as --spec FILE)."""

    inventory: str
    key: str
    known_hosts: str
    state_dir: str
    release: str
    forks: int
    handshakes: int
    command_timeout: float


@dataclass(frozen=True)
class Given:
    """A child's spec and the files it names, read before its event loop starts."""

    spec: Spec
    inventory: str
    key: str


@dataclass
class Row:
    tool: str
    size: int
    samples: list[Sample] = field(default_factory=list)

    def done(self) -> list[Sample]:
        return [s for s in self.samples if s.cold is not None]

    def cold(self) -> float | None:
        return _median([s.cold for s in self.done()])

    def warm(self) -> float | None:
        return _median([s.warm for s in self.done()])

    def rss(self) -> float | None:
        values = [s.rss_mb for s in self.done() if s.rss_mb is not None]
        return max(values) if values else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# -- the children: opsmith, its SSH layer and bare asyncssh, each in its own process --------------


def child_main(tool: str, spec_file: Path) -> None:
    spec = Spec(**json.loads(spec_file.read_text()))
    given = Given(spec, Path(spec.inventory).read_text(), Path(spec.key).read_text())
    measure = {
        "opsmith": opsmith_calls,
        "script": script_calls,
        "executor": executor_calls,
        "asyncssh": bare_calls,
    }[tool]
    sample = asyncio.run(measure(given))
    sample.rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(asdict(sample)), flush=True)


def since_created() -> float:
    return round(time.time() - float(psutil.Process().create_time()), 2)


async def timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
    """The call's answer, its wall seconds and the CPU seconds this process spent meanwhile."""
    cpu, began = time.process_time(), time.perf_counter()
    answer = await call()
    return answer, time.perf_counter() - began, time.process_time() - cpu


def config_text(spec: Spec) -> str:
    fleet = {"known_hosts": spec.known_hosts, "forks": spec.forks, "command_timeout": spec.command_timeout}
    return yaml.safe_dump({"state_dir": spec.state_dir, "fleet": fleet})


def fleet_key(given: Given) -> Any:
    from pydantic import SecretStr

    from opsmith.domain.hosts import Credential

    return Credential(name=CREDENTIAL, kind="ssh_key", secret=SecretStr(given.key))


async def opsmith_calls(given: Given) -> Sample:
    # Imported here, not at the top: a child's peak RSS must be its own tool's alone.
    from opsmith.config import parse_config
    from opsmith.domain.inventory_ansible import parse_yaml
    from opsmith.tools.hosts.provider import FleetPolicy, HostTools
    from opsmith.tools.hosts.shells import Shells

    sample = Sample(start=since_created())
    config = parse_config(config_text(given.spec), source="bench/fanout.py")
    spec = given.spec
    inventory = parse_yaml(given.inventory, spec.inventory)
    key = fleet_key(given)
    policy = FleetPolicy(
        max_failed_percent=config.fleet.max_failed_percent,
        host_retries=config.fleet.host_retries,
        command_timeout=config.fleet.command_timeout,
    )
    provider = HostTools(
        inventory=lambda: inventory, credential=lambda name: key, shell=Shells(config), policy=policy
    )
    # Every host's result is wanted, however many failed: the call must answer, not raise.
    arguments = {"targets": GROUP, "argv": ["uname", "-r"], "max_failed_percent": 100}

    def call() -> Awaitable[Any]:
        return provider.call("hosts", "run_command", arguments)

    def answered(result: Any) -> tuple[int, list[dict[str, Any]]]:
        rows = result.structured["hosts"]
        good = [r for r in rows if r["ok"] and spec.release in (r["stdout"] or "")]
        return len(good), [r for r in rows if r not in good]

    try:
        cold, sample.cold, sample.cpu = await timed(call)
        sample.answered, bad = answered(cold)
        sample.retried = sum(1 for r in cold.structured["hosts"] if r["attempts"] > 1)
        retried = f"{sample.retried} hosts tried again" if sample.retried else ""
        sample.problem = "; ".join(
            filter(None, [_reasons([f"{r['failure']}: {r['reason']}" for r in bad]), retried])
        )
        warm, sample.warm, _ = await timed(call)
        sample.answered_warm, _ = answered(warm)
    finally:
        await provider.close()
    return sample


async def executor_calls(given: Given, *, script: bool = False) -> Sample:
    from opsmith.config import parse_config
    from opsmith.domain.inventory_ansible import parse_yaml
    from opsmith.domain.script_catalog import render
    from opsmith.tools.hosts.shells import BASH_STDIN
    from opsmith.tools.hosts.ssh import RemoteCommand, SshExecutor

    sample = Sample(start=since_created())
    config = parse_config(config_text(given.spec), source="bench/fanout.py")
    spec = given.spec
    hosts = parse_yaml(given.inventory, spec.inventory).hosts_of(GROUP)
    key = fleet_key(given)
    executor = SshExecutor(config.fleet.ssh_settings(config.known_hosts_file))
    # The "script" row: what HostTools sends each host (its run_command script on bash's stdin, a
    # fresh bash), without HostTools around it: the remote script's cost apart from HostTools' own.
    sent: str | RemoteCommand = "uname -r"
    if script:
        rendered = render("run_command", "linux", {"argv": ["uname", "-r"]}, sudo=False)
        sent = RemoteCommand(BASH_STDIN, stdin=rendered.text)

    def call() -> Awaitable[Any]:
        return executor.run_many(hosts, lambda host: key, lambda host: sent)

    def answered(results: Any) -> tuple[int, list[Any]]:
        def good(r: Any) -> bool:
            if script:  # the command's output, then the script's result line
                return bool(r.stdout.startswith(spec.release + "\n") and "OPSMITH-RESULT" in r.stdout)
            return bool(r.stdout.strip() == spec.release)

        bad = [r for r in results if r.exit_code != 0 or not good(r)]
        return len(results) - len(bad), bad

    try:
        cold, sample.cold, sample.cpu = await timed(call)
        sample.answered, bad = answered(cold)
        sample.problem = _reasons([f"{r.failure}: {r.reason or r.stderr}" for r in bad])
        warm, sample.warm, _ = await timed(call)
        sample.answered_warm, _ = answered(warm)
    finally:
        await executor.close()
    return sample


async def script_calls(given: Given) -> Sample:
    return await executor_calls(given, script=True)


async def bare_calls(given: Given) -> Sample:
    import asyncssh

    from opsmith.tools.hosts.ssh import PREFERRED_CIPHERS  # a parameter of asyncssh, not opsmith's work

    sample = Sample(start=since_created())
    spec = given.spec
    hosts = [
        (h["ansible_host"], int(h["ansible_port"]), h["ansible_user"])
        for h in yaml.safe_load(given.inventory)["all"]["children"][GROUP]["hosts"].values()
    ]
    key = asyncssh.import_private_key(given.key)
    known = asyncssh.read_known_hosts(spec.known_hosts)
    slots, handshakes = asyncio.Semaphore(spec.forks), asyncio.Semaphore(spec.handshakes)
    connections: list[asyncssh.SSHClientConnection] = []
    errors: list[str] = []

    async def first(address: str, port: int, user: str) -> str:
        async with slots:
            try:
                async with handshakes:
                    connection = await asyncssh.connect(
                        address,
                        port,
                        username=user,
                        client_keys=[key],
                        known_hosts=known,
                        encryption_algs=PREFERRED_CIPHERS,
                    )
                connections.append(connection)
                done = await connection.run("uname -r", timeout=spec.command_timeout)
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return ""
            return str(done.stdout)

    async def again(connection: asyncssh.SSHClientConnection) -> str:
        async with slots:
            try:
                done = await connection.run("uname -r", timeout=spec.command_timeout)
            except (OSError, asyncssh.Error, TimeoutError):
                return ""
            return str(done.stdout)

    def cold_call() -> Awaitable[list[str]]:
        return asyncio.gather(*(first(*host) for host in hosts))

    def warm_call() -> Awaitable[list[str]]:
        return asyncio.gather(*(again(c) for c in connections))

    try:
        cold, sample.cold, sample.cpu = await timed(cold_call)
        sample.answered = sum(1 for out in cold if out.strip() == spec.release)
        sample.problem = _reasons(errors)
        warm, sample.warm, _ = await timed(warm_call)
        sample.answered_warm = sum(1 for out in warm if out.strip() == spec.release)
    finally:
        for connection in connections:
            connection.close()
        await asyncio.gather(*(c.wait_closed() for c in connections), return_exceptions=True)
    return sample


def _reasons(reasons: list[str]) -> str:
    """The commonest reasons hosts failed, counted (empty when none did)."""
    counted = Counter(reason[:160] for reason in reasons)
    return "; ".join(f"{n}x {reason}" for reason, n in counted.most_common(3))


# -- processes, bounded ----------------------------------------------------------------------------


@dataclass
class Finished:
    code: int | None  # None: killed at its timeout
    stdout: str
    stderr: str
    seconds: float
    cpu: float


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_bounded(argv: list[str], *, timeout: float, env: dict[str, str], cwd: Path) -> Finished:
    """Run `argv` in its own process group; past `timeout` the whole group is killed."""
    cpu, began = children_cpu(), time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        code = None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    return Finished(code, out, err, time.perf_counter() - began, children_cpu() - cpu)


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        raise SystemExit("uv is not on PATH: the peers run through `uv run --project bench/peers`")
    return found


def peer_env() -> dict[str, str]:
    # The bench runs in opsmith's venv; the peers' uv project must not take it for its own.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["NO_COLOR"] = "1"
    return env


def peer(*argv: str) -> list[str]:
    return [uv(), "run", "--frozen", "--project", str(PEERS), *argv]


def peer_versions() -> dict[str, str]:
    """Each peer's version line, or why it cannot run (its rows then say so)."""
    found = {}
    for tool, argv in (("ansible", ("ansible", "--version")), ("pyinfra", ("pyinfra", "--version"))):
        # The first `uv run` of the project installs it from its lock: a generous bound.
        done = run_bounded(peer(*argv), timeout=600, env=peer_env(), cwd=PEERS)
        line = (done.stdout.strip().splitlines() or [""])[0]
        found[tool] = line if done.code == 0 else f"unavailable: {(done.stderr or done.stdout)[-300:]}"
    return found


# -- the fleet's files ----------------------------------------------------------------------------


@dataclass
class FleetFiles:
    """What every tool is given about one fleet: inventories, the key, known_hosts."""

    names: list[str]
    inventory: Path  # Ansible YAML: ansible and opsmith read the same file
    pyinfra_inventory: Path
    key: Path
    known_hosts: Path
    work: Path


def write_fleet_files(fleet: Any, work: Path) -> FleetFiles:
    hosts = fleet.good
    entries = {
        h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user} for h in hosts
    }
    group = {"vars": {"opsmith_credential": CREDENTIAL}, "hosts": entries}
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {GROUP: group}}}))
    key = fleet.root / "client"
    data = [
        (
            h.name,
            {
                "ssh_hostname": h.address,
                "ssh_port": h.port,
                "ssh_user": h.user,
                "ssh_key": str(key),
                "ssh_known_hosts_file": str(fleet.known_hosts),
                "ssh_strict_host_key_checking": "yes",
                "ssh_allow_agent": False,
                "ssh_look_for_keys": False,
            },
        )
        for h in hosts
    ]
    pyinfra_inventory = work / "inventory.py"
    pyinfra_inventory.write_text(f"{GROUP} = {data!r}\n")
    return FleetFiles([h.name for h in hosts], inventory, pyinfra_inventory, key, fleet.known_hosts, work)


# -- one measurement of each tool -------------------------------------------------------------------


def measure_child(tool: str, files: FleetFiles, forks: int, release: str) -> Sample:
    size = len(files.names)
    with tempfile.TemporaryDirectory(prefix="fanout-child-", dir=files.work) as tmp:
        spec = Spec(
            inventory=str(files.inventory),
            key=str(files.key),
            known_hosts=str(files.known_hosts),
            state_dir=str(Path(tmp) / "state"),
            release=release,
            forks=forks,
            handshakes=min(HANDSHAKES, forks),
            command_timeout=60.0,
        )
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(asdict(spec)))
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", tool, "--spec", str(spec_file)]
        done = run_bounded(argv, timeout=child_timeout(size), env=dict(os.environ), cwd=Path(tmp))
    if done.code != 0:
        why = "timed out" if done.code is None else f"exit {done.code}"
        return Sample(problem=f"{why}: {done.stderr.strip()[-400:]}")
    return Sample(**json.loads(done.stdout.strip().splitlines()[-1]))


def ansible_cfg(files: FleetFiles, run: Path) -> str:
    ssh_args = (
        "-o ControlMaster=auto -o ControlPersist=60s -o BatchMode=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={files.known_hosts}"
    )
    return (
        "[defaults]\n"
        f"home = {run / 'home'}\n"
        f"local_tmp = {run / 'local'}\n"
        f"remote_tmp = {run / 'remote'}\n"
        "host_key_checking = True\n"
        f"private_key_file = {files.key}\n"
        f"forks = {ANSIBLE_FORKS}\n"
        "interpreter_python = /usr/bin/python3\n"
        "nocows = True\n"
        "[ssh_connection]\n"
        f"ssh_args = {ssh_args}\n"
        f"control_path_dir = {run / 'cp'}\n"
        "pipelining = False\n"
    )


def end_masters(control_dir: Path) -> None:
    """End the ControlPersist masters of one ansible run: they detach from its process group (their
    own session) and are known by their control sockets' directory, unique to that run."""
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(control_dir) in part for part in process.info["cmdline"] or []):
                mine.append(process)
    for process in mine:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(mine, timeout=3)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def measure_ansible(files: FleetFiles, forks: int, release: str) -> Sample:
    del forks  # ansible runs at its own -f, as the brief compares
    # Short path under /tmp: a control socket's path must fit in sun_path (108 bytes).
    with tempfile.TemporaryDirectory(prefix="fo-") as tmp:
        run = Path(tmp)
        (run / "cp").mkdir()
        config = run / "ansible.cfg"
        config.write_text(ansible_cfg(files, run))
        env = peer_env() | {"ANSIBLE_CONFIG": str(config), "ANSIBLE_HOST_KEY_CHECKING": "True"}
        argv = peer(
            "ansible", "all", "-i", str(files.inventory), "-m", "command", "-a", "uname -r",
            "-f", str(ANSIBLE_FORKS),
        )  # fmt: skip
        try:
            done = run_bounded(argv, timeout=ansible_timeout(len(files.names)), env=env, cwd=run)
        finally:
            end_masters(run / "cp")
    answered = re.findall(rf"^\S+ \| CHANGED \| rc=0 >>\n{re.escape(release)}$", done.stdout, re.M)
    return peer_sample(done, len(answered), ansible_failures(done.stdout))


def ansible_failures(out: str) -> str:
    """Why hosts failed, from ansible's minimal output: each host's block begins `NAME | STATUS`."""
    reasons = []
    for block in re.split(r"^(?=\S+ \| )", out, flags=re.M):
        head = re.match(r"\S+ \| (\S+(?: \| rc=-?\d+)?)", block)
        if head is None or head.group(1).startswith(("CHANGED", "SUCCESS")):
            continue
        message = re.search(r'"msg": "([^"\n]*)', block)
        reasons.append(f"{head.group(1)} {message.group(1) if message else ''}".strip())
    return _reasons(reasons)


def measure_pyinfra(files: FleetFiles, forks: int, release: str) -> Sample:
    argv = peer(
        "pyinfra", "-y", "--parallel", str(forks), str(files.pyinfra_inventory), "exec", "--", "uname", "-r"
    )
    with tempfile.TemporaryDirectory(prefix="fanout-pyinfra-", dir=files.work) as tmp:
        done = run_bounded(argv, timeout=pyinfra_timeout(len(files.names)), env=peer_env(), cwd=Path(tmp))
    # pyinfra prints everything, the hosts' output too, on stderr.
    out = _ANSI.sub("", done.stdout + done.stderr)
    answered = re.findall(rf"^\[\S+\]\s+{re.escape(release)}$", out, re.M)  # names padded
    errors = re.findall(r"^\s*\[\S+\] ((?:Could not connect|Error)[^\n]*)", out, re.M)
    return peer_sample(done, len(answered), _reasons(errors))


def peer_sample(done: Finished, answered: int, failures: str) -> Sample:
    if done.code is None:
        return Sample(answered=answered, problem="timed out, process group killed")
    problem = failures if done.code == 0 else f"exit {done.code}; {failures or done.stderr.strip()[-300:]}"
    return Sample(cold=round(done.seconds, 3), answered=answered, cpu=round(done.cpu, 2), problem=problem)


def measure(tool: str, files: FleetFiles, forks: int, release: str) -> Sample:
    if tool in IN_PROCESS:
        return measure_child(tool, files, forks, release)
    if tool == "ansible":
        return measure_ansible(files, forks, release)
    return measure_pyinfra(files, forks, release)


# -- the sizes, in turn ---------------------------------------------------------------------------


class Budget:
    def __init__(self, seconds: float) -> None:
        self.began = time.monotonic()
        self.deadline = self.began + seconds

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline

    def used(self) -> float:
        return time.monotonic() - self.began


@dataclass
class FleetNote:
    size: int
    load: tuple[float, float, float]
    start_s: float | None = None
    stop_s: float | None = None
    skipped: int = 0
    problem: str = ""


def bench_size(
    size: int, *, runs: int, forks: int, tools: list[str], budget: Budget, rows: dict[tuple[str, int], Row]
) -> FleetNote:
    """One fleet of `size` sshd, every tool measured on it `runs` times in turn, the fleet stopped."""
    # Imported here: the children never import the fleet (nor its pydantic and psutil) for nothing.
    from tests.fleet.sshd import SshdFleet

    note = FleetNote(size, os.getloadavg())
    release = os.uname().release  # every host is this machine
    with tempfile.TemporaryDirectory(prefix=f"fanout-{size}-") as tmp:
        work = Path(tmp)
        fleet = SshdFleet(work / "fleet", good=size)
        try:
            began = time.perf_counter()
            try:
                fleet.start()
            except (AssertionError, OSError, subprocess.SubprocessError) as exc:
                note.problem = f"the fleet of {size} sshd did not start: {str(exc)[:300]}"
                return note
            note.start_s = time.perf_counter() - began
            files = write_fleet_files(fleet, work)
            for run in range(1, runs + 1):
                for tool in tools:
                    if budget.spent():
                        note.skipped += 1
                        continue
                    sample = measure(tool, files, forks, release)
                    rows[(tool, size)].samples.append(sample)
                    print(progress(size, run, runs, tool, sample), file=sys.stderr, flush=True)
        finally:
            began = time.perf_counter()
            fleet.stop()
            note.stop_s = time.perf_counter() - began
    return note


def progress(size: int, run: int, runs: int, tool: str, sample: Sample) -> str:
    cold = "-" if sample.cold is None else f"{sample.cold:.2f} s"
    warm = "" if sample.warm is None else f", warm {sample.warm:.2f} s"
    problem = f" ({sample.problem})" if sample.problem else ""
    return f"[{size} hosts, run {run}/{runs}] {tool}: cold {cold}{warm}, {sample.answered} answered{problem}"


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the report -----------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_table(rows: dict[tuple[str, int], Row], sizes: list[int], forks: int) -> None:
    head = (
        f"{'hosts':>5}  {'tool':<24}{'runs':>5}{'cold s':>9}{'warm s':>15}{'answered':>15}"
        f"{'cold CPU s':>12}{'peak RSS MB':>13}{'start s':>9}"
    )
    print(head)
    print("-" * len(head))
    for size in sizes:
        for tool in TOOLS:
            row = rows.get((tool, size))
            if row is None:
                continue
            done = row.done()
            label = LABELS[tool].format(forks=forks)
            if tool in IN_PROCESS:
                warm = _s(row.warm())
                low_warm = min((s.answered_warm or 0 for s in done), default=0)
                answered = f"{min((s.answered for s in done), default=0)}/{low_warm}"
                rss, start = _s(row.rss(), 0), _s(_median([s.start for s in done]))
            else:
                warm, rss, start = "no warm mode", "-", "-"
                answered = f"{min((s.answered for s in done), default=0)}/-"
            cpu = _s(_median([s.cpu for s in done]))
            print(
                f"{size:>5}  {label:<24}{len(done):>5}{_s(row.cold()):>9}{warm:>15}{answered:>15}"
                f"{cpu:>12}{rss:>13}{start:>9}"
            )
        print()


def print_ratios(rows: dict[tuple[str, int], Row], sizes: list[int]) -> None:
    def med(tool: str, size: int, which: str) -> float | None:
        row = rows.get((tool, size))
        return None if row is None else row.cold() if which == "cold" else row.warm()

    head = (
        f"{'hosts':>5}{'ansible/opsmith':>17}{'pyinfra/opsmith':>17}{'opsmith/asyncssh cold':>23}"
        f"{'warm':>7}{'SshExecutor/asyncssh cold':>27}{'warm':>7}{'script/SshExecutor warm':>25}"
        f"{'HostTools/script warm':>23}"
    )
    print(head)
    print("-" * len(head))
    for size in sizes:
        ours = med("opsmith", size, "cold")
        print(
            f"{size:>5}{_x(_ratio(med('ansible', size, 'cold'), ours)):>17}"
            f"{_x(_ratio(med('pyinfra', size, 'cold'), ours)):>17}"
            f"{_x(_ratio(ours, med('asyncssh', size, 'cold'))):>23}"
            f"{_x(_ratio(med('opsmith', size, 'warm'), med('asyncssh', size, 'warm'))):>7}"
            f"{_x(_ratio(med('executor', size, 'cold'), med('asyncssh', size, 'cold'))):>27}"
            f"{_x(_ratio(med('executor', size, 'warm'), med('asyncssh', size, 'warm'))):>7}"
            f"{_x(_ratio(med('script', size, 'warm'), med('executor', size, 'warm'))):>25}"
            f"{_x(_ratio(med('opsmith', size, 'warm'), med('script', size, 'warm'))):>23}"
        )


def print_targets(rows: dict[tuple[str, int], Row], sizes: list[int]) -> None:
    def cold(tool: str, size: int) -> float | None:
        row = rows.get((tool, size))
        return None if row is None else row.cold()

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else "yes" if ok else "NO"

    def each(check: Callable[[int], tuple[str, bool | None]]) -> str:
        return ", ".join(f"{size}: {text} {verdict(ok)}" for size in sizes for text, ok in [check(size)])

    def vs_ansible(size: int) -> tuple[str, bool | None]:
        r = _ratio(cold("ansible", size), cold("opsmith", size))
        return _x(r), None if r is None else r >= ANSIBLE_TARGET

    def vs_pyinfra(size: int) -> tuple[str, bool | None]:
        r = _ratio(cold("pyinfra", size), cold("opsmith", size))
        return _x(r), None if r is None else r > 1

    def vs_bare(size: int) -> tuple[str, bool | None]:
        ours, bare = rows.get(("opsmith", size)), rows.get(("asyncssh", size))
        if ours is None or bare is None:
            return "-", None
        c, w = _ratio(ours.cold(), bare.cold()), _ratio(ours.warm(), bare.warm())
        ok = None if c is None or w is None else c <= BARE_TARGET and w <= BARE_TARGET
        return f"{_x(c)} cold, {_x(w)} warm", ok

    print(f"  >= {ANSIBLE_TARGET:g}x faster than ansible (cold): {each(vs_ansible)}")
    print(f"  faster than pyinfra (cold): {each(vs_pyinfra)}")
    print(f"  within {BARE_TARGET:g}x of bare asyncssh: {each(vs_bare)}")
    big = rows.get(("opsmith", 500))
    at_500 = None if big is None else big.cold()
    rss_500 = None if big is None else big.rss()
    ok_cold = None if at_500 is None else at_500 <= COLD_500_TARGET
    ok_rss = None if rss_500 is None else rss_500 <= RSS_500_TARGET
    print(f"  500 hosts cold <= {COLD_500_TARGET:g} s: {_s(at_500)} s {verdict(ok_cold)}")
    print(f"  peak RSS <= {RSS_500_TARGET:g} MB at 500 hosts: {_s(rss_500, 0)} MB {verdict(ok_rss)}")


def print_problems(rows: dict[tuple[str, int], Row]) -> None:
    seen = [
        f"  {row.size} hosts, {row.tool}, run {n}: {sample.problem}"
        for row in rows.values()
        for n, sample in enumerate(row.samples, 1)
        if sample.problem
    ]
    if seen:
        print("\nProblems seen (failed hosts or runs):")
        print("\n".join(seen))


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    memory = psutil.virtual_memory().total / 2**30
    return f"{model}, {cores} cores usable, {memory:.0f} GiB; Linux {os.uname().release}"


def versions(peers: dict[str, str]) -> str:
    from importlib.metadata import version

    ours = f"opsmith {version('opsmith')}, asyncssh {version('asyncssh')}, Python {sys.version.split()[0]}"
    return f"{ours}; {peers['ansible']}; {peers['pyinfra']}"


def print_report(
    rows: dict[tuple[str, int], Row],
    notes: list[FleetNote],
    peers: dict[str, str],
    args: argparse.Namespace,
    budget: Budget,
    load: tuple[float, float, float],
) -> None:
    sizes = [n.size for n in notes if not n.problem]
    print("\nFan-out of `uname -r` over loopback sshd: medians of the runs (cold s and warm s)\n")
    print_table(rows, sizes, args.forks)
    print("Ratios of the medians (cold unless said):")
    print_ratios(rows, sizes)
    print("\nTargets:")
    print_targets(rows, sizes)
    print_problems(rows)
    print("\nHow to read it:")
    print(
        "  cold: the first call of a fresh process (new connections); warm: a second call on the same\n"
        "  HostTools / SshExecutor / asyncssh connections. opsmith and bare asyncssh are timed inside\n"
        "  their child around the call (start s: interpreter start + imports, apart); ansible and\n"
        "  pyinfra are whole processes from spawn to exit through `uv run --frozen --project\n"
        "  bench/peers`. answered: the fewest hosts that printed the release, cold/warm, of the runs.\n"
        "  cold CPU s: the client's CPU for the cold call (peers: the whole process tree). peak RSS: the\n"
        "  child's ru_maxrss over both calls."
    )
    print(
        f"  forks {args.forks} and {HANDSHAKES} handshakes at once for opsmith and bare asyncssh;"
        f" pyinfra --parallel {args.forks}; ansible -f {ANSIBLE_FORKS}, ControlPersist, no pipelining."
    )
    print(
        "  Remote shell: sshd starts the account's login shell (bash) with SHLVL=1 (SetEnv), so bash\n"
        "  reads no ~/.bashrc (no pyenv init); opsmith HostTools sends its run_command script to bash\n"
        "  on stdin (shells.BASH_STDIN), the others have bash run `uname -r` as given (ansible through\n"
        "  its Python module)."
    )
    print(
        "  Every host is this machine: sshd's CPU (about 30 ms a connection) shares the cores with the\n"
        "  client, and is the floor cold."
    )
    print(f"\nMachine: {machine()}")
    now = os.getloadavg()
    print(f"Load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, ", end="")
    print(f"{now[0]:.2f} {now[1]:.2f} {now[2]:.2f} at the end")
    print(f"Versions: {versions(peers)}")
    for note in notes:
        if note.problem:
            print(f"Fleet of {note.size}: {note.problem}")
            continue
        skipped = f"; {note.skipped} measurements skipped (budget)" if note.skipped else ""
        print(
            f"Fleet of {note.size} sshd: started in {_s(note.start_s, 1)} s, stopped in"
            f" {_s(note.stop_s, 1)} s, load {note.load[0]:.2f} before it{skipped}"
        )
    print(f"{budget.used():.0f} s of the {args.budget:.0f} s budget used")


def runs_arg(text: str) -> list[int]:
    try:
        runs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--runs wants a number, or numbers separated by commas, got {text!r}"
        ) from None
    if not runs or min(runs) < 1:
        raise argparse.ArgumentTypeError(f"--runs wants counts of at least 1, got {text!r}")
    return runs


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes wants host counts of at least 1, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=sizes_arg, default=[50, 200, 500], help="fleet sizes, e.g. 50,200,500"
    )
    parser.add_argument(
        "--runs",
        type=runs_arg,
        default=[3],
        help="runs of each tool at each size (medians): 3, or one a size: 3,3,1",
    )
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds; no measurement starts past it")
    parser.add_argument(
        "--forks", type=int, default=100, help="hosts at once: opsmith, bare asyncssh, pyinfra"
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"a subset of {','.join(TOOLS)}")
    parser.add_argument("--child", choices=IN_PROCESS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.spec is None:
            parser.error("--child needs --spec")
        child_main(args.child, args.spec)
        return
    tools = [t for t in args.tools.split(",") if t]
    if unknown := sorted(set(tools) - set(TOOLS)):
        parser.error(f"unknown tools {unknown}: choose from {','.join(TOOLS)}")
    if len(args.runs) not in (1, len(args.sizes)):
        parser.error(
            f"--runs gives {len(args.runs)} counts for {len(args.sizes)} sizes: give one, or one a size"
        )
    if args.forks < 1:
        parser.error("--forks must be at least 1")
    runs = dict(
        zip(args.sizes, args.runs * len(args.sizes) if len(args.runs) == 1 else args.runs, strict=True)
    )
    load = os.getloadavg()
    budget = Budget(args.budget)
    raise_nofile()
    peers = peer_versions()
    for name in ("ansible", "pyinfra"):
        if peers[name].startswith("unavailable") and name in tools:
            print(f"{name} is {peers[name]}; its rows are left out", file=sys.stderr)
            tools.remove(name)
    rows = {(tool, size): Row(tool, size) for size in args.sizes for tool in tools}
    notes = []
    for size in args.sizes:
        if budget.spent():
            notes.append(FleetNote(size, os.getloadavg(), problem="not started: the budget was spent"))
            continue
        print(f"starting a fleet of {size} sshd", file=sys.stderr, flush=True)
        notes.append(
            bench_size(size, runs=runs[size], forks=args.forks, tools=tools, budget=budget, rows=rows)
        )
    print_report(rows, notes, peers, args, budget, load)


if __name__ == "__main__":
    main()

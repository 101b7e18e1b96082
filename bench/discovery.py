"""Discovery and call-overhead benchmarks; prints tables of medians measured in this one run.

1. start + initialize + tools/list of the four sandbox servers: all at once (opsmith's way)
   against one after another, against the slowest server alone, and against the SDK's own
   bare clients started at once with asyncio.gather (the peer). It also reads the CPU the
   server processes used to get ready (/proc, Linux), because on a machine with fewer cores
   than servers the floor is max(slowest alone, server CPU / cores), whatever the client does.
2. one no-op tool call through opsmith's pool against the SDK's own bare client loop,
   over stdio and over streamable HTTP (sessions open, reused for every call).

    uv run python bench/discovery.py [--runs 5] [--calls 300] [--cores N] [--discovery-only]

--cores 1 shows how the concurrent total follows the cores: with the servers CPU-bound at
start-up, it sits on the floor whatever the core count, and the ratio to the slowest single
server is about servers / cores until there are as many cores as servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from opsmith.config import StdioServerConfig, parse_config
from opsmith.sandbox.world import World
from opsmith.tools.mcp import ServerPool

HERE = Path(__file__).resolve().parent
SANDBOX = ["jenkins", "sonarqube", "registry", "kubernetes"]


def sandbox_config(state: Path, names: list[str]) -> str:
    lines = [f"state_dir: {state / 'opsmith'}", "mcpServers:"]
    for name in names:
        lines.append(
            f"  {name}: {{command: {sys.executable}, args: [-m, opsmith.sandbox.{name},"
            f" --state-dir, '{state / 'world'}', --latency-ms, '0']}}"
        )
    return "\n".join(lines)


EVERYTHING = HERE.parent / "tests" / "npm" / "node_modules" / ".bin" / "mcp-server-everything"


def everything_config(state: Path, names: list[str]) -> str:
    lines = [f"state_dir: {state / 'opsmith'}", "mcpServers:"]
    lines += [f"  {name}: {{command: '{EVERYTHING}'}}" for name in names]
    return "\n".join(lines)


TICKS = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by every live descendant of this process."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    mine = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(found)
        mine |= found
    return sum(cpu[pid] for pid in mine if pid != os.getpid())


async def start_pool(
    state: Path, names: list[str], make_config: Callable[[Path, list[str]], str]
) -> tuple[float, float]:
    """Seconds until every server is up with its tools listed, and the CPU its processes used."""
    pool = ServerPool(parse_config(make_config(state, names), source="bench"), os.environ)
    began = time.perf_counter()
    statuses = await pool.start()
    elapsed = time.perf_counter() - began
    cpu = children_cpu()
    await pool.stop()
    bad = [s for s in statuses if s.health.value != "up"]
    if bad:
        raise SystemExit(f"bench server failed: {bad}")
    return elapsed, cpu


async def start_bare(state: Path, names: list[str], make_config: Callable[[Path, list[str]], str]) -> float:
    """The peer: the SDK's own Client for each server, all entered and listed under one gather."""
    config = parse_config(make_config(state, names), source="bench")
    params = [
        StdioServerParameters(command=spec.command, args=list(spec.args))
        for spec in config.mcp_servers.values()
        if isinstance(spec, StdioServerConfig)
    ]
    listed = 0
    all_listed = asyncio.Event()
    release = asyncio.Event()
    began = time.perf_counter()

    async def one(target: StdioServerParameters) -> None:
        nonlocal listed
        # Each client stays in its own task from entry to exit, as anyio's cancel scopes require.
        async with Client(stdio_client(target, errlog=devnull)) as client:
            await client.list_tools()
            listed += 1
            if listed == len(params):
                all_listed.set()
            await release.wait()

    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230 - /dev/null never blocks
        tasks = asyncio.gather(*(one(p) for p in params))
        ready = asyncio.ensure_future(all_listed.wait())
        # A client that fails ends the gather: its error is raised here, not hidden behind a timeout.
        await asyncio.wait({ready, tasks}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            release.set()
            await tasks  # raises the failing client's error
            raise SystemExit("bench peer: servers did not list their tools within 60 s")
        elapsed = time.perf_counter() - began
        release.set()
        await tasks
    return elapsed


async def bench_discovery(
    runs: int, title: str, names: list[str], make_config: Callable[[Path, list[str]], str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        World(state / "world").ensure_seeded()
        single: dict[str, list[float]] = {name: [] for name in names}
        concurrent: list[float] = []
        concurrent_cpu: list[float] = []
        sequential: list[float] = []
        bare: list[float] = []
        for _ in range(runs):  # interleaved, so drift in the machine hits every path alike
            seconds, cpu = await start_pool(state, names, make_config)
            concurrent.append(seconds)
            concurrent_cpu.append(cpu)
            bare.append(await start_bare(state, names, make_config))
            total = 0.0
            for name in names:
                seconds, _ = await start_pool(state, [name], make_config)
                single[name].append(seconds)
                total += seconds
            sequential.append(total)
    med = {name: statistics.median(v) for name, v in single.items()}
    slowest = max(med.values())
    cores = len(os.sched_getaffinity(0))
    cpu = statistics.median(concurrent_cpu)
    floor = max(slowest, cpu / cores)
    print(f"\n{title}, median of {runs} runs, {cores} cores")
    print(f"{'measure':<46}{'seconds':>10}{'x slowest':>12}{'x floor':>10}")
    rows = [(f"  {name} alone", value) for name, value in med.items()]
    rows += [
        ("one after another (sum)", statistics.median(sequential)),
        ("all at once, SDK bare clients (peer)", statistics.median(bare)),
        ("all at once (opsmith)", statistics.median(concurrent)),
        (f"floor: max(slowest, {cpu:.2f} s server CPU / {cores})", floor),
    ]
    for label, value in rows:
        print(f"{label:<46}{value:>10.3f}{value / slowest:>12.2f}{value / floor:>10.2f}")
    print("target: all at once <= 1.50 x the slowest single server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def time_calls(call: object, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        await call()  # type: ignore[operator]
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def bench_calls(runs: int, count: int, transport: str) -> tuple[list[float], list[float]]:
    server = str(HERE / "noop_server.py")
    child = None
    if transport == "http":
        port = free_port()
        child = subprocess.Popen(
            [sys.executable, server, "http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await wait_port(port)
        target: object = f"http://127.0.0.1:{port}/mcp"
        spec = f"{{url: 'http://127.0.0.1:{port}/mcp'}}"
    else:
        target = StdioServerParameters(command=sys.executable, args=[server])
        spec = f"{{command: {sys.executable}, args: ['{server}']}}"
    bare: list[float] = []
    ours: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config(f"state_dir: {tmp}\nmcpServers:\n  noop: {spec}", source="bench")
            async with Client(target) as client, ServerPool(config, os.environ) as pool:  # type: ignore[arg-type]
                await pool.start()
                await time_calls(lambda: client.call_tool("noop", {}), 50)  # warm both paths up
                await time_calls(lambda: pool.call("noop", "noop", {}), 50)
                for _ in range(runs):  # interleaved, so drift in the machine hits both alike
                    bare += await time_calls(lambda: client.call_tool("noop", {}), count)
                    ours += await time_calls(lambda: pool.call("noop", "noop", {}), count)
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=10)
    return bare, ours


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.05)
    raise SystemExit(f"noop server did not listen on {port}")


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--cores", type=int, default=None, help="pin this bench and its servers to the first N cores"
    )
    parser.add_argument("--discovery-only", action="store_true")
    args = parser.parse_args()
    if args.cores is not None:  # children inherit the affinity, so the servers share these cores
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    await bench_discovery(args.runs, "Discovery of the 4 sandbox servers (45 tools)", SANDBOX, sandbox_config)
    if EVERYTHING.exists():  # a lighter peer: shows how much of the above is the servers' own start-up
        names = [f"everything{i}" for i in range(1, 5)]
        await bench_discovery(args.runs, "Discovery of 4 x server-everything (npm)", names, everything_config)
    if args.discovery_only:
        return
    print(f"\nOne no-op tool call, {args.runs} x {args.calls} calls per path, session kept open (ms)")
    print(f"{'transport':<11}{'path':<22}{'median':>9}{'p99':>9}{'median x bare':>15}")
    for transport in ("stdio", "http"):
        bare, ours = await bench_calls(args.runs, args.calls, transport)
        base = statistics.median(bare)
        for label, values in (("SDK bare Client loop", bare), ("opsmith ServerPool", ours)):
            med = statistics.median(values)
            print(f"{transport:<11}{label:<22}{med:>9.3f}{p99(values):>9.3f}{med / base:>15.2f}")
    print("target: opsmith within 1.2 x the bare loop")


if __name__ == "__main__":
    asyncio.run(main())

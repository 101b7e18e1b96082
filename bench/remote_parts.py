"""Where the warm `SshExecutor + script` overhead goes on the host: each launch line of a call run
here as sshd runs it (the login shell bash's `-c`, stdin a pipe), its client-side children's CPU and
wall time per call, medians of --runs rounds of --calls calls each.

On the loopback fleet of bench/fanout.py every host shares this machine's cores with the client, so
the hosts' CPU per call is what a warm fan-out pays for: the rows below split it into the second,
clean bash (the isolation from the login shell and its startup files), the script's own fork and
parse, and what an `env -i` launch would add.

    uv run --frozen python bench/remote_parts.py [--calls 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import time

from opsmith.domain.script_catalog import render
from opsmith.tools.hosts.shells import BASH_STDIN

ENV = {"PATH": os.environ["PATH"], "HOME": "/tmp", "SHLVL": "1", "LC_ALL": "C"}


def cases() -> dict[str, tuple[list[str], bytes]]:
    script = render("run_command", "linux", {"argv": ["uname", "-r"]}, sudo=False).text.encode()
    return {
        "bare: uname -r (the login bash execs it)": (["bash", "-c", "uname -r"], b""),
        "a second bash only (bash -c true)": (["bash", "-c", "bash -c true"], b""),
        "BASH_STDIN, stdin 'uname -r'": (["bash", "-c", BASH_STDIN], b"uname -r\n"),
        "BASH_STDIN, run_command script (opsmith)": (["bash", "-c", BASH_STDIN], script),
        "login bash sources it (no isolation)": (["bash", "-c", ". /dev/stdin"], script),
        "exec env -i bash --noprofile --norc": (
            ["bash", "-c", "exec env -i PATH=/usr/bin:/bin bash --noprofile --norc -c '. /dev/stdin'"],
            script,
        ),
    }


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def per_call(argv: list[str], stdin: bytes, calls: int) -> tuple[float, float]:
    """Wall and CPU milliseconds a call, over `calls` calls one after another."""
    cpu, began = children_cpu(), time.perf_counter()
    for _ in range(calls):
        subprocess.run(argv, input=stdin, capture_output=True, env=ENV, check=True, timeout=10)
    return (time.perf_counter() - began) * 1000 / calls, (children_cpu() - cpu) * 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in cases()}
    for _ in range(args.runs):  # in turn, so drift in the machine's load hits all alike
        for name, (argv, stdin) in cases().items():
            found[name].append(per_call(argv, stdin, args.calls))
    bare_cpu = statistics.median(cpu for _, cpu in found[next(iter(found))])
    print(f"{'launch line':<44}{'wall ms':>9}{'CPU ms':>9}{'CPU/bare':>10}")
    for name, samples in found.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:<44}{wall:>9.2f}{cpu:>9.2f}{cpu / bare_cpu:>9.2f}x")


if __name__ == "__main__":
    main()

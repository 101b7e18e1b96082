"""`opsmith serve` as a subprocess for the benches: tests/served.py's launcher, with the benches'
environment, a start that fails ending the bench with the server's output."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Run as a script, bench/ is on sys.path and the repository root is not: the launcher lives in tests/.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.served import OPSMITH, Served, ServeDidNotStart, stop_group  # noqa: E402
from tests.served import serving as _serving  # noqa: E402

__all__ = ["OPSMITH", "ROOT", "Served", "child_env", "serving", "stop_group"]


def child_env(serve_from: Path | None = None) -> dict[str, str]:
    # Nothing from the caller's OPSMITH_* settings (OPSMITH_CONFIG above all) may reach the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")}
    env["OPSMITH_SANDBOX_LATENCY_MS"] = "0"
    env["COLUMNS"] = "200"
    if serve_from is not None:  # before the installed package on the path: its opsmith is imported
        env["PYTHONPATH"] = str(serve_from)
    return env


@contextmanager
def serving(
    project: Path, timeout: float, serve_from: Path | None = None, *, need_token: bool = True
) -> Iterator[Served]:
    """`opsmith serve --port 0` on `project`, once it printed its address (and admin token)."""
    try:
        with _serving(
            project, start_timeout=timeout, env=child_env(serve_from), need_token=need_token
        ) as served:
            yield served
    except ServeDidNotStart as exc:
        raise SystemExit(str(exc)) from exc

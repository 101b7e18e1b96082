"""`opsmith-sandbox NAME [ARGS]`: start one bundled sandbox server (used by the demo config)."""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    from opsmith.sandbox import SERVERS

    if len(sys.argv) < 2 or sys.argv[1] not in SERVERS:
        names = ", ".join(sorted(SERVERS))
        print(f"usage: opsmith-sandbox {{{names}}} [--transport stdio|http] [--port N] ...", file=sys.stderr)
        raise SystemExit(2)
    name = sys.argv[1]
    sys.argv = [f"opsmith-sandbox {name}", *sys.argv[2:]]
    importlib.import_module(SERVERS[name]).main()

"""Record the tool catalogs of the real MCP servers into tests/fixtures/catalogs/.

Starts each server of tests/realservers.py over stdio with the official SDK client (all at once),
takes its live tools/list and writes PACKAGE.json, tools sorted by name and pretty-printed. Run it
after upgrading a server in tests/npm or tests/pyservers (./scripts/setup installs them), then
review the diff; tests/integration/test_real_catalogs.py fails until the files match again.

    uv run --frozen python bench/record_catalogs.py [SERVER ...]   # default: kubernetes jenkins git
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

# Run as a script, bench/ is on sys.path and the repository root is not; the helpers live in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures import catalogs
from tests.realservers import SERVERS, ServerEntry, list_tools, server_entries


async def record(name: str, entry: ServerEntry, log_dir: Path) -> str:
    package = SERVERS[name].package
    log = log_dir / f"{name}.log"
    try:
        with log.open("w") as errlog:
            listing = await list_tools(entry, errlog=errlog)
    except BaseException:
        print(f"{name} failed; its stderr:\n{log.read_text()}", file=sys.stderr)
        raise
    data = catalogs.recording(listing.server_name, listing.server_version, listing.tools)
    catalogs.path(package).write_text(catalogs.dumps(data), encoding="utf-8")
    return f"{package}: {len(listing.tools)} tools from {listing.server_name} {listing.server_version}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("servers", nargs="*", metavar="SERVER", help=f"default: {' '.join(SERVERS)}")
    names = parser.parse_args().servers or list(SERVERS)
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        parser.error(f"unknown server {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    with tempfile.TemporaryDirectory(prefix="opsmith-record-") as tmp:
        entries = server_entries(Path(tmp), names)
        lines: dict[str, str] = {}

        async def one(name: str) -> None:
            lines[name] = await record(name, entries[name], Path(tmp))

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(one, name)
    for name in names:
        print(lines[name])


if __name__ == "__main__":
    anyio.run(main)

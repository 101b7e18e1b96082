"""A loopback fleet to try opsmith's fleet requests on: real sshd on 127.0.0.1 (tests/fleet/sshd.py),
two groups of the inventory, services run by the stand-in systemctl (tests/fleet/bin/systemctl),
the client key in the vault, and an opsmith.yaml in a project directory of its own.

    uv run python scripts/fleet_demo.py [--hosts 10] [--minutes 30] [--project DIR]

It prints the commands to try (seed 002's requests), then keeps the fleet up until Ctrl-C or
--minutes have passed, and stops every sshd and service it started. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fleet.sshd import KEY_CREDENTIAL, SshdFleet  # noqa: E402

OPSMITH = Path(sys.executable).parent / "opsmith"
ME = "root" if os.geteuid() == 0 else os.environ.get("USER", "me")


def config(fleet: SshdFleet, data: list, web: list) -> dict:
    def hosts(chosen: list) -> dict:
        return {h.name: {"address": h.address, "port": h.port, "user": h.user} for h in chosen}

    return {
        "rbac": {
            "allow_as": True,
            "users": {"alice": "approver", "bob": "deployer", "vic": "viewer", ME: "admin"},
        },
        "mcpServers": {},
        "fleet": {"known_hosts": str(fleet.known_hosts), "connect_timeout": 5},
        "inventory": {
            "groups": {
                "data_processing": {"vars": {"environment": "staging"}, "hosts": hosts(data)},
                "production_web": {"vars": {"environment": "staging"}, "hosts": hosts(web)},
                "fleet": {
                    "children": ["data_processing", "production_web"],
                    "vars": {"opsmith_credential": KEY_CREDENTIAL},
                },
            }
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10, help="sshd to start (at least 2)")
    parser.add_argument("--minutes", type=float, default=30.0, help="stop by itself after this long")
    parser.add_argument(
        "--project", type=Path, default=None, help="where opsmith.yaml goes (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.hosts < 2:
        parser.error("--hosts must be at least 2")
    project = args.project or Path(tempfile.mkdtemp(prefix="opsmith-fleet-"))
    project.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="opsmith-fleet-sshd-") as root,
        SshdFleet(Path(root), good=args.hosts) as fleet,
    ):
        hosts = fleet.good
        data, web = hosts[: len(hosts) // 2], hosts[len(hosts) // 2 :]
        fleet.declare_units("dataprocessor", hosts=data)
        fleet.declare_units("nginx", hosts=web)
        for host in data[:-1]:  # one host has it stopped already: the stop leaves it alone
            fleet.start_unit(host, "dataprocessor")
        for host in web:
            fleet.start_unit(host, "nginx")
        (project / "opsmith.yaml").write_text(yaml.safe_dump(config(fleet, data, web)))
        key = (fleet.root / "client").read_text()
        subprocess.run(
            [str(OPSMITH), "secrets", "set", KEY_CREDENTIAL, "--kind", "ssh_key"],
            cwd=project,
            input=key,
            text=True,
            check=True,
            timeout=120,
            capture_output=True,
        )
        print(f"{len(hosts)} sshd on 127.0.0.1; project: {project}\n")
        print(f"cd {project}")
        print("opsmith inventory groups")
        print(
            "opsmith --as bob plan \"Stop 'dataprocessor' service on all servers in 'Data Processing' group\""
        )
        print("opsmith --as alice approve PLAN_ID     # when it asks for approval")
        print("opsmith --as bob run PLAN_ID           # every host at once, a bar of hosts done")
        print("opsmith --as bob plan \"Restart nginx on all servers in 'Production Web' group\"")
        print('opsmith call hosts service_status --args \'{"targets": "fleet", "service": "nginx"}\'')
        print(f"\nUp for {args.minutes:g} minutes, or until Ctrl-C.", flush=True)
        deadline = time.monotonic() + args.minutes * 60
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while time.monotonic() < deadline:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        fleet.stop_units()
    print("fleet stopped")


if __name__ == "__main__":
    main()

"""The fleet's tables through the real `opsmith` command on PostgreSQL: an inventory imported, then its
hosts listed by another process, from a `database_url` that names a PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsmith.domain.seal import Seal
from opsmith.store.database import Database
from opsmith.store.inventory import InventoryRepository
from tests.integration.test_cli_errors import opsmith
from tests.integration.test_inventory_cli import HOSTS_INI

pytestmark = pytest.mark.integration


def test_inventory_import_and_hosts_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    (tmp_path / "opsmith.yaml").write_text(f"state_dir: .opsmith\ndatabase_url: '{postgres_url}'\n")
    (tmp_path / "hosts.ini").write_text(HOSTS_INI)
    imported = opsmith(tmp_path, "inventory", "import", "hosts.ini", "--json")
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert (summary["hosts"], summary["groups"], summary["changed"]) == (16, 7, True)
    listed = opsmith(tmp_path, "inventory", "hosts", "--group", "Production Web", "--json")
    assert listed.returncode == 0, listed.stderr
    hosts = json.loads(listed.stdout)
    assert len(hosts) == 13 and hosts[1]["vars"] == {"environment": "production", "http_port": "8080"}
    assert not (tmp_path / ".opsmith" / "opsmith.db").exists(), "nothing went to a SQLite file"
    # The row is in PostgreSQL, signed: a reader without the project's key finds no inventory.
    stranger = InventoryRepository(Database(postgres_url), Seal(b"not the project's key, 32 bytes long"))
    assert stranger.source() is None

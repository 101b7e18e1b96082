"""The inventory over the real store, on SQLite and PostgreSQL: one signed row, replaced whole; a row
edited or planted without the key is unknown."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from opsmith.domain.inventory_ansible import parse_ini
from opsmith.domain.seal import Seal
from opsmith.store.database import Database
from opsmith.store.inventory import InventoryRepository, InventoryRow
from tests.bothdbs import execute

pytestmark = pytest.mark.integration

SEAL = Seal(b"the inventory store's test key, 32+ bytes")
AT = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)
HOSTS = "[web]\nweb[01:03] ansible_host=10.0.0.1\n[prod:children]\nweb\n"


@pytest.fixture
def store(database_url: str) -> InventoryRepository:
    return InventoryRepository(Database(database_url), SEAL)


def test_an_inventory_round_trips_with_its_source(store: InventoryRepository) -> None:
    assert store.load() is None and store.source() is None
    inventory = parse_ini(HOSTS, "hosts.ini")
    record = store.replace(inventory, source="/srv/hosts.ini", by="ada", at=AT)
    assert store.load() == inventory
    assert store.source() == record
    assert (record.source, record.imported_by, record.imported_at) == ("/srv/hosts.ini", "ada", AT)
    assert (record.hash, record.hosts, record.groups) == (inventory.content_hash(), 3, 4)


def test_a_replace_leaves_nothing_of_the_inventory_before(
    store: InventoryRepository, database_url: str
) -> None:
    store.replace(parse_ini(HOSTS), source="a.ini", by="ada", at=AT)
    smaller = parse_ini("[db]\ndb1\n")
    store.replace(smaller, source="b.ini", by="bob", at=AT)
    assert store.load() == smaller
    assert execute(database_url, "SELECT count(*), max(source) FROM inventory") == [(1, "b.ini")]


def test_data_edited_in_the_database_is_not_trusted(store: InventoryRepository, database_url: str) -> None:
    store.replace(parse_ini(HOSTS), source="hosts.ini", by="ada", at=AT)
    [(stored,)] = execute(database_url, "SELECT data FROM inventory")
    data = json.loads(stored) if isinstance(stored, str) else stored  # PostgreSQL's driver decodes JSON
    data["host_entries"]["web01"]["vars"]["ansible_host"] = "203.0.113.66"  # somewhere else
    execute(database_url, "UPDATE inventory SET data = :data", data=json.dumps(data))
    assert store.load() is None, "the data no longer matches its signed hash"


def test_a_row_planted_without_the_key_is_unknown(store: InventoryRepository, database_url: str) -> None:
    store.replace(parse_ini(HOSTS), source="hosts.ini", by="ada", at=AT)
    other = InventoryRepository(Database(database_url), Seal(b"someone else's key, also 32 bytes!"))
    other.replace(parse_ini("[web]\nevil1\n"), source="planted.ini", by="mallory", at=AT)
    assert store.load() is None and store.source() is None


def test_the_table_is_plain_enough_for_postgresql() -> None:
    ddl = str(CreateTable(InventoryRow.__table__).compile(dialect=postgresql.dialect()))
    assert "data JSON NOT NULL" in ddl and "imported_at TIMESTAMP WITH TIME ZONE NOT NULL" in ddl

"""The store on real SQLite and PostgreSQL: migrations on first use, WAL, several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.servers import Health, ServerStatus
from opsmith.errors import ConfigError, StoreError
from opsmith.store import Database
from opsmith.store.servers import ServerRepository
from tests.bothdbs import execute

pytestmark = pytest.mark.integration


def test_first_use_migrates_to_head_in_wal_mode(tmp_path: Path) -> None:
    db_file = tmp_path / "deep" / "opsmith.db"
    database = Database(f"sqlite:///{db_file}")
    assert database.current_revision() is None
    ServerRepository(database).set_enabled("jenkins", False)
    assert database.current_revision() == database.head_revision()
    with sqlite3.connect(db_file) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in raw.execute("select name from sqlite_master where type='table'")}
    assert {"servers", "tools", "alembic_version"} <= tables


def test_first_use_on_postgresql_migrates_to_head(postgres_url: str) -> None:
    database = Database(postgres_url)
    assert database.current_revision() is None
    ServerRepository(database).set_enabled("jenkins", False)
    assert database.current_revision() == database.head_revision()
    tables = {
        row[0] for row in execute(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"servers", "tools", "alembic_version", "audit"} <= tables


def test_repository_round_trip(database_url: str) -> None:
    repo = ServerRepository(Database(database_url))
    repo.set_enabled("a", False)
    repo.set_enabled("b", True)
    repo.record([ServerStatus(name="b", transport="stdio", health=Health.DOWN, reason="boom", tool_count=0)])
    assert repo.disabled() == {"a"}
    tool = ToolSpec(server="b", name="t", input_schema={"type": "object"}, hints=ToolHints(read_only=True))
    repo.replace_tools("b", [tool])
    repo.replace_tools("b", [tool])
    assert repo.known_tools("b") == [tool]


def _migrate(url: str) -> str:
    return Database(url).migrate()


def test_processes_migrating_at_once_agree(database_url: str) -> None:
    url = database_url
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_migrate, [url] * 4)
    assert len(set(revisions)) == 1
    assert Database(url).current_revision() == revisions[0]


def test_bad_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        Database("not a url")
    with pytest.raises(StoreError) as caught:
        Database("postgresql+nosuchdriver://admin:hunter2@127.0.0.1/x")
    assert "hunter2" not in str(caught.value)


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the directory"):
        Database(f"sqlite:///{blocker / 'sub' / 'o.db'}").migrate()


def test_a_url_with_a_port_that_is_not_a_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL") as caught:
        Database("postgresql+psycopg://admin:hunter2@db:fivefourthreetwo/opsmith")
    assert "hunter2" not in str(caught.value) and "hunter2" not in str(caught.value.__cause__)

"""Alembic on real SQLite and PostgreSQL: from empty to head; from the previous revision with a row in
every table, which the upgrade keeps intact; down one revision and up again; and `opsmith db upgrade`
against PostgreSQL, reachable or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from opsmith.store import Database
from opsmith.store.database import _alembic_config
from opsmith.store.models import Base
from tests.dbservers import free_port

pytestmark = pytest.mark.integration

OPSMITH = str(Path(sys.executable).with_name("opsmith"))
MOMENT = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)


def _previous() -> str:
    """The revision before the newest one: what an installed opsmith upgrades from."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    head = scripts.get_revision(scripts.get_current_head())
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


def _alembic(database: Database, action: str, revision: str) -> None:
    with database.engine.connect() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
        connection.commit()


def _tables(database: Database) -> dict[str, Table]:
    reflected = MetaData()
    reflected.reflect(database.engine)
    return {t.name: t for t in reflected.sorted_tables if t.name != "alembic_version"}


def _value(column: Any) -> Any:
    """A value for the column that reads back equal, with what each database is fussy about."""
    kind = column.type
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, Integer):
        return 7
    if isinstance(kind, Float):
        return 1.5
    if isinstance(kind, DateTime):
        return MOMENT
    if isinstance(kind, JSON):
        return {"k": [1, None, "é"]}
    if isinstance(kind, LargeBinary):
        return b"\x00\xffbytes"
    if isinstance(kind, String) and kind.length:
        return "vé"[: kind.length]
    return "text é ü"


def _rows(database: Database, tables: dict[str, Table]) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    with database.engine.connect() as connection:
        for name, table in tables.items():
            rows = connection.execute(select(table)).all()
            found[name] = sorted(tuple(_comparable(v) for v in row) for row in rows)
    return found


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives them back naive
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)  # SQLite's reflected JSON comes back as text
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def test_from_empty_to_head_matches_the_models(database_url: str) -> None:
    database = Database(database_url)
    assert database.current_revision() is None
    assert database.migrate() == database.head_revision()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # What the migrations built is what the code reads and writes (no table or column missing).
    missing = [d for d in differences if d[0] in ("add_table", "add_column")]
    assert missing == []
    assert set(_tables(database)) >= set(Base.metadata.tables)


def test_upgrading_from_the_previous_revision_keeps_every_row(database_url: str) -> None:
    database = Database(database_url)
    previous = _previous()
    _alembic(database, "upgrade", previous)
    assert database.current_revision() == previous
    before = _tables(database)
    assert len(before) >= 15, sorted(before)
    with database.engine.begin() as connection:
        for table in before.values():  # parents before children: foreign keys hold
            connection.execute(insert(table).values({c.name: _value(c) for c in table.columns}))
    written = _rows(database, before)
    assert all(len(rows) == 1 for rows in written.values())
    assert database.migrate() == database.head_revision()
    assert _rows(database, before) == written, "every row of every table as it was"
    _alembic(database, "downgrade", previous)  # and back: the newest revision's own tables go
    assert database.current_revision() == previous
    assert _rows(database, before) == written
    assert database.migrate() == database.head_revision()


def _opsmith(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG"}
    return subprocess.run([OPSMITH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_db_upgrade_on_postgresql_and_a_clear_error_when_it_is_unreachable(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "opsmith.yaml").write_text(f"mcpServers: {{}}\ndatabase_url: '{postgres_url}'\n")
    upgraded = _opsmith(tmp_path, "db", "upgrade", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert Database(postgres_url).current_revision() == Database(postgres_url).head_revision()
    assert Database(postgres_url).head_revision() in upgraded.stdout
    again = _opsmith(tmp_path, "db", "upgrade")
    assert again.returncode == 0, again.stderr

    password = "pw-that-must-not-show"
    nowhere = f"postgresql+psycopg://opsmith:{password}@127.0.0.1:{free_port()}/opsmith"
    (tmp_path / "opsmith.yaml").write_text(f"mcpServers: {{}}\ndatabase_url: '{nowhere}'\n")
    for args in (("db", "upgrade"), ("db", "upgrade", "--json")):
        failed = _opsmith(tmp_path, *args)
        # Exit 1, as every StoreError: the database being down is no mistake in the command line.
        assert failed.returncode == 1, (failed.stdout, failed.stderr)
        said = failed.stdout + failed.stderr
        assert password not in said and "Traceback" not in said
        assert "127.0.0.1" in said and "***" in said
    as_json = json.loads(_opsmith(tmp_path, "db", "upgrade", "--json").stdout)
    assert "error" in as_json

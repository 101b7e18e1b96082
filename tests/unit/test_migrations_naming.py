"""The start-up fast path trusts migration file names: pin the convention it relies on."""

from __future__ import annotations

import re
from pathlib import Path

from opsmith.store import database


def test_every_migration_file_names_its_revision_and_the_newest_is_alembics_head() -> None:
    versions = Path(database.__file__).parent / "migrations" / "versions"
    files = sorted(versions.glob("*.py"))
    assert files
    for path in files:
        revision = re.search(r'^revision: str = "(\w+)"', path.read_text(), re.MULTILINE)
        assert revision is not None and path.name.startswith(f"{revision.group(1)}_"), path.name
    db = database.Database("sqlite://")
    assert database.newest_revision_file() == db.head_revision()

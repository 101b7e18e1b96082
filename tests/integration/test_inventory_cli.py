"""`opsmith inventory` as a user runs it: the real console script in a temporary project, importing
an INI file, listing and showing groups, the errors (exit 2, one JSON object with --json), and an
inventory declared in opsmith.yaml."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from opsmith.store.database import Database
from tests.integration.test_cli_errors import error_object, opsmith

pytestmark = pytest.mark.integration

HOSTS_INI = """\
[web]
web[01:12].example.com http_port=8080
canary.example.com motd="canary first"

[db]
db-[a:b].example.com ansible_user=postgres

[windows]
win01 ansible_host=10.1.0.11

[windows:vars]
ansible_connection=winrm
opsmith_credential=win-admin

[production_web:children]
web

[production:children]
production_web
db
windows

[production:vars]
environment=production
"""
CONFIG = "state_dir: .opsmith\nsqlite_synchronous: normal\n"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated once for the session: every project starts from a copy of it, so that
    each command run pays for its own work, not for the migrations."""
    path = tmp_path_factory.mktemp("inventory-db") / "opsmith.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()
    return path


def project(root: Path, migrated_db: Path, config: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "opsmith.yaml").write_text(config)
    (root / ".opsmith").mkdir()
    shutil.copy(migrated_db, root / ".opsmith" / "opsmith.db")
    return root


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> tuple[Path, dict[str, object]]:
    """A project with HOSTS_INI imported, and what `import --json` answered."""
    root = project(tmp_path_factory.mktemp("imported"), migrated_db)
    (root / "hosts.ini").write_text(HOSTS_INI)
    result = opsmith(root, "inventory", "import", "hosts.ini", "--json")
    assert result.returncode == 0, result.stderr
    return root, json.loads(result.stdout)


def json_of(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_answers_what_it_stored(imported: tuple[Path, dict[str, object]]) -> None:
    root, summary = imported
    assert summary["source"] == str(root / "hosts.ini")
    assert (summary["hosts"], summary["groups"], summary["changed"]) == (16, 7, True)
    assert str(summary["hash"]).startswith("sha256:")


def test_groups_are_listed_with_their_nesting_and_counts(imported: tuple[Path, dict[str, object]]) -> None:
    groups = json_of(opsmith(imported[0], "inventory", "groups", "--json"))
    assert isinstance(groups, list)
    by_name = {g["name"]: g for g in groups}
    assert list(by_name)[:2] == ["all", "ungrouped"]
    assert by_name["production"]["children"] == ["db", "production_web", "windows"]
    assert by_name["production"]["host_count"] == 16 and by_name["web"]["parents"] == ["production_web"]
    assert by_name["production"]["vars"] == {"environment": "production"}


def test_the_hosts_of_a_group_named_as_people_say_it(imported: tuple[Path, dict[str, object]]) -> None:
    hosts = json_of(opsmith(imported[0], "inventory", "hosts", "--group", "Production Web", "--json"))
    assert isinstance(hosts, list)
    assert [h["name"] for h in hosts][:3] == ["canary.example.com", "web01.example.com", "web02.example.com"]
    assert len(hosts) == 13
    web01 = hosts[1]
    assert web01["vars"] == {"environment": "production", "http_port": "8080"}
    assert web01["groups"] == ["all", "production", "production_web", "web"]
    assert (web01["address"], web01["os"], web01["connection"]) == ("web01.example.com", "linux", "ssh")


def test_show_for_people_has_the_hosts_and_their_merged_vars(
    imported: tuple[Path, dict[str, object]],
) -> None:
    result = opsmith(imported[0], "inventory", "show", "windows")
    assert result.returncode == 0, result.stderr
    assert "group windows" in result.stdout and "win01" in result.stdout and "10.1.0.11" in result.stdout
    assert "winrm" in result.stdout and "win-admin" in result.stdout and "windows" in result.stdout


def test_an_unknown_group_is_exit_2_naming_the_nearest(imported: tuple[Path, dict[str, object]]) -> None:
    result = opsmith(imported[0], "inventory", "show", "Prodution Web", "--json")
    assert result.returncode == 2
    data = error_object(result)
    assert data["error"] == "no group 'Prodution Web' in the inventory; nearest: production_web, production"
    assert "opsmith inventory groups" in str(data["hint"])


def test_an_unknown_group_for_people_is_one_line_on_stderr(imported: tuple[Path, dict[str, object]]) -> None:
    result = opsmith(imported[0], "inventory", "hosts", "--group", "dbs")
    assert result.returncode == 2 and result.stdout == ""
    assert "error: no group 'dbs' in the inventory; nearest: db" in result.stderr
    assert "Traceback" not in result.stderr


def stored_rows(root: Path) -> int:
    with sqlite3.connect(root / ".opsmith" / "opsmith.db") as raw:
        return int(raw.execute("SELECT count(*) FROM inventory").fetchone()[0])


def test_a_bad_file_is_exit_2_with_its_line_and_stores_nothing(tmp_path: Path, migrated_db: Path) -> None:
    root = project(tmp_path, migrated_db)
    (root / "hosts.ini").write_text("[web]\nweb1\nweb2 ansible_password=hunter2\n")
    result = opsmith(root, "inventory", "import", "hosts.ini", "--json")
    assert result.returncode == 2
    data = error_object(result)
    expected = f"{root / 'hosts.ini'}:3: host 'web2': ansible_password is refused: opsmith keeps passwords,"
    assert str(data["error"]).startswith(expected)
    assert "opsmith_credential" in str(data["hint"]) and "hunter2" not in result.stdout + result.stderr
    assert stored_rows(root) == 0


def test_a_missing_file_is_exit_2(tmp_path: Path, migrated_db: Path) -> None:
    missing = opsmith(project(tmp_path, migrated_db), "inventory", "import", "nowhere.ini")
    assert missing.returncode == 2 and "error: no inventory file nowhere.ini" in missing.stderr


INLINE = CONFIG + (
    "inventory:\n  groups:\n    Production Web:\n      hosts:\n        web[1:2]: {user: deploy}\n"
    "    windows:\n      hosts: [win1]\n      vars: {ansible_connection: psrp}\n"
)


def test_an_inline_inventory_in_opsmith_yaml_shows_up(tmp_path: Path, migrated_db: Path) -> None:
    root = project(tmp_path, migrated_db, INLINE)
    hosts = json_of(opsmith(root, "inventory", "hosts", "--group", "production web", "--json"))
    assert isinstance(hosts, list)
    assert [(h["name"], h["user"]) for h in hosts] == [("web1", "deploy"), ("web2", "deploy")]
    assert stored_rows(root) == 1, "imported by opsmith at its first use"


def test_import_is_refused_while_opsmith_yaml_declares_the_inventory(
    tmp_path: Path, migrated_db: Path
) -> None:
    root = project(tmp_path, migrated_db, INLINE)
    (root / "hosts.ini").write_text(HOSTS_INI)
    refused = opsmith(root, "inventory", "import", "hosts.ini", "--json")
    assert refused.returncode == 2
    assert "declares the inventory, so it cannot be imported" in str(error_object(refused)["error"])
    assert stored_rows(root) == 0


def test_a_path_in_opsmith_yaml_is_read_beside_it(tmp_path: Path, migrated_db: Path) -> None:
    root = project(
        tmp_path / "project", migrated_db, CONFIG.replace(".opsmith", str(tmp_path / "project/.opsmith"))
    )
    (root / "opsmith.yaml").write_text(
        (root / "opsmith.yaml").read_text() + "inventory: inventory/hosts.ini\n"
    )
    (root / "inventory").mkdir()
    (root / "inventory" / "hosts.ini").write_text(HOSTS_INI)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    groups = json_of(
        opsmith(elsewhere, "--config", str(root / "opsmith.yaml"), "inventory", "groups", "--json")
    )
    assert isinstance(groups, list) and "production_web" in [g["name"] for g in groups]

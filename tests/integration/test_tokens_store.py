"""Bearer tokens over the real store (SQLite and PostgreSQL) and the real `opsmith` command: stored as
hashes in signed rows, so a row written by hand (no key) lets nobody in, and the text is shown only
once."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsmith.bootstrap import App, wire
from opsmith.config import load_config
from opsmith.domain.errors import AuthenticationError
from opsmith.domain.identity import Identity
from opsmith.domain.tokens import hash_secret, parse_token, token_text
from opsmith.services.tokens import authenticate, create_token, first_admin_token, list_tokens, revoke_token
from tests.bothdbs import execute, is_postgres
from tests.conftest import OS_USER
from tests.integration.test_cli import opsmith

pytestmark = pytest.mark.integration

ADA = Identity(user="ada", role="admin", source="config")
CONFIG = f"""
rbac:
  allow_as: true
  users: {{ada: admin, bob: deployer, vic: viewer, {OS_USER}: admin}}
"""


@pytest.fixture
def url(tmp_path: Path, database_url: str) -> str:
    """The project's database: on SQLite the default file in its state_dir, as users have it."""
    return database_url if is_postgres(database_url) else f"sqlite:///{tmp_path / '.opsmith' / 'opsmith.db'}"


@pytest.fixture
def project(tmp_path: Path, url: str) -> Path:
    chosen = f"database_url: '{url}'\n" if is_postgres(url) else ""
    (tmp_path / "opsmith.yaml").write_text(f"state_dir: '{tmp_path / '.opsmith'}'\n{chosen}{CONFIG}")
    return tmp_path


@pytest.fixture
def app(project: Path) -> App:
    return wire(load_config(project / "opsmith.yaml", {}), {})


def stored_bytes(project: Path, url: str) -> bytes:
    """Everything the database holds: the SQLite file and its log, or every row PostgreSQL has."""
    if not is_postgres(url):
        return b"".join(p.read_bytes() for p in (project / ".opsmith").glob("opsmith.db*"))
    tables = [t for (t,) in execute(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return "".join(
        str(row[0]) for table in tables for row in execute(url, f'SELECT CAST(t AS TEXT) FROM "{table}" t')
    ).encode()


# -- the store --------------------------------------------------------------------------------------


def test_a_token_round_trips_through_the_store_signed_and_hashed(app: App, project: Path, url: str) -> None:
    info, text = create_token(app, ADA, "bob", "deployer", name="ci", via="test")
    token_id, secret = parse_token(text)
    found = app.tokens.get(token_id)
    assert found == (info, hash_secret(secret))
    assert found[0].created_at.tzinfo is not None
    assert app.tokens.count_active() == 1

    assert authenticate(app, text) == Identity(user="bob", role="deployer", source="token")
    (used,) = list_tokens(app, ADA)
    assert used.last_used_at is not None and used.last_used_at.tzinfo is not None

    revoked = revoke_token(app, ADA, token_id, via="test")
    assert revoked.revoked_at is not None
    assert app.tokens.get(token_id) == (revoked, hash_secret(secret))  # re-signed, still verifies
    assert app.tokens.count_active() == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        authenticate(app, text)

    [(stored_hash,)] = execute(url, "SELECT token_hash FROM tokens WHERE id = :id", id=token_id)
    assert stored_hash == hash_secret(secret)
    database = stored_bytes(project, url)
    assert token_id.encode() in database, "the rows were read"
    assert secret.encode() not in database and text.encode() not in database
    assert app.audit.verify().ok


def test_a_row_planted_without_the_key_is_unknown(app: App, url: str) -> None:
    assert list_tokens(app, ADA) == []  # the schema exists once the store was used
    secret = "s" * 43
    execute(
        url,
        'INSERT INTO tokens (id, "user", role, name, token_hash, created_at, created_by, seal)'
        " VALUES ('abcdefabcdef', 'mallory', 'admin', '', :hash, :at, 'mallory', :seal)",
        hash=hash_secret(secret),
        at=datetime.now(UTC),
        seal="hmac-sha256:" + "0" * 64,
    )
    with pytest.raises(AuthenticationError, match="unknown") as caught:
        authenticate(app, token_text("abcdefabcdef", secret))
    assert caught.value.reason == "unknown"
    assert app.tokens.get("abcdefabcdef") is None
    assert list_tokens(app, ADA) == [] and app.tokens.count_active() == 0
    assert app.tokens.revoke("abcdefabcdef", datetime.now(UTC)) is None
    # The planted row does not count as a token: the first start still makes the admin's one.
    assert first_admin_token(app, "ada") is not None


def test_a_signed_row_edited_by_hand_stops_verifying(app: App, url: str) -> None:
    _, viewer = create_token(app, ADA, "vic", "viewer", via="test")
    _, deployer = create_token(app, ADA, "bob", "deployer", via="test")
    revoke_token(app, ADA, parse_token(deployer)[0], via="test")
    execute(url, "UPDATE tokens SET role = 'admin' WHERE id = :id", id=parse_token(viewer)[0])
    execute(url, "UPDATE tokens SET revoked_at = NULL WHERE id = :id", id=parse_token(deployer)[0])
    for text in (viewer, deployer):
        with pytest.raises(AuthenticationError, match="unknown"):
            authenticate(app, text)
    assert list_tokens(app, ADA) == []


def test_the_last_use_is_not_signed_and_editing_it_breaks_nothing(app: App, url: str) -> None:
    _, text = create_token(app, ADA, "bob", "deployer", via="test")
    execute(url, "UPDATE tokens SET last_used_at = '2020-01-01 00:00:00.000000', name = 'renamed'")
    assert authenticate(app, text).user == "bob"
    (info,) = list_tokens(app, ADA)
    assert info.last_used_at is not None and info.last_used_at.year > 2020


# -- the CLI ----------------------------------------------------------------------------------------


# The CLI's part (output, RBAC): the store under it is probed on PostgreSQL above; SQLite only, for time.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_shows_a_token_once_lists_it_without_its_secret_and_revokes_it(
    project: Path, url: str
) -> None:
    created = opsmith(project, "token", "create", "--user", "bob", "--role", "deployer", "--name", "ci")
    assert created.returncode == 0, created.stderr
    (text,) = [line for line in created.stdout.splitlines() if line.startswith("osm_")]
    token_id, secret = parse_token(text)
    assert "will not be shown again" in created.stdout
    assert f"created token {token_id} for bob as deployer" in created.stdout

    listed = opsmith(project, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout and "bob" in listed.stdout and "ci" in listed.stdout
    as_json = opsmith(project, "token", "list", "--json")
    (row,) = json.loads(as_json.stdout)
    assert row["id"] == token_id and row["revoked_at"] is None
    assert set(row) == {
        "id",
        "user",
        "role",
        "name",
        "created_at",
        "created_by",
        "revoked_at",
        "last_used_at",
    }

    machine = opsmith(project, "token", "create", "--user", "vic", "--role", "viewer", "--json")
    assert machine.returncode == 0, machine.stderr
    made = json.loads(machine.stdout)
    assert made["user"] == "vic" and parse_token(made["token"])[0] == made["id"]

    revoked = opsmith(project, "token", "revoke", token_id, "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    again = json.loads(opsmith(project, "token", "list", "--json").stdout)
    assert [(t["id"], t["revoked_at"] is not None) for t in again] == [(token_id, True), (made["id"], False)]

    audit = opsmith(project, "audit", "--json")
    assert [e["action"] for e in json.loads(audit.stdout)] == [
        "token.created",
        "token.created",
        "token.revoked",
    ]
    # Nowhere but in the first command's output: not in a later output, the database or the logs.
    for result in (listed, as_json, revoked, audit):
        assert secret not in result.stdout + result.stderr
    for path in (project / ".opsmith").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret.encode() not in stored_bytes(project, url)


# The CLI's part (output, RBAC): the store under it is probed on PostgreSQL above; SQLite only, for time.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_refuses_a_non_admin_and_bad_input_with_exit_2(project: Path) -> None:
    refused = opsmith(project, "--as", "bob", "token", "create", "--user", "bob", "--role", "deployer")
    assert refused.returncode == 2
    assert "bob (deployer) may not admin" in refused.stderr and "osm_" not in refused.stdout
    listing = opsmith(project, "--as", "vic", "token", "list", "--json")
    assert listing.returncode == 2
    assert "may not admin" in json.loads(listing.stdout)["error"]

    wrong_role = opsmith(project, "token", "create", "--user", "bob", "--role", "admin")
    assert wrong_role.returncode == 2 and "bob is deployer, not admin" in wrong_role.stderr
    unknown = opsmith(project, "token", "revoke", "0123456789ab", "--json")
    assert unknown.returncode == 2
    assert json.loads(unknown.stdout)["error"] == "no token '0123456789ab'"
    assert json.loads(opsmith(project, "token", "list", "--json").stdout) == []


def test_servers_starting_at_once_make_one_first_admin_token(project: Path) -> None:
    # Each thread wires its own App (engine, connections), as separate `opsmith serve` processes do.
    apps = [wire(load_config(project / "opsmith.yaml", {}), {}) for _ in range(6)]
    for each in apps:
        each.tokens.list()  # migrated before the race, so only the token insert contends
    start = threading.Barrier(len(apps))

    def race(each: App) -> str | None:
        start.wait(timeout=10)
        return first_admin_token(each, "ada")

    with ThreadPoolExecutor(len(apps)) as pool:
        made = [text for text in pool.map(race, apps) if text is not None]
    assert len(made) == 1
    assert [info.user for info in list_tokens(apps[0], ADA)] == ["ada"]
    assert authenticate(apps[0], made[0]).role == "admin"
    entries = [e for e in apps[0].audit.entries() if e.action == "token.created"]
    assert len(entries) == 1


def test_the_first_token_is_stored_only_while_no_active_token_exists(app: App) -> None:
    info, _ = create_token(app, ADA, "bob", "deployer", via="test")
    assert first_admin_token(app, "ada") is None
    revoke_token(app, ADA, info.id, via="test")
    assert first_admin_token(app, "ada") is not None  # a revoked token lets nobody in

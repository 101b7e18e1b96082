"""The inventory through the services, over in-memory fakes: who may import, what is audited (never
a variable's value), and opsmith.yaml's inventory as the source of truth."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from opsmith.config import load_config, parse_config
from opsmith.domain.errors import ConfigError, InventoryError, UnknownGroupError, UsageError
from opsmith.domain.identity import Identity
from opsmith.services import inventory as service
from opsmith.services.access import AccessRefused
from tests.fakes import FakeTools, FakeWorld, fake_app

RBAC = "rbac:\n  users: {ada: admin, vic: viewer}\n"
ADA = Identity(user="ada", role="admin", source="config")
VIC = Identity(user="vic", role="viewer", source="config")
HOSTS = """\
[web]
web[1:3] motd="remember the milk"
[db]
db1 ansible_host=10.0.0.7
[production_web:children]
web
[production_web:vars]
ansible_user=deploy
"""
INLINE = """
inventory:
  groups:
    Production Web:
      hosts: {web1: {address: 10.0.0.1}, web2: {}}
      vars: {ansible_user: deploy}
    windows:
      hosts: [win1]
      vars: {ansible_connection: winrm, opsmith_credential: win-admin}
"""


def world_of(config: str = RBAC) -> FakeWorld:
    return fake_app(config, FakeTools(specs=[]))


def audit_json(world: FakeWorld) -> str:
    return json.dumps([e.model_dump(mode="json") for e in world.audit.chain])


def test_an_admin_imports_and_the_audit_entry_holds_counts_and_the_hash_only() -> None:
    world = world_of()
    summary = service.import_inventory(world.app, ADA, HOSTS, "/srv/hosts.ini")
    assert (summary.hosts, summary.groups, summary.imported_by, summary.changed) == (4, 5, "ada", True)
    assert summary.hash.startswith("sha256:") and summary.previous_hash is None
    (entry,) = world.audit.chain
    assert (entry.actor, entry.action, entry.subject) == ("ada", "inventory.import", "inventory")
    assert entry.details == {
        "source": "/srv/hosts.ini",
        "hash": summary.hash,
        "previous_hash": None,
        "groups": 5,
        "hosts": 4,
        "via": "cli",
    }
    assert "remember the milk" not in audit_json(world) and "10.0.0.7" not in audit_json(world)
    stored = world.inventory.load()
    assert stored is not None and stored.host_count == 4


def test_an_import_replaces_the_whole_inventory_and_says_whether_it_changed() -> None:
    world = world_of()
    first = service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    again = service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    assert not again.changed and again.previous_hash == first.hash
    smaller = service.import_inventory(world.app, ADA, "[other]\nx1\n", "other.ini")
    assert smaller.changed and smaller.previous_hash == first.hash
    assert [g.name for g in service.groups(world.app, VIC)] == ["all", "ungrouped", "other"]
    assert [h.name for h in service.hosts(world.app, VIC)] == ["x1"]


def test_only_an_admin_may_import_and_a_bad_file_stores_nothing() -> None:
    world = world_of()
    with pytest.raises(AccessRefused, match=re.escape("vic (viewer) may not admin")):
        service.import_inventory(world.app, VIC, HOSTS, "hosts.ini")
    with pytest.raises(InventoryError, match=re.escape("hosts.ini:2: host 'h': ansible_password is refused")):
        service.import_inventory(world.app, ADA, "[g]\nh ansible_password=hunter2\n", "hosts.ini")
    assert world.inventory.replaced == [] and world.audit.chain == []


def test_anyone_reads_groups_hosts_and_a_group_shown() -> None:
    world = world_of()
    service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    groups = {g.name: g for g in service.groups(world.app, VIC)}
    assert groups["production_web"].children == ["web"] and groups["production_web"].host_count == 3
    assert groups["web"].parents == ["production_web"] and groups["db"].parents == ["all"]

    web = service.hosts(world.app, VIC, "Production Web")
    assert [h.name for h in web] == ["web1", "web2", "web3"]
    assert web[0].user == "deploy" and web[0].groups == ["all", "production_web", "web"]

    detail = service.show(world.app, VIC, "production-web")
    assert detail.group.name == "production_web" and [c.name for c in detail.children] == ["web"]
    assert detail.hosts[1].vars == {"ansible_user": "deploy", "motd": "remember the milk"}


def test_an_unknown_group_lists_the_nearest() -> None:
    world = world_of()
    service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    with pytest.raises(
        UnknownGroupError, match="no group 'Production Wbe' in the inventory; nearest: production_web"
    ):
        service.hosts(world.app, VIC, "Production Wbe")


def test_nothing_imported_and_nothing_declared_is_an_empty_inventory() -> None:
    world = world_of()
    assert service.hosts(world.app, VIC) == []
    assert [g.name for g in service.groups(world.app, VIC)] == ["all", "ungrouped"]
    assert service.origin(world.app, VIC) is None


def test_a_stored_inventory_that_does_not_verify_is_unknown() -> None:
    world = world_of()
    service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    world.inventory.forged = True
    assert service.hosts(world.app, VIC) == []


# -- opsmith.yaml's inventory -----------------------------------------------------------------------


def test_the_declared_inventory_is_imported_by_opsmith_at_first_read_and_only_then() -> None:
    world = world_of(RBAC + INLINE)
    hosts = service.hosts(world.app, VIC, "production web")
    assert [(h.name, h.address, h.user) for h in hosts] == [
        ("web1", "10.0.0.1", "deploy"),
        ("web2", "web2", "deploy"),
    ]
    win = service.hosts(world.app, VIC, "windows")[0]
    assert (win.os, win.connection, win.credential) == ("windows", "winrm", "win-admin")
    (entry,) = world.audit.chain
    assert (entry.actor, entry.action, entry.details["via"]) == (
        service.SYSTEM_ACTOR,
        "inventory.import",
        "config",
    )
    assert entry.details["source"] == "opsmith.yaml (test) (inline)"
    service.groups(world.app, VIC)
    service.show(world.app, VIC, "windows")
    assert len(world.inventory.replaced) == 1, "unchanged: not imported again"


def test_a_changed_declaration_is_imported_again() -> None:
    world = world_of(RBAC + INLINE)
    service.groups(world.app, VIC)
    changed = parse_config(RBAC + INLINE.replace("win1]", "win1, win2]"), source="opsmith.yaml (test)")
    app = dataclasses.replace(world.app, config=changed)
    assert [h.name for h in service.hosts(app, VIC, "windows")] == ["win1", "win2"]
    first, second = world.inventory.replaced
    assert second.hash != first.hash and world.audit.chain[-1].details["previous_hash"] == first.hash


def test_import_is_refused_while_opsmith_yaml_declares_the_inventory() -> None:
    world = world_of(RBAC + INLINE)
    with pytest.raises(UsageError, match="declares the inventory, so it cannot be imported") as caught:
        service.import_inventory(world.app, ADA, HOSTS, "hosts.ini")
    assert "inventory:" in str(caught.value.hint)


def test_a_declared_path_is_read_and_parsed_at_use(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    web:\n      hosts:\n        w[1:2]:\n")
    world = world_of(f"{RBAC}inventory: {tmp_path / 'hosts.yml'}\n")
    assert [h.name for h in service.hosts(world.app, VIC, "web")] == ["w1", "w2"]
    assert world.inventory.replaced[0].source == str(tmp_path / "hosts.yml")

    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    a:\n      ansible_password: x\n")
    with pytest.raises(InventoryError, match=r"hosts.yml:3: host 'a': ansible_password is refused"):
        service.groups(world.app, VIC)
    (tmp_path / "hosts.yml").unlink()
    with pytest.raises(UsageError, match=re.escape("hosts.yml (from opsmith.yaml (test)) does not exist")):
        service.groups(world.app, VIC)


@pytest.mark.parametrize(
    ("inventory", "message"),
    [
        (
            "{groups: {web: {hosts: {h1: {adress: 10.0.0.1}}}}}",
            "unknown key 'adress' in inventory.groups.web.hosts.h1; did you mean 'address'?",
        ),
        ("{groups: {web: {hosts: {h1: {port: 0}}}}}", "inventory.groups.web.hosts.h1.port: Input should be"),
        ("{groups: {web: {hosts: {h1: {os: macos}}}}}", "inventory.groups.web.hosts.h1.os: Input should be"),
        (
            "{groups: {web: {children: [dbs]}, db: {}}}",
            "inventory: group 'web' has child 'dbs', which is not",
        ),
        (
            "{groups: {web: {vars: {ansible_password: hunter2}}}}",
            "inventory: group 'web': ansible_password is refused",
        ),
        ("{groups: {web: {hosts: ['w[9:1]']}}}", "inventory: host pattern 'w[9:1]': the range starts at 9"),
        (
            "{groups: {a: {children: [b]}, b: {children: [a]}}}",
            "inventory: groups nest in a cycle: a -> b -> a",
        ),
        ("{groups: {web: {}, Web: {}}}", "inventory: groups 'Web' and 'web' differ only in case"),
        ("{path: hosts.ini, groups: {web: {}}}", "inventory: has both a path and inline groups"),
        ("[hosts.ini]", "inventory: expected a path to an inventory file or a mapping of groups, got list"),
    ],
)
def test_inline_inventory_problems_are_config_errors_with_their_key_path(
    inventory: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"inventory: {inventory}\n", source="opsmith.yaml")
    assert caught.value.message.startswith(f"opsmith.yaml: {message}"), caught.value.message
    assert caught.value.hint and "hunter2" not in str(caught.value)


def test_a_relative_inventory_path_is_beside_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "opsmith.yaml").write_text("inventory: inventory/hosts.ini\n")
    config = load_config(tmp_path / "conf" / "opsmith.yaml", {}, cwd=tmp_path)
    assert config.inventory is not None
    assert config.inventory.path == (tmp_path / "conf" / "inventory" / "hosts.ini").absolute()
    absolute = tmp_path / "elsewhere.yml"
    (tmp_path / "conf" / "opsmith.yaml").write_text(f"inventory: {{path: {absolute}}}\n")
    again = load_config(tmp_path / "conf" / "opsmith.yaml", {})
    assert again.inventory is not None and again.inventory.path == absolute

"""Ansible's INI and YAML inventories as real ones are written: ranges, children, vars, Windows
hosts; and every unsupported thing refused with its line, never skipped."""

from __future__ import annotations

import shlex
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import InventoryError
from opsmith.domain.inventory import ALL, UNGROUPED, Inventory
from opsmith.domain.inventory_ansible import parse_ini, parse_inventory, parse_yaml

HOSTS_INI = """\
# Production and staging, as the ops team keeps them.
bastion.example.com ansible_port=2222

[web]
web[01:20].example.com
canary.example.com http_port=8080 motd="maintenance at 22:00 # not a comment"

[db]
db-[a:c].example.com ansible_user=postgres
db-backup.example.com:2200

[windows]
win-app01 ansible_host=10.1.0.11
win-app02 ansible_host=10.1.0.12 ansible_port=5985 opsmith_os=windows

[windows:vars]
ansible_connection=winrm
opsmith_credential = win-admin   # the vault entry

[production_web:children]
web

[production:children]
production_web
db
windows

[production:vars]
environment=production
ntp_server = "ntp.example.com"

[all:vars]
ansible_user=deploy
environment=unknown
"""

HOSTS_YAML = """\
all:
  vars:
    ansible_user: deploy
  hosts:
    bastion.example.com:
      ansible_port: 2222
  children:
    production:
      vars:
        environment: production
        retries: 3
        features: [blue, green]
      children:
        production_web:
          children:
            web:
              hosts:
                web[01:20].example.com:
                canary.example.com:
                  http_port: 8080
        db:
          hosts:
            db-[a:c].example.com:
              ansible_user: postgres
        windows:
          vars:
            ansible_connection: winrm
            opsmith_credential: win-admin
          hosts:
            win-app01:
              ansible_host: 10.1.0.11
    staging:
      hosts:
        stage-web01:
"""


def test_a_real_looking_ini_inventory() -> None:
    inv = parse_ini(HOSTS_INI, "hosts.ini")
    assert len(inv.hosts_of("web")) == 21
    assert inv.host_names_of("web")[:2] == ["canary.example.com", "web01.example.com"]
    assert inv.host_names_of("web")[-1] == "web20.example.com"
    assert set(inv.host_names_of("production")) == set(inv.host_names_of(ALL)) - {"bastion.example.com"}
    assert inv.group(UNGROUPED).hosts == ["bastion.example.com"]
    assert inv.parents_of("web") == ["production_web"] and inv.parents_of("db") == ["production"]

    bastion = inv.host("bastion.example.com")
    assert (bastion.port, bastion.user, bastion.vars["environment"]) == (2222, "deploy", "unknown")
    canary = inv.host("canary.example.com")
    assert canary.vars["http_port"] == "8080", "INI values are text"
    assert canary.vars["motd"] == "maintenance at 22:00 # not a comment"
    assert canary.vars["environment"] == "production" and canary.vars["ntp_server"] == "ntp.example.com"
    assert inv.host("db-b.example.com").user == "postgres", "a host's own var wins over all:vars"
    assert inv.host("db-backup.example.com").port == 2200
    assert inv.host("web07.example.com").user == "deploy"


def test_winrm_hosts_are_windows_and_get_their_credential_by_name() -> None:
    inv = parse_ini(HOSTS_INI, "hosts.ini")
    app01, app02 = inv.hosts_of("windows")
    assert (app01.os, app01.connection, app01.address, app01.effective_port) == (
        "windows",
        "winrm",
        "10.1.0.11",
        5986,
    )
    assert app01.credential == "win-admin", "the comment after the :vars value is not part of it"
    assert (app02.port, app02.os) == (5985, "windows")


def test_a_real_looking_yaml_inventory() -> None:
    inv = parse_yaml(HOSTS_YAML, "hosts.yml")
    assert len(inv.host_names_of("web")) == 21
    assert inv.group(UNGROUPED).hosts == ["bastion.example.com"]
    assert inv.find_group("Production Web").children == ["web"]
    assert inv.parents_of("production") == [ALL] and inv.parents_of("web") == ["production_web"]
    canary = inv.host("canary.example.com")
    assert canary.vars["http_port"] == 8080, "YAML values keep their types"
    assert canary.vars["features"] == ["blue", "green"] and canary.vars["retries"] == 3
    win = inv.host("win-app01")
    assert (win.os, win.connection, win.address, win.credential) == (
        "windows",
        "winrm",
        "10.1.0.11",
        "win-admin",
    )
    assert inv.host("bastion.example.com").port == 2222
    assert inv.host("stage-web01").vars == {"ansible_user": "deploy"}


def test_the_two_formats_of_one_fleet_agree_on_its_shape() -> None:
    ini, yml = parse_ini(HOSTS_INI), parse_yaml(HOSTS_YAML)
    for group in ("web", "production_web"):
        assert ini.host_names_of(group) == yml.host_names_of(group)


def test_ansible_inventory_list_yaml_output_is_read() -> None:
    # What `ansible-inventory --list --yaml` writes: ungrouped under all, empty mappings for hosts.
    text = "all:\n  children:\n    ungrouped:\n      hosts:\n        h1: {}\n"
    text += "    web:\n      hosts:\n        w1: {}\n"
    inv = parse_yaml(text, "exported.yml")
    assert inv.group(UNGROUPED).hosts == ["h1"] and inv.host_names_of("web") == ["w1"]


def test_parse_inventory_picks_the_format_by_suffix_then_by_content() -> None:
    assert parse_inventory(HOSTS_YAML, "inventory/prod.yaml").host_count == 27
    assert (
        parse_inventory(HOSTS_INI, "hosts.ini").host_count == parse_inventory(HOSTS_INI, "hosts").host_count
    )
    assert parse_inventory(HOSTS_YAML, "hosts").host_count == 27, "`all:` on the first line means YAML"
    assert parse_inventory("---\nall:\n  hosts:\n    a:\n", "inventory").host_names_of(ALL) == ["a"]
    assert parse_inventory("web1\nweb2:2222\n", "inventory").host_names_of(ALL) == ["web1", "web2"]
    assert parse_inventory("", "empty") == Inventory()
    assert parse_inventory('{"all": {"hosts": {"j1": null}}}', "inv.json").host_names_of(ALL) == ["j1"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[web]\nw1 ansible_password=hunter2\n", 2, "host 'w1': ansible_password is refused"),
        (
            "[web:vars]\nansible_become_pass=hunter2\n[web]\n",
            2,
            "group 'web': ansible_become_pass is refused",
        ),
        ("[web]\nw[10:1]\n", 2, "host pattern 'w[10:1]': the range starts at 10, after its end 1"),
        ("[web]\nw1 port\n", 2, "expected key=value, got 'port'"),
        ("[web]\nw1 motd='unclosed\n", 2, "No closing quotation"),
        ("[web]\nw1:ssh\n", 2, "'ssh' is not a port number"),
        ("[web]\nw1:\n", 2, "host 'w1:' ends in ':'"),
        ("[web:hosts]\n[web:meta]\n", 2, "unknown kind 'meta'"),
        ("[web servers]\n", 1, "is not a section header"),
        ("[web:vars]\nnothing here\n", 2, "expected key = value"),
        ("[web:vars]\nmotd = 'one' two\n[web]\n", 2, "text follows the quoted value"),
        ("[prod:children]\nweb\n", 2, "[prod:children] names group 'web', which has no [web] section"),
        ("[db:vars]\nx=1\n", 1, "[db:vars] names group 'db', which has no [db] section"),
        ("[web]\nw1 ansible_connection=local\n", 2, "ansible_connection='local' is not a connection"),
        ("[web]\nw1 ansible_port=99999\n", 2, "ansible_port=99999 is not a port number"),
        ("[web]\nw1 ansible_ssh_user=root\n", 2, "ansible_ssh_user is Ansible 1.x's name"),
        ("[a:children]\nb\n[b:children]\na\n", None, "groups nest in a cycle: a -> b -> a"),
        ("all:\n  hosts:\n", 1, "ends in ':'"),
    ],
)
def test_ini_problems_name_their_line(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_ini(text, "hosts.ini")
    error = caught.value
    assert reason in error.reason, error.message
    assert (error.source, error.line) == ("hosts.ini", line)
    assert error.message.startswith(f"hosts.ini:{line}: " if line else "hosts.ini: ")
    assert error.hint
    assert "hunter2" not in error.message


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n",
            1,
            "dynamic inventory plugins are not supported",
        ),
        (
            "all:\n  hosts:\n    a:\n      ansible_password: hunter2\n",
            3,
            "host 'a': ansible_password is refused",
        ),
        (
            "all:\n  vars:\n    pw: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      6162\n",
            3,
            "Ansible Vault value",
        ),
        ("all:\n  hosts:\n    a:\n    a:\n", 4, "key 'a' is given twice in one mapping (first at line 3)"),
        ("all:\n  hosts: [a, b]\n", 2, "all.hosts: expected a mapping"),
        (
            "all:\n  children:\n    web:\n      host:\n        w1:\n",
            4,
            "all.children.web.host: unknown key 'host'",
        ),
        ("all:\n  children:\n    web: [w1]\n", 3, "all.children.web: a group is a mapping"),
        ("all:\n  hosts:\n    a: 3\n", 3, "all.hosts.a: a host's value is a mapping of its vars"),
        ("all:\n  hosts:\n    a:\n      ansible_port: [1]\n", 3, "ansible_port=[1] is not a port number"),
        ("- a\n- b\n", 1, "the top level is a list, not a mapping of groups"),
        ("all:\n  hosts:\n    a: {x: [unclosed\n", 4, "not valid YAML"),
        (
            "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
            None,
            "cycle",
        ),
    ],
)
def test_yaml_problems_name_their_line(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_yaml(text, "hosts.yml")
    error = caught.value
    assert reason in error.reason, error.message
    assert (error.source, error.line) == ("hosts.yml", line)
    assert error.hint
    assert "hunter2" not in error.message


def test_the_plugin_error_says_how_to_export_a_static_inventory() -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory("plugin: aws_ec2\n", "aws_ec2.yml")
    assert "ansible-inventory" in str(caught.value.hint) and "--list" in str(caught.value.hint)


def test_yaml_dates_become_text_and_quoted_ini_literals_lose_their_quotes() -> None:
    inv = parse_yaml("all:\n  hosts:\n    a:\n      since: 2024-05-01\n")
    assert inv.host("a").vars["since"] == "2024-05-01"
    ini = parse_ini("""[g]\nh1 motto="'03#pa33w0rd'" plain='x y' num=42\n[g:vars]\nq = "quoted # kept"\n""")
    assert ini.host("h1").vars == {
        "motto": "03#pa33w0rd",
        "plain": "x y",
        "num": "42",
        "q": "quoted # kept",
    }


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable, min_size=1, max_size=30))
def test_a_host_var_quoted_by_shell_rules_reads_back_as_written(value: str) -> None:
    quoted_literal = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    if quoted_literal or "\r" in value or "\n" in value or "\x0b" in value or "\x0c" in value:
        return  # a Python string literal loses its quotes, on purpose; a line break ends the line
    inv = parse_ini(f"[g]\nh1 note={shlex.quote(value)}\n", "generated.ini")
    assert inv.host("h1").vars["note"] == value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "[]:=#;'\"", max_size=120))
def test_any_text_is_an_inventory_or_an_inventory_error(text: str) -> None:
    for parse in (parse_ini, parse_yaml, parse_inventory):
        try:
            parse(text, "fuzz")
        except InventoryError as error:
            assert error.message.startswith("fuzz")

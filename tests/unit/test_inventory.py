"""The inventory model: host ranges, variable precedence, nesting, cycles, loose group names,
connection fields derived from vars, refused secrets, and the content hash."""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import InventoryError, UnknownGroupError, UsageError
from opsmith.domain.inventory import (
    ALL,
    MAX_PATTERN_HOSTS,
    UNGROUPED,
    Group,
    HostEntry,
    Inventory,
    InventoryBuilder,
    expand_range,
    natural_key,
    normal_name,
)
from opsmith.domain.inventory_ansible import parse_ini


def inventory(
    groups: Mapping[str, dict[str, Any]], hosts: Mapping[str, dict[str, Any]] | None = None
) -> Inventory:
    """Groups given as {name: {children, hosts, vars}}; hosts named in groups are declared plainly."""
    entries = {name: HostEntry(name=name, **spec) for name, spec in (hosts or {}).items()}
    for spec in groups.values():
        for name in spec.get("hosts", []):
            entries.setdefault(name, HostEntry(name=name))
    return Inventory(
        declared_groups={name: Group(name=name, **spec) for name, spec in groups.items()},
        host_entries=entries,
    )


# -- ranges ---------------------------------------------------------------------------------------


def test_a_zero_padded_range_keeps_its_width() -> None:
    names = expand_range("web[01:20].example.com")
    assert len(names) == 20
    assert names[:2] == ["web01.example.com", "web02.example.com"] and names[-1] == "web20.example.com"


def test_letters_steps_and_several_ranges() -> None:
    assert expand_range("db-[a:f]") == [f"db-{c}" for c in "abcdef"]
    assert expand_range("web[1:10:2]") == ["web1", "web3", "web5", "web7", "web9"]
    assert expand_range("rack[1:2]-node[A:B]") == ["rack1-nodeA", "rack1-nodeB", "rack2-nodeA", "rack2-nodeB"]
    assert expand_range("plain.example.com") == ["plain.example.com"]
    assert expand_range("w[8:10]") == ["w8", "w9", "w10"]  # no padding: the bounds' width is not kept


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("web[20:1]", "starts at 20, after its end 1"),
        ("db[f:a]", "starts at f, after its end a"),
        ("web[1:c]", "mixes kinds of bounds"),
        ("web[a:F]", "mixes kinds of bounds"),
        ("web[aa:ff]", "mixes kinds of bounds"),
        ("web[01:120]", "zero-padded bounds 01 and 120 differ in width"),
        ("web[1:10:0]", "step '0' is not a whole number of at least 1"),
        ("web[1:10:x]", "step 'x' is not a whole number"),
        ("web[:5]", "[:5] is not a range"),
        ("web[5]", "[5] is not a range"),
        ("web[1:2:3:4]", "is not a range"),
        ("web[1:3", "unmatched or nested bracket"),
        ("web1:3]", "unmatched or nested bracket"),
        ("web[1:[2:3]]", "unmatched or nested bracket"),
        ("web[1:10001]", "stands for 10,001 hosts, more than 10,000"),
        ("r[1:200]n[1:100]", "stands for 20,000 hosts"),
    ],
)
def test_a_bad_range_says_why(pattern: str, reason: str) -> None:
    with pytest.raises(InventoryError) as caught:
        expand_range(pattern)
    assert reason in caught.value.message and pattern in caught.value.message
    assert caught.value.hint


def test_the_cap_is_checked_before_any_name_is_made() -> None:
    # A billion names would take minutes and gigabytes to make: refused at once.
    with pytest.raises(InventoryError, match="1,000,000,000 hosts"):
        expand_range("h[1:1000000000]")
    assert len(expand_range(f"h[1:{MAX_PATTERN_HOSTS}]")) == MAX_PATTERN_HOSTS


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(alphabet=string.ascii_lowercase + "-.", max_size=6),
    suffix=st.sampled_from(["", ".example.com", "-a"]),
    low=st.integers(0, 500),
    span=st.integers(0, 300),
    step=st.integers(1, 7),
    pad=st.booleans(),
    extra=st.integers(0, 2),
)
def test_a_numeric_range_is_pythons_range_formatted(
    prefix: str, suffix: str, low: int, span: int, step: int, pad: bool, extra: int
) -> None:
    high = low + span
    width = len(str(high)) + extra
    # Padding shows only when a bound has a leading zero: [01:20], [001:120]; [10:20] is plain.
    padded = pad and (extra > 0 or len(str(low)) < width)
    start, end = (str(low).zfill(width), str(high).zfill(width)) if padded else (str(low), str(high))
    names = expand_range(f"{prefix}[{start}:{end}:{step}]{suffix}")
    values = range(low, high + 1, step)
    assert names == [f"{prefix}{v:0{width if padded else 0}d}{suffix}" for v in values]
    assert len(names) == len(values) and len(set(names)) == len(names)
    assert sorted(names, key=natural_key) == names, "in ascending order"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "n-", "x."]), st.integers(0, 30), st.integers(0, 5)),
        min_size=1,
        max_size=3,
    )
)
def test_several_ranges_are_their_product_in_order(parts: list[tuple[str, int, int]]) -> None:
    pattern = "".join(f"{literal}[{low}:{low + span}]" for literal, low, span in parts)
    choices = [[f"{literal}{v}" for v in range(low, low + span + 1)] for literal, low, span in parts]
    names = expand_range(pattern)
    assert names == ["".join(c) for c in itertools.product(*choices)]
    assert len(names) == len(set(names)) or any(literal == "a" for literal, _, _ in parts)


# -- names ----------------------------------------------------------------------------------------


def test_natural_order_and_normal_names() -> None:
    assert sorted(["web10", "web2", "web1", "db"], key=natural_key) == ["db", "web1", "web2", "web10"]
    assert normal_name("Production Web") == normal_name("production_web") == normal_name("PRODUCTION-WEB")
    assert normal_name("Production  Web ") == "production_web"
    assert normal_name("productionweb") != normal_name("production_web")


def fleet() -> Inventory:
    return inventory(
        {
            "production_web": {"children": ["web_eu", "web_us"], "vars": {"tier": "web"}},
            "web_eu": {"hosts": ["eu1", "eu2"]},
            "web_us": {"hosts": ["us1"]},
            "production_db": {"hosts": ["db1"]},
            "staging": {"hosts": ["stage1"]},
        },
        {"lonely": {}},
    )


def test_find_group_matches_exactly_then_loosely() -> None:
    inv = fleet()
    assert inv.find_group("production_web").name == "production_web"
    assert inv.find_group("Production Web").name == "production_web"
    assert inv.find_group("PRODUCTION-WEB").name == "production_web"
    assert inv.find_group("all").name == ALL


def test_an_unknown_group_names_the_nearest_and_how_to_list_them() -> None:
    with pytest.raises(UnknownGroupError) as caught:
        fleet().find_group("Prodution Web")
    error = caught.value
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert (
        error.message == "no group 'Prodution Web' in the inventory; nearest: production_web, production_db"
    )
    assert error.hint is not None and "opsmith inventory groups" in error.hint


def test_a_group_nothing_resembles_says_how_many_there_are() -> None:
    with pytest.raises(UnknownGroupError, match=r"no group 'zzz' in the inventory \(it has 5 groups\)"):
        fleet().find_group("zzz")
    with pytest.raises(UnknownGroupError, match="the inventory has no groups") as caught:
        Inventory().find_group("web")
    assert "opsmith inventory import" in str(caught.value.hint)


def test_groups_equal_when_loosely_matched_are_refused() -> None:
    with pytest.raises(InventoryError, match="'Web' and 'web' differ only in case"):
        inventory({"web": {}, "Web": {}})
    with pytest.raises(InventoryError, match="differ only in case, spaces"):
        inventory({"prod_web": {}, "prod-web": {}})


# -- nesting --------------------------------------------------------------------------------------


def test_a_group_reaches_the_hosts_of_its_children_at_any_depth() -> None:
    inv = inventory(
        {"a": {"children": ["b"], "hosts": ["a1"]}, "b": {"children": ["c"]}, "c": {"hosts": ["c1"]}}
    )
    assert [h.name for h in inv.hosts_of("a")] == ["a1", "c1"]
    assert inv.host_names_of("b") == ["c1"]
    assert inv.descendants("a") == ["a", "b", "c"]
    assert inv.parents_of("c") == ["b"] and inv.parents_of("a") == [ALL]


def test_all_has_every_host_and_ungrouped_those_in_no_other_group() -> None:
    inv = fleet()
    assert inv.host_names_of(ALL) == ["db1", "eu1", "eu2", "lonely", "stage1", "us1"]
    assert inv.group(UNGROUPED).hosts == ["lonely"]
    assert inv.group(ALL).children == ["production_db", "production_web", "staging", UNGROUPED]
    assert [g.name for g in inv.groups()][:2] == [ALL, UNGROUPED]
    assert inv.group_count == 7 and inv.host_count == 6


def test_a_host_listed_under_ungrouped_and_in_a_group_is_only_in_the_group() -> None:
    inv = inventory({UNGROUPED: {"hosts": ["h1", "h2"]}, "web": {"hosts": ["h1"]}})
    assert inv.group(UNGROUPED).hosts == ["h2"]


@pytest.mark.parametrize(
    ("groups", "cycle"),
    [
        ({"a": {"children": ["a"]}}, "a -> a"),
        ({"a": {"children": ["b"]}, "b": {"children": ["a"]}}, "a -> b -> a"),
        (
            {
                "x": {"children": ["a"]},
                "a": {"children": ["b"]},
                "b": {"children": ["c"]},
                "c": {"children": ["a"]},
            },
            "a -> b -> c -> a",
        ),
    ],
)
def test_a_cycle_is_refused_at_construction(groups: dict[str, dict[str, Any]], cycle: str) -> None:
    with pytest.raises(InventoryError) as caught:
        inventory(groups)
    assert caught.value.message == f"groups nest in a cycle: {cycle}"


def test_references_to_missing_groups_or_hosts_and_to_all_are_refused() -> None:
    with pytest.raises(InventoryError, match="has child 'b', which is not a group"):
        inventory({"a": {"children": ["b"]}})
    with pytest.raises(InventoryError, match="lists 'all' as a child"):
        inventory({"a": {"children": [ALL]}})
    with pytest.raises(InventoryError, match="lists host 'ghost', which is not declared"):
        Inventory(declared_groups={"a": Group(name="a", hosts=["ghost"])})
    # `ansible-inventory --list --yaml` writes ungrouped under all: that is fine.
    assert inventory({ALL: {"children": [UNGROUPED]}, UNGROUPED: {"hosts": ["h"]}}).host_names_of(
        UNGROUPED
    ) == ["h"]


# -- variables ------------------------------------------------------------------------------------


def test_inner_groups_win_over_outer_ones_and_the_host_over_all() -> None:
    inv = inventory(
        {
            ALL: {"vars": {"where": "all", "ntp": "pool"}},
            "prod": {"children": ["web"], "vars": {"where": "prod", "tier": "prod"}},
            "web": {"hosts": ["w1", "w2"], "vars": {"where": "web"}},
        },
        {"w2": {"vars": {"where": "host"}}},
    )
    w1, w2 = inv.hosts_of("prod")
    assert w1.vars == {"where": "web", "ntp": "pool", "tier": "prod"}
    assert w2.vars["where"] == "host"
    assert inv.groups_of("w1") == [ALL, "prod", "web"]


def test_between_groups_of_one_depth_the_later_name_wins() -> None:
    inv = inventory(
        {"alpha": {"hosts": ["h"], "vars": {"x": "alpha"}}, "beta": {"hosts": ["h"], "vars": {"x": "beta"}}}
    )
    assert inv.host("h").vars["x"] == "beta"


def test_a_deeper_group_wins_whatever_its_name() -> None:
    # `aaa` sorts first but is nested: it is applied after the top-level `zzz`.
    inv = inventory(
        {
            "zzz": {"hosts": ["h"], "vars": {"x": "zzz"}},
            "parent": {"children": ["aaa"]},
            "aaa": {"hosts": ["h"], "vars": {"x": "aaa"}},
        }
    )
    assert inv.groups_of("h") == [ALL, "parent", "zzz", "aaa"]
    assert inv.host("h").vars["x"] == "aaa"


def test_a_group_reached_by_two_paths_takes_its_deepest() -> None:
    inv = inventory(
        {
            "a": {"children": ["b", "shared"]},
            "b": {"children": ["shared"]},
            "shared": {"hosts": ["h"], "vars": {"x": "s"}},
            "c": {"hosts": ["h"], "vars": {"x": "c"}},
        }
    )
    assert inv.groups_of("h") == [ALL, "a", "c", "b", "shared"]
    assert inv.host("h").vars["x"] == "s"


def test_ansible_group_priority_orders_groups_of_one_depth() -> None:
    inv = inventory(
        {
            "alpha": {"hosts": ["h"], "vars": {"x": "alpha", "ansible_group_priority": "10"}},
            "beta": {"hosts": ["h"], "vars": {"x": "beta"}},
        }
    )
    assert inv.host("h").vars["x"] == "alpha"


def test_connection_fields_come_from_the_merged_vars() -> None:
    inv = inventory(
        {
            "linux": {
                "hosts": ["web1"],
                "vars": {
                    "ansible_user": "deploy",
                    "ansible_port": "2222",
                    "opsmith_credential": "deploy-key",
                },
            },
            "windows": {"hosts": ["win1", "win2"], "vars": {"ansible_connection": "winrm"}},
        },
        {
            "web1": {"vars": {"ansible_host": "10.0.0.5"}},
            "win2": {"vars": {"opsmith_os": "linux", "ansible_port": 5985}},
        },
    )
    web1 = inv.host("web1")
    assert (web1.address, web1.port, web1.user, web1.credential, web1.os, web1.connection) == (
        "10.0.0.5",
        2222,
        "deploy",
        "deploy-key",
        "linux",
        "ssh",
    )
    win1, win2 = inv.host("win1"), inv.host("win2")
    assert (win1.os, win1.connection, win1.address, win1.effective_port) == ("windows", "winrm", "win1", 5986)
    assert (win2.os, win2.effective_port) == ("linux", 5985), "opsmith_os wins over what winrm implies"
    assert inv.host("web1").effective_port == 2222


def test_a_hosts_own_fields_win_over_every_var() -> None:
    inv = inventory(
        {"g": {"hosts": ["h"], "vars": {"ansible_host": "10.0.0.1", "ansible_connection": "psrp"}}},
        {"h": {"address": "192.0.2.7", "port": 2200, "connection": "ssh", "os": "windows", "user": "admin"}},
    )
    host = inv.host("h")
    assert (host.address, host.port, host.connection, host.os, host.user) == (
        "192.0.2.7",
        2200,
        "ssh",
        "windows",
        "admin",
    )
    assert (
        inventory({"g": {"hosts": ["p"], "vars": {"ansible_connection": "psrp"}}}).host("p").os == "windows"
    )


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("ansible_password", "hunter2", "ansible_password is refused"),
        ("ansible_ssh_pass", "hunter2", "ansible_ssh_pass is refused"),
        ("ansible_become_pass", "hunter2", "ansible_become_pass is refused"),
        ("ansible_become_password", "hunter2", "ansible_become_password is refused"),
        ("ansible_ssh_private_key_file", "~/.ssh/id", "ansible_ssh_private_key_file is refused"),
        ("db_password", "hunter2", "db_password is refused"),
        ("api_token", "hunter2", "api_token is refused"),
        ("ansible_ssh_host", "10.0.0.1", "ansible_ssh_host is Ansible 1.x's name"),
        ("ansible_connection", "local", "ansible_connection='local' is not a connection opsmith makes"),
        ("ansible_port", "ssh", "ansible_port='ssh' is not a port number"),
        ("ansible_port", 70000, "ansible_port=70000 is not a port number"),
        ("opsmith_os", "macos", "opsmith_os='macos' is not an OS family"),
        ("ansible_host", "", "ansible_host='' is not a host name or address"),
        ("9lives", "x", "'9lives' is not a variable name"),
    ],
)
def test_secrets_and_vars_opsmith_cannot_use_are_refused(name: str, value: object, reason: str) -> None:
    for groups, hosts in (
        ({"g": {"hosts": ["h"], "vars": {name: value}}}, None),
        ({"g": {"hosts": ["h"]}}, {"h": {"vars": {name: value}}}),
    ):
        with pytest.raises(InventoryError) as caught:
            inventory(groups, hosts)
        assert reason in caught.value.message
        assert caught.value.hint
        if "refused" in reason:
            assert "vault" in caught.value.hint and "opsmith_credential" in caught.value.hint
            assert str(value) not in caught.value.message, "a refused secret is never repeated"


def test_opsmith_credential_names_a_secret_and_is_allowed() -> None:
    assert (
        inventory({"g": {"hosts": ["h"], "vars": {"opsmith_credential": "prod-ssh"}}}).host("h").credential
        == "prod-ssh"
    )


def test_an_unknown_host_names_the_nearest() -> None:
    with pytest.raises(UsageError, match="no host 'eu3' in the inventory; nearest: ") as caught:
        fleet().host("eu3")
    assert "eu1" in caught.value.message and "eu2" in caught.value.message


# -- the whole ------------------------------------------------------------------------------------


def test_the_hash_ignores_declaration_order_and_sees_every_change() -> None:
    one = inventory({"a": {"hosts": ["h1", "h2"], "vars": {"x": 1}}, "b": {"hosts": ["h2"]}})
    two = inventory({"b": {"hosts": ["h2"]}, "a": {"hosts": ["h2", "h1"], "vars": {"x": 1}}})
    assert one.content_hash() == two.content_hash() and one.content_hash().startswith("sha256:")
    changed = inventory({"a": {"hosts": ["h1", "h2"], "vars": {"x": 2}}, "b": {"hosts": ["h2"]}})
    assert changed.content_hash() != one.content_hash()


def test_it_round_trips_through_json_as_stored() -> None:
    inv = fleet()
    again = Inventory.model_validate(inv.model_dump(mode="json"))
    assert again == inv and again.content_hash() == inv.content_hash()
    assert again.hosts() == inv.hosts()


def test_the_builder_merges_a_host_met_twice_and_refuses_conflicting_fields() -> None:
    builder = InventoryBuilder("hosts.ini")
    builder.hosts("web", "h1", {"a": "1", "b": "1"})
    builder.hosts("db", "h1", {"b": "2"})
    inv = builder.build()
    assert inv.host("h1").vars == {"a": "1", "b": "2"} and inv.groups_of("h1") == [ALL, "db", "web"]
    clash = InventoryBuilder("opsmith.yaml")
    clash.hosts("web", "h1", fields={"address": "10.0.0.1"})
    with pytest.raises(
        InventoryError, match=re.escape("given address '10.0.0.1' in one place and '10.0.0.2'")
    ) as caught:
        clash.hosts("db", "h1", fields={"address": "10.0.0.2"}, line=7)
    assert caught.value.message.startswith("opsmith.yaml:7: ") and caught.value.line == 7


# -- INI round trip ---------------------------------------------------------------------------------


@st.composite
def memberships(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Groups g0..gN with hosts and children; a child always has a higher number, so no cycles."""
    count = draw(st.integers(1, 6))
    names = [f"g{i}" for i in range(count)]
    hosts = [f"h{i}" for i in range(draw(st.integers(0, 8)))]
    members = {g: draw(st.lists(st.sampled_from(hosts), unique=True)) if hosts else [] for g in names}
    children = {
        g: draw(st.lists(st.sampled_from(names[i + 1 :]), unique=True)) if names[i + 1 :] else []
        for i, g in enumerate(names)
    }
    return members, children


def to_ini(members: dict[str, list[str]], children: dict[str, list[str]]) -> str:
    lines = []
    for group, hosts in members.items():
        lines += [f"[{group}]", *(f"{h} rank={h[1:]}" for h in hosts), ""]
    for group, kids in children.items():
        if kids:
            lines += [f"[{group}:children]", *kids, ""]
    return "\n".join(lines)


@settings(max_examples=200, deadline=None)
@given(memberships())
def test_an_ini_inventory_round_trips_its_membership(
    shape: tuple[dict[str, list[str]], dict[str, list[str]]],
) -> None:
    members, children = shape
    inv = parse_ini(to_ini(members, children), "generated.ini")

    def reach(group: str) -> set[str]:
        return set(members[group]).union(*(reach(child) for child in children[group]))

    for group in members:
        assert inv.group(group).hosts == sorted(members[group], key=natural_key)
        assert inv.group(group).children == sorted(children[group], key=natural_key)
        assert set(inv.host_names_of(group)) == reach(group)
    listed = {h for hosts in members.values() for h in hosts}
    assert set(inv.host_names_of(ALL)) == listed
    assert all(inv.host(h).vars == {"rank": h[1:]} for h in listed)

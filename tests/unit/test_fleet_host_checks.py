"""A fleet request's own words about its hosts, checked by the planner against the inventory: a
stated count or OS the group contradicts is refused, never narrowed; plain values and a hand-made
Inventory, as in test_fleet_planning.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.config import parse_config
from opsmith.domain.catalog import Catalog
from opsmith.domain.errors import IntentError
from opsmith.domain.host_tools import host_tools
from opsmith.domain.hosts import OsFamily
from opsmith.domain.intent_hosts import HOST_OS_WORDS
from opsmith.domain.inventory import Group, HostEntry, Inventory
from opsmith.domain.plan import Plan
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks

CONFIG = parse_config("planning: {default_application: null}\n", source="test")
PLAYBOOKS = load_playbooks()
NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)  # a Tuesday morning


def fleet(oses: Sequence[OsFamily], group: str = "fleet") -> Inventory:
    """One production group whose hosts h01, h02... run the OS families given, in order."""
    names = [f"h{n:02}" for n in range(1, len(oses) + 1)]
    return Inventory(
        declared_groups={group: Group(name=group, hosts=names, vars={"environment": "production"})},
        host_entries={name: HostEntry(name=name, os=os) for name, os in zip(names, oses, strict=True)},
    )


def plan(request: str, inventory: Inventory) -> Plan:
    planner = Planner(CONFIG, PLAYBOOKS, inventory=inventory)
    return planner.plan(request, Situation(catalog=Catalog(host_tools()), now=NOW), {})


def test_the_cis_request_plans_when_the_group_holds_its_25_windows_systems() -> None:
    made = plan(
        "Connect to 25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running,"
        " stop the service, copy new file, restart service, verify startup, and log results",
        fleet(["windows"] * 25, "cis_servers"),
    )
    # What the request said of its hosts stays in the plan's intent, next to the group it resolved to.
    targets = made.intent.targets
    assert (targets.group, targets.count, targets.os) == ("cis_servers", 25, ["windows"])
    assert len(made.steps[0].targets) == 25


def test_a_count_the_group_contradicts_is_refused_naming_both_numbers_and_the_group() -> None:
    with pytest.raises(IntentError) as caught:
        plan(
            "Connect to 25 Windows systems in group 'CIS servers', stop 'x' service",
            fleet(["windows"] * 30, "cis_servers"),
        )
    assert "says 25 Windows hosts, but group cis_servers has 30 (30 Windows)" in caught.value.message
    assert caught.value.hint is not None and "opsmith inventory show cis_servers" in caught.value.hint


def test_windows_systems_in_a_mixed_group_are_refused_not_narrowed_to_the_windows_ones() -> None:
    with pytest.raises(IntentError) as caught:
        plan("stop 'x' service on all Windows servers in group 'fleet'", fleet(["windows", "linux", "linux"]))
    assert "2 of the 3 hosts of group fleet run another OS: h02 (Linux), h03 (Linux)" in caught.value.message


def test_named_hosts_are_checked_as_the_group_is() -> None:
    inventory = fleet(["linux", "linux", "windows"])
    made = plan("stop 'x' service on 2 linux hosts h01 and h02", inventory)
    assert made.steps[0].targets == ["h01", "h02"]
    with pytest.raises(IntentError) as caught:
        plan("stop 'x' service on 3 linux hosts h01, h02 and h03", inventory)
    assert (
        "says Linux hosts, but 1 of the 3 hosts it names runs another OS: h03 (Windows)"
        in caught.value.message
    )


def test_a_request_that_states_nothing_of_its_hosts_plans_on_any_group() -> None:
    made = plan("stop 'x' service on all servers in group 'fleet'", fleet(["windows", "linux"]))
    assert made.intent.targets.count is None and made.intent.targets.os == []


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 22), stated=st.integers(1, 22), as_word=st.booleans())
def test_a_plan_is_made_iff_the_stated_count_is_the_group_size(size: int, stated: int, as_word: bool) -> None:
    words = {"five": 5, "twelve": 12, "nineteen": 19, "twenty": 20}
    said = next((w for w, n in words.items() if n == stated), str(stated)) if as_word else str(stated)
    request = f"stop 'x' service on {said} servers in group 'fleet'"
    try:
        made = plan(request, fleet(["linux"] * size))
    except IntentError as refused:
        assert stated != size
        assert f"says {stated} host" in refused.message and f"group fleet has {size}" in refused.message
    else:
        assert stated == size and len(made.steps[0].targets) == size


@settings(max_examples=40, deadline=None)
@given(
    oses=st.lists(st.sampled_from(["linux", "windows"]), min_size=1, max_size=9),
    word=st.sampled_from(sorted(HOST_OS_WORDS)),
)
def test_a_plan_is_made_iff_every_host_runs_the_stated_os(oses: list[OsFamily], word: str) -> None:
    family = HOST_OS_WORDS[word]
    others = [f"h{n:02}" for n, os in enumerate(oses, start=1) if os != family]
    try:
        plan(f"stop 'x' service on {word} servers in group 'fleet'", fleet(oses))
    except IntentError as refused:
        assert others
        shown = ", ".join(f"{name} ({'Windows' if family == 'linux' else 'Linux'})" for name in others[:5])
        run = "runs" if len(others) == 1 else "run"
        assert (
            f"{len(others)} of the {len(oses)} hosts of group fleet {run} another OS: {shown}"
            in refused.message
        )
    else:
        assert not others


def test_every_count_is_checked_with_its_os_and_the_plan_says_the_whole() -> None:
    request = "stop 'x' service on 3 linux and 2 windows servers in group 'fleet'"
    made = plan(request, fleet(["linux", "windows", "linux", "windows", "linux"]))
    assert (made.intent.targets.count, made.intent.targets.os) == (5, ["windows", "linux"])
    assert len(made.steps[0].targets) == 5
    with pytest.raises(IntentError) as caught:
        plan(request, fleet(["linux"] * 4 + ["windows"] * 2))
    assert (
        "says 3 Linux hosts and 2 Windows hosts, but group fleet has 6 (4 Linux and 2 Windows)"
        in caught.value.message
    )


def test_a_count_per_os_with_its_own_noun_is_checked_too() -> None:
    request = "stop 'x' service on 3 Linux servers and 2 Windows hosts in group 'fleet'"
    plan(request, fleet(["linux"] * 3 + ["windows"] * 2))
    with pytest.raises(IntentError) as caught:
        plan(request, fleet(["linux"] * 3 + ["windows"] * 3))
    assert "but group fleet has 6 (3 Linux and 3 Windows)" in caught.value.message


@settings(max_examples=40, deadline=None)
@given(
    linux=st.integers(0, 6),
    windows=st.integers(0, 6),
    have=st.lists(st.sampled_from(["linux", "windows"]), min_size=1, max_size=12),
    own_nouns=st.booleans(),
)
def test_a_plan_is_made_iff_every_count_per_os_is_the_groups(
    linux: int, windows: int, have: list[OsFamily], own_nouns: bool
) -> None:
    said = (
        f"{linux} linux servers and {windows} windows servers"
        if own_nouns
        else f"{linux} linux and {windows} windows servers"
    )
    try:
        made = plan(f"stop 'x' service on {said} in group 'fleet'", fleet(have))
    except IntentError as refused:
        assert (linux, windows) != (have.count("linux"), have.count("windows"))
        assert (
            f"group fleet has {len(have)} ({have.count('linux')} Linux and {have.count('windows')} Windows)"
            in refused.message
        )
    else:
        assert (linux, windows) == (have.count("linux"), have.count("windows"))
        assert made.intent.targets.count == len(have)

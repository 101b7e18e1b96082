"""What a request says of its hosts (how many, which OS) as read, and the refusal when the hosts
it resolves to say otherwise: plain values, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.errors import IntentError
from opsmith.domain.hosts import Host, OsFamily
from opsmith.domain.intent import Intent, Vocabulary, parse_intent
from opsmith.domain.intent_hosts import (
    HOST_OS_WORDS,
    OS_NAMES,
    StatedCount,
    refuse_contradicted,
    stated_counts,
    stated_os,
)
from opsmith.domain.intent_text import tokenize
from opsmith.domain.intent_words import HOST_NOUNS_PLURAL, NUMBER_WORDS, PLATFORMS

VOCAB = Vocabulary(groups=["CIS servers", "Production Web"])
WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip


def read(text: str) -> Intent:
    return parse_intent(text, VOCAB)


def host(name: str, os: OsFamily = "linux") -> Host:
    return Host(name=name, address=name, os=os)


# -- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "count", "os"),
    [
        (
            "Connect to 25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running",
            25,
            ["windows"],
        ),
        ("restart nginx on five servers in group 'Production Web'", 5, []),
        ("restart nginx on all 3 hosts in group 'Production Web'", 3, []),
        ("restart nginx on seventeen linux web servers in group 'Production Web'", 17, ["linux"]),
        ("restart iis on all Windows machines in group 'CIS servers'", None, ["windows"]),
        ("restart nginx on every host in group 'Production Web'", None, []),
        ("restart nginx on all servers in group 'Production Web'", None, []),
        ("restart iis on win servers", None, ["windows"]),
        ("restart nginx on the rhel host web01", None, ["linux"]),
        ("restart nginx on hosts running ubuntu in group 'Production Web'", None, ["linux"]),
        ("restart iis on Windows in group 'CIS servers'", None, ["windows"]),
        ("install docker on ubuntu", None, ["linux"]),
        # A release number next to the OS word is not how many hosts.
        ("restart iis on all Windows 2019 servers in group 'CIS servers'", None, ["windows"]),
        ("restart nginx on 2 debian nodes web01 and web02", 2, ["linux"]),
    ],
)
def test_a_request_states_how_many_hosts_and_which_os(
    request_text: str, count: int | None, os: list[str]
) -> None:
    targets = read(request_text).targets
    assert (targets.count, targets.os) == (count, os)


@pytest.mark.parametrize(
    "request_text",
    [
        # The OS word is not said of the hosts: of a service, or a tool that runs on either family.
        "stop the windows update service on servers in group 'CIS servers'",
        "restart nginx with systemd on servers in group 'Production Web' in production",
        "stop 'x' service in group 'Windows servers'",  # inside a quoted name it is the name
    ],
)
def test_an_os_word_not_said_of_the_hosts_states_no_os(request_text: str) -> None:
    assert read(request_text).targets.os == []


def test_both_families_said_are_kept_in_the_order_said() -> None:
    intent = read("restart nginx on linux servers and iis on windows servers in group 'Production Web'")
    assert intent.targets.os == ["linux", "windows"]


def test_every_os_word_is_one_the_reader_takes_as_that_platform() -> None:
    # Otherwise "on suse" would be read as a host named suse while this module says "Linux".
    assert all(PLATFORMS.get(word) == family for word, family in HOST_OS_WORDS.items())


@given(
    number=st.one_of(
        st.integers(1, 999_999).map(lambda n: (str(n), n)), st.sampled_from(sorted(WORDS.items()))
    ),
    every=st.sampled_from(["", "all ", "the "]),
    os_word=st.sampled_from(["", *HOST_OS_WORDS]),
    describing=st.sampled_from(["", "web ", "database "]),
    noun=st.sampled_from(sorted(HOST_NOUNS_PLURAL)),
)
def test_any_stated_count_and_os_before_a_host_noun_is_read(
    number: tuple[str, int], every: str, os_word: str, describing: str, noun: str
) -> None:
    said, value = number
    gap = f"{os_word} " if os_word else ""
    targets = read(
        f"restart nginx on {every}{said} {gap}{describing}{noun} in group 'Production Web'"
    ).targets
    assert targets.count == value
    assert targets.os == ([HOST_OS_WORDS[os_word]] if os_word else [])
    assert targets.group == "Production Web"


@given(st.text(max_size=200))
def test_stated_os_reads_any_text_into_families_only(text: str) -> None:
    found = stated_os(tokenize(text))
    assert set(found) <= {"linux", "windows"} and len(found) == len(set(found))


def test_number_words_reach_twenty() -> None:
    assert all(NUMBER_WORDS[word] == value for word, value in WORDS.items())


# -- refusing -----------------------------------------------------------------------------------


def test_a_count_the_group_contradicts_is_refused_with_both_numbers_and_the_group() -> None:
    hosts = [host(f"cis{n:02}", "windows") for n in range(1, 25)]
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            "Connect to 25 Windows systems",
            counts=[StatedCount(25)],
            os=["windows"],
            hosts=hosts,
            group="cis",
        )
    assert "says 25 hosts, but group cis has 24" in caught.value.message
    assert caught.value.hint is not None and "opsmith inventory show cis" in caught.value.hint
    assert "correct the number" in caught.value.hint


def test_a_count_of_named_hosts_counts_each_host_once() -> None:
    named = [host("web01"), host("web02"), host("web01")]
    refuse_contradicted("restart nginx on 2 hosts", counts=[StatedCount(2)], os=[], hosts=named, group=None)
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            "restart nginx on 3 hosts", counts=[StatedCount(3)], os=[], hosts=named, group=None
        )
    assert "says 3 hosts, but names 2 (web01, web02)" in caught.value.message


def test_an_os_some_hosts_do_not_run_is_refused_naming_five_of_them() -> None:
    hosts = [host("win01", "windows"), *(host(f"lin{n}") for n in range(1, 8))]
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            "stop x on Windows servers", counts=[], os=["windows"], hosts=hosts, group="mixed"
        )
    message = caught.value.message
    assert "says Windows hosts, but 7 of the 8 hosts of group mixed run another OS" in message
    assert "lin1 (Linux), lin2 (Linux), lin3 (Linux), lin4 (Linux), lin5 (Linux) and 2 more" in message
    assert "lin6" not in message and "win01" not in message
    assert caught.value.hint is not None
    assert (
        "a group with only the Windows hosts" in caught.value.hint and "drop the OS word" in caught.value.hint
    )


def test_both_contradictions_are_said_at_once() -> None:
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            "x", counts=[StatedCount(3)], os=["windows"], hosts=[host("a"), host("b")], group="g"
        )
    assert "says 3 hosts, but group g has 2; and says Windows hosts" in caught.value.message


def test_hosts_that_agree_are_not_refused() -> None:
    hosts = [host("a", "windows"), host("b", "linux")]
    refuse_contradicted("x", counts=[StatedCount(2)], os=["windows", "linux"], hosts=hosts, group="g")
    refuse_contradicted("x", counts=[], os=[], hosts=hosts, group="g")


# -- every count, each with its OS ----------------------------------------------------------------


def counts(text: str) -> list[StatedCount]:
    return stated_counts(tokenize(text))


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("restart nginx on 3 linux and 2 windows servers in group 'Mixed'", [(3, "linux"), (2, "windows")]),
        ("restart nginx on 3 Linux servers and 2 Windows hosts in group 'M'", [(3, "linux"), (2, "windows")]),
        ("restart nginx on 3 linux servers, 2 windows servers in group 'M'", [(3, "linux"), (2, "windows")]),
        ("restart nginx on three ubuntu, one rhel and 2 win servers", [(4, "linux"), (2, "windows")]),
        ("restart nginx on 25 servers in group 'Mixed'", [(25, None)]),
        ("restart nginx on 5 servers (3 linux and 2 windows) in group 'Mixed'", [(5, None)]),
        ("Connect to 25 Windows 2019 systems in group 'CIS servers'", [(25, "windows")]),
        ("restart nginx on seventeen linux web servers", [(17, "linux")]),
        ("restart 2 services on 5 servers", [(5, None)]),
        ("scale web to 5 replicas on 3 nodes", [(3, None)]),
        # A release, not a count; and no host noun, no count.
        ("restart iis on all Windows 2019 servers in group 'CIS servers'", []),
        ("restart nginx on 3 linux and restart iis", []),
        # A list with a part that says no OS cannot be checked against an inventory: no count at all.
        ("restart nginx on 3 web and 2 db servers", []),
        ("stop 'x' service in group '3 windows servers'", []),
    ],
)  # fmt: skip
def test_every_count_is_read_with_the_os_said_with_it(
    request_text: str, expected: list[tuple[int, OsFamily | None]]
) -> None:
    assert counts(request_text) == [StatedCount(count, os) for count, os in expected]


def test_a_request_with_counts_per_os_plans_as_its_group_has_them() -> None:
    intent = read("restart nginx on 3 linux and 2 windows servers in group 'Production Web'")
    assert intent.targets.group == "Production Web"
    mixed = [host(f"l{n}") for n in range(3)] + [host(f"w{n}", "windows") for n in range(2)]
    refuse_contradicted(
        intent.request, counts=counts(intent.request), os=intent.targets.os, hosts=mixed, group="mixed"
    )
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            intent.request,
            counts=counts(intent.request),
            os=intent.targets.os,
            hosts=[*mixed, host("l9")],
            group="mixed",
        )
    message = caught.value.message
    assert "says 3 Linux hosts and 2 Windows hosts, but group mixed has 6 (4 Linux and 2 Windows)" in message
    assert caught.value.hint is not None and "correct the numbers" in caught.value.hint


def test_an_os_count_of_named_hosts_names_them() -> None:
    with pytest.raises(IntentError) as caught:
        refuse_contradicted(
            "x",
            counts=[StatedCount(2, "windows")],
            os=[],
            hosts=[host("a"), host("b", "windows")],
            group=None,
        )
    assert "says 2 Windows hosts, but names 2, 1 Windows and 1 Linux (a, b)" in caught.value.message


FAMILIES: list[OsFamily] = ["linux", "windows"]
OS_WORD = {"linux": ["linux", "ubuntu", "rhel", "Linux"], "windows": ["windows", "Windows", "win"]}


@st.composite
def stated_requests(draw: st.DrawFn) -> tuple[str, dict[OsFamily | None, int]]:
    """A request stating counts (per OS, or a total) in the ways people write them, and what it states."""
    families = draw(st.lists(st.sampled_from(FAMILIES), min_size=0, max_size=2, unique=True))
    total = draw(st.none() | st.integers(0, 12)) if families else draw(st.integers(0, 12))
    stated: dict[OsFamily | None, int] = {os: draw(st.integers(0, 12)) for os in families}
    noun = draw(st.sampled_from(sorted(HOST_NOUNS_PLURAL)))
    parts = [(n, draw(st.sampled_from(OS_WORD[os]))) for os, n in stated.items()]
    shared = draw(st.booleans())
    if not parts:
        said = f"{total} {noun}"
    elif shared:  # "3 linux and 2 windows servers"
        said = " and ".join(f"{n} {word}" for n, word in parts) + f" {noun}"
    else:  # "3 linux servers and 2 windows hosts"
        said = " and ".join(f"{n} {word} {noun}" for n, word in parts)
    text = f"restart nginx on {said} in group 'Production Web'"
    if total is not None and parts:
        text += f", and check all {total} {noun}"
        stated[None] = total
    elif total is not None:
        stated[None] = total
    return text, stated


@given(request=stated_requests(), oses=st.lists(st.sampled_from(FAMILIES), max_size=14))
def test_a_request_is_refused_exactly_when_a_stated_count_or_os_is_not_the_inventorys(
    request: tuple[str, dict[OsFamily | None, int]], oses: list[OsFamily]
) -> None:
    text, stated = request
    hosts = [host(f"h{n:02}", os) for n, os in enumerate(oses)]
    have: dict[OsFamily | None, int] = {None: len(oses), **{os: oses.count(os) for os in FAMILIES}}
    said_os = {os for os in stated if os is not None}
    wrong = {os: n for os, n in stated.items() if n != have[os]}
    other_os = bool(said_os) and any(os not in said_os for os in oses)
    assert {c.os: c.count for c in counts(text)} == stated
    try:
        refuse_contradicted(text, counts=counts(text), os=read(text).targets.os, hosts=hosts, group="g")
    except IntentError as refused:
        assert wrong or other_os
        if wrong:
            assert f"but group g has {len(oses)}" in refused.message
            for os in said_os:  # what the inventory has of every OS said
                assert f"{have[os]} {OS_NAMES[os]}" in refused.message
    else:
        assert not wrong and not other_os


@given(st.integers(1, 40), st.integers(1, 40))
def test_the_intent_counts_every_host_said_with_every_os(linux: int, windows: int) -> None:
    # `opsmith intent --json` shows what the planner checks: the total, and each OS said.
    targets = read(f"restart nginx on {linux} linux and {windows} windows servers in group mixed").targets
    assert targets.count == linux + windows
    assert set(targets.os) == {"linux", "windows"}

"""What a request says about its hosts, and the check of that against the hosts it resolves to.

"Connect to 25 Windows systems in group 'CIS servers'" states two things besides the group: how
many hosts (`stated_counts`; the planner puts the total it checked in `Targets.count`) and which OS
family they run (`stated_os`, into `Targets.os`). An OS word counts as said of the hosts when it stands
before a host noun ("25 Windows systems", "all Linux web servers", "the rhel host"), after one
with "running" ("hosts running Windows"), or alone after "on"/"across" ("restart iis on
Windows"). Elsewhere ("the windows update service") it says nothing about the hosts.

Counts are read here too (`stated_counts`), every one of them with the OS said with it: "3 linux
and 2 windows servers" and "3 Linux servers and 2 Windows hosts" state 3 Linux hosts and 2 Windows
ones; "25 servers", with no OS, states the total. A number right after an OS word is its release
("Windows 2019 servers"), not a count.

`refuse_contradicted` refuses a request whose words disagree with its hosts: a count that is not
the number of hosts (of its OS, when one is said with it), an OS family some of them do not run.
Each count is checked on its own: "3 web servers and 2 db servers" of a group of 5 is refused,
since opsmith cannot tell which hosts are the web ones. It refuses rather than narrowing
("Windows systems in group X" acting on only the Windows hosts of X) because narrowing silently
changes which hosts run, and it would hide the likelier cause: a host in the wrong group, or an
inventory that has a host's OS wrong. A person who means a part of a group says so with a group of
its own; one who means the whole group drops the word. Linux distributions are read as the
family only: the inventory records no distribution to check "ubuntu" against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from opsmith.domain.errors import IntentError
from opsmith.domain.hosts import Host, OsFamily
from opsmith.domain.intent_text import Token, is_number, shorten
from opsmith.domain.intent_words import (
    CONNECTORS,
    HOST_NOUNS_PLURAL,
    HOST_NOUNS_SINGULAR,
    NUMBER_WORDS,
    SLOTS,
    VERBS,
)

# Names of operating systems only: tool words the reader also takes as a platform ("powershell",
# "systemd") run on either family, so they say nothing about the hosts.
HOST_OS_WORDS: Final[dict[str, OsFamily]] = {
    "windows": "windows",
    "win": "windows",
    "linux": "linux",
    "ubuntu": "linux",
    "debian": "linux",
    "rhel": "linux",
    "redhat": "linux",
    "centos": "linux",
    "fedora": "linux",
    "rocky": "linux",
}
OS_NAMES: Final[dict[OsFamily, str]] = {"windows": "Windows", "linux": "Linux"}
HOST_NOUNS: Final[frozenset[str]] = HOST_NOUNS_PLURAL | HOST_NOUNS_SINGULAR
# At most this many words between an OS word and its host noun ("Windows web servers": one).
MAX_BETWEEN = 2
LOCATION_WORDS: Final[frozenset[str]] = frozenset({"on", "across"})
VERB_WORDS: Final[frozenset[str]] = frozenset(word for phrase in VERBS for word in phrase)
SHOWN_HOSTS = 5  # hosts an error names one by one
# What joins the parts of "3 linux, 2 windows and 1 rhel servers", which share the noun.
LIST_WORDS: Final[frozenset[str]] = frozenset({",", "and", "plus"})


@dataclass(frozen=True)
class StatedCount:
    """A head count the request states: of the hosts running `os`, or of all of them (None)."""

    count: int
    os: OsFamily | None = None


def stated_counts(tokens: Sequence[Token]) -> list[StatedCount]:
    """Every head count the request states, each with the OS family said with it, in the order said."""
    found: list[StatedCount] = []
    index = 0
    while index < len(tokens):
        counted, after = _counts_at(tokens, index)
        found += counted
        index = max(after, index + 1)
    return found


def stated_os(tokens: Sequence[Token]) -> list[OsFamily]:
    """The OS families the request says its hosts run, each once, in the order said."""
    found: list[OsFamily] = []
    for index, token in enumerate(tokens):
        family = _os_word(token)
        if family is not None and family not in found and _said_of_hosts(tokens, index):
            found.append(family)
    return found


def refuse_contradicted(
    request: str,
    *,
    counts: Sequence[StatedCount],
    os: Sequence[OsFamily],
    hosts: Sequence[Host],
    group: str | None,
) -> None:
    """IntentError if the request's counts or OS words disagree with the hosts it resolved to (those
    of `group`, or the hosts it named when group is None): a count that is not the number of those
    hosts (running its OS, if it has one), or a host running an OS family not said (in `os` or with
    a count). Every disagreement in one error."""
    unique = list({host.name: host for host in hosts}.values())
    stated = list(dict.fromkeys(counts))
    os = list(dict.fromkeys([*os, *(said.os for said in stated if said.os is not None)]))
    problems: list[tuple[str, str]] = []
    if any(said.count != _number_of(said.os, unique) for said in stated):
        problems.append(_wrong_counts(stated, unique, group))
    if os:
        others = [host for host in unique if host.os not in os]
        if others:
            problems.append(_wrong_os(os, others, len(unique), group))
    if problems:
        raise IntentError(
            f'"{shorten(request)}" ' + "; and ".join(message for message, _ in problems),
            hint="; ".join(hint for _, hint in problems),
        )


def _os_word(token: Token) -> OsFamily | None:
    if token.quoted or token.group or token.boundary:
        return None
    return HOST_OS_WORDS.get(token.low)


def _said_of_hosts(tokens: Sequence[Token], index: int) -> bool:
    if _before_host_noun(tokens, index):
        return True
    before = _low(tokens, index - 1)
    if before == "running" and _low(tokens, index - 2) in HOST_NOUNS:
        return True  # "hosts running Windows"
    return before in LOCATION_WORDS and _ends_phrase(tokens, index + 1)  # "on Windows"


def _before_host_noun(tokens: Sequence[Token], index: int) -> bool:
    for offset in range(1, MAX_BETWEEN + 2):
        token = tokens[index + offset] if index + offset < len(tokens) else None
        if token is None or token.quoted or token.group or token.boundary:
            return False
        if token.low in HOST_NOUNS:
            return True
        if token.low in SLOTS or token.low in CONNECTORS or token.low in VERB_WORDS:
            return False
    return False


def _ends_phrase(tokens: Sequence[Token], index: int) -> bool:
    if index >= len(tokens) or tokens[index].boundary:
        return True
    low = tokens[index].low
    return not tokens[index].quoted and (low in SLOTS or low in CONNECTORS)


def _low(tokens: Sequence[Token], index: int) -> str | None:
    if index < 0 or index >= len(tokens) or tokens[index].quoted or tokens[index].boundary:
        return None
    return tokens[index].low


def _counts_at(tokens: Sequence[Token], index: int) -> tuple[list[StatedCount], int]:
    """The counts stated from tokens[index] on, and the index after them; nothing if no count starts
    there. "3 linux and 2 windows servers" is a list sharing one noun: a count per OS (those of one
    family added up: "3 ubuntu and 1 rhel servers" are 4 Linux hosts). A list with a part that says
    no OS ("3 web and 2 db servers") states no count opsmith can check, and is skipped whole."""
    if _number(tokens, index) is None or _low(tokens, index - 1) in HOST_OS_WORDS:
        return [], index
    parts: list[StatedCount] = []
    at = index
    while True:
        value = _number(tokens, at)
        if value is None:
            return [], index
        item, at = _count_item(tokens, at + 1, value)
        if item is None:
            return [], index
        said, noun = item
        parts.append(said)
        if noun:
            if len(parts) > 1 and any(part.os is None for part in parts):
                return [], at
            added: dict[OsFamily | None, int] = {}
            for part in parts:
                added[part.os] = added.get(part.os, 0) + part.count
            return [StatedCount(count, os) for os, count in added.items()], at
        while at < len(tokens) and tokens[at].low in LIST_WORDS and not tokens[at].quoted:
            at += 1


def _count_item(tokens: Sequence[Token], at: int, value: int) -> tuple[tuple[StatedCount, bool] | None, int]:
    """After a number: (the count, whether its host noun came), or None if it is not a head count."""
    family: OsFamily | None = None
    between = 0
    while at < len(tokens):
        token = tokens[at]
        if token.quoted or token.group or (token.boundary and token.low != ","):
            return None, at
        low = token.low
        if low in HOST_NOUNS:
            return (StatedCount(value, family), True), at + 1
        if low in LIST_WORDS:
            return ((StatedCount(value, family), False) if _next_number(tokens, at) else None), at
        if low in HOST_OS_WORDS and family is None:
            family = HOST_OS_WORDS[low]
        elif is_number(low) and _low(tokens, at - 1) in HOST_OS_WORDS:
            pass  # "25 Windows 2019 servers": the release
        elif low in SLOTS or low in CONNECTORS or low in VERB_WORDS or _number(tokens, at) is not None:
            return None, at
        between += 1
        if between > MAX_BETWEEN + (1 if family is not None else 0):
            return None, at
        at += 1
    return None, at


def _next_number(tokens: Sequence[Token], at: int) -> bool:
    while at < len(tokens) and tokens[at].low in LIST_WORDS and not tokens[at].quoted:
        at += 1
    return _number(tokens, at) is not None


def _number(tokens: Sequence[Token], index: int) -> int | None:
    if index < 0 or index >= len(tokens):
        return None
    token = tokens[index]
    if token.quoted or token.group or token.boundary:
        return None
    if is_number(token.low):
        return int(token.low)
    return NUMBER_WORDS.get(token.low)


def _number_of(os: OsFamily | None, hosts: Sequence[Host]) -> int:
    return len(hosts) if os is None else sum(1 for host in hosts if host.os == os)


def _wrong_counts(stated: Sequence[StatedCount], hosts: Sequence[Host], group: str | None) -> tuple[str, str]:
    said = " and ".join(_said(count) for count in stated)
    families = [count.os for count in stated if count.os is not None]
    families += sorted({host.os for host in hosts} - set(families))
    by_os = " and ".join(f"{_number_of(os, hosts)} {OS_NAMES[os]}" for os in families)
    by_os = by_os if any(count.os is not None for count in stated) else ""
    number = "number" if len(stated) == 1 else "numbers"
    if group is not None:
        return (
            f"says {said}, but group {group} has {len(hosts)}" + (f" ({by_os})" if by_os else ""),
            f"correct the {number} in the request or leave {'it' if len(stated) == 1 else 'them'} out,"
            f" or fix the group: opsmith inventory show {group}",
        )
    return (
        f"says {said}, but names {len(hosts)}"
        + (f", {by_os}" if by_os else "")
        + f" ({', '.join(h.name for h in hosts)})",
        f"correct the {number} in the request or leave {'it' if len(stated) == 1 else 'them'} out,"
        " or name every host it is about",
    )


def _said(count: StatedCount) -> str:
    if count.os is None:
        return _hosts(count.count)
    return f"{count.count} {OS_NAMES[count.os]} host{'' if count.count == 1 else 's'}"


def _wrong_os(
    os: Sequence[OsFamily], others: Sequence[Host], total: int, group: str | None
) -> tuple[str, str]:
    said = " or ".join(OS_NAMES[family] for family in os)
    listed = ", ".join(f"{host.name} ({OS_NAMES[host.os]})" for host in others[:SHOWN_HOSTS])
    more = f" and {len(others) - SHOWN_HOSTS} more" if len(others) > SHOWN_HOSTS else ""
    where = f"hosts of group {group}" if group is not None else "hosts it names"
    run = "runs" if len(others) == 1 else "run"
    message = f"says {said} hosts, but {len(others)} of the {total} {where} {run} another OS: {listed}{more}"
    if group is not None:
        hint = (
            f"name a group with only the {said} hosts, or drop the OS word to act on every host of {group};"
            f" if the inventory has a host's OS wrong, set its opsmith_os (opsmith inventory show {group})"
        )
    else:
        hint = (
            f"name only {said} hosts, or drop the OS word;"
            " if the inventory has a host's OS wrong, set its opsmith_os"
        )
    return message, hint


def _hosts(count: int) -> str:
    return f"{count} host{'' if count == 1 else 's'}"

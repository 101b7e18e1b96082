"""What a request says about its hosts, and the check of that against the hosts it resolves to.

"Connect to 25 Windows systems in group 'CIS servers'" states two things besides the group: how
many hosts (read by the intent reader into `Targets.count`) and which OS family they run (read
here, `stated_os`, into `Targets.os`). An OS word counts as said of the hosts when it stands
before a host noun ("25 Windows systems", "all Linux web servers", "the rhel host"), after one
with "running" ("hosts running Windows"), or alone after "on"/"across" ("restart iis on
Windows"). Elsewhere ("the windows update service") it says nothing about the hosts.

`refuse_contradicted` refuses a request whose words disagree with its hosts: a count that is not
the number of hosts, an OS family some of them do not run. It refuses rather than narrowing
("Windows systems in group X" acting on only the Windows hosts of X) because narrowing silently
changes which hosts run, and it would hide the likelier cause: a host in the wrong group, or an
inventory that has a host's OS wrong. A person who means a part of a group says so with a group of
its own; one who means the whole group drops the word. Linux distributions are read as the
family only: the inventory records no distribution to check "ubuntu" against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from opsmith.domain.errors import IntentError
from opsmith.domain.hosts import Host, OsFamily
from opsmith.domain.intent_text import Token, shorten
from opsmith.domain.intent_words import CONNECTORS, HOST_NOUNS_PLURAL, HOST_NOUNS_SINGULAR, SLOTS, VERBS

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


def stated_os(tokens: Sequence[Token]) -> list[OsFamily]:
    """The OS families the request says its hosts run, each once, in the order said."""
    found: list[OsFamily] = []
    for index, token in enumerate(tokens):
        family = _os_word(token)
        if family is not None and family not in found and _said_of_hosts(tokens, index):
            found.append(family)
    return found


def refuse_contradicted(
    request: str, *, count: int | None, os: Sequence[OsFamily], hosts: Sequence[Host], group: str | None
) -> None:
    """IntentError if the request's count or OS words disagree with the hosts it resolved to (those
    of `group`, or the hosts it named when group is None); both disagreements at once, if both."""
    unique = list({host.name: host for host in hosts}.values())
    problems: list[tuple[str, str]] = []
    if count is not None and count != len(unique):
        problems.append(_wrong_count(count, unique, group))
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


def _wrong_count(count: int, hosts: Sequence[Host], group: str | None) -> tuple[str, str]:
    if group is not None:
        return (
            f"says {_hosts(count)}, but group {group} has {len(hosts)}",
            "correct the number in the request or leave it out,"
            f" or fix the group: opsmith inventory show {group}",
        )
    return (
        f"says {_hosts(count)}, but names {len(hosts)} ({', '.join(h.name for h in hosts)})",
        "correct the number in the request or leave it out, or name every host it is about",
    )


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

"""What a name in a request is: an application, a group, a host, a service, a package...

A known application name, a quoted group, a marker ("'x' service", "process y", "host z"), an
.exe suffix decide first; then the slot a preposition opened ("on web-01" is a host, "in
'Web'" a group); then the clause's action: the unnamed object of a deploy is an application,
of a restart on hosts a service, of an install a package. Every name is checked to be plain
before it is kept (`require_name`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsmith.domain.intent_clauses import Clause, Known
from opsmith.domain.intent_text import Token, hostlike, is_ipv4, require_name, require_path
from opsmith.domain.intent_words import (
    APP_ACTIONS,
    HOST_NOUNS_PLURAL,
    HOST_NOUNS_SINGULAR,
    MARKERS,
    PLATFORMS,
    PROCESS_SUFFIXES,
)

# Actions whose unnamed object on hosts is a package rather than a service.
PACKAGE_ACTIONS = frozenset({"install", "update"})
MAX_SUGGESTED = 25  # unknown names that get nearest-name suggestions
IGNORE = "ignore"  # a name's kind when the reader should let it be


@dataclass
class Reading:
    """Everything the reader found, in the order found; intent.py turns it into an Intent."""

    actions: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    unknown: list[tuple[str, str, list[str]]] = field(default_factory=list)  # name, kind, nearest
    app_reference: bool = False
    environments: list[tuple[int, int, str]] = field(default_factory=list)  # rank, order, environment
    platforms: list[str] = field(default_factory=list)
    urgency: str = "normal"
    groups: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    count: int | None = None
    lists: dict[str, list[str]] = field(default_factory=dict)  # services, processes, packages, ...
    values: dict[str, Any] = field(default_factory=dict)  # replicas, version, strategy, ...
    # Continuations whose first word could not be placed: (part's first, that word, part's last).
    unplaced: list[tuple[Token, Token, Token]] = field(default_factory=list)
    # Per clause, in order: the applications it names, and whether it refers to one ("it").
    clause_subjects: list[tuple[list[str], bool]] = field(default_factory=list)

    def add(self, key: str, value: str) -> None:
        items = self.lists.setdefault(key, [])
        if value not in items:
            items.append(value)

    def set_once(self, key: str, value: Any) -> None:
        self.values.setdefault(key, value)


@dataclass
class Cursor:
    """Where the reader stands in one clause."""

    clause: Clause
    index: int = 0
    slot: str = "object"
    filled: bool = False
    consumed: set[int] = field(default_factory=set)
    ignored: set[int] = field(default_factory=set)  # names let be: neither kept nor refused

    @property
    def token(self) -> Token:
        return self.clause.tokens[self.index]

    def near(self, offset: int) -> Token | None:
        at = self.index + offset
        return self.clause.tokens[at] if 0 <= at < len(self.clause.tokens) else None

    def near_low(self, offset: int) -> str:
        token = self.near(offset)
        return token.low if token is not None and not token.quoted and not token.group else ""


class NameReader:
    """The part of the reader that decides what names are; Reader adds everything else."""

    def __init__(self, known: Known, tokens: list[Token]) -> None:
        self.known = known
        self.reading = Reading()
        self.host_context = _host_context(tokens)

    def _quoted(self, cur: Cursor) -> None:
        text = cur.token.text
        if "/" in text or "\\" in text:
            self.reading.add("paths", require_path(text, allow_spaces=True))
            return
        groupish = {"group", "groups"}
        marked = self._marked_kind(cur)
        if marked in ("services", "processes", "packages", "namespace"):
            self._name(text, cur)  # "'dataprocessor' service": the marker decides
        elif (
            cur.near_low(-1) in groupish
            or cur.near_low(1) in groupish
            or cur.slot == "scope"
            or " " in text
            or text.lower() in self.known.groups
        ):
            self._group(require_name(text, "group", allow_spaces=True), cur)
        elif text.lower() in self.known.applications:
            self.reading.subjects.append(self.known.applications[text.lower()])
            cur.filled = True
        else:
            self._name(text, cur)

    def _group(self, text: str, cur: Cursor) -> None:
        cur.filled = True
        known = self.known.groups.get(text.lower())
        if known is not None:
            self.reading.groups.append(known)
        elif self.known.groups:
            self._unknown(text, "group")
        else:
            self.reading.groups.append(text)

    def _name(self, text: str, cur: Cursor) -> None:
        kind = (
            self._marked_kind(cur)
            or ("processes" if text.lower().endswith(PROCESS_SUFFIXES) else None)
            or self._slot_kind(text, cur)
            or self._object_kind(text, cur)
        )
        if kind == IGNORE:
            cur.ignored.add(cur.index)
            return
        what = {"processes": "process", "services": "service", "packages": "package", "files": "file"}
        name = require_name(text, what.get(kind, kind))
        cur.filled = True
        if kind == "host":
            self._host(name, cur)
        elif kind == "group":
            self._group(name, cur)
        elif kind == "application":
            self._unknown(name, "application")
        elif kind in ("namespace", "version"):
            self.reading.set_once(kind, name)
        else:
            self.reading.add(kind, name)

    def _marked_kind(self, cur: Cursor) -> str | None:
        """'x' service, process y, group z, host web-01, web-01 server, namespace ns."""
        after = MARKERS.get(cur.near_low(1))
        if after is not None and after != "host":
            return _plural(after)
        if cur.near_low(1) in HOST_NOUNS_SINGULAR:
            return "host"
        before = MARKERS.get(cur.near_low(-1))
        return _plural(before) if before is not None else None

    def _slot_kind(self, text: str, cur: Cursor) -> str | None:
        """What a name is by the preposition before it; None when the slot does not say."""
        slot, action = cur.slot, cur.clause.action
        if slot in ("location", "source"):
            return "host" if not cur.filled or hostlike(text) else IGNORE
        if slot == "dest":
            if action == "copy" or hostlike(text):
                return "host"
            return "version" if action in ("update", "install", "rollback") and not cur.filled else IGNORE
        if slot == "scope":
            return "group" if not cur.filled else IGNORE
        if slot == "option":
            return "options"
        if slot == "aside":
            return IGNORE
        return None

    def _object_kind(self, text: str, cur: Cursor) -> str:
        """What the object of the clause's action is when nothing else said."""
        action = cur.clause.action
        if action is None:
            return IGNORE  # a note or bare context: only strongly marked names count
        if action in APP_ACTIONS:
            return "application"
        looks_like_app = bool(self.known.nearest(text, "application", cutoff=0.75))
        if looks_like_app and not self.host_context:
            return "application"
        if action in PACKAGE_ACTIONS or (action == "delete" and self.host_context):
            return "packages"
        if action == "delete":
            return "application"
        if action == "copy":
            return "files"
        return "services"

    def _host(self, name: str, cur: Cursor) -> None:
        if name not in self.reading.hosts:
            self.reading.hosts.append(name)
        cur.filled = True

    def _unknown(self, name: str, kind: str) -> None:
        unknown = self.reading.unknown
        if any(n.lower() == name.lower() and k == kind for n, k, _ in unknown):
            return
        # Past a few dozen unknown names the request is not a request; stay fast, skip suggestions.
        nearest = self.known.nearest(name, kind) if len(unknown) < MAX_SUGGESTED else []
        unknown.append((name, kind, nearest))


def _plural(kind: str) -> str:
    return {"service": "services", "process": "processes", "package": "packages"}.get(kind, kind)


def _host_context(tokens: list[Token]) -> bool:
    """Does the request talk about hosts (then unnamed objects are services and packages)?"""
    for token in tokens:
        low = token.low
        if token.group or (token.quoted and " " in token.text) or is_ipv4(token.text):
            return True
        if not token.quoted and (
            low in HOST_NOUNS_PLURAL or low in HOST_NOUNS_SINGULAR or low in ("group", "groups")
        ):
            return True
        if not token.quoted and PLATFORMS.get(low) in ("windows", "linux"):
            return True
    return False

"""The fleet's inventory: groups of hosts, their variables, and the hosts a request targets.

Shape. An inventory holds declared groups (`Group`: child groups, direct hosts and vars; a group
never names its parents, they are derived) and hosts as declared (`HostEntry`: the connection
fields set on the host itself, and its own vars). Two groups always exist: `all`, which holds
every host, and `ungrouped`, which holds the hosts in no other group. A group that is no other
group's child is a child of `all`. Groups nest to any depth; a cycle is refused.

Variables, by Ansible's rule. A host's variables are merged from every group it is in, directly
or through nesting, and then its own:

1. the groups are ordered by depth (`all` is 0, its children 1, theirs 2...; a group reached by
   several paths takes its deepest), then by `ansible_group_priority` (default 1), then by name;
2. they are applied in that order, each overriding the ones before: `all` < outer < inner, so a
   child group's value wins over its parent's, and of two groups at one depth (say `web` and
   `eu`, siblings both holding the host) the one later in the alphabet wins;
3. the host's own vars override every group's.

A value is replaced whole (a dict is not merged key by key), as Ansible does by default.

Connection fields. Each field of the resolved `Host` is the one its entry sets (opsmith.yaml's
inline shape can set them), else it is derived from the merged vars:

    address     ansible_host, else the host's name
    port        ansible_port (a number, or a string of digits), else none (22 for ssh, else 5986)
    connection  ansible_connection: ssh | winrm | psrp, else ssh
    os          opsmith_os: linux | windows; else windows when the connection is winrm or psrp
    user        ansible_user
    credential  opsmith_credential: the name of a secret in opsmith's vault

No secret is ever part of an inventory: `ansible_password`, any other `ansible_*pass*` variable,
and any variable whose name looks secret (token, password, private_key...) is refused with the
way out (put it in the vault, name it with `opsmith_credential`). `opsmith_credential` only names
a secret, so it is allowed.

Names. `find_group` resolves what a person wrote ("Production Web") to a group: the exact name
first, then the name with case, spaces, '_' and '-' ignored (`production_web`). Two groups whose
names differ only so are refused, so that second match is never ambiguous.

Pure: no I/O. The parsers of Ansible's formats are in `opsmith.domain.inventory_ansible`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from opsmith.domain.audit import canonical_json
from opsmith.domain.errors import InventoryError, UnknownGroupError, UsageError
from opsmith.domain.hosts import Connection, Host, OsFamily
from opsmith.domain.redaction import is_secret_key

__all__ = [
    "ALL",
    "MAX_HOSTS",
    "MAX_PATTERN_HOSTS",
    "UNGROUPED",
    "Group",
    "HostEntry",
    "Inventory",
    "InventoryBuilder",
    "InventorySource",
    "check_variable",
    "expand_range",
    "natural_key",
    "normal_name",
]

ALL = "all"
UNGROUPED = "ungrouped"
MAX_PATTERN_HOSTS = 10_000  # one `web[1:N]` line: more is a typo far more often than a fleet
MAX_HOSTS = 100_000  # a whole inventory; it is loaded, hashed and resolved whole at every use

_GROUPS_HINT = "`opsmith inventory groups` lists the groups"
_SECRET_HINT = (
    "store the secret in opsmith's vault (`opsmith secrets`) and name it on the host or group"
    " with opsmith_credential=NAME"
)
# A group name as Ansible writes them, or as opsmith.yaml may ("Production Web").
_GROUP_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\- ]{0,126}[A-Za-z0-9_.\-])?")
# Host names, IPv4 and IPv6 addresses (a zone after '%').
_HOST_NAME = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_.:%\-]{0,253}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEPARATORS = re.compile(r"[\s_\-]+")
_DIGITS = re.compile(r"(\d+)")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_OLD_NAMES = {
    "ansible_ssh_host": "ansible_host",
    "ansible_ssh_port": "ansible_port",
    "ansible_ssh_user": "ansible_user",
}
_CONNECTIONS: dict[str, Connection] = {name: name for name in get_args(Connection)}
_OSES: dict[str, OsFamily] = {name: name for name in get_args(OsFamily)}


def normal_name(text: str) -> str:
    """A group name with case, spaces, '_' and '-' ignored: 'Production Web' -> 'production_web'."""
    return _SEPARATORS.sub("_", text.strip()).casefold()


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sorts web2 before web10 (runs of digits compare as numbers), then by the name itself."""
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


# -- host ranges ------------------------------------------------------------------------------------


def expand_range(pattern: str) -> list[str]:
    """The host names a pattern stands for, in order: `web[01:03]` -> web01, web02, web03.

    A range is `[start:end]` or `[start:end:step]`, both bounds numbers or both single letters of
    one case (`db[a:f]`); a bound with a leading zero pads every name to its width, and then both
    bounds need that width. Several ranges multiply (the first varies slowest). A pattern without
    brackets is itself. InventoryError says why a pattern is refused: a bound after the other,
    mixed letters and digits, a step below 1, more than MAX_PATTERN_HOSTS names.
    """
    literals = _RANGE.split(pattern)  # literal, range body, literal, range body, ..., literal
    for literal in literals[::2]:
        if "[" in literal or "]" in literal:
            raise InventoryError(
                f"host pattern {pattern!r} has an unmatched or nested bracket",
                hint="a range is written [start:end] or [start:end:step], e.g. web[01:20]",
            )
    ranges = [_range_values(body, pattern) for body in literals[1::2]]
    count = math.prod(len(values) for values in ranges)
    if count > MAX_PATTERN_HOSTS:
        raise InventoryError(
            f"host pattern {pattern!r} stands for {count:,} hosts, more than {MAX_PATTERN_HOSTS:,}",
            hint="check the range's bounds; split a fleet that large into several lines",
        )
    pieces: list[Iterable[str]] = []
    for index, literal in enumerate(literals[::2]):
        pieces.append((literal,))
        if index < len(ranges):
            pieces.append(ranges[index])
    return ["".join(combination) for combination in itertools.product(*pieces)]


@dataclass(frozen=True)
class _Numbers:
    """The names of a numeric range, made only when iterated (its size is checked first)."""

    values: range
    width: int

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[str]:
        return (f"{v:0{self.width}d}" for v in self.values)


def _range_values(body: str, pattern: str) -> _Numbers | list[str]:
    fields = body.split(":")
    if len(fields) not in (2, 3) or not all(fields):
        raise InventoryError(
            f"host pattern {pattern!r}: [{body}] is not a range",
            hint="a range is written [start:end] or [start:end:step], with both bounds, e.g. web[01:20]",
        )
    start, end = fields[0], fields[1]
    step = _step(fields[2] if len(fields) == 3 else "1", pattern)
    if start.isascii() and start.isdigit() and end.isascii() and end.isdigit():
        return _numbers(start, end, step, pattern)
    if _one_letter(start) and _one_letter(end) and start.islower() == end.islower():
        if start > end:
            raise _out_of_order(pattern, start, end)
        letters = string.ascii_lowercase if start.islower() else string.ascii_uppercase
        return list(letters[letters.index(start) : letters.index(end) + 1 : step])
    raise InventoryError(
        f"host pattern {pattern!r}: [{body}] mixes kinds of bounds",
        hint="both bounds are numbers ([1:20], [01:20]) or both single letters of one case ([a:f])",
    )


def _numbers(start: str, end: str, step: int, pattern: str) -> _Numbers:
    padded = any(len(bound) > 1 and bound.startswith("0") for bound in (start, end))
    if padded and len(start) != len(end):
        width = max(len(start), len(end))
        raise InventoryError(
            f"host pattern {pattern!r}: zero-padded bounds {start} and {end} differ in width",
            hint=f"give both bounds the same number of digits: [{start.zfill(width)}:{end.zfill(width)}]",
        )
    low, high = int(start), int(end)
    if low > high:
        raise _out_of_order(pattern, start, end)
    return _Numbers(range(low, high + 1, step), len(start) if padded else 0)


def _step(text: str, pattern: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InventoryError(
            f"host pattern {pattern!r}: step {text!r} is not a whole number of at least 1",
            hint="write the step as the third field, e.g. web[1:10:2]",
        )
    return int(text)


def _one_letter(text: str) -> bool:
    return len(text) == 1 and text in string.ascii_letters


def _out_of_order(pattern: str, start: str, end: str) -> InventoryError:
    return InventoryError(
        f"host pattern {pattern!r}: the range starts at {start}, after its end {end}",
        hint=f"write the smaller bound first: [{end}:{start}]",
    )


# -- variables --------------------------------------------------------------------------------------


def check_variable(name: object, value: Any, *, where: str) -> Any:
    """`value` as plain JSON data, or InventoryError when `name` may not be an inventory variable
    (a secret, an Ansible 1.x name) or `value` is not data. `where` says whose variable it is."""
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        raise InventoryError(
            f"{where}: {name!r} is not a variable name",
            hint="variable names are letters, digits and '_', not starting with a digit",
        )
    if name in _OLD_NAMES:
        raise InventoryError(f"{where}: {name} is Ansible 1.x's name", hint=f"write {_OLD_NAMES[name]}")
    if _is_secret(name):
        raise InventoryError(
            f"{where}: {name} is refused: opsmith keeps passwords, keys and tokens in its vault,"
            " never in the inventory",
            hint=_SECRET_HINT,
        )
    check = _INTERPRETED.get(name)
    if check is not None and value is not None and not check[0](value):
        raise InventoryError(f"{where}: {name}={value!r} {check[1]}", hint=check[2])
    return _plain(value, f"{where}: {name}")


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _is_port(value: Any) -> bool:
    number = _whole(value)
    return number is not None and 1 <= number <= 65535


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# The variables opsmith reads, and what each must be: (check, problem, hint). Checked where each is
# set, so that the error names the line and a resolved host can never be invalid.
_INTERPRETED: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "ansible_host": (
        _is_text,
        "is not a host name or address",
        "give the address, e.g. ansible_host=10.0.0.5",
    ),
    "ansible_port": (
        _is_port,
        "is not a port number (1-65535)",
        "give the port as a number: ansible_port=2222",
    ),
    "ansible_user": (_is_text, "is not a user name", "give the login name, e.g. ansible_user=deploy"),
    "ansible_connection": (
        lambda v: isinstance(v, str) and v.strip() in get_args(Connection),
        "is not a connection opsmith makes",
        "opsmith reaches hosts over ssh, winrm or psrp",
    ),
    "opsmith_os": (
        lambda v: isinstance(v, str) and v.strip() in get_args(OsFamily),
        "is not an OS family opsmith knows",
        "opsmith_os is linux or windows",
    ),
    "opsmith_credential": (_is_text, "is not a vault secret's name", "name a secret in opsmith's vault"),
    "ansible_group_priority": (
        lambda v: _whole(v) is not None,
        "is not a whole number",
        "higher wins among groups at one depth (default 1)",
    ),
}


def _is_secret(name: str) -> bool:
    if name == "opsmith_credential":
        return False  # the name of a vault secret, not a secret
    return (name.startswith("ansible_") and "pass" in name) or is_secret_key(name)


def _plain(value: Any, where: str) -> Any:
    # Stored as JSON and hashed: only what survives JSON unchanged (YAML's dates become text).
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_plain_key(k, where): _plain(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    raise InventoryError(
        f"{where}: a {type(value).__name__} value cannot be kept",
        hint="use text, numbers, booleans, lists and mappings",
    )


def _plain_key(key: object, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)  # as JSON would write it
    raise InventoryError(f"{where}: a mapping key {key!r} is not text", hint="quote the key")


# -- the model --------------------------------------------------------------------------------------


class Group(BaseModel):
    """A group as declared: its child groups, its direct hosts and its vars (never its parents).
    Names are kept unique and in natural order (web2 before web10)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    children: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("children", "hosts")
    @classmethod
    def _unique_sorted(cls, names: list[str]) -> list[str]:
        return sorted(set(names), key=natural_key)


class HostEntry(BaseModel):
    """A host as declared: the connection fields set on the host itself (None: not set here, derived
    from the merged vars) and its own vars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    os: OsFamily | None = None
    connection: Connection | None = None
    user: str | None = Field(default=None, min_length=1)
    credential: str | None = Field(default=None, min_length=1, description="name of a secret in the vault")
    vars: dict[str, Any] = Field(default_factory=dict)


class InventorySource(BaseModel):
    """Where the stored inventory came from: what was imported, its content hash, when and by whom."""

    model_config = ConfigDict(frozen=True)

    source: str
    hash: str
    imported_at: datetime
    imported_by: str
    groups: int = 0
    hosts: int = 0


@dataclass(frozen=True)
class _Index:
    """What is derived from the declarations once, at construction."""

    groups: dict[str, Group]  # every group, `all` and `ungrouped` as they are in effect
    parents: dict[str, list[str]]
    depth: dict[str, int]
    hosts: dict[str, Host] = field(default_factory=dict)  # resolved
    groups_of: dict[str, list[str]] = field(default_factory=dict)  # per host, in merge order


class Inventory(BaseModel):
    """Declared groups and host entries, validated whole at construction (names, nesting,
    variables, every host's connection fields); see the module docstring for the rules. Build a
    new one rather than `model_copy` it: what is derived is computed once, by validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    declared_groups: dict[str, Group] = Field(default_factory=dict)
    host_entries: dict[str, HostEntry] = Field(default_factory=dict)
    _index: _Index = PrivateAttr()

    @model_validator(mode="after")
    def _valid(self) -> Inventory:
        _check_names(self)
        _check_references(self)
        _check_cycles(self.declared_groups)
        for group in self.declared_groups.values():
            for key, value in group.vars.items():
                check_variable(key, value, where=f"group {group.name!r}")
        for entry in self.host_entries.values():
            for key, value in entry.vars.items():
                check_variable(key, value, where=f"host {entry.name!r}")
        self._index = _index(self)
        return self

    # -- groups

    def groups(self) -> list[Group]:
        """Every group as it is in effect: `all`, `ungrouped`, then the others by name."""
        rest = sorted((n for n in self._index.groups if n not in (ALL, UNGROUPED)), key=natural_key)
        return [self._index.groups[name] for name in (ALL, UNGROUPED, *rest)]

    def group(self, name: str) -> Group:
        """The group of exactly this name; UnknownGroupError naming the nearest otherwise."""
        found = self._index.groups.get(name)
        if found is None:
            raise self._unknown_group(name)
        return found

    def find_group(self, text: str) -> Group:
        """The group a person means: the exact name, else the one equal with case, spaces, '_' and
        '-' ignored; UnknownGroupError listing the nearest names otherwise."""
        if text in self._index.groups:
            return self._index.groups[text]
        wanted = normal_name(text)
        for name, group in self._index.groups.items():
            if normal_name(name) == wanted:
                return group
        raise self._unknown_group(text)

    def parents_of(self, group: str) -> list[str]:
        """The groups that list `group` as a child (`all` for a top-level group)."""
        self.group(group)
        return list(self._index.parents.get(group, []))

    def descendants(self, group: str) -> list[str]:
        """`group` and every group nested in it, at any depth."""
        seen: dict[str, None] = {}
        pending = [self.group(group).name]
        while pending:
            name = pending.pop()
            if name not in seen:
                seen[name] = None
                pending.extend(self._index.groups[name].children)
        return sorted(seen, key=natural_key)

    # -- hosts

    def host_names_of(self, group: str) -> list[str]:
        """The names of the hosts in `group` or any group nested in it, in natural order."""
        if group == ALL:
            return sorted(self._index.hosts, key=natural_key)
        return sorted(
            {h for g in self.descendants(group) for h in self._index.groups[g].hosts}, key=natural_key
        )

    def hosts_of(self, group: str) -> list[Host]:
        """The hosts in `group` or any group nested in it, each with its merged vars and connection
        fields, in natural order (web2 before web10)."""
        return [self._index.hosts[name] for name in self.host_names_of(group)]

    def hosts(self) -> list[Host]:
        """Every host, resolved, in natural order."""
        return self.hosts_of(ALL)

    def host(self, name: str) -> Host:
        """One host, resolved; UsageError naming the nearest hosts when there is none."""
        found = self._index.hosts.get(name)
        if found is None:
            nearest = difflib.get_close_matches(name, list(self._index.hosts), n=3, cutoff=0.6)
            also = f"; nearest: {', '.join(nearest)}" if nearest else ""
            raise UsageError(
                f"no host {name!r} in the inventory{also}", hint="`opsmith inventory hosts` lists the hosts"
            )
        return found

    def resolve(self, targets: str | Sequence[str]) -> list[Host]:
        """The hosts a call's `targets` names, each once: a group (loosely matched, its nested groups
        too) or host names. Unknown names raise as `find_group` and `host` do."""
        if isinstance(targets, str):
            return self.hosts_of(self.find_group(targets).name)
        return [self.host(name) for name in dict.fromkeys(targets)]

    def groups_of(self, host: str) -> list[str]:
        """Every group `host` is in, in the order their vars apply (the last one wins)."""
        self.host(host)
        return list(self._index.groups_of[host])

    # -- the whole

    @property
    def host_count(self) -> int:
        return len(self.host_entries)

    @property
    def group_count(self) -> int:
        """Groups in effect, `all` and `ungrouped` included."""
        return len(self._index.groups)

    def content_hash(self) -> str:
        """sha256 over the declarations, independent of the order they were written in."""
        canonical = canonical_json(self.model_dump(mode="json"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def _unknown_group(self, text: str) -> UnknownGroupError:
        names = [n for n in self._index.groups if n not in (ALL, UNGROUPED)]
        if not names:
            return UnknownGroupError(
                f"no group {text!r}: the inventory has no groups",
                hint="import one (`opsmith inventory import FILE`), or declare `inventory:` in opsmith.yaml",
            )
        by_normal = {normal_name(n): n for n in names}
        close = difflib.get_close_matches(normal_name(text), list(by_normal), n=3, cutoff=0.5)
        nearest = [by_normal[n] for n in close]
        also = f"; nearest: {', '.join(nearest)}" if nearest else f" (it has {len(names)} groups)"
        return UnknownGroupError(f"no group {text!r} in the inventory{also}", hint=_GROUPS_HINT)


# -- validation -------------------------------------------------------------------------------------


def _check_names(inventory: Inventory) -> None:
    for key, group in inventory.declared_groups.items():
        if key != group.name:
            raise InventoryError(f"group {key!r} is stored under another name, {group.name!r}")
        if not _GROUP_NAME.fullmatch(group.name):
            raise InventoryError(
                f"{group.name!r} is not a group name",
                hint="group names are letters, digits, '_', '-', '.' and spaces, up to 128 characters",
            )
    for key, entry in inventory.host_entries.items():
        if key != entry.name:
            raise InventoryError(f"host {key!r} is stored under another name, {entry.name!r}")
        if not _HOST_NAME.fullmatch(entry.name):
            raise InventoryError(
                f"{entry.name!r} is not a host name",
                hint="host names are letters, digits, '_', '-', '.', ':' and '%' (an IPv6 address)",
            )
    seen: dict[str, str] = {}
    for name in sorted(inventory.declared_groups):
        other = seen.setdefault(normal_name(name), name)
        if other != name:
            raise InventoryError(
                f"groups {other!r} and {name!r} differ only in case, spaces, '_' or '-'",
                hint="rename one: requests name groups loosely ('Production Web'), so each must be distinct",
            )
    if len(inventory.host_entries) > MAX_HOSTS:
        raise InventoryError(
            f"the inventory has {len(inventory.host_entries):,} hosts, more than {MAX_HOSTS:,}"
        )


def _check_references(inventory: Inventory) -> None:
    groups = inventory.declared_groups
    if UNGROUPED in groups and groups[UNGROUPED].children:
        raise InventoryError("group 'ungrouped' may not have child groups", hint="it holds hosts only")
    for group in groups.values():
        for child in group.children:
            # `all` may list `ungrouped` (as `ansible-inventory --list --yaml` writes it); nothing else may.
            if child == ALL or (child == UNGROUPED and group.name != ALL):
                raise InventoryError(
                    f"group {group.name!r} lists {child!r} as a child",
                    hint=f"'{ALL}' holds every group and '{UNGROUPED}' every host in no other group",
                )
            if child not in groups:
                raise InventoryError(
                    f"group {group.name!r} has child {child!r}, which is not a group",
                    hint=f"declare group {child!r}, or remove it from {group.name!r}'s children",
                )
        for host in group.hosts:
            if host not in inventory.host_entries:
                raise InventoryError(f"group {group.name!r} lists host {host!r}, which is not declared")


def _check_cycles(groups: Mapping[str, Group]) -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise InventoryError(
                f"groups nest in a cycle: {' -> '.join(cycle)}",
                hint="a group cannot contain itself; remove one of those children",
            )
        if name in done:
            return
        for child in groups[name].children:
            visit(child, [*path, name])
        done.add(name)

    for name in sorted(groups):
        visit(name, [])


def _index(inventory: Inventory) -> _Index:
    declared = inventory.declared_groups
    grouped = {h for g in declared.values() if g.name not in (ALL, UNGROUPED) for h in g.hosts}
    parents: dict[str, list[str]] = {}
    for group in declared.values():
        for child in group.children:
            parents.setdefault(child, []).append(group.name)
    top = [n for n in declared if n not in (ALL, UNGROUPED) and not set(parents.get(n, [])) - {ALL}]
    effective = dict(declared)
    effective[ALL] = Group(
        name=ALL, children=[*top, UNGROUPED], vars=declared[ALL].vars if ALL in declared else {}
    )
    effective[UNGROUPED] = Group(
        name=UNGROUPED,
        hosts=[h for h in inventory.host_entries if h not in grouped],
        vars=declared[UNGROUPED].vars if UNGROUPED in declared else {},
    )
    parents = {
        name: sorted({p for p in parents.get(name, []) if p != ALL} or {ALL}, key=natural_key)
        for name in effective
        if name != ALL
    }
    depth = _depths(effective, parents)
    index = _Index(groups=effective, parents=parents, depth=depth)
    direct: dict[str, set[str]] = {h: set() for h in inventory.host_entries}
    for group in effective.values():
        for host in group.hosts:
            direct[host].add(group.name)
    for entry in inventory.host_entries.values():
        order = _merge_order(index, direct[entry.name])
        index.groups_of[entry.name] = order
        index.hosts[entry.name] = _resolve(entry, [effective[g] for g in order])
    return index


def _depths(groups: Mapping[str, Group], parents: Mapping[str, list[str]]) -> dict[str, int]:
    depth: dict[str, int] = {ALL: 0}

    def of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max(of(parent) for parent in parents[name])
        return depth[name]

    for name in groups:
        of(name)
    return depth


def _merge_order(index: _Index, direct: set[str]) -> list[str]:
    member: set[str] = {ALL}
    pending = list(direct)
    while pending:
        name = pending.pop()
        if name not in member:
            member.add(name)
            pending.extend(index.parents.get(name, []))
    return sorted(member, key=lambda g: (index.depth[g], _priority(index.groups[g]), g))


def _priority(group: Group) -> int:
    return _whole(group.vars.get("ansible_group_priority", 1)) or 0


# -- resolving one host -----------------------------------------------------------------------------


def _resolve(entry: HostEntry, groups: list[Group]) -> Host:
    # Every value read here was checked by `check_variable` when the inventory was validated.
    merged: dict[str, Any] = {}
    for group in groups:
        merged.update(group.vars)
    merged.update(entry.vars)

    def text(key: str) -> str | None:
        value = merged.get(key)
        return value.strip() if isinstance(value, str) else None

    connection = entry.connection or _CONNECTIONS[text("ansible_connection") or "ssh"]
    implied: OsFamily = "linux" if connection == "ssh" else "windows"
    return Host(
        name=entry.name,
        address=entry.address or text("ansible_host") or entry.name,
        port=entry.port or _whole(merged.get("ansible_port")),
        os=entry.os or _OSES[text("opsmith_os") or implied],
        connection=connection,
        user=entry.user or text("ansible_user"),
        credential=entry.credential or text("opsmith_credential"),
        vars=merged,
    )


# -- building ---------------------------------------------------------------------------------------


@dataclass
class _Draft:
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


class InventoryBuilder:
    """Collects groups, hosts and vars as a parser reads them, then builds one Inventory.

    As in Ansible, a host met again (in another group, or on another line) is the same host: its
    vars are merged, a later value replacing an earlier one. Connection fields set on a host
    (opsmith.yaml's shape) must agree wherever the host is given. Every error carries `source`, and
    the `line` a parser passes.
    """

    def __init__(self, source: str | None = None) -> None:
        self.source = source
        self._groups: dict[str, _Draft] = {}
        self._hosts: dict[str, dict[str, Any]] = {}
        self._vars: dict[str, dict[str, Any]] = {}

    def has_group(self, name: str) -> bool:
        return name in self._groups

    def group(self, name: object, *, line: int | None = None) -> str:
        """Declare a group (again: no change); its name, checked."""
        if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name):
            raise self.error(
                f"{name!r} is not a group name",
                hint="group names are letters, digits, '_', '-', '.' and spaces, up to 128 characters",
                line=line,
            )
        self._groups.setdefault(name, _Draft())
        return name

    def child(self, parent: str, child: object, *, line: int | None = None) -> None:
        name = self.group(child, line=line)
        children = self._groups[self.group(parent, line=line)].children
        if name not in children:
            children.append(name)

    def var(self, group: str, key: object, value: Any, *, line: int | None = None) -> None:
        checked = self._checked(key, value, f"group {group!r}", line)
        self._groups[self.group(group, line=line)].vars[str(key)] = checked

    def hosts(
        self,
        group: str,
        pattern: str,
        variables: Mapping[Any, Any] | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
        line: int | None = None,
    ) -> list[str]:
        """Add the hosts `pattern` stands for to `group`, with their vars (and fields); their names."""
        try:
            names = expand_range(pattern)
        except InventoryError as exc:
            raise self.error(exc.reason, hint=exc.hint, line=line) from exc
        draft = self._groups[self.group(group, line=line)]
        for name in names:
            self._host(name, variables or {}, fields or {}, line)
            draft.hosts.append(name)
        if len(self._hosts) > MAX_HOSTS:
            raise self.error(f"the inventory has more than {MAX_HOSTS:,} hosts", line=line)
        return names

    def build(self) -> Inventory:
        groups = {
            name: Group(name=name, children=d.children, hosts=d.hosts, vars=d.vars)
            for name, d in self._groups.items()
        }
        hosts = {
            name: HostEntry(name=name, vars=self._vars[name], **fields)
            for name, fields in self._hosts.items()
        }
        try:
            return Inventory(declared_groups=groups, host_entries=hosts)
        except InventoryError as exc:
            raise self.error(exc.reason, hint=exc.hint) from exc

    def error(self, reason: str, *, hint: str | None = None, line: int | None = None) -> InventoryError:
        return InventoryError(reason, hint=hint, source=self.source, line=line)

    def _host(
        self, name: str, variables: Mapping[Any, Any], fields: Mapping[str, Any], line: int | None
    ) -> None:
        if not _HOST_NAME.fullmatch(name):
            raise self.error(
                f"{name!r} is not a host name",
                hint="host names are letters, digits, '_', '-', '.', ':' and '%' (an IPv6 address)",
                line=line,
            )
        known = self._hosts.setdefault(name, {})
        own = self._vars.setdefault(name, {})
        for key, value in fields.items():
            if value is None:
                continue
            if known.get(key, value) != value:
                raise self.error(
                    f"host {name!r} is given {key} {known[key]!r} in one place and {value!r} in another",
                    hint="set each connection field of a host once",
                    line=line,
                )
            known[key] = value
        for key, value in variables.items():
            own[str(key)] = self._checked(key, value, f"host {name!r}", line)

    def _checked(self, key: object, value: Any, where: str, line: int | None) -> Any:
        try:
            return check_variable(key, value, where=where)
        except InventoryError as exc:
            raise self.error(exc.reason, hint=exc.hint, line=line) from exc

"""Ansible's static inventory formats, INI and YAML, read from text into an `Inventory`.

Both follow Ansible's own parsers (ansible-core's `ini` and `yaml` inventory plugins), stricter
where Ansible only warns: anything opsmith would not use as written is an InventoryError naming
the source and line (or key), never skipped.

INI:
    host lines before any section are `ungrouped`; `[group]` lists hosts, each with inline
    `key=value` vars split by shell rules (quotes keep spaces; `#` starts a comment);
    `[group:vars]` has one `key = value` per line; `[group:children]` lists groups, each of
    which must be declared by its own `[name]` or `[name:children]` section (as ansible-core 2.x
    requires). Values are text: a value that is a quoted Python string ('...', or "'...'" on a host
    line) loses its quotes, as Ansible's literal evaluation would; any other value, `80` or
    `True` too, stays text. `ansible_port` and `ansible_group_priority` become numbers. A host
    written `name:port` gets that ansible_port.
YAML:
    top-level keys are groups (usually just `all`), each a mapping of `hosts` (name: vars or
    nothing), `vars` and `children` (name: group), nested to any depth. Values keep their YAML
    types. A duplicate key is an error (YAML would keep the last silently).
Refused: dynamic inventory plugins (`plugin: aws_ec2`), Ansible Vault values (`!vault`), and the
secrets `opsmith.domain.inventory.check_variable` refuses (`ansible_password`...).

Pure: these parse text; reading the file is the caller's business.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any

import yaml

from opsmith.domain.errors import InventoryError
from opsmith.domain.inventory import ALL, UNGROUPED, Inventory, InventoryBuilder

__all__ = ["parse_ini", "parse_inventory", "parse_yaml"]

_DEFAULT_SOURCE = "<inventory>"
_SECTION = re.compile(r"\[(?P<name>[^:\]\s]+)(?::(?P<kind>\w+))?\]\s*(?:[#;].*)?")
_GROUP_LINE = re.compile(r"(?P<name>[^:\]\s]+)\s*(?:[#;].*)?")
_INLINE_COMMENT = re.compile(r"\s#")
_RANGES = re.compile(r"\[[^\]]*\]")
# A YAML mapping key starting a line ("all:", "plugin: aws_ec2"); an INI host line never has one.
_YAML_KEY = re.compile(r"^[\w.\-]+:(\s|$)")
_NUMERIC = ("ansible_port", "ansible_group_priority")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_INI_SUFFIXES = (".ini", ".cfg", ".hosts", ".txt")
_SECTION_HINT = "a section is [group], [group:vars] or [group:children], with no spaces"
_PLUGIN_HINT = (
    "export a static inventory from it and import that:"
    " `ansible-inventory -i SOURCE --list --yaml > inventory.yml`"
)


def parse_inventory(text: str, source: str = _DEFAULT_SOURCE) -> Inventory:
    """INI or YAML, by the suffix of `source` (.yml/.yaml/.json, or .ini/.cfg), else by the content:
    a first line that is a YAML key (`all:`) or `---` means YAML."""
    suffix = PurePath(source).suffix.lower()
    if suffix in _YAML_SUFFIXES:
        return parse_yaml(text, source)
    if suffix in _INI_SUFFIXES:
        return parse_ini(text, source)
    first = next(
        (line.strip() for line in text.splitlines() if line.strip() and line.strip()[0] not in "#;"), ""
    )
    if first.startswith(("---", "{")) or _YAML_KEY.match(first):
        return parse_yaml(text, source)
    return parse_ini(text, source)


# -- INI --------------------------------------------------------------------------------------------


def parse_ini(text: str, source: str = _DEFAULT_SOURCE) -> Inventory:
    """An Ansible INI inventory; InventoryError with the line of the first problem."""
    reader = _IniReader(InventoryBuilder(source))
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and line[0] not in "#;":
            reader.line(line, number)
    return reader.finish()


class _IniReader:
    """One pass over the lines, as Ansible's does: the current section says what a line is."""

    def __init__(self, builder: InventoryBuilder) -> None:
        self.builder = builder
        self.group, self.kind = UNGROUPED, "hosts"
        self.declared = {ALL, UNGROUPED}
        # Groups named before their own section may declare them: (line, what named them).
        self.pending: dict[str, tuple[int, str]] = {}

    def line(self, line: str, number: int) -> None:
        section = _SECTION.fullmatch(line)
        if section:
            self._section(section["name"], section["kind"] or "hosts", line, number)
        elif line.startswith("["):
            raise self.builder.error(f"{line!r} is not a section header", hint=_SECTION_HINT, line=number)
        elif self.kind == "hosts":
            self._hosts(line, number)
        elif self.kind == "vars":
            key, value = _variable(line, self.builder, number)
            self.builder.var(self.group, key, value, line=number)
        else:
            self._child(line, number)

    def finish(self) -> Inventory:
        if self.pending:
            name, (number, named_by) = min(self.pending.items(), key=lambda item: item[1][0])
            raise self.builder.error(
                f"{named_by} names group {name!r}, which has no [{name}] section",
                hint=f"add a [{name}] section (empty is fine), or remove the reference",
                line=number,
            )
        return self.builder.build()

    def _section(self, name: str, kind: str, line: str, number: int) -> None:
        if kind not in ("hosts", "children", "vars"):
            raise self.builder.error(
                f"section {line!r} has the unknown kind {kind!r}", hint=_SECTION_HINT, line=number
            )
        self.group, self.kind = self.builder.group(name, line=number), kind
        if kind == "vars":
            if name not in self.declared:
                self.pending.setdefault(name, (number, f"[{name}:vars]"))
            return
        self.declared.add(name)
        self.pending.pop(name, None)

    def _hosts(self, line: str, number: int) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise self.builder.error(
                f"cannot split host line {line!r}: {exc}", hint="close the quote", line=number
            ) from exc
        pattern, port = _host_and_port(tokens[0], self.builder, number)
        variables: dict[str, Any] = {}
        for token in tokens[1:]:
            key, equals, value = token.partition("=")
            if not equals or not key:
                raise self.builder.error(
                    f"host {pattern!r}: expected key=value, got {token!r}",
                    hint='quote a value with spaces: key="two words"',
                    line=number,
                )
            variables[key] = _value(key, value, self.builder, number)
        if port is not None:
            variables.setdefault("ansible_port", port)
        self.builder.hosts(self.group, pattern, variables, line=number)

    def _child(self, line: str, number: int) -> None:
        found = _GROUP_LINE.fullmatch(line)
        if not found:
            raise self.builder.error(
                f"[{self.group}:children] lists {line!r}, which is not a group name",
                hint="one group name per line",
                line=number,
            )
        child = found["name"]
        self.builder.child(self.group, child, line=number)
        if child not in self.declared:
            self.pending.setdefault(child, (number, f"[{self.group}:children]"))


def _host_and_port(token: str, builder: InventoryBuilder, number: int | None) -> tuple[str, int | None]:
    if token.endswith(":"):
        raise builder.error(
            f"host {token!r} ends in ':'",
            hint="write host:PORT; a line like 'all:' means this is YAML: name the file .yml",
            line=number,
        )
    if token == "---":
        raise builder.error("'---' starts a YAML document", hint="name the file .yml", line=number)
    # One colon outside the ranges is a port; more are an IPv6 address.
    if _RANGES.sub("", token).count(":") != 1:
        return token, None
    name, _, port = token.rpartition(":")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise builder.error(
            f"host {token!r}: {port!r} is not a port number (1-65535)",
            hint="write host:PORT with the port as a number, e.g. web1:2222",
            line=number,
        )
    return name, int(port)


def _variable(line: str, builder: InventoryBuilder, number: int) -> tuple[str, Any]:
    key, equals, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key:
        raise builder.error(
            f"expected key = value, got {line!r}",
            hint="one variable per line in a :vars section",
            line=number,
        )
    if value[:1] in ("'", '"'):
        try:
            parts = shlex.split(value, comments=True)
        except ValueError as exc:
            raise builder.error(f"{key}: {exc}", hint="close the quote", line=number) from exc
        if len(parts) != 1:
            raise builder.error(
                f"{key}: text follows the quoted value {value!r}", hint="quote the whole value", line=number
            )
        return key, _value(key, parts[0], builder, number)
    # An unquoted value ends at a comment: Ansible's own examples write `http_port=8080 # ...`.
    comment = _INLINE_COMMENT.search(value)
    return key, _value(key, value[: comment.start()] if comment else value, builder, number)


def _value(key: str, text: str, builder: InventoryBuilder, number: int) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        try:
            unquoted = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            unquoted = None
        if isinstance(unquoted, str):
            text = unquoted
    if key in _NUMERIC and text.strip().isascii() and text.strip().isdigit():
        return int(text)
    return text


# -- YAML -------------------------------------------------------------------------------------------


def parse_yaml(text: str, source: str = _DEFAULT_SOURCE) -> Inventory:
    """An Ansible YAML inventory; InventoryError naming the key path and line of the first problem."""
    loaded = _load(text, source)
    reader = _YamlReader(InventoryBuilder(source), loaded.lines)
    data = loaded.data
    if data is None:
        return reader.builder.build()
    if not isinstance(data, dict):
        raise reader.builder.error(
            f"the top level is a {type(data).__name__}, not a mapping of groups",
            hint="start with `all:`, then its `hosts:`, `vars:` and `children:`",
            line=1,
        )
    if "plugin" in data:
        raise reader.builder.error(
            f"dynamic inventory plugins are not supported (plugin: {data['plugin']})",
            hint=_PLUGIN_HINT,
            line=reader.line_of(data, "plugin"),
        )
    for name, body in data.items():
        reader.group(name, body, parent=None, path=str(name), line=reader.line_of(data, name))
    return reader.builder.build()


class _YamlReader:
    def __init__(self, builder: InventoryBuilder, lines: Mapping[int, Mapping[Any, int]]) -> None:
        self.builder = builder
        self._lines = lines

    def line_of(self, mapping: Mapping[Any, Any], key: Any) -> int | None:
        return self._lines.get(id(mapping), {}).get(key)

    def group(self, name: Any, body: Any, *, parent: str | None, path: str, line: int | None) -> None:
        group = self.builder.group(name, line=line)
        if parent is not None:
            self.builder.child(parent, group, line=line)
        if body is None:
            return
        if not isinstance(body, dict):
            raise self.builder.error(
                f"{path}: a group is a mapping of hosts, vars and children, not a {type(body).__name__}",
                hint="write `hosts:`, `vars:` or `children:` under it, or nothing",
                line=line,
            )
        for key, value in body.items():
            at = self.line_of(body, key)
            where = f"{path}.{key}"
            if key == "hosts":
                for host, variables in self._mapping(value, where, at, "host: vars (or nothing)"):
                    self._host(group, host, variables, f"{where}.{host}", self.line_of(value, host))
            elif key == "vars":
                for var, item in self._mapping(value, where, at, "name: value"):
                    self.builder.var(group, var, item, line=self.line_of(value, var))
            elif key == "children":
                for child, child_body in self._mapping(value, where, at, "group: its hosts, vars, children"):
                    self.group(
                        child,
                        child_body,
                        parent=group,
                        path=f"{where}.{child}",
                        line=self.line_of(value, child),
                    )
            else:
                raise self.builder.error(
                    f"{where}: unknown key {key!r} in group {group!r}",
                    hint="a group takes only hosts, vars and children",
                    line=at,
                )

    def _host(self, group: str, host: Any, variables: Any, where: str, line: int | None) -> None:
        if not isinstance(host, str):
            raise self.builder.error(f"{where}: a host name must be text", hint="quote it", line=line)
        if variables is not None and not isinstance(variables, dict):
            raise self.builder.error(
                f"{where}: a host's value is a mapping of its vars, not a {type(variables).__name__}",
                hint="write `name:` alone, or its vars under it",
                line=line,
            )
        pattern, port = _host_and_port(host, self.builder, line)
        merged = dict(variables or {})
        if port is not None:
            merged.setdefault("ansible_port", port)
        self.builder.hosts(group, pattern, merged, line=line)

    def _mapping(self, value: Any, where: str, line: int | None, shape: str) -> Iterator[tuple[Any, Any]]:
        if value is None:
            return iter(())
        if not isinstance(value, dict):
            raise self.builder.error(
                f"{where}: expected a mapping ({shape}), got a {type(value).__name__}",
                hint="Ansible's YAML inventory lists hosts and children as mapping keys, not as a list",
                line=line,
            )
        return iter(value.items())


class _Loaded:
    def __init__(self, data: Any, lines: dict[int, dict[Any, int]]) -> None:
        self.data = data
        self.lines = lines


class _LineLoader(yaml.SafeLoader):
    """Safe YAML that remembers the line of every mapping key and refuses duplicate keys."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.key_lines: dict[int, dict[Any, int]] = {}


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    data: dict[Any, Any] = {}
    yield data
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            seen = key in lines
        except TypeError:
            raise InventoryError(
                "a mapping key is not text", source=loader.source, line=line, hint="quote the key"
            ) from None
        if seen:
            raise InventoryError(
                f"key {key!r} is given twice in one mapping (first at line {lines[key]})",
                hint="merge the two entries into one",
                source=loader.source,
                line=line,
            )
        lines[key] = line
    data.update(loader.construct_mapping(node, deep=True))
    loader.key_lines[id(data)] = lines


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _load(text: str, source: str) -> _Loaded:
    try:
        loader = _LineLoader(text, source)  # reads the text at once: a control character fails here
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from exc
    try:
        return _Loaded(loader.get_single_data(), loader.key_lines)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from exc
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, source: str) -> InventoryError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if "!vault" in problem:
        return InventoryError(
            "an Ansible Vault value (!vault) cannot be read",
            hint="keep the secret in opsmith's vault (`opsmith secrets`), name it with opsmith_credential",
            source=source,
            line=line,
        )
    return InventoryError(
        f"not valid YAML: {problem}", hint="fix the syntax at that line", source=source, line=line
    )

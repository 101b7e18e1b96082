"""What the configured MCP servers offer: tools with their schemas and behaviour hints."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class ToolHints(BaseModel):
    """MCP tool annotations as the server declared them; None means the server said nothing."""

    model_config = ConfigDict(frozen=True)

    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    @property
    def effective_read_only(self) -> bool:
        return bool(self.read_only)

    @property
    def effective_destructive(self) -> bool:
        # The MCP spec's default for a tool that is not read-only is "may be destructive".
        if self.effective_read_only:
            return False
        return self.destructive is not False

    def labels(self) -> list[str]:
        """Short words for a table: what the hints say about the risk of calling the tool."""
        if self.read_only is None and self.destructive is None and self.idempotent is None:
            return ["unannotated"]
        words = []
        if self.effective_read_only:
            words.append("read-only")
        elif self.effective_destructive:
            words.append("destructive")
        else:
            words.append("writes")
        if self.idempotent:
            words.append("idempotent")
        if self.open_world:
            words.append("open-world")
        return words


class ToolSpec(BaseModel):
    """One tool of one server, as discovered."""

    model_config = ConfigDict(frozen=True)

    server: str
    name: str
    title: str | None = None
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    hints: ToolHints = Field(default_factory=ToolHints)

    @property
    def qualified_name(self) -> str:
        return f"{self.server}/{self.name}"

    @property
    def summary(self) -> str:
        """The first line of the description, for one-line listings."""
        text = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return text or (self.title or "")


def mcp_tool_json(tool: ToolSpec) -> dict[str, object]:
    """The tool as the MCP spec's `Tool` object (its wire names), plus `server`, which offers it.

    Like MCP, a field the server did not declare is left out rather than sent as null, so a
    consumer can tell "not annotated" from "annotated false". An empty description counts as
    not declared: discovery stores a missing one as "".
    """
    data: dict[str, object] = {"server": tool.server, "name": tool.name}
    if tool.title is not None:
        data["title"] = tool.title
    if tool.description:
        data["description"] = tool.description
    data["inputSchema"] = tool.input_schema
    if tool.output_schema is not None:
        data["outputSchema"] = tool.output_schema
    hints = tool.hints
    declared = {
        "readOnlyHint": hints.read_only,
        "destructiveHint": hints.destructive,
        "idempotentHint": hints.idempotent,
        "openWorldHint": hints.open_world,
    }
    annotations = {wire: value for wire, value in declared.items() if value is not None}
    if annotations:
        data["annotations"] = annotations
    return data


def tool_words(name: str) -> list[str]:
    """`delete_deployment`, `getPods`, `get-pods` -> whole lower-case words."""
    spaced = _CAMEL.sub(r"\1 \2", name)
    return [w for w in _SPLIT.split(spaced.lower()) if w]


def text_words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_WORD = re.compile(r"[a-z0-9]+")


class ToolWords(NamedTuple):
    name: frozenset[str]
    title: frozenset[str]
    description: frozenset[str]


class Catalog:
    """Tools per server; a server's part is replaced whole when it is rediscovered.

    Word sets of every tool and an index from name words to tools are built on first use and
    dropped on any change, so matching capabilities against thousands of tools stays cheap.
    """

    def __init__(self, tools: Iterable[ToolSpec] = ()) -> None:
        self._by_server: dict[str, dict[str, ToolSpec]] = {}
        self._words: dict[str, ToolWords] | None = None
        self._index: dict[str, list[ToolSpec]] | None = None
        self._server_words: dict[str, frozenset[str]] | None = None
        self._choices: dict[str, list[Choice]] | None = None
        for tool in tools:
            self._by_server.setdefault(tool.server, {})[tool.name] = tool

    def replace_server(self, server: str, tools: Iterable[ToolSpec]) -> None:
        self._by_server[server] = {tool.name: tool for tool in tools}
        self._words = self._index = self._server_words = self._choices = None

    def remove_server(self, server: str) -> None:
        self._by_server.pop(server, None)
        self._words = self._index = self._server_words = self._choices = None

    def words(self, tool: ToolSpec) -> ToolWords:
        if self._words is None:
            self._build_index()
        assert self._words is not None
        found = self._words.get(tool.qualified_name)
        return found if found is not None else _words_of(tool)

    def server_words(self, server: str) -> frozenset[str]:
        """Every word of the names and descriptions of a server's tools: what it is about."""
        if self._server_words is None:
            if self._words is None:
                self._build_index()
            assert self._words is not None
            about: dict[str, set[str]] = {}
            for tool in self.tools():
                words = self._words[tool.qualified_name]
                about.setdefault(tool.server, set()).update(words.name, words.description)
            self._server_words = {name: frozenset(words) for name, words in about.items()}
        return self._server_words.get(server, frozenset())

    def with_name_words(self, words: Iterable[str]) -> list[ToolSpec]:
        """Tools whose name has any of the words, in catalog order."""
        if self._index is None:
            self._build_index()
        assert self._index is not None
        hits = {t.qualified_name: t for w in words for t in self._index.get(w, [])}
        return [t for t in self.tools() if t.qualified_name in hits]

    def with_choice_words(self, words: Iterable[str]) -> list[Choice]:
        """Operations offered through a selector argument whose value has any of the words."""
        if self._choices is None:
            self._build_index()
        assert self._choices is not None
        hits = {id(c): c for w in words for c in self._choices.get(w, [])}
        return sorted(hits.values(), key=lambda c: (c.tool.qualified_name, c.value))

    def _build_index(self) -> None:
        self._words = {}
        self._index = {}
        self._choices = {}
        for tool in self.tools():
            words = _words_of(tool)
            self._words[tool.qualified_name] = words
            for word in words.name:
                self._index.setdefault(word, []).append(tool)
            for choice in operation_choices(tool):
                for word in tool_words(choice.value):
                    self._choices.setdefault(word, []).append(choice)

    def servers(self) -> list[str]:
        """Servers in the order they were first added (the configuration's order)."""
        return list(self._by_server)

    def tools(self, server: str | None = None) -> list[ToolSpec]:
        """Tools in each server's own listing order: servers list their main tools first."""
        servers = [server] if server is not None else self.servers()
        return [t for s in servers for t in self._by_server.get(s, {}).values()]

    def get(self, server: str, name: str) -> ToolSpec | None:
        return self._by_server.get(server, {}).get(name)

    def names(self, server: str) -> list[str]:
        return sorted(self._by_server.get(server, {}))

    def __len__(self) -> int:
        return sum(len(tools) for tools in self._by_server.values())

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self.tools())


def _words_of(tool: ToolSpec) -> ToolWords:
    name = frozenset(tool_words(tool.name))
    return ToolWords(
        name=name, title=text_words(tool.title or "") - name, description=text_words(tool.description)
    )


class Choice(NamedTuple):
    """One job a tool does with one argument fixed: an operation (`kubectl_rollout subCommand=undo`)
    or the kind of object it acts on (`kubectl_get resourceType=pods`)."""

    tool: ToolSpec
    param: str
    value: str
    selects: str = "operation"  # or "resource"


# Arguments that select what a tool does; normalised (lower case, no `_` or `-`).
SELECTORS = frozenset({"operation", "action", "command", "subcommand", "op", "verb", "cmd", "mode", "method"})
# Arguments that name the kind of object a generic tool acts on.
KINDS = frozenset({"resourcetype", "resource", "kind", "resourcekind", "objecttype", "type"})
_MAX_CHOICES = 30
_EXAMPLES = re.compile(r"\(e\.g\.,?([^)]*)\)", re.IGNORECASE)


def operation_choices(tool: ToolSpec) -> list[Choice]:
    """The operations a tool offers through a string enum argument named like a selector."""
    props = tool.input_schema.get("properties")
    if not isinstance(props, dict):
        return []
    found: list[Choice] = []
    for param, prop in props.items():
        key = re.sub(r"[_\-]", "", param).lower()
        if not isinstance(prop, dict) or key not in SELECTORS | KINDS:
            continue
        selects = "operation" if key in SELECTORS else "resource"
        values = prop.get("enum")
        if isinstance(values, list) and 0 < len(values) <= _MAX_CHOICES:
            found += [Choice(tool, param, v, selects) for v in values if isinstance(v, str) and v]
        elif selects == "resource" and prop.get("type") == "string":
            # A free-text kind whose description gives examples: "(e.g., pods, deployments, services)".
            examples = _EXAMPLES.search(str(prop.get("description") or ""))
            if examples:
                named = [w.strip() for w in examples.group(1).split(",")]
                found += [Choice(tool, param, w, selects) for w in named if re.fullmatch(r"[a-z]+", w)]
    return found


def accepts_undeclared(schema: dict[str, Any]) -> bool:
    """Whether a tool takes arguments its schema does not name: only when it says so
    (`additionalProperties` true or a schema), or names none at all."""
    extra = schema.get("additionalProperties")
    return (not schema.get("properties") and extra is not False) or extra is True or isinstance(extra, dict)

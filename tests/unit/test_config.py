"""opsmith.yaml parsing: good files give one typed object, bad ones one clear error."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from opsmith.config import HttpServerConfig, StdioServerConfig, load_config, parse_config, resolve
from opsmith.errors import ConfigError, UnknownServerError


def test_claude_desktop_shape_is_understood() -> None:
    config = parse_config(
        """
mcpServers:
  jenkins:
    command: npx
    args: [-y, jenkins-mcp]
    env: {JENKINS_TOKEN: "${JENKINS_TOKEN}"}
  remote:
    url: https://mcp.example.test/mcp
    headers: {Authorization: "Bearer ${API_TOKEN}"}
""",
        source="x.yaml",
    )
    jenkins, remote = config.mcp_servers["jenkins"], config.mcp_servers["remote"]
    assert isinstance(jenkins, StdioServerConfig) and jenkins.args == ["-y", "jenkins-mcp"]
    assert isinstance(remote, HttpServerConfig) and remote.transport == "http"
    assert remote.headers["Authorization"] == "Bearer ${API_TOKEN}", "templates are kept, not resolved"


def test_vs_code_type_field_is_accepted() -> None:
    config = parse_config("mcpServers:\n  a: {type: http, url: 'http://127.0.0.1:1/mcp'}\n", source="x")
    assert isinstance(config.mcp_servers["a"], HttpServerConfig)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "mcpServers:\n  a: {args: []}\n",
            "x.yaml: mcpServers.a: needs 'command' (a stdio server) or 'url'",
        ),
        ("mcpServers:\n  a: {command: x, url: 'http://h/mcp'}\n", "has both 'command' and 'url'"),
        ("mcpServers:\n  a: {url: 'ftp://h/mcp'}\n", "mcpServers.a.url: Value error, must start with http"),
        (
            "mcpServers:\n  a: {command: x, timeout: -1}\n",
            "mcpServers.a.timeout: Input should be greater than 0",
        ),
        ("mcpServers:\n  'bad name': {command: x}\n", "must be letters, digits"),
        ("mcpServers:\n  a: {type: sse, url: 'http://h/sse'}\n", "legacy SSE transport is not supported"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("mcpServers:\n  a: [unclosed\n", "x.yaml:3:1: not valid YAML"),
        ("supervision: {max_restarts: many}\n", "supervision.max_restarts: Input should be a valid integer"),
    ],
)
def test_bad_config_names_file_key_path_and_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="x.yaml")
    assert message in caught.value.message
    assert caught.value.hint
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "mcpServers:\n  jenkins: {comand: npx}\n",
            "x.yaml: unknown key 'comand' in mcpServers.jenkins; did you mean 'command'?",
        ),
        (
            "mcpServers:\n  a: {command: x, argz: []}\n",
            "x.yaml: unknown key 'argz' in stdio server mcpServers.a; did you mean 'args'?",
        ),
        (
            "mcpServers:\n  a: {url: 'http://h/mcp', hedaers: {}}\n",
            "x.yaml: unknown key 'hedaers' in HTTP server mcpServers.a; did you mean 'headers'?",
        ),
        (
            "mcpServers:\n  a: {command: x, headers: {}}\n",
            "x.yaml: unknown key 'headers' in stdio server mcpServers.a; only HTTP servers take it",
        ),
        ("mcpServer: {}\n", "x.yaml: unknown key 'mcpServer' at the top level; did you mean 'mcpServers'?"),
        ("servers: {}\n", "unknown key 'servers' at the top level; did you mean 'mcpServers'?"),
        ("policy: {aproval: {}}\n", "unknown key 'aproval' in policy; did you mean 'approval'?"),
        (
            "policy: {approval: {min_rsk: HIGH}}\n",
            "unknown key 'min_rsk' in policy.approval; did you mean 'min_risk'?",
        ),
        ("rbac: {allow_ass: true}\n", "unknown key 'allow_ass' in rbac; did you mean 'allow_as'?"),
        (
            "rbac: {roles: {ops: {max_rsk: LOW}}}\n",
            "unknown key 'max_rsk' in rbac.roles.ops; did you mean 'max_risk'?",
        ),
        ("planning: {default_brnch: x}\n", "unknown key 'default_brnch' in planning; did you mean"),
        (
            "execution: {max_paralel: 2}\n",
            "unknown key 'max_paralel' in execution; did you mean 'max_parallel'?",
        ),
        ("applications: {web: {stratgy: canary}}\n", "in applications.web; did you mean 'strategy'?"),
        ("supervision: {zzz: 1}\n", "x.yaml: unknown key 'zzz' in supervision"),
        ("source: x\n", "unknown key 'source' at the top level"),
        (
            "mcpServers:\n  a: {command: x, envFile: .env}\n",
            "unknown key 'envFile' in stdio server mcpServers.a; opsmith reads no env files",
        ),
    ],
)
def test_an_unknown_key_is_named_with_its_place_and_nearest_keys(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="x.yaml")
    assert message in caught.value.message
    assert caught.value.hint is not None and caught.value.hint.startswith("keys allowed ")
    assert "extra" not in caught.value.message.lower(), "pydantic's wording is translated"


def test_every_unknown_key_is_in_one_error_with_the_allowed_keys_of_each_place() -> None:
    text = """
polcy: {}
mcpServers:
  jenkins: {comand: npx, argz: []}
  remote: {url: 'http://h/mcp', args: []}
planning: {default_brnch: main}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="/etc/opsmith.yaml")
    message, hint = caught.value.message, caught.value.hint or ""
    assert message.startswith("/etc/opsmith.yaml: 5 unknown keys: ")
    assert "'polcy' at the top level (did you mean 'policy'?)" in message
    assert "'comand' in mcpServers.jenkins (did you mean 'command'?)" in message
    assert "'argz' in mcpServers.jenkins (did you mean 'args'?)" in message
    assert "'args' in HTTP server mcpServers.remote (only stdio servers take it)" in message
    assert "'default_brnch' in planning (did you mean 'default_branch'" in message
    assert "keys allowed in planning: " in hint and "keys allowed at the top level: " in hint


def test_the_validation_error_is_kept_as_the_cause() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("mcpServers:\n  a: {command: x, headers: {}}\n", source="x.yaml")
    assert isinstance(caught.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    "server",
    [
        "{type: stdio, command: npx, args: [-y, srv], env: {K: v}, cwd: /tmp}",
        "{type: http, url: 'https://h/mcp', headers: {Authorization: 'Bearer ${T}'}}",
        "{type: streamable-http, url: 'https://h/mcp'}",
        "{command: npx, disabled: true, timeout: 30}",
    ],
)
def test_keys_of_claude_desktop_and_vs_code_entries_are_accepted(server: str) -> None:
    parse_config(f"mcpServers:\n  s: {server}\n", source="x.yaml")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", {})


def test_config_is_found_from_env_then_cwd_then_demo(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("mcpServers: {one: {command: a}}\n")
    (tmp_path / "opsmith.yaml").write_text("mcpServers: {two: {command: b}}\n")
    assert list(load_config(None, {"OPSMITH_CONFIG": str(explicit)}, cwd=tmp_path).mcp_servers) == ["one"]
    assert list(load_config(None, {}, cwd=tmp_path).mcp_servers) == ["two"]
    demo = load_config(None, {}, cwd=tmp_path / "elsewhere")
    assert sorted(demo.mcp_servers) == ["jenkins", "kubernetes", "registry", "sonarqube"]


def test_unknown_server_lists_the_configured_ones() -> None:
    config = parse_config("mcpServers: {a: {command: x}, b: {command: y}}\n", source="c.yaml")
    with pytest.raises(UnknownServerError) as caught:
        config.server("z")
    assert caught.value.hint == "configured servers: a, b"
    assert isinstance(caught.value.__cause__, KeyError)


def test_variables_resolve_with_defaults_and_missing_ones_fail() -> None:
    assert resolve("Bearer ${TOKEN}", {"TOKEN": "abc"}, where="h") == "Bearer abc"
    assert resolve("${PORT:-8080}", {}, where="h") == "8080"
    with pytest.raises(ConfigError, match=r"mcpServers.a.headers.X references \$\{NOPE\}, which is not set"):
        resolve("${NOPE}", {}, where="mcpServers.a.headers.X")


@given(st.text(max_size=300))
def test_any_text_parses_or_gives_a_config_error(text: str) -> None:
    try:
        parse_config(text, source="fuzz.yaml")
    except ConfigError as error:
        assert error.message.startswith("fuzz.yaml")


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=100))
def test_text_without_references_is_unchanged(text: str) -> None:
    assert resolve(text, {}, where="x") == text


@given(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True), st.text(max_size=30))
def test_references_are_replaced_by_their_value(name: str, value: str) -> None:
    assert resolve(f"<${{{name}}}>", {name: value}, where="x") == f"<{value}>"


# A valid file touching every section; the property below misspells one of its keys.
VALID: dict[str, Any] = {
    "mcpServers": {
        "jenkins": {"command": "npx", "args": ["-y", "jenkins-mcp"], "env": {"T": "x"}, "timeout": 30},
        "remote": {"type": "http", "url": "https://h/mcp", "headers": {"A": "b"}},
    },
    "database_url": "sqlite:///x.db",
    "supervision": {"max_restarts": 3, "backoff_max": 10},
    "execution": {"max_parallel": 2, "retry_attempts": 2},
    "applications": {"web": {"strategy": "canary", "branch": "main"}},
    "planning": {"default_branch": "main", "friday_cutoff_hour": 14},
    "policy": {"approval": {"min_risk": "HIGH", "four_eyes_approvers": 2}, "compliance": {"production": []}},
    "rbac": {"users": {"ann": "ops"}, "roles": {"ops": {"actions": ["plan"], "max_risk": "HIGH"}}},
}
# Mappings whose keys are the user's own names, not configuration keys.
FREE_KEYS = {
    ("mcpServers",),
    ("mcpServers", "jenkins", "env"),
    ("mcpServers", "remote", "headers"),
    ("applications",),
    ("rbac", "users"),
    ("rbac", "roles"),
    ("policy", "compliance"),
}


def _key_paths(data: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in data.items():
        if path not in FREE_KEYS:
            found.append((*path, key))
        if isinstance(value, dict):
            found += _key_paths(value, (*path, key))
    return found


def _every_key_name() -> set[str]:
    from opsmith import config as module
    from opsmith.domain.identity import Permission

    models = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseModel)]
    fields = [(name, info) for model in [*models, Permission] for name, info in model.model_fields.items()]
    return {name for name, _ in fields} | {info.alias for _, info in fields if info.alias}


def _suggested(message: str) -> list[str]:
    if "did you mean " not in message:
        return []
    return re.findall(r"'([^']*)'", message.split("did you mean ", 1)[1].split("?", 1)[0])


CLOSE = 0.6
KEY_PATHS = _key_paths(VALID)
KEY_NAMES = _every_key_name()


@st.composite
def typos(draw: st.DrawFn, word: str) -> str:
    letters = st.sampled_from("abcdefghijklmnopqrstuvwxyz_")
    at = draw(st.integers(0, len(word) - 1))
    match draw(st.sampled_from(["drop", "add", "swap", "change"])):
        case "drop":
            return word[:at] + word[at + 1 :]
        case "add":
            return word[:at] + draw(letters) + word[at:]
        case "swap" if at + 1 < len(word):
            return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        case _:
            return word[:at] + draw(letters) + word[at + 1 :]


def _rename(data: dict[str, Any], path: tuple[str, ...], new: str) -> dict[str, Any]:
    head, *rest = path
    if not rest:
        return {(new if k == head else k): v for k, v in data.items()}
    return {k: (_rename(v, tuple(rest), new) if k == head else v) for k, v in data.items()}


def test_the_file_the_property_mutates_is_valid() -> None:
    parse_config(yaml.safe_dump(VALID), source="x.yaml")


@given(st.sampled_from(KEY_PATHS).flatmap(lambda p: st.tuples(st.just(p), typos(p[-1]))))
def test_one_misspelt_key_is_named_with_its_place_and_the_original_suggested(
    mutation: tuple[tuple[str, ...], str],
) -> None:
    path, typo = mutation
    original = path[-1]
    assume(typo and typo not in KEY_NAMES)
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(_rename(VALID, path, typo)), source="x.yaml")
    message = caught.value.message
    assert message.startswith(f"x.yaml: unknown key {typo!r} "), message
    place = ".".join(path[:-1]) or "at the top level"
    assert place in message.split(";")[0], message
    # Ratio as difflib.get_close_matches computes it, against the cutoff config.py uses.
    if difflib.SequenceMatcher(None, original.lower(), typo.lower()).ratio() >= CLOSE:
        assert original in _suggested(message), message

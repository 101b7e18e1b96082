"""opsmith.yaml parsing: good files give one typed object, bad ones one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
            "mcpServers:\n  a: {comand: x}\n",
            "x.yaml: mcpServers.a: needs 'command' (a stdio server) or 'url'",
        ),
        ("mcpServers:\n  a: {command: x, argz: []}\n", "x.yaml: mcpServers.a.argz: unknown key"),
        ("mcpServer: {}\n", "x.yaml: mcpServer: unknown key"),
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


def test_unknown_key_hint_lists_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("mcpServers:\n  a: {command: x, argz: []}\n", source="x.yaml")
    assert caught.value.hint is not None and "args" in caught.value.hint


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

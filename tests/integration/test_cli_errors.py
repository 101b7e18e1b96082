"""Errors as the `opsmith` console script reports them: with `--json`, one object on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from opsmith.cli.app import app
from opsmith.cli.errors import asks_for_json

pytestmark = pytest.mark.integration

OPSMITH = str(Path(sys.executable).with_name("opsmith"))


def opsmith(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # OPSMITH_CONFIG is dropped so only the test's own file (or --config) is read.
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG"}
    return subprocess.run(
        [OPSMITH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def error_object(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """stdout holds exactly one JSON object, of exactly the error shape, and nothing else."""
    data = json.loads(result.stdout)
    assert isinstance(data, dict) and set(data) == {"error", "hint", "exit_code"}, result.stdout
    assert data["exit_code"] == result.returncode
    assert "Traceback" not in result.stderr
    return data


@pytest.fixture
def time_dir(tmp_path: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text("mcpServers:\n  time: {command: mcp-server-time}\n")
    return tmp_path


def test_an_unknown_plan_is_a_json_usage_error(time_dir: Path) -> None:
    result = opsmith(time_dir, "show", "no_such_plan", "--json")
    assert result.returncode == 2
    data = error_object(result)
    assert "no_such_plan" in str(data["error"]) and data["hint"]
    assert "no_such_plan" in result.stderr, "the one-line reason is on stderr as well"


def test_a_bad_option_value_checked_by_the_command_is_a_json_usage_error(time_dir: Path) -> None:
    result = opsmith(time_dir, "plans", "--status", "bogus", "--json")
    assert result.returncode == 2
    data = error_object(result)
    assert data["error"] == "unknown status 'bogus'"
    assert "pending_approval" in str(data["hint"])


def test_a_malformed_config_is_a_json_error_naming_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mcpServers:\n  jenkins: {comand: npx}\n")
    result = opsmith(tmp_path, "--config", str(config), "servers", "status", "--json")
    assert result.returncode == 2
    data = error_object(result)
    assert data["error"] == f"{config}: unknown key 'comand' in mcpServers.jenkins; did you mean 'command'?"
    assert "command" in str(data["hint"])


def test_invalid_yaml_is_a_json_error(tmp_path: Path) -> None:
    config = tmp_path / "opsmith.yaml"
    config.write_text("mcpServers:\n  a: [unclosed\n")
    result = opsmith(tmp_path, "plans", "--json")
    assert result.returncode == 2
    assert "not valid YAML" in str(error_object(result)["error"])


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["plans", "--bogus", "--json"], "No such option: --bogus", "see 'opsmith plans --help'"),
        (["plans", "--json", "--bogus"], "No such option: --bogus", "see 'opsmith plans --help'"),
        (["show", "--json"], "Missing argument", "see 'opsmith show --help'"),
        (["servers", "status", "--json", "--nope"], "No such option: --nope", "see 'opsmith servers status"),
        (["call", "time", "--json"], "Missing argument 'tool'", "see 'opsmith call --help'"),
        (["nosuch", "--json"], "No such command 'nosuch'", "see 'opsmith --help'"),
    ],
)
def test_parser_usage_errors_have_the_same_json_shape_and_exit_2(
    time_dir: Path, args: list[str], message: str, hint: str
) -> None:
    result = opsmith(time_dir, *args)
    assert result.returncode == 2, result.stderr
    data = error_object(result)
    assert message in str(data["error"])
    assert str(data["hint"]).startswith(hint)


def test_a_failed_operation_keeps_exit_1_in_json(time_dir: Path) -> None:
    result = opsmith(
        time_dir, "call", "time", "get_current_time", "--args", '{"timezone": "Nowhere/None"}', "--json"
    )
    assert result.returncode == 1
    data = error_object(result)
    assert "Invalid timezone" in str(data["error"])


def test_without_json_errors_stay_on_stderr_for_people(time_dir: Path) -> None:
    ours = opsmith(time_dir, "show", "no_such_plan")
    assert ours.returncode == 2 and ours.stdout == ""
    assert "error: no plan 'no_such_plan'" in ours.stderr
    parser = opsmith(time_dir, "plans", "--bogus")
    assert parser.returncode == 2 and parser.stdout == ""
    assert "Usage: opsmith plans" in parser.stderr and "No such option: --bogus" in parser.stderr


def test_success_with_json_is_unchanged(time_dir: Path) -> None:
    result = opsmith(time_dir, "plans", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


COMMAND = typer.main.get_command(app)


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["plans", "--json"], True),
        (["--config", "x.yaml", "servers", "status", "time", "--json"], True),
        (["plans"], False),
        (["show", "PLAN"], False),
        # The parser reads `--json` as the value of --status, so it is not the flag.
        (["plans", "--status", "--json"], False),
        (["call", "s", "t", "--args", "--json"], False),
        # Lines the parser will reject still say whether they asked for JSON.
        (["plans", "--bogus", "--json"], True),
        (["show", "--json"], True),
        (["nosuch", "--json"], True),
        (["--json"], True),
        ([], False),
    ],
)
def test_the_json_flag_is_read_as_the_parser_reads_it(args: list[str], wanted: bool) -> None:
    assert asks_for_json(COMMAND, args) is wanted


def test_a_server_that_is_down_is_a_failed_operation_not_bad_input(tmp_path: Path) -> None:
    # Exit codes as the README has them: 1 when something we tried failed (a server is down),
    # 2 when the input was wrong (a tool that does not exist on a server that is up).
    (tmp_path / "opsmith.yaml").write_text(
        "applications: {my-application: {}}\n"
        "mcpServers:\n  kubernetes: {command: /nonexistent/kube-mcp}\n  time: {command: mcp-server-time}\n"
    )
    called = opsmith(tmp_path, "call", "kubernetes", "get_pods", "--json")
    assert called.returncode == 1
    assert "server 'kubernetes' is down" in str(error_object(called)["error"])
    planned = opsmith(tmp_path, "plan", "Scale my-application in staging to 3 replicas", "--json")
    assert planned.returncode == 1
    assert "down: kubernetes" in str(error_object(planned)["error"])
    typo = opsmith(tmp_path, "call", "time", "get_curent_time")
    assert typo.returncode == 2 and "get_current_time" in typo.stderr

"""docs/deploy.md stays true to the code: its opsmith.yaml is a valid configuration of the scale-out
mode, every opsmith command its units and compose file run exists with the options they give, and
the units keep their hardening. (`systemd-analyze verify` and Docker are not part of the suite.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from opsmith.cli.app import app
from opsmith.config import parse_config

DOC = Path(__file__).parents[2] / "docs" / "deploy.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def runs_a_real_command(argv: list[str]) -> None:
    """`opsmith SUB... --options` names a command of the CLI and only options it has."""
    assert argv[0].endswith("opsmith"), argv
    command: Any = typer.main.get_command(app)
    words = argv[1:]
    while hasattr(command, "commands"):  # a group (typer's own click, or click's)
        assert words and words[0] in command.commands, f"no command {words[:1]} in {argv}"
        command, words = command.commands[words[0]], words[1:]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    given = {w for w in words if w.startswith("--")}
    assert given <= known, f"{argv}: {sorted(given - known)} not options of {command.name}"


def test_the_configuration_shown_is_a_valid_scale_out_configuration() -> None:
    (text,) = [b for b in blocks("yaml") if b.startswith("# /etc/opsmith/opsmith.yaml")]
    config = parse_config(text, source="docs/deploy.md")
    assert config.executor == "celery" and config.database.startswith("postgresql+psycopg://")
    assert config.api.secure_cookies and config.celery.broker_url is not None


def test_the_units_run_real_commands_as_a_dedicated_user_with_hardening() -> None:
    units = blocks("ini")
    assert len(units) == 2
    for unit in units:
        settings = dict(
            line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
        )
        runs_a_real_command(shlex.split(settings["ExecStart"]))
        assert settings["User"] == "opsmith" and settings["EnvironmentFile"] == "/etc/opsmith/secrets.env"
        assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
        assert settings["CapabilityBoundingSet"] == ""


def test_the_compose_file_has_the_pieces_of_the_mode_and_runs_real_commands() -> None:
    (text,) = [b for b in blocks("yaml") if b.startswith("# docker-compose.yml")]
    services: dict[str, Any] = yaml.safe_load(text)["services"]
    assert {"postgres", "redis", "api-1", "api-2", "worker-1", "worker-2"} <= set(services)
    for service in services.values():
        command = service.get("command")
        if command and command[0] == "opsmith":
            runs_a_real_command(command)

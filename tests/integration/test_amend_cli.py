"""`opsmith plan amend`: values replace what was there, the text shows what is sent, closed plans
are copied instead of revived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG, as_user

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{sandbox_servers(state_dir)}\n")
    return tmp_path


def json_of(project: Path, user: str, *args: str, code: int = 0) -> dict[str, Any]:
    result, out, err = as_user(project, user, *args, "--json")
    assert result == code, (out, err)
    return dict(json.loads(out))


def scale_args(plan: dict[str, Any]) -> dict[str, Any]:
    return next(s["args"] for s in plan["steps"] if s["id"] == "scale")


def test_amend_replaces_values_and_the_title_says_what_is_sent(project: Path) -> None:
    plan = json_of(project, "bob", "plan", "Scale my-application in staging", code=1)
    assert plan["status"] == "incomplete" and "?" in plan["title"]

    filled = json_of(project, "bob", "plan", "amend", plan["id"], "--set", "replicas=5")
    assert scale_args(filled)["replicas"] == 5 and "to 5 replicas" in filled["title"]

    again = json_of(project, "bob", "plan", "amend", plan["id"], "--set", "scale.replicas=40")
    assert scale_args(again)["replicas"] == 40 and "to 40 replicas" in again["title"]
    assert "?" not in again["title"] and again["hash"] != filled["hash"]
    shown = json_of(project, "bob", "show", plan["id"])
    assert scale_args(shown)["replicas"] == 40 and shown["amended_by"] == []


def test_an_undeclared_set_is_a_problem_of_the_plan_not_an_argument_sent(project: Path) -> None:
    plan = json_of(project, "bob", "plan", "Scale my-application in staging to 3 replicas")
    amended = json_of(project, "bob", "plan", "amend", plan["id"], "--set", "scale.force_now=true", code=1)
    assert amended["status"] == "incomplete"
    assert "force_now" not in scale_args(amended)
    assert any("force_now" in m for s in amended["steps"] for m in s["missing_args"])

"""Seed 001's failure-and-fix story as the README tells it, through the real CLI on the bundled
demo config and the sandbox servers: `opsmith demo --failure` then `opsmith demo --fix` in the same
directory. What the demo printed is checked against what the store holds, read back by other
commands (tasks, tracker, notifications, history)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import opsmith

pytestmark = pytest.mark.integration

DEMO_VARIABLES = ("OPSMITH_DEMO_WEBHOOK_SECRET", "OPSMITH_DEMO_NOTIFY_SECRET", "OPSMITH_DEMO_NOTIFY_URL")


@pytest.fixture
def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSMITH_CONFIG" and k not in DEMO_VARIABLES}
    env["OPSMITH_SANDBOX_LATENCY_MS"] = "0"
    return env


def as_json(cwd: Path, env: dict[str, str], *args: str) -> Any:
    result = opsmith(cwd, *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def secrets_of(cwd: Path) -> list[str]:
    found = sorted((cwd / ".opsmith" / "demo").iterdir())
    assert [p.name for p in found] == ["opsmith_demo_notify_secret", "opsmith_demo_webhook_secret"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in found), "the generated secrets are the owner's only"
    return [p.read_text().strip() for p in found]


@pytest.mark.timeout(180)
def test_the_failure_story_follows_up_and_the_fix_story_redeploys(
    tmp_path: Path, demo_env: dict[str, str], no_orphans: None
) -> None:
    failed = opsmith(tmp_path, "demo", "--failure", "--json", env=demo_env)
    assert failed.returncode == 0, failed.stderr
    story = json.loads(failed.stdout)
    run_id = story["run"]["run_id"]
    assert story["run"]["status"] == "rolled_back"

    cause = story["root_cause"]
    assert cause["run_id"] == run_id and cause["explained"] is True
    assert cause["error_type"] == "CrashLoopBackOff" and cause["failed_step"]["id"] == "deploy"
    assert "config/production.json" in cause["root_cause"]
    assert cause["fix"]["file"] == "config/production.json" and "COPY config/" in cause["fix"]["dockerfile"]
    assert cause["confidence"] and cause["evidence"]
    assert all("deploy" in line["citation"] for line in cause["evidence"]), "each claim cites its step"
    components = {c["title"]: c["outcome"] for c in cause["components"]}
    assert components["Deploy to production"].startswith("failed")
    assert components["Build my-application"].startswith("passed")

    task = story["task"]
    assert task["run_id"] == run_id and task["priority"] == "emergency" and task["deadline"]
    assert task["agent_id"] and task["assignment"]["agent_id"] == task["agent_id"]
    assert task["agent_id"] in task["assignment"]["reason"] and task["status"] == "succeeded"
    assert {"assign", "succeeded"} <= {d["kind"] for d in story["orchestration"] if d["task"] == task["id"]}
    stored_tasks = {t["id"]: t for t in as_json(tmp_path, demo_env, "tasks")}
    assert stored_tasks[task["id"]]["agent_id"] == task["agent_id"]
    assert stored_tasks[task["id"]]["assignment"]["reason"] == task["assignment"]["reason"]
    assert {t["id"] for t in story["follow_up_tasks"]} <= set(stored_tasks)

    issue = story["issue"]
    assert run_id in issue["run_ids"] and issue["state"] == "open"
    stored_issue = as_json(tmp_path, demo_env, "tracker", "show", str(issue["id"]))
    assert stored_issue["fingerprint"] == issue["fingerprint"] and run_id in stored_issue["run_ids"]

    told = {n["event"]: n for n in story["notifications"]}
    rolled_back = told["rolled_back"]
    assert rolled_back["subject"] == run_id and rolled_back["status"] == "delivered"
    assert rolled_back["received"] == {
        "delivery": rolled_back["id"],
        "event": "rolled_back",
        "title": rolled_back["received"]["title"],
        "verified": True,
    }
    stored_notes = {n["id"]: n for n in as_json(tmp_path, demo_env, "notifications")}
    assert stored_notes[rolled_back["id"]]["status"] == "delivered"

    fixed = opsmith(tmp_path, "demo", "--fix", "--json", env=demo_env)
    assert fixed.returncode == 0, fixed.stderr
    fix = json.loads(fixed.stdout)
    assert fix["failure_story"] is None and fix["failed_run"] == run_id, "the failure left is continued"
    assert fix["commit"]["added"] == ["config/production.json"] and fix["commit"]["modified"] == [
        "Dockerfile"
    ]
    hook = fix["webhook"]
    assert hook["outcome"] == "replanned" and hook["replan"]["failed_run_id"] == run_id
    assert hook["replan"]["match"]["verdict"] == "addressed"
    assert "removed quality_scan" in hook["difference"]["summary"]
    assert fix["run"]["status"] == "succeeded" and fix["run"]["run_id"] != run_id

    history = as_json(tmp_path, demo_env, "history", "my-application", "--environment", "production")
    assert history == fix["history"], "what the demo showed is what the store holds"
    attempts = history["attempts"]
    assert [(a["run_id"], a["outcome"]) for a in attempts] == [
        (run_id, "rolled back"),
        (fix["run"]["run_id"], "succeeded"),
    ]
    assert attempts[1]["plan_id"] == hook["plan_id"] and attempts[1]["commit"] == fix["commit"]["after"]
    (change,) = history["changes"]
    assert change["files"] == ["config/production.json (added)", "Dockerfile (modified)"]
    assert change["verdict"] == "addressed"
    assert {n["event"] for n in fix["notifications"]} >= {"succeeded"}

    shown = failed.stdout + failed.stderr + fixed.stdout + fixed.stderr
    kept = b"".join(
        p.read_bytes() for p in (tmp_path / ".opsmith").rglob("*") if p.is_file() and "demo" not in p.parts
    )
    for secret in secrets_of(tmp_path):
        assert secret not in shown and secret.encode() not in kept, "nor in the database, logs or sandbox"


@pytest.mark.timeout(180)
def test_the_fix_story_in_a_fresh_directory_tells_the_failure_first(
    tmp_path: Path, demo_env: dict[str, str], no_orphans: None
) -> None:
    result = opsmith(tmp_path, "demo", "--fix", env=demo_env)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # rich wraps long lines at the terminal's width
    assert "No failure story left in this directory" in text
    assert "Status: rolled_back" in text and "ROOT CAUSE ANALYSIS" in text
    assert "file: config/production.json" in text and "Confidence: high" in text
    assert "📋 TASK tsk_" in text and "assigned to deployment-agent" in text
    assert "ISSUE #1 on the built-in tracker" in text
    assert "rolled_back of run_" in text and "delivered; received, signature valid" in text
    assert "push delivery demo-" in text and ": replanned" in text and "Verdict: addressed" in text
    assert "Status: succeeded" in text
    assert "↺ Attempt 1: rolled back" in text and "✓ Attempt 2: succeeded" in text
    assert "files: config/production.json (added), Dockerfile (modified)" in text
    for secret in secrets_of(tmp_path):
        assert secret not in result.stdout + result.stderr


def test_demo_refuses_both_stories_and_a_fix_outside_the_sandbox(
    tmp_path: Path, demo_env: dict[str, str]
) -> None:
    both = opsmith(tmp_path, "demo", "--failure", "--fix", env=demo_env)
    assert both.returncode == 2 and "not both" in both.stderr
    (tmp_path / "opsmith.yaml").write_text("mcpServers: {}\n")
    elsewhere = opsmith(tmp_path, "demo", "--fix", "--json", env=demo_env)
    assert elsewhere.returncode == 2
    assert "only the bundled demo config" in json.loads(elsewhere.stdout or elsewhere.stderr)["error"]
    assert not (tmp_path / ".opsmith" / "sandbox").exists(), "nothing was committed anywhere"

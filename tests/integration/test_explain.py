"""`opsmith explain RUN` over the real sandbox: seed 001's failure story, end to end.

The image lacks config/production.json; the pods crash-loop after the apply, the checks fail on
what they see, the run rolls back. The explanation names the missing file and the Dockerfile line,
and cites the log line the logs tool returned; a viewer may ask, and its reads are audited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PYTHON
from tests.integration.test_approval_cli import CONFIG, as_user
from tests.integration.test_run import approved_plan

pytestmark = pytest.mark.integration

REQUEST = "Deploy the code to Kubernetes production"
POD_START_MS = 1500  # the apply returns while the pods start: the checks after it see the crash


@pytest.fixture
def project(tmp_path: Path, state_dir: Path) -> Path:
    lines = []
    for name in ("jenkins", "sonarqube", "registry", "kubernetes"):
        extra = f", --pod-start-ms, '{POD_START_MS}'" if name == "kubernetes" else ""
        lines.append(
            f"  {name}: {{command: {PYTHON}, args: [-m, opsmith.sandbox.{name}, --state-dir, '{state_dir}',"
            f" --latency-ms, '0'{extra}]}}"
        )
    (tmp_path / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n" + "\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.timeout(300)  # a whole production run and its rollback on a loaded machine
def test_the_crash_loop_story_is_explained_with_the_file_the_dockerfile_line_and_the_log_line(
    project: Path,
) -> None:
    plan = approved_plan(project, REQUEST)
    code, out, err = as_user(project, "bob", "run", str(plan["id"]), "--auto-validate", "--json")
    assert code == 1 and out, err
    result = json.loads(out)
    assert result["status"] == "rolled_back", result

    code, out, err = as_user(project, "vic", "explain", result["run_id"], "--json")
    assert code == 0, err
    found = json.loads(out)

    assert found["explained"] and found["error_type"] == "CrashLoopBackOff"
    assert found["root_cause"] == "the image lacks config/production.json, which the start command requires"
    assert found["fix"]["file"] == "config/production.json"
    assert found["fix"]["dockerfile"] == "COPY config/ ./config/"
    assert found["confidence"] == "high"
    assert found["failed_step"]["id"] in ("verify_pods", "check_logs")
    logs = [
        e for e in found["evidence"]
        if e["tool"] == "get_pod_logs" and e["text"] == "Error: Cannot find module './config/production.json'"
    ]  # fmt: skip
    assert logs and logs[0]["step"] == "check_logs" and logs[0]["line"] >= 1
    assert "kubernetes/get_pod_logs" in logs[0]["citation"]
    outcomes = {c["step"]: c["outcome"] for c in found["components"]}
    assert outcomes["build"] == "passed" and outcomes["deploy"].startswith("passed, then rolled back")
    assert "failed" in {outcomes["verify_pods"], outcomes["check_logs"]}

    audit = json.loads(as_user(project, "ada", "audit", "--json", "--limit", "500")[1])
    reads = [e for e in audit if e["action"] == "tool.called" and e["details"].get("via") == "explain"]
    assert reads and all(e["actor"] == "vic" for e in reads), (
        "the viewer's reads went through the checked path"
    )

    code, out, err = as_user(project, "vic", "explain", result["run_id"])
    assert code == 0 and "COPY config/ ./config/" in out and "Confidence: high" in out, err


def test_an_unknown_run_is_a_usage_error(project: Path) -> None:
    code, _, err = as_user(project, "vic", "explain", "run-that-does-not-exist", "--json")
    assert code == 2 and "run-that-does-not-exist" in err

"""The root-cause rules: the loader refuses what is wrong clearly, the matcher claims only what a line
shows (and cites that line), and every bundled rule fires on a realistic line."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain.root_cause import MAX_LINE_CHARS, MAX_LINES, Artifact, analyse, match_lines
from opsmith.domain.root_cause_rules import Rule, RuleFileError, merge_rules, parse_rules
from opsmith.rule_library import bundled_rules

RULE = """
rules:
  - id: planted
    error_type: Planted
    pattern: "ZQX-(?P<code>\\\\d{3})-FAIL"
    root_cause: "the planted failure {code}"
    fix: {summary: "remove plant {code}"}
    confidence: low
"""


def planted() -> list[Rule]:
    return parse_rules(RULE, source="planted.yaml")


# -- the loader -----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_is_rules_or_one_clear_error(text: str) -> None:
    try:
        parse_rules(text, source="mine.yaml")
    except RuleFileError as error:
        assert error.message.startswith("mine.yaml")
        assert error.hint


KEYS = ["id", "kind", "error_type", "pattern", "root_cause", "fix", "confidence", "applies_to", "priority"]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(KEYS), st.integers(min_value=0, max_value=2))
def test_an_unknown_key_names_the_file_the_rule_and_the_nearest_key(key: str, where: int) -> None:
    # A misspelling: one letter doubled, dropped or added at `where`.
    typo = [key + key[-1], key[:-1] if len(key) > 3 else key + "x", key + "s"][where]
    text = RULE.replace("    confidence: low", f"    confidence: low\n    {typo}: 1")
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, source="mine.yaml")
    message = caught.value.message
    assert message.startswith("mine.yaml: rule 'planted': unknown key") and repr(typo) in message
    assert f"did you mean {key!r}" in message
    assert "pattern" in (caught.value.hint or "")


def test_an_unknown_key_inside_a_fix_is_named_too() -> None:
    text = RULE.replace('fix: {summary: "remove plant {code}"}', 'fix: {summary: "x", dockerfle: "COPY a b"}')
    with pytest.raises(
        RuleFileError, match=r"rule 'planted': fix: unknown key 'dockerfle'; did you mean 'dockerfile'"
    ):
        parse_rules(text, source="mine.yaml")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (('"ZQX-(?P<code>\\\\d{3})-FAIL"', '"(a+)+$"'), "nests a quantifier"),
        (('"ZQX-(?P<code>\\\\d{3})-FAIL"', '"(\\\\w*)*x"'), "nests a quantifier"),
        (('"ZQX-(?P<code>\\\\d{3})-FAIL"', '"ZQX-(unclosed"'), "not a valid regular expression"),
        (
            ("the planted failure {code}", "the planted failure {host}"),
            "uses {host}, which is not a named group",
        ),
        (("confidence: low", "confidence: certain"), "confidence"),
        (("id: planted", "id: Planted!"), "rule 'Planted!': id: String should match"),
    ],
)
def test_a_wrong_rule_is_refused_naming_what_is_wrong(change: tuple[str, str], said: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(RULE.replace(*change), source="mine.yaml")
    assert said in caught.value.message and caught.value.message.startswith("mine.yaml")


def test_bad_yaml_names_the_line_and_a_wrong_shape_the_key() -> None:
    with pytest.raises(RuleFileError, match=r"^mine.yaml:3: not valid YAML"):
        parse_rules("rules:\n  - id: a\n  bad: [\n", source="mine.yaml")
    with pytest.raises(RuleFileError, match="one key, 'rules'"):
        parse_rules("rule: []", source="mine.yaml")
    with pytest.raises(RuleFileError, match="defined twice"):
        parse_rules(RULE + RULE.split("rules:")[1], source="mine.yaml")


def test_a_user_rule_with_a_bundled_id_replaces_it_and_others_are_added() -> None:
    bundled = bundled_rules()
    mine = parse_rules(
        RULE.replace("id: planted", "id: disk-full").replace("Planted", "MyDiskFull")
        + RULE.split("rules:")[1],
        source="mine.yaml",
    )
    merged = merge_rules(bundled, mine)
    by_id = {r.id: r for r in merged}
    assert len(merged) == len(bundled) + 1
    assert by_id["disk-full"].error_type == "MyDiskFull" and by_id["planted"].source == "mine.yaml"


# -- the matcher ----------------------------------------------------------------------------------

NOISE = st.text(alphabet=string.ascii_letters + string.digits + " .:/_-'\"()[]{}=", max_size=120)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(NOISE, max_size=40), st.integers(min_value=0, max_value=40), NOISE, NOISE, st.integers(100, 999)
)
def test_a_planted_line_is_found_with_its_line_number(
    lines: list[str], at: int, before: str, after: str, code: int
) -> None:
    lines = [line.replace("ZQX", "zqx") for line in lines]
    at = min(at, len(lines))
    lines.insert(at, f"{before.replace('ZQX', 'zqx')}ZQX-{code}-FAIL{after}")
    artifact = Artifact(kind="log", step="s", server="k", tool="get_pod_logs", lines=tuple(lines))
    hits, read, cut = match_lines(planted(), [artifact])
    assert [h.line.line for h in hits] == [at + 1] and not cut and read == len(lines)
    assert hits[0].groups == {"code": str(code)} and hits[0].line.tool == "get_pod_logs"
    found = analyse(planted(), [artifact], run_id="r", plan_id="p", status="failed", steps=[], failed=None)
    assert found.explained and found.root_cause == f"the planted failure {code}"
    assert found.evidence[0].line == at + 1 and "ZQX" in found.evidence[0].text


@settings(max_examples=200, deadline=None)
@given(st.lists(NOISE, max_size=60))
def test_text_without_the_pattern_never_claims_anything(lines: list[str]) -> None:
    lines = [line.replace("ZQX", "zqx") for line in lines]
    artifact = Artifact(kind="log", step="s", lines=tuple(lines))
    found = analyse(planted(), [artifact], run_id="r", plan_id="p", status="failed", steps=[], failed=None)
    assert not found.explained and found.findings == [] and found.fix is None and found.confidence is None
    assert found.root_cause.startswith("no rule matched")
    assert {line.text for line in found.evidence} <= set(lines)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="aA0 :-_'./()", max_size=200), max_size=30))
def test_random_text_makes_no_bundled_rule_claim(lines: list[str]) -> None:
    found = analyse(
        bundled_rules(), [Artifact(kind="log", lines=tuple(lines))], run_id="r", plan_id="p", status="failed",
        steps=[], failed=None,
    )  # fmt: skip
    assert not found.explained


def test_lines_are_cut_and_counted_so_a_hostile_log_cannot_make_matching_long() -> None:
    beyond = "a" * MAX_LINE_CHARS + "ZQX-123-FAIL"
    hits, _, _ = match_lines(planted(), [Artifact(kind="log", lines=(beyond,))])
    assert hits == [], "what lies past the cut is not read"
    many = Artifact(kind="log", lines=("x",) * (MAX_LINES + 5) + ("ZQX-123-FAIL",))
    hits, read, cut = match_lines(planted(), [many])
    assert hits == [] and read == MAX_LINES and cut


def test_a_rule_fires_only_on_the_artifact_kinds_it_applies_to() -> None:
    rule = parse_rules(
        RULE.replace("    confidence: low", "    confidence: low\n    applies_to: [stderr]"), source="x"
    )
    assert match_lines(rule, [Artifact(kind="log", lines=("ZQX-123-FAIL",))])[0] == []
    assert len(match_lines(rule, [Artifact(kind="stderr", host="web1", lines=("ZQX-123-FAIL",))])[0]) == 1


def test_confidence_is_the_rules_own_and_rises_only_with_corroboration() -> None:
    rules = bundled_rules()
    alone = Artifact(kind="log", step="logs", lines=("Error: Cannot find module './config/production.json'",))
    found = analyse(rules, [alone], run_id="r", plan_id="p", status="failed", steps=[], failed=None)
    finding = next(f for f in found.findings if f.rule == "missing-module-in-folder")
    assert finding.confidence == finding.stated_confidence == "high" and finding.corroborated_by == []
    oom = Artifact(kind="output", step="pods", lines=("pods.0.last_state.reason: OOMKilled",))
    assert (
        analyse(rules, [oom], run_id="r", plan_id="p", status="failed", steps=[], failed=None).confidence
        == "high"
    )
    probe = Artifact(
        kind="event", step="ev", lines=("Readiness probe failed: HTTP probe failed with statuscode: 503",)
    )
    lone = analyse(rules, [probe], run_id="r", plan_id="p", status="failed", steps=[], failed=None)
    assert lone.confidence == "medium"
    again = Artifact(kind="log", step="logs", lines=("Warning  Unhealthy  Readiness probe failed: timeout",))
    backed = analyse(rules, [probe, again], run_id="r", plan_id="p", status="failed", steps=[], failed=None)
    assert backed.confidence == "high" and backed.findings[0].corroborated_by[0].step == "logs"


def test_the_seed_story_names_the_file_the_dockerfile_line_and_the_symptom() -> None:
    error = (
        "rollout of my-application revision 2 failed: 0/1 new pods ready, CrashLoopBackOff: "
        "Error: Cannot find module './config/production.json'."
    )
    logs = ("Failed to load configuration file", "Error: Cannot find module './config/production.json'")
    deploy = {"step": "deploy", "server": "kubernetes", "tool": "apply_deployment"}
    found = analyse(
        bundled_rules(),
        [
            Artifact(kind="error", **deploy, lines=(error,)),
            Artifact(kind="log", step="check_logs", server="kubernetes", tool="get_pod_logs", lines=logs),
        ],
        run_id="r", plan_id="p", status="rolled_back", steps=[], failed=None,
    )  # fmt: skip
    assert found.error_type == "CrashLoopBackOff" and found.confidence == "high"
    assert found.root_cause == "the image lacks config/production.json, which the start command requires"
    assert found.fix is not None and found.fix.file == "config/production.json"
    assert found.fix.dockerfile == "COPY config/ ./config/"
    cited = {(e.step, e.tool, e.line) for e in found.evidence}
    assert ("check_logs", "get_pod_logs", 2) in cited and ("deploy", "apply_deployment", 1) in cited


# -- every bundled rule, with a line as the real thing prints it -----------------------------------

SAMPLES: dict[str, tuple[str, str]] = {
    "missing-module-in-folder": ("log", "Error: Cannot find module './config/production.json'"),
    "missing-module-file": ("log", "Error: Cannot find module './settings.json'"),
    "image-lacks-files": (
        "error",
        "image myorg/app:v1 (sha256:abc) lacks required files config/production.json; layers: 0: FROM node",
    ),
    "file-not-found": ("log", "Error: ENOENT: no such file or directory, open '/app/certs/tls.pem'"),
    "secret-or-configmap-missing": ("event", 'Error: secret "db-credentials" not found'),
    "oom-killed": ("output", "pods.0.last_state.terminated.reason: OOMKilled"),
    "readiness-probe-failed": ("event", 'Readiness probe failed: Get "http://10.1.0.7:8080/healthz": EOF'),
    "failed-mount": ("event", 'Warning  FailedMount  MountVolume.SetUp failed for volume "data"'),
    "image-pull-failed": ("event", 'Failed to pull image "myorg/app:v9": not found'),
    "unschedulable": ("event", "0/3 nodes are available: 3 Insufficient cpu."),
    "crash-loop-backoff": ("output", "pods.1.status: CrashLoopBackOff"),
    "image-pull-backoff": ("output", "pods.0.status: ImagePullBackOff"),
    "err-image-pull": ("output", "pods.0.status: ErrImagePull"),
    "create-container-config-error": ("output", "pods.0.status: CreateContainerConfigError"),
    "run-container-error": ("output", "pods.0.status: RunContainerError"),
    "invalid-image-name": ("output", "pods.0.status: InvalidImageName"),
    "pods-pending": ("output", "pods.0.phase: Pending"),
    "quality-gate-failed": (
        "error",
        "quality gate production-gate FAILED for my-application at 1a2b3c4 (analysis 7): coverage 61.0 < 80",
    ),
    "quality-gate-status": ("output", "quality_gate.status: FAILED"),
    "vulnerability": (
        "error",
        "security scan is BLOCKED by 1 CRITICAL finding(s): CVE-2021-44906 in minimist",
    ),
    "compliance-unmet": ("error", "compliance not met: backup_before_change: no backup step succeeded"),
    "connection-refused-to": ("log", "Error: connect ECONNREFUSED 10.0.3.4:5432"),
    "connection-refused": ("stderr", "curl: (7) Failed to connect to localhost port 80: Connection refused"),
    "dependency-timeout": ("log", "dial tcp 10.0.0.9:6379: i/o timeout"),
    "credentials-rejected": ("log", 'FATAL: password authentication failed for user "app"'),
    "permission-denied": ("stderr", "mkdir: cannot create directory '/var/lib/app': Permission denied"),
    "role-refused": ("error", "vic (viewer) is not allowed to execute kubernetes/apply_deployment"),
    "disk-full": ("stderr", "write /var/lib/docker/tmp: no space left on device"),
    "service-start-failed": (
        "error",
        "start of service nginx failed with exit code 1 (its manager's message is on stderr)",
    ),
    "service-failed-after-start": ("error", "service nginx failed after start"),
    "systemd-job-failed": (
        "stderr",
        "Job for nginx.service failed because the control process exited with error code.",
    ),
}


def test_every_bundled_rule_has_a_sample_line() -> None:
    assert {r.id for r in bundled_rules()} == set(SAMPLES)


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_each_bundled_rule_fires_on_its_realistic_line_and_cites_it(rule_id: str) -> None:
    kind, line = SAMPLES[rule_id]
    artifact = Artifact(kind=kind, step="s", server="srv", tool="t", host="web1", lines=("starting", line))  # type: ignore[arg-type]
    found = analyse(
        bundled_rules(), [artifact], run_id="r", plan_id="p", status="failed", steps=[], failed=None
    )
    finding = next((f for f in found.findings if f.rule == rule_id), None)
    assert finding is not None, [f.rule for f in found.findings]
    assert finding.cited.line == 2 and finding.cited.text == line and finding.cited.host == "web1"
    assert "{" not in finding.root_cause + finding.fix.summary, "every template was filled"
    assert finding.root_cause and finding.fix.summary


def test_no_bundled_pattern_nests_quantifiers() -> None:
    nested = re.compile(r"\([^()]*[+*][^()]*\)[+*]")
    assert [r.id for r in bundled_rules() if nested.search(r.pattern)] == []


@pytest.mark.parametrize("rule", bundled_rules(), ids=lambda r: r.id)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_every_line_a_bundled_pattern_matches_holds_one_of_its_screen_words(
    rule: Rule, data: st.DataObject
) -> None:
    # The screen skips lines before any search: it must never skip a line the pattern matches.
    line = data.draw(st.from_regex(rule.regex, alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
    assert rule.regex.search(line)
    assert not rule.screen or any(word in line.lower() for word in rule.screen), line

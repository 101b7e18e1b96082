"""Risk levels from action words, annotations and the environment."""

from __future__ import annotations

import pytest

from opsmith.domain.catalog import ToolHints
from opsmith.domain.risk import Risk, RiskRules, assess, highest, tool_words

RULES = RiskRules()
WRITER = ToolHints(read_only=False, destructive=True)
READER = ToolHints(read_only=True)


@pytest.mark.parametrize(
    ("tool", "hints", "changes", "environment", "level"),
    [
        ("delete_deployment", WRITER, True, "staging", Risk.CRITICAL),
        ("delete_deployment", WRITER, True, "production", Risk.CRITICAL),
        ("get_pods", READER, False, "production", Risk.LOW),
        ("apply_deployment", WRITER, True, "production", Risk.HIGH),
        ("apply_deployment", WRITER, True, "staging", Risk.MEDIUM),
        ("trigger_build", ToolHints(read_only=False, destructive=False), False, "production", Risk.MEDIUM),
        ("backup_deployment", ToolHints(read_only=False, destructive=False), False, "production", Risk.LOW),
        ("backup_deployment", WRITER, False, "production", Risk.MEDIUM),
        ("forceReset", ToolHints(), True, "production", Risk.CRITICAL),
        ("frobnicate", ToolHints(), False, None, Risk.MEDIUM),
        ("deleted_items_report", READER, False, "production", Risk.LOW),
    ],
)
def test_levels(tool: str, hints: ToolHints, changes: bool, environment: str | None, level: Risk) -> None:
    assert assess(tool, hints, changes_target=changes, environment=environment, rules=RULES).level is level


def test_the_most_severe_whole_word_wins_and_is_explained() -> None:
    result = assess("scale_or_delete", WRITER, changes_target=True, environment="staging", rules=RULES)
    assert result.level is Risk.CRITICAL
    assert result.reasons[0] == "action word 'delete' in scale_or_delete -> CRITICAL"
    partial = assess("deleter_view", WRITER, changes_target=False, environment=None, rules=RULES)
    assert partial.level is Risk.MEDIUM, "'deleter' is not the whole word 'delete'"


def test_production_raise_is_explained() -> None:
    result = assess("apply_deployment", WRITER, changes_target=True, environment="production", rules=RULES)
    assert result.reasons[-1] == "changes production -> raised to HIGH"


def test_rules_are_data_a_user_can_override() -> None:
    strict = RiskRules(words={Risk.CRITICAL: ["deploy"]}, raise_in=[])
    assert (
        assess("deploy_app", WRITER, changes_target=True, environment="production", rules=strict).level
        is Risk.CRITICAL
    )


def test_words_and_highest() -> None:
    assert tool_words("getPodLogs") == ["get", "pod", "logs"]
    assert tool_words("rollback-deployment") == ["rollback", "deployment"]
    assert highest([Risk.LOW, Risk.HIGH, Risk.MEDIUM]) is Risk.HIGH
    assert highest([]) is Risk.LOW

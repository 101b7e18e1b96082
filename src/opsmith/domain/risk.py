"""Risk levels and the rules that give a step its level. The rules are data a user can override."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.catalog import ToolHints, tool_words


class Risk(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def raised(self) -> Risk:
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]

    @property
    def symbol(self) -> str:
        return {"LOW": "🟢", "MEDIUM": "🟡", "HIGH": "🟠", "CRITICAL": "🔴"}[self.value]


_ORDER = [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL]


def highest(levels: list[Risk]) -> Risk:
    return max(levels, key=lambda r: r.rank) if levels else Risk.LOW


class RiskRules(BaseModel):
    """Action words per level (whole words of the tool's name); the most severe match wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    words: dict[Risk, list[str]] = Field(
        default_factory=lambda: {
            Risk.CRITICAL: ["delete", "destroy", "drop", "purge", "terminate", "wipe", "erase", "remove"],
            Risk.HIGH: ["reset", "force", "kill", "truncate", "revoke", "migrate"],
            Risk.MEDIUM: [
                "deploy",
                "apply",
                "rollback",
                "scale",
                "restart",
                "stop",
                "start",
                "update",
                "upgrade",
                "install",
                "switch",
                "promote",
                "canary",
                "push",
                "tag",
                "trigger",
                "build",
                "run",
                "analyze",
                "configure",
                "create",
                "copy",
                "write",
                "set",
                "abort",
            ],
            Risk.LOW: [
                "get",
                "list",
                "show",
                "describe",
                "read",
                "verify",
                "check",
                "status",
                "logs",
                "compare",
                "pull",
                "backup",
                "snapshot",
                "search",
                "find",
                "inspect",
                "watch",
                "health",
            ],
        }
    )
    default: Risk = Risk.MEDIUM
    raise_in: list[str] = Field(default_factory=lambda: ["production"])


class RiskAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: Risk
    reasons: list[str]


def assess(
    tool_name: str,
    hints: ToolHints,
    *,
    changes_target: bool,
    environment: str | None,
    rules: RiskRules,
) -> RiskAssessment:
    """The level of one step and why: words, then annotations, then the environment."""
    words = tool_words(tool_name)
    matched = [(level, w) for level in _ORDER[::-1] for w in rules.words.get(level, []) if w in words]
    if matched:
        level, word = matched[0]
        reasons = [f"action word '{word}' in {tool_name} -> {level.value}"]
    else:
        level, reasons = rules.default, [f"no known action word in {tool_name} -> {rules.default.value}"]
    if hints.read_only:
        if level is not Risk.LOW:
            reasons.append("readOnlyHint -> LOW")
        return RiskAssessment(level=Risk.LOW, reasons=reasons)
    if hints.destructive and level is Risk.LOW:
        level = Risk.MEDIUM
        reasons.append("destructiveHint -> at least MEDIUM")
    if changes_target and environment in rules.raise_in:
        raised = level.raised()
        if raised is not level:
            reasons.append(f"changes {environment} -> raised to {raised.value}")
        level = raised
    return RiskAssessment(level=level, reasons=reasons)

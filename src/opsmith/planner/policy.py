"""The configuration's risk words and approval policy as the domain's values, for every way of
making a plan (the planner, a plan written by hand) and for direct tool calls."""

from __future__ import annotations

from opsmith.config import Config
from opsmith.domain.approval_rule import ApprovalRule
from opsmith.domain.risk import Risk, RiskRules


def risk_rules(config: Config) -> RiskRules:
    """The risk rules the planner uses: the built-in action words, levels replaced by the config's."""
    words = config.planning.risk_words
    defaults = RiskRules()
    return RiskRules(
        words={**defaults.words, **({Risk(k): v for k, v in words.items()} if words else {})},
        raise_in=config.planning.raise_risk_in,
    )


def approval_rule(config: Config) -> ApprovalRule:
    """`policy.approval` of the configuration as the domain's value."""
    policy = config.policy.approval
    return ApprovalRule(
        environments=tuple(policy.environments),
        min_risk=Risk(policy.min_risk),
        four_eyes_risk=Risk(policy.four_eyes_risk),
        four_eyes_approvers=policy.four_eyes_approvers,
    )

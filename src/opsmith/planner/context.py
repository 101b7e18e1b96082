"""Rules that adapt a plan to its moment: urgency, a risky Friday, recent failures.

The clock and the failure history are inputs, so each rule is a plain function of values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsmith.domain.plan import FiredRule
from opsmith.domain.playbook import PlaybookStep


@dataclass(frozen=True)
class Moment:
    now: datetime
    recent_failures: int
    failure_window_days: int
    friday_cutoff_hour: int


@dataclass(frozen=True)
class Adjustment:
    rules: list[FiredRule]
    extra_steps: list[PlaybookStep]
    extra_approvals: int
    staging_validation: bool


def adjust(
    environment: str | None, urgency: str, subject: str | None, moment: Moment, has_staging: bool
) -> Adjustment:
    rules: list[FiredRule] = []
    extra: list[PlaybookStep] = []
    approvals = 0
    staging = False
    if urgency in ("fast", "urgent"):
        rules.append(
            FiredRule(
                rule="fast_track",
                reason=f"the request is {urgency}",
                effect="optional steps are left out; see 'skipped'",
            )
        )
    if environment == "production" and _risky_time(moment):
        extra.append(
            PlaybookStep(
                id="extended_monitoring",
                capability="check_logs",
                name="Extended monitoring of the new version",
                args={"label_selector": f"app={subject}" if subject else "", "tail_lines": 500},
                description="A second, longer look at the logs: fewer people are around to react",
            )
        )
        rules.append(
            FiredRule(
                rule="risky_time",
                reason=f"{moment.now:%A %H:%M} is "
                + (
                    "the weekend"
                    if moment.now.weekday() >= 5
                    else f"Friday after {moment.friday_cutoff_hour}:00"
                ),
                effect="extended monitoring added after the deployment",
            )
        )
    if environment == "production" and moment.recent_failures > 0:
        approvals = 1
        staging = not has_staging
        rules.append(
            FiredRule(
                rule="recent_failures",
                reason=f"{moment.recent_failures} failed run(s) of {subject} in production in the last "
                f"{moment.failure_window_days} days",
                effect=("mandatory staging validation and " if staging else "")
                + "one more approval required",
            )
        )
    return Adjustment(rules=rules, extra_steps=extra, extra_approvals=approvals, staging_validation=staging)


def staging_steps(subject: str | None) -> list[PlaybookStep]:
    """Deploy to staging and wait for a person to validate it, before production is touched."""
    selector = f"app={subject}" if subject else ""
    return [
        PlaybookStep(
            id="staging_deploy",
            capability="deploy",
            name="Deploy to staging first",
            environment="staging",
            args={"image": "${steps.push_image.image}"},
            rollback="rollback",
        ),
        PlaybookStep(
            id="staging_validate",
            capability="verify_pods",
            name="Validate in staging",
            environment="staging",
            depends_on=["staging_deploy"],
            requires_validation=True,
            args={"label_selector": selector},
        ),
    ]


def _risky_time(moment: Moment) -> bool:
    weekday = moment.now.weekday()
    return weekday >= 5 or (weekday == 4 and moment.now.hour >= moment.friday_cutoff_hour)

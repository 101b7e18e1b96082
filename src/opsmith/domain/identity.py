"""Who is acting, and what their role lets them do. Roles and permissions are data.

A permission names the actions a role may take, the environments it may touch, the highest
risk it may approve or execute, and the tools it may call (globs such as `kubernetes/*` or
`*/get_*`). Nothing here trusts what a caller says about itself: the identity is resolved at
the edge from configuration, and changing a role is an admin action.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.risk import Risk


class Action(StrEnum):
    PLAN = "plan"
    APPROVE = "approve"
    EXECUTE = "execute"
    CANCEL = "cancel"
    ADMIN = "admin"


class Permission(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actions: list[Action] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=lambda: ["*"])
    max_risk: Risk = Risk.LOW
    tools: list[str] = Field(default_factory=lambda: ["*"])


DEFAULT_ROLES: dict[str, Permission] = {
    "viewer": Permission(actions=[], max_risk=Risk.LOW, tools=["*/get_*", "*/list_*"]),
    "operator": Permission(
        actions=[Action.PLAN, Action.EXECUTE, Action.CANCEL],
        environments=["development", "staging"],
        max_risk=Risk.MEDIUM,
    ),
    "deployer": Permission(actions=[Action.PLAN, Action.EXECUTE, Action.CANCEL], max_risk=Risk.HIGH),
    "approver": Permission(actions=[Action.PLAN, Action.APPROVE, Action.CANCEL], max_risk=Risk.CRITICAL),
    "admin": Permission(actions=list(Action), max_risk=Risk.CRITICAL),
}


class Identity(BaseModel):
    """The person behind a command, and how opsmith knows who they are."""

    model_config = ConfigDict(frozen=True)

    user: str
    role: str
    source: str = Field(description="config | os-user | as-option | embedded-admin | token")


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str


def decide(
    identity: Identity,
    permission: Permission,
    action: Action,
    *,
    environment: str | None = None,
    risk: Risk | None = None,
    tool: str | None = None,
) -> Decision:
    """Whether `identity` may take `action` here; the reason names the rule that decided."""
    who = f"{identity.user} ({identity.role})"
    if action not in permission.actions:
        return Decision(allowed=False, reason=f"{who} may not {action.value}")
    if environment is not None and not _matches(environment, permission.environments):
        return Decision(allowed=False, reason=f"{who} may not {action.value} in {environment}")
    if risk is not None and risk.rank > permission.max_risk.rank:
        return Decision(
            allowed=False,
            reason=f"{who} may {action.value} up to {permission.max_risk.value} risk, this is {risk.value}",
        )
    if tool is not None and not _matches(tool, permission.tools):
        return Decision(allowed=False, reason=f"{who} may not call {tool}")
    return Decision(allowed=True, reason=f"{who} may {action.value}")


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)

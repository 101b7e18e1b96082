"""Resolve who is acting, once, at the edge: configuration, stored role changes, the OS user."""

from __future__ import annotations

from opsmith.config import Config
from opsmith.domain.errors import UsageError
from opsmith.domain.identity import DEFAULT_ROLES, Identity, Permission


def resolve_identity(config: Config, os_user: str, as_user: str | None, stored: dict[str, str]) -> Identity:
    """The acting identity. `stored` holds role changes an admin made (they win over the file)."""
    rbac = config.rbac
    if rbac is None:
        if as_user is not None:
            raise UsageError(
                "--as needs users configured", hint="add an rbac section with users and allow_as: true"
            )
        return Identity(user=os_user, role="admin", source="embedded-admin")
    if as_user is not None:
        if not rbac.allow_as:
            raise UsageError("--as is not allowed by this configuration", hint="set rbac.allow_as: true")
        role = stored.get(as_user) or rbac.users.get(as_user)
        if role is None:
            raise UsageError(
                f"--as {as_user}: no such user in {config.source}",
                hint=f"configured users: {', '.join(sorted(rbac.users)) or 'none'}",
            )
        return Identity(user=as_user, role=role, source="as-option")
    role = stored.get(os_user) or rbac.users.get(os_user)
    if role is None:
        return Identity(user=os_user, role="viewer", source="os-user")
    return Identity(user=os_user, role=role, source="config")


def permission_of(config: Config, identity: Identity) -> Permission:
    if config.rbac is None:
        return DEFAULT_ROLES["admin"]
    return config.rbac.permission(identity.role)

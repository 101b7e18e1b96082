"""Resolve who is acting, once, at the edge: configuration, stored role changes, the OS user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsmith.config import Config
from opsmith.domain.errors import UnknownUserError, UsageError
from opsmith.domain.identity import DEFAULT_ROLES, Identity, Permission

if TYPE_CHECKING:
    from opsmith.bootstrap import App


def identify(app: App, os_user: str, as_user: str | None) -> Identity:
    """Who acts: the account (or `--as`, for admins where allowed), with the roles admins stored."""
    return resolve_identity(app.config, os_user, as_user, app.roles.all())


def refreshed(app: App, identity: Identity) -> Identity:
    """The same person, with the role they have now (an admin may have changed it meanwhile):
    for a long-lived face that resolved its identity once, at start."""
    if app.config.rbac is None or identity.source == "embedded-admin":
        return identity
    return identity.model_copy(update={"role": current_role(app, identity.user) or "viewer"})


def current_role(app: App, user: str) -> str | None:
    """A user's role now, as `resolve_identity` reads it: an admin's stored change wins over the
    file. None without an rbac section, or for a user neither names."""
    rbac = app.config.rbac
    if rbac is None:
        return None
    return app.roles.all().get(user) or rbac.users.get(user)


def resolve_identity(config: Config, os_user: str, as_user: str | None, stored: dict[str, str]) -> Identity:
    """The acting identity. `stored` holds role changes an admin made (they win over the file)."""
    rbac = config.rbac
    if rbac is None:
        if as_user is not None:
            raise UsageError(
                "--as needs users configured", hint="add an rbac section with users and allow_as: true"
            )
        return Identity(user=os_user, role="admin", source="embedded-admin")
    own_role = stored.get(os_user) or rbac.users.get(os_user)
    if as_user is not None:
        if not rbac.allow_as:
            raise UsageError("--as is not allowed by this configuration", hint="set rbac.allow_as: true")
        if own_role != "admin":
            # Acting as someone else is how tests and support sessions work; it must never be how
            # a deployer approves as an approver.
            raise UsageError(
                f"--as is for admins; {os_user} is {own_role or 'viewer'}",
                hint="run as your own account, or ask an admin",
            )
        role = stored.get(as_user) or rbac.users.get(as_user)
        if role is None:
            raise UnknownUserError(
                f"--as {as_user}: no such user in {config.source}",
                hint=f"configured users: {', '.join(sorted(rbac.users)) or 'none'}",
            )
        return Identity(user=as_user, role=role, source="as-option")
    if own_role is None:
        return Identity(user=os_user, role="viewer", source="os-user")
    return Identity(user=os_user, role=own_role, source="config")


def acting_as(app: App, user: str) -> Identity:
    """A person a long-lived process acts for (the starter of a run it takes over), with the role
    they have now; someone no longer configured is a viewer."""
    rbac = app.config.rbac
    if rbac is None:
        return Identity(user=user, role="admin", source="embedded-admin")
    role = app.roles.all().get(user) or rbac.users.get(user) or "viewer"
    return Identity(user=user, role=role, source="run-starter")


def permission_of(config: Config, identity: Identity) -> Permission:
    """What the identity's role lets it do. Without an rbac section the roles are the defaults: the
    local account is the embedded admin, and a server's token carries the role it was made with."""
    if config.rbac is None:
        return DEFAULT_ROLES.get(identity.role, DEFAULT_ROLES["viewer"])
    return config.rbac.permission(identity.role)

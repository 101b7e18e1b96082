"""The fleet inventory as use cases: importing it (an admin action, audited) and reading it.

Where the inventory comes from, in order:

1. opsmith.yaml's `inventory:` (a path to an Ansible INI/YAML file, or inline groups), when it
   is there. It is the source of truth: at every read its content hash is compared with the
   stored one, and when they differ it is imported first, by opsmith itself (actor `opsmith`,
   audited as `inventory.import` with `via: config`), so every process and face sees the
   declaration as it is now. `opsmith inventory import` is then refused: its import would be
   undone at the next read.
2. Otherwise the inventory last imported (`opsmith inventory import FILE`).
3. Otherwise an empty inventory: no groups, no hosts.

Reading takes no permission beyond being a known identity (the identity is taken so that a rule,
when reading needs one, is added here once). An import's audit entry holds its source, counts and
hash: never a variable's value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmith.bootstrap import App
from opsmith.domain.errors import ConfigError, InventoryError, UsageError
from opsmith.domain.hosts import Host
from opsmith.domain.identity import Action, Identity
from opsmith.domain.inventory import ALL, Group, Inventory, InventorySource
from opsmith.domain.inventory_ansible import parse_inventory
from opsmith.services.access import require

SYSTEM_ACTOR = "opsmith"  # who imports the inventory opsmith.yaml declares
MAX_TEXT = 20_000_000  # characters of one inventory file: far above any real one, far below a mistake
_AUDIT_SUBJECT = "inventory"


class GroupSummary(BaseModel):
    """A group in a list: where it sits, its direct members, how many hosts it reaches, its vars."""

    model_config = ConfigDict(frozen=True)

    name: str
    parents: list[str]
    children: list[str]
    hosts: list[str] = Field(description="hosts listed in this group itself")
    host_count: int = Field(description="hosts in it or in any group nested in it")
    vars: dict[str, Any]


class HostView(Host):
    """A host resolved (merged vars, connection fields), with the groups it is in, in the order
    their vars apply (the last one wins)."""

    groups: list[str]


class GroupDetail(BaseModel):
    """One group: itself, its child groups and every host it reaches, resolved."""

    model_config = ConfigDict(frozen=True)

    group: GroupSummary
    children: list[GroupSummary]
    hosts: list[HostView]


class ImportSummary(BaseModel):
    """What an import stored: where from, its hash and size, and whether it changed anything."""

    model_config = ConfigDict(frozen=True)

    source: str
    hash: str
    groups: int
    hosts: int
    imported_at: datetime
    imported_by: str
    changed: bool
    previous_hash: str | None = None


def import_inventory(
    app: App, identity: Identity, text: str, source: str, *, via: str = "cli"
) -> ImportSummary:
    """Parse `text` (INI or YAML, by `source`'s suffix or the content) and make it the inventory,
    replacing the whole of the stored one. Admin only; refused when opsmith.yaml declares the
    inventory. InventoryError (exit 2) names the line of the first problem; nothing is stored then."""
    require(app, identity, Action.ADMIN, hint="importing the inventory is an admin action")
    if app.config.inventory is not None:
        raise UsageError(
            f"{app.config.source} declares the inventory, so it cannot be imported",
            hint="edit the inventory that opsmith.yaml's `inventory:` names, or remove that key to import",
        )
    if len(text) > MAX_TEXT:
        raise InventoryError(f"{len(text):,} characters is more than an inventory may be", source=source)
    inventory = parse_inventory(text, source)
    return _store(app, inventory, source=source, actor=identity.user, via=via)


def current(app: App) -> Inventory:
    """The inventory in effect (see the module docstring): opsmith.yaml's, imported first when it
    changed; else the stored one; else an empty one."""
    configured = _configured(app)
    if configured is None:
        return app.inventory.load() or Inventory()
    inventory, source = configured
    stored = app.inventory.source()
    if stored is None or stored.hash != inventory.content_hash():
        _store(app, inventory, source=source, actor=SYSTEM_ACTOR, via="config", previous=stored)
    return inventory


def origin(app: App, identity: Identity) -> InventorySource | None:
    """Where the inventory in effect came from (None: nothing imported, nothing declared)."""
    if app.config.inventory is not None:
        current(app)  # a declaration changed since it was last imported is imported now
    return app.inventory.source()


def groups(app: App, identity: Identity) -> list[GroupSummary]:
    """Every group: `all`, `ungrouped`, then the others by name."""
    inventory = current(app)
    return [_summary(inventory, group) for group in inventory.groups()]


def hosts(app: App, identity: Identity, group: str | None = None) -> list[HostView]:
    """Every host, or those of `group` (matched loosely: 'Production Web' finds production_web)
    and the groups nested in it; UnknownGroupError naming the nearest groups otherwise."""
    inventory = current(app)
    name = ALL if group is None else inventory.find_group(group).name
    return [_view(inventory, host) for host in inventory.hosts_of(name)]


def show(app: App, identity: Identity, group: str) -> GroupDetail:
    """One group (matched loosely), its child groups and its hosts with their merged vars."""
    inventory = current(app)
    found = inventory.find_group(group)
    return GroupDetail(
        group=_summary(inventory, found),
        children=[_summary(inventory, inventory.group(child)) for child in found.children],
        hosts=[_view(inventory, host) for host in inventory.hosts_of(found.name)],
    )


def _configured(app: App) -> tuple[Inventory, str] | None:
    declared = app.config.inventory
    if declared is None:
        return None
    if declared.path is None:
        inline = declared.inline(source=f"{app.config.source} inventory")
        return (inline, f"{app.config.source} (inline)") if inline is not None else None
    path = declared.path
    see = "fix `inventory:` in opsmith.yaml; a relative path is read from the config file's directory"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"the inventory file {path} (from {app.config.source}) does not exist", hint=see
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the inventory file {path}: {exc}", hint=see) from exc
    return parse_inventory(text, str(path)), str(path)


def _store(
    app: App,
    inventory: Inventory,
    *,
    source: str,
    actor: str,
    via: str,
    previous: InventorySource | None = None,
) -> ImportSummary:
    previous = previous or app.inventory.source()
    record = app.inventory.replace(inventory, source=source, by=actor, at=app.clock.now())
    before = previous.hash if previous else None
    # Counts and hashes only: a variable's value may be something its owner would not want copied.
    app.audit.append(
        actor,
        "inventory.import",
        _AUDIT_SUBJECT,
        {
            "source": source,
            "hash": record.hash,
            "previous_hash": before,
            "groups": record.groups,
            "hosts": record.hosts,
            "via": via,
        },
    )
    return ImportSummary(
        source=record.source,
        hash=record.hash,
        groups=record.groups,
        hosts=record.hosts,
        imported_at=record.imported_at,
        imported_by=record.imported_by,
        changed=record.hash != before,
        previous_hash=before,
    )


def _summary(inventory: Inventory, group: Group) -> GroupSummary:
    return GroupSummary(
        name=group.name,
        parents=inventory.parents_of(group.name),
        children=list(group.children),
        hosts=list(group.hosts),
        host_count=len(inventory.host_names_of(group.name)),
        vars=dict(group.vars),
    )


def _view(inventory: Inventory, host: Host) -> HostView:
    return HostView(**host.model_dump(), groups=inventory.groups_of(host.name))


def fleet_in_use(app: App) -> bool:
    """Whether the server `hosts` is there: the inventory in effect has hosts, and the fleet's
    adapters are installed (the `fleet` extra: asyncssh, pypsrp)."""
    return fleet_inventory(app) is not None


def fleet_inventory(app: App) -> Inventory | None:
    """The inventory in effect when the fleet is in use (see `fleet_in_use`), else None: one read
    for a use case that needs both the answer and the hosts."""
    import importlib.util

    if importlib.util.find_spec("asyncssh") is None:
        return None
    inventory = current(app)
    return inventory if inventory.host_count > 0 else None

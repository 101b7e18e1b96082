"""`opsmith inventory groups|hosts|show|import`: the fleet's groups and hosts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmith.cli.context import emit_json, escape, out, state
from opsmith.domain.errors import InventoryError

if TYPE_CHECKING:
    from rich.table import Table

    from opsmith.services.inventory import GroupSummary, HostView

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
GroupArg = Annotated[
    str, typer.Argument(metavar="GROUP", help="a group; case, spaces, '_' and '-' do not matter")
]

inventory_app = typer.Typer(
    help="The fleet's groups and hosts: from opsmith.yaml's `inventory:`, or imported.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@inventory_app.command("groups")
def groups_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every group: its parents, child groups, hosts and vars."""
    from opsmith.services import inventory

    found = inventory.groups(state(ctx).app, state(ctx).identity)
    if as_json:
        emit_json([g.model_dump(mode="json") for g in found])
        return
    out.print(_groups_table(found, _count(found, "group")))
    _print_origin(ctx)


@inventory_app.command("hosts")
def hosts_command(
    ctx: typer.Context,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="only this group's hosts (nested groups too)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every host (or a group's), with how it is reached and the groups it is in."""
    from opsmith.services import inventory

    found = inventory.hosts(state(ctx).app, state(ctx).identity, group)
    if as_json:
        emit_json([h.model_dump(mode="json") for h in found])
        return
    out.print(_hosts_table(found, _count(found, "host") + (f" in {escape(group)}" if group else "")))
    _print_origin(ctx)


@inventory_app.command("show")
def show_command(ctx: typer.Context, group: GroupArg, as_json: JsonOpt = False) -> None:
    """One group: its vars, its child groups, and its hosts with their merged vars."""
    from opsmith.services import inventory

    detail = inventory.show(state(ctx).app, state(ctx).identity, group)
    if as_json:
        emit_json(detail.model_dump(mode="json"))
        return
    summary = detail.group
    parents = ", ".join(summary.parents) or "none"
    out.print(
        f"[bold]group {escape(summary.name)}[/]  parents: {escape(parents)}  hosts: {summary.host_count}"
    )
    out.print(f"vars: {escape(_vars_text(summary.vars)) or '-'}")
    if detail.children:
        out.print(_groups_table(detail.children, _count(detail.children, "child group")))
    out.print(_hosts_table(detail.hosts, _count(detail.hosts, "host"), with_vars=True))


@inventory_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="an Ansible inventory, INI or YAML")],
    as_json: JsonOpt = False,
) -> None:
    """Make an Ansible inventory file opsmith's inventory, replacing the whole of the last one."""
    from opsmith.services import inventory

    summary = inventory.import_inventory(
        state(ctx).app, state(ctx).identity, _read(file), str(file.absolute())
    )
    if as_json:
        emit_json(summary.model_dump(mode="json"))
        return
    what = "imported" if summary.changed else "imported again, unchanged:"
    out.print(
        f"{what} {summary.hosts} hosts in {summary.groups} groups from {escape(summary.source)}"
        f" ({summary.hash[:19]})"
    )


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InventoryError(
            f"no inventory file {file}", hint="give the path of an Ansible inventory (INI or YAML)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(
            f"cannot read the inventory file {file}: {exc}", hint="give a readable UTF-8 INI or YAML file"
        ) from exc


def _print_origin(ctx: typer.Context) -> None:
    from opsmith.services import inventory

    origin = inventory.origin(state(ctx).app, state(ctx).identity)
    if origin is None:
        out.print(
            "[dim]the inventory is empty: `opsmith inventory import FILE`, or `inventory:` in opsmith.yaml[/]"
        )
        return
    when = origin.imported_at.strftime("%Y-%m-%d %H:%MZ")
    out.print(
        f"[dim]from {escape(origin.source)}, imported {when} by {escape(origin.imported_by)}"
        f" ({origin.hash[:19]})[/]"
    )


def _groups_table(groups: list[GroupSummary], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("group", "parents", "children", "hosts", "all hosts", "vars"):
        table.add_column(column, overflow="fold", no_wrap=column in ("group", "hosts", "all hosts"))
    for g in groups:
        table.add_row(
            escape(g.name),
            escape(", ".join(g.parents)) or "-",
            escape(", ".join(g.children)) or "-",
            str(len(g.hosts)),
            str(g.host_count),
            escape(_vars_text(g.vars)) or "-",
        )
    return table


def _hosts_table(hosts: list[HostView], title: str, *, with_vars: bool = False) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    columns = ["host", "address", "port", "os", "connection", "user", "credential", "groups"]
    for column in [*columns, "vars"] if with_vars else columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("host", "address", "port"))
    for h in hosts:
        row = [
            escape(h.name),
            escape(h.address),
            str(h.effective_port),
            h.os,
            h.connection,
            escape(h.user or "-"),
            escape(h.credential or "-"),
            escape(", ".join(g for g in h.groups if g != "all")),
        ]
        if with_vars:
            row.append(escape(_vars_text(h.vars)) or "-")
        table.add_row(*row)
    return table


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _vars_text(variables: dict[str, Any]) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in variables.items())

"""Load binding sets (the user's first, then the bundled ones) and find the bindings a catalog offers.

A user's set with a bundled set's name replaces it; a user's set of another name is asked before
every bundled one, so a user binding for a capability wins on the server it fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from opsmith.domain.binding import Binding, BindingSet
from opsmith.domain.capabilities import CAPABILITIES
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.errors import PlaybookError
from opsmith.planner.playbooks import cached_by_stat, read_yaml
from opsmith.planner.templates import check_syntax

BUNDLED = Path(__file__).resolve().parent.parent / "bundled" / "bindings"


@dataclass(frozen=True)
class Bound:
    """A binding that fits a server of the catalog, with the tool it names there."""

    binding: Binding
    set_name: str
    tool: ToolSpec


def load_bindings(inline: Sequence[BindingSet] = (), directories: Iterable[Path] = ()) -> list[BindingSet]:
    """The sets to consult, in order: inline ones, the user's files, then the bundled ones."""
    user: dict[str, BindingSet] = {s.name: s for s in inline}
    for directory in directories:
        if not directory.is_dir():
            raise PlaybookError(
                f"binding directory {directory} does not exist", hint="fix planning.binding_dirs"
            )
        for path in sorted(directory.glob("*.y*ml")):
            found = load_binding_set(path)
            user.setdefault(found.name, found)
    bundled = [load_binding_set(p) for p in sorted(BUNDLED.glob("*.yaml"))]
    return [*user.values(), *(s for s in bundled if s.name not in user)]


def load_binding_set(path: Path) -> BindingSet:
    return cached_by_stat(path, _load_binding_set)


def _load_binding_set(path: Path) -> BindingSet:
    data = read_yaml(path, "bindings")
    try:
        found = BindingSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlaybookError(
            f"bindings {path}: {where}: {first['msg']}",
            hint="see the bundled ones in opsmith/bundled/bindings",
        ) from exc
    check_binding_set(found, str(path))
    return found


def check_binding_set(found: BindingSet, where: str) -> None:
    """Unknown capabilities and template syntax errors, named, when the set is loaded."""
    for binding in found.bindings:
        if binding.capability not in CAPABILITIES:
            raise PlaybookError(
                f"bindings {where}: unknown capability {binding.capability!r}",
                hint=f"capabilities: {', '.join(sorted(CAPABILITIES))}",
            )
        for name, template in binding.args.items():
            problem = check_syntax(template)
            if problem:
                raise PlaybookError(f"bindings {where}: {binding.tool} args.{name}: {problem}")


def bound(capability: str, catalog: Catalog, sets: Sequence[BindingSet]) -> list[Bound]:
    """Every binding of `capability` that fits a server of the catalog: set order, then server order."""
    tools_by_server = {server: set(catalog.names(server)) for server in catalog.servers()}
    found: list[Bound] = []
    for binding_set in sets:
        for server in catalog.servers():
            if not binding_set.fits(server, tools_by_server.get(server, set())):
                continue
            for binding in binding_set.for_capability(capability):
                tool = catalog.get(server, binding.tool)
                if tool is not None:
                    found.append(Bound(binding=binding, set_name=binding_set.name, tool=tool))
    return found


__all__ = ["BUNDLED", "Bound", "bound", "check_binding_set", "load_binding_set", "load_bindings"]

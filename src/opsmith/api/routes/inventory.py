"""The fleet's inventory: its groups and hosts read, as `opsmith inventory ... --json` prints them, and
an Ansible inventory imported (admin)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from opsmith.api.bodies import MAX_INT, Page, page
from opsmith.api.deps import AppDep, Caller
from opsmith.services import inventory
from opsmith.services.inventory import MAX_TEXT

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])

Limit = Query(100, ge=1, le=1000)
Offset = Query(0, ge=0, le=MAX_INT)
# The suffixes by which the parser tells the formats apart (see `parse_inventory`): a name without
# its format's suffix is given the first one.
_SUFFIXES = {"ini": (".ini", ".cfg", ".hosts", ".txt"), "yaml": (".yaml", ".yml", ".json")}


class InventoryImport(BaseModel):
    """An Ansible inventory file's text, as `opsmith inventory import FILE` reads it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT, description="the file's text")
    format: Literal["ini", "yaml"] | None = Field(
        default=None, description="INI or YAML; when absent, told by the content as for a file without suffix"
    )
    name: str = Field(
        default="inventory",
        min_length=1,
        max_length=200,
        pattern=r"^[^/\\\x00-\x1f\x7f]+$",
        description="the file's name, recorded as where the inventory came from and named in errors",
    )

    def source(self) -> str:
        """The source the service is given: the name, with the suffix that says the format."""
        if self.format is None or PurePath(self.name).suffix.lower() in _SUFFIXES[self.format]:
            return self.name
        return self.name + _SUFFIXES[self.format][0]


@router.get("/groups", summary="Every group: its parents, child groups, hosts and vars")
async def list_groups(
    app: AppDep, who: Caller, limit: int = Limit, offset: int = Offset
) -> Page[dict[str, Any]]:
    found = inventory.groups(app, who)[offset : offset + limit]
    return page([g.model_dump(mode="json") for g in found], limit, offset)


@router.get("/groups/{name}", summary="One group, its child groups and its hosts with merged vars")
async def show_group(name: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return inventory.show(app, who, name).model_dump(mode="json")


@router.get("/hosts", summary="Every host (or a group's, nested groups too), and how it is reached")
async def list_hosts(
    app: AppDep,
    who: Caller,
    group: str | None = Query(None, max_length=200, description="case, spaces, '_' and '-' do not matter"),
    limit: int = Limit,
    offset: int = Offset,
) -> Page[dict[str, Any]]:
    found = inventory.hosts(app, who, group)[offset : offset + limit]
    return page([h.model_dump(mode="json") for h in found], limit, offset)


@router.post("/import", summary="Make an Ansible inventory opsmith's, replacing the last one (admin)")
async def import_inventory(body: InventoryImport, app: AppDep, who: Caller) -> dict[str, Any]:
    summary = inventory.import_inventory(app, who, body.text, body.source(), via="api")
    return summary.model_dump(mode="json")

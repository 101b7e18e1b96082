"""An application's deployment history: the same JSON as `opsmith history APP --json`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from opsmith.api.deps import AppDep, Caller
from opsmith.services.history import application_history

router = APIRouter(tags=["applications"])


@router.get(
    "/api/v1/applications/{application}/history",
    summary="Each deployment attempt of an application, and what changed between them",
)
async def get_history(
    application: str,
    app: AppDep,
    who: Caller,
    environment: str | None = Query(None, description="only attempts in this environment"),
) -> dict[str, Any]:
    del who  # any signed-in identity may read it, as it may read plans and runs
    return application_history(app, application, environment=environment).model_dump(mode="json")

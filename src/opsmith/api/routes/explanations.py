"""The explanation of a failed run: the same JSON as `opsmith explain RUN --json`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from opsmith.api.deps import AppDep, Caller
from opsmith.services.explain import explain_run

router = APIRouter(tags=["runs"])


@router.get(
    "/api/v1/runs/{run_id}/explanation",
    summary="Why a failed run failed: cited evidence, root cause, fix, confidence",
)
async def get_explanation(
    run_id: str,
    app: AppDep,
    who: Caller,
    fetch: bool | None = Query(
        None, description="read recent logs through read-only tools (default: config)"
    ),
) -> dict[str, Any]:
    # An unknown run is a 404 and a run that did not fail a 422, by their error types (problems.py).
    found = await explain_run(app, who, run_id, fetch=fetch)
    return found.model_dump(mode="json")

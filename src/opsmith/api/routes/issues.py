"""Issues of the built-in tracker, opened for failed runs (read by any authenticated caller)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from opsmith.api.bodies import MAX_INT, Page, page
from opsmith.api.deps import AppDep, Caller
from opsmith.domain.issues import IssueState
from opsmith.services import issues

router = APIRouter(prefix="/api/v1/issues", tags=["issues"])

Limit = Query(50, ge=1, le=500)
Offset = Query(0, ge=0, le=MAX_INT)


@router.get("", summary="List issues, the most recently changed first")
async def list_issues(
    app: AppDep, who: Caller, state: IssueState | None = None, limit: int = Limit, offset: int = Offset
) -> Page[dict[str, Any]]:
    found = issues.list_issues(app, state=state, limit=limit, offset=offset)
    return page([i.model_dump(mode="json", exclude={"body", "updates"}) for i in found], limit, offset)


@router.get("/{issue_id}", summary="One issue: its body, runs, updates and sync with GitHub")
async def get_issue(app: AppDep, who: Caller, issue_id: int = Path(ge=1, le=MAX_INT)) -> dict[str, Any]:
    return issues.get_issue(app, issue_id).model_dump(mode="json")

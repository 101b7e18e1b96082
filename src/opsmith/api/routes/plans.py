"""Plans: made from a request, listed, read, amended, approved (pinned to a hash), rejected, cancelled."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from opsmith.api.bodies import MAX_INT, Amendment, ApprovalBody, Comment, Page, PlanRequest, page
from opsmith.api.deps import AppDep, Caller
from opsmith.services import approvals, planning, reads
from opsmith.services.views import approval_report, plan_summary

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])

JSON = "application/json"
PLAN = {"schema": {"type": "object", "additionalProperties": True}}
Limit = Query(50, ge=1, le=500)
Offset = Query(0, ge=0, le=MAX_INT)


@router.post(
    "",
    status_code=201,
    summary="Plan a request",
    response_class=Response,
    responses={201: {"description": "The plan, as `opsmith show --json` prints it", "content": {JSON: PLAN}}},
)
async def create_plan(body: PlanRequest, app: AppDep, who: Caller) -> Response:
    plan = await planning.make_plan(app, who, body.request, planning.checked_overrides(body.set))
    # Serialised once, by the plan's own serialiser (the same JSON as model_dump's): a dict handed to
    # FastAPI would be walked again to validate it and once more to encode it, on the event loop.
    return Response(plan.model_dump_json(), status_code=201, media_type=JSON)


@router.get("", summary="List plans, newest first")
async def list_plans(
    app: AppDep, who: Caller, status: str | None = None, limit: int = Limit, offset: int = Offset
) -> Page[dict[str, Any]]:
    found = reads.list_plans(app, status, limit=limit, offset=offset)
    return page([plan_summary(p) for p in found], limit, offset)


@router.get("/{plan_id}", summary="One plan, as `opsmith show --json` prints it")
async def get_plan(plan_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return reads.plan(app, plan_id).model_dump(mode="json")


@router.get("/{plan_id}/approvals", summary="Who approved, what counts, how many are needed")
async def plan_approvals(plan_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    plan = reads.plan(app, plan_id)
    return approval_report(plan, approvals.state_of(app, plan))


@router.post("/{plan_id}/amend", summary="Plan the request again with more values")
async def amend_plan(plan_id: str, body: Amendment, app: AppDep, who: Caller) -> dict[str, Any]:
    plan = await planning.amend_plan(app, who, plan_id, planning.checked_overrides(body.set))
    return plan.model_dump(mode="json")


@router.post("/{plan_id}/approve", summary="Approve the plan whose hash you reviewed")
async def approve_plan(plan_id: str, body: ApprovalBody, app: AppDep, who: Caller) -> dict[str, Any]:
    plan, tally = approvals.approve(app, who, plan_id, body.comment, seen_hash=body.hash)
    return approval_report(plan, tally)


@router.post("/{plan_id}/reject", summary="Reject the plan")
async def reject_plan(plan_id: str, body: Comment, app: AppDep, who: Caller) -> dict[str, Any]:
    plan = approvals.reject(app, who, plan_id, body.comment)
    return {"plan": plan.id, "status": plan.status.value}


@router.post("/{plan_id}/cancel", summary="Cancel a plan that has not started")
async def cancel_plan(plan_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    plan = approvals.cancel(app, who, plan_id)
    return {"plan": plan.id, "status": plan.status.value}

"""Who am I, servers, tools and a checked tool call, the audit trail, users' roles and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from opsmith.api.bodies import RoleBody, TokenBody, ToolCallBody
from opsmith.api.deps import AppDep, Caller, HostDep
from opsmith.domain.catalog import mcp_tool_json
from opsmith.services import access, audit, hosting, servers, tokens, tool_calls

router = APIRouter(prefix="/api/v1")


@router.get("/whoami", tags=["access"], summary="The caller, their role and what it allows")
async def whoami(app: AppDep, who: Caller) -> dict[str, Any]:
    identity, permission = access.whoami(app, who)
    return {**identity.model_dump(), "permission": permission.model_dump(mode="json")}


@router.get("/servers", tags=["servers"], summary="Every configured server's health")
async def server_statuses(app: AppDep, who: Caller) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in await servers.server_statuses(app)]


@router.post("/servers/{name}/start", tags=["servers"], summary="Let opsmith use a server again")
async def start_server(name: str, host: HostDep, who: Caller) -> list[dict[str, Any]]:
    found = await servers.set_servers_enabled(host.app, who, [name], True)
    await hosting.keep_servers(host)
    return [s.model_dump(mode="json") for s in found]


@router.post("/servers/{name}/stop", tags=["servers"], summary="Stop a server; opsmith will not use it")
async def stop_server(name: str, host: HostDep, who: Caller) -> list[dict[str, Any]]:
    found = await servers.set_servers_enabled(host.app, who, [name], False)
    await hosting.keep_servers(host)
    return [s.model_dump(mode="json") for s in found]


@router.get("/tools", tags=["tools"], summary="The tools of the running servers, in MCP's field names")
async def list_tools(app: AppDep, who: Caller, server: str | None = None) -> list[dict[str, Any]]:
    found, _ = await servers.tool_catalog(app, server)
    return [mcp_tool_json(t) for t in found]


@router.post(
    "/tools/{server}/{tool}/call", tags=["tools"], summary="Call one tool, checked like a run's step"
)
async def call_tool(server: str, tool: str, body: ToolCallBody, app: AppDep, who: Caller) -> dict[str, Any]:
    request = tool_calls.CallRequest(
        server=server, tool=tool, arguments=body.arguments, timeout=body.timeout, confirmed=body.confirm
    )
    result = await tool_calls.call_tool(app, who, request, via="api")
    return result.model_dump(mode="json")


@router.get("/audit", tags=["audit"], summary="Audit entries, newest last")
async def audit_entries(
    app: AppDep, who: Caller, subject: str | None = None, limit: int = Query(50, ge=1, le=1000)
) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in audit.audit_entries(app, subject, limit)]


@router.get("/audit/verify", tags=["audit"], summary="Check the whole chain, signatures and witness")
async def audit_verify(app: AppDep, who: Caller) -> dict[str, Any]:
    return audit.verify_audit(app).model_dump(mode="json")


@router.get("/users", tags=["access"], summary="Configured users and their roles (admin)")
async def users(app: AppDep, who: Caller) -> dict[str, str]:
    return access.users(app, who)


@router.put("/users/{user}/role", tags=["access"], summary="Give a configured user a role (admin)")
async def set_role(user: str, body: RoleBody, app: AppDep, who: Caller) -> dict[str, str]:
    change = access.set_role(app, who, user, body.role, via="api")
    return {"user": change.user, "role": change.role, "set_by": change.set_by}


@router.get("/tokens", tags=["access"], summary="Every token, never its secret (admin)")
async def list_tokens(app: AppDep, who: Caller) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in tokens.list_tokens(app, who)]


@router.post("/tokens", status_code=201, tags=["access"], summary="Create a token; its text is shown once")
async def create_token(body: TokenBody, app: AppDep, who: Caller) -> dict[str, Any]:
    info, text = tokens.create_token(app, who, body.user, body.role, name=body.name, via="api")
    return {**info.model_dump(mode="json"), "token": text}


@router.delete("/tokens/{token_id}", tags=["access"], summary="Revoke a token (admin)")
async def revoke_token(token_id: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return tokens.revoke_token(app, who, token_id, via="api").model_dump(mode="json")

"""opsmith's MCP face: plan, show, run approved plans, cancel, status, servers and roles, as one identity.

The identity is fixed when the server is built (`opsmith --as USER mcp`); no tool takes a user, so a
calling model can never change who it acts as. Approvals and validation gates stay with people:
`execute_approved_plan` runs only plans that already carry valid recorded approvals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from opsmith.bootstrap import App
from opsmith.domain.errors import OpsmithError
from opsmith.domain.identity import Identity
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.mcp_server.reports import (
    PlanReport,
    RoleChange,
    RoleReport,
    RunReport,
    ServersReport,
    plan_report,
    role_report,
    run_report,
    servers_report,
)
from opsmith.services import reads
from opsmith.services.access import set_role as set_role_service
from opsmith.services.access import whoami
from opsmith.services.approvals import cancel, state_of
from opsmith.services.identity import refreshed

OPEN = (PlanStatus.PENDING_APPROVAL, PlanStatus.APPROVED, PlanStatus.INCOMPLETE)

INSTRUCTIONS = """\
opsmith plans operations requests over MCP tools, and runs them only after people approved them.
This server acts as one fixed identity (get_current_role). It cannot approve plans or pass
validation gates: a person runs `opsmith approve PLAN` and `opsmith continue RUN`."""


def _hints(
    title: str,
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False if read_only else destructive,
        idempotent_hint=True if read_only else idempotent,
        open_world_hint=open_world,
    )


@contextmanager
def _reported() -> Iterator[None]:
    """Known failures reach the client as is_error results with their message and hint."""
    try:
        yield
    except OpsmithError as error:
        raise ToolError(_text(error)) from error
    except BaseExceptionGroup as group:
        known = _first_known(group)
        if known is None:
            raise
        raise ToolError(_text(known)) from group


def _text(error: OpsmithError) -> str:
    return error.message if not error.hint else f"{error.message}\nhint: {error.hint}"


def _first_known(group: BaseExceptionGroup[BaseException]) -> OpsmithError | None:
    for item in group.exceptions:
        if isinstance(item, OpsmithError):
            return item
        if isinstance(item, BaseExceptionGroup):
            found = _first_known(item)
            if found is not None:
                return found
    return None


def build_server(app: App, identity: Identity) -> MCPServer:
    """The MCP server over `app`, acting as `identity` for every call."""
    server: MCPServer = MCPServer(name="opsmith", title="opsmith", instructions=INSTRUCTIONS)
    # One run at a time from this server: two calls must not both pass the approval check and start.
    run_lock = anyio.Lock()

    def acting() -> Identity:
        """The fixed user, with the role an admin may have changed since the server started."""
        return refreshed(app, identity)

    def report(plan: Plan) -> PlanReport:
        return plan_report(plan, state_of(app, plan))

    def newest_open() -> Plan:
        found = reads.newest(app, OPEN)
        if found is None:
            raise ToolError(
                "no plan is waiting: none is pending_approval, approved or incomplete\n"
                "hint: create one with create_intelligent_task_plan"
            )
        return found

    @server.tool(
        name="create_intelligent_task_plan",
        description=(
            "Plan an operations request written in plain language (e.g. 'Deploy microservice-one to "
            "production', 'Rollback production deployment') over the tools of the configured MCP servers, "
            "and store the plan. Nothing runs: the result is the plan with its steps, risk, estimate and "
            "whether people must approve it. Requested by this server's fixed identity."
        ),
        annotations=_hints("Create a task plan"),
    )
    async def create_intelligent_task_plan(user_command: str) -> PlanReport:
        from opsmith.services.planning import make_plan

        with _reported():
            return report(await make_plan(app, acting(), user_command, {}))

    @server.tool(
        name="show_pending_plan",
        description=(
            "Show a stored plan: the given plan_id, or without one the newest plan that is "
            "pending_approval, approved or incomplete. Includes its approvals and what must happen next."
        ),
        annotations=_hints("Show a plan", read_only=True),
    )
    async def show_pending_plan(plan_id: str | None = None) -> PlanReport:
        with _reported():
            return report(reads.plan(app, plan_id) if plan_id else newest_open())

    @server.tool(
        name="execute_approved_plan",
        description=(
            "Run a plan that people have already approved (valid recorded approvals for exactly this "
            "version of the plan), as this server's identity. The `approval` argument approves NOTHING: "
            "it is ignored and the attempt is recorded in the audit trail; a person allowed to approve "
            "must run `opsmith approve PLAN`. A run stops at validation gates (status "
            "awaiting_validation) until a person runs `opsmith continue RUN`. A failed run is rolled back. "
            "Returns the run id, its status, every step's status and the failure."
        ),
        annotations=_hints("Execute an approved plan", destructive=True, open_world=True),
    )
    async def execute_approved_plan(plan_id: str, approval: bool = False) -> RunReport:
        from opsmith.services.running import start_run

        with _reported():
            async with run_lock:
                settled, state, failure = await start_run(
                    app, acting(), plan_id, approval_claimed=approval, via="mcp"
                )
            return run_report(settled, state, failure)

    @server.tool(
        name="cancel_pending_plan",
        description=(
            "Cancel a plan that has not started: the given plan_id, or the newest plan that is "
            "pending_approval, approved or incomplete. A cancelled plan can never run."
        ),
        annotations=_hints("Cancel a plan", destructive=True),
    )
    async def cancel_pending_plan(plan_id: str | None = None) -> PlanReport:
        with _reported():
            target = plan_id or newest_open().id
            return report(cancel(app, acting(), target))

    @server.tool(
        name="get_run_status",
        description="A run's status and every step's status, attempts, output and error.",
        annotations=_hints("Get run status", read_only=True),
    )
    async def get_run_status(run_id: str) -> RunReport:
        with _reported():
            state, plan = reads.run_with_plan(app, run_id)
            return run_report(plan, state)

    @server.tool(
        name="get_all_servers_status",
        description=(
            "Check every configured MCP server: start the enabled ones, report health (up, degraded, "
            "down, stopped), the reason and the tool count, then stop them again."
        ),
        annotations=_hints("Get all servers' status", read_only=True),
    )
    async def get_all_servers_status() -> ServersReport:
        with _reported():
            return await _servers(app, "started for this check and stopped again")

    @server.tool(
        name="start_all_enabled_servers",
        description=(
            "Start every enabled MCP server (not those an operator stopped or the configuration "
            "disables) and report whether each came up, with its reason and tool count. opsmith starts "
            "servers for each operation, so they are stopped again when this call returns."
        ),
        annotations=_hints("Start all enabled servers", idempotent=True),
    )
    async def start_all_enabled_servers() -> ServersReport:
        with _reported():
            return await _servers(
                app, "every enabled server was started; opsmith stops them after each operation"
            )

    @server.tool(
        name="get_current_role",
        description="Who this server acts as (user, role, where that came from) and what that role may do.",
        annotations=_hints("Get the current role", read_only=True),
    )
    async def get_current_role() -> RoleReport:
        with _reported():
            return role_report(*whoami(app, acting()))

    @server.tool(
        name="set_role",
        description=(
            "Give a configured user a role (viewer, operator, deployer, approver, admin or a configured "
            "role). Only an admin may; nobody can change their own role. Recorded in the audit trail."
        ),
        annotations=_hints("Set a user's role", destructive=True, idempotent=True),
    )
    async def set_role(user: str, role: str) -> RoleChange:
        with _reported():
            change = set_role_service(app, acting(), user, role, via="mcp")
            return RoleChange(user=change.user, role=change.role, set_by=change.set_by)

    return server


async def _servers(app: App, note: str) -> ServersReport:
    from opsmith.services.servers import server_statuses

    return servers_report(await server_statuses(app), note)

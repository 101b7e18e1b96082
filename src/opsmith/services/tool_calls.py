"""Call one tool directly (`opsmith call`, the API's tool call): the same rules as a step of a run.

The tool must exist; the acting role must match the tool's glob, and unless the tool is read-only
(annotated so) the role must also be allowed to execute in the environment the arguments name, up
to the tool's risk. For the fleet's tools (server `hosts`) that environment is the one each
targeted host's `environment` variable declares, every one of them checked: a group name says
nothing about where its hosts run, and a host that declares none may be acted on only by a role
that may execute anywhere. A tool that may destroy something runs only when the caller confirmed it.
Every call, and every refusal, is an audit entry with the arguments redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.call_environment import (
    ENVIRONMENTS,
    call_hosts,
    environment_of,
    hosts_by_environment,
    more_guarded,
)
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.errors import OpsmithError, ToolArgumentsError, UnknownToolError, UsageError
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.identity import Action, Decision, Identity, Permission, decide
from opsmith.domain.results import ToolResult
from opsmith.domain.risk import Risk, assess
from opsmith.domain.servers import ServerStatus
from opsmith.planner.policy import risk_rules
from opsmith.ports import Progress, ToolProvider
from opsmith.services.discovery import known_server, off_names, running_servers
from opsmith.services.identity import permission_of


class CallRefused(UsageError):
    """A direct tool call the acting identity may not make, or must confirm first."""


class ConfirmationNeeded(CallRefused):
    """A tool that may destroy something, called without confirmation."""


class EnvironmentRefused(ToolArgumentsError):
    """A step's fleet call on hosts that declare a more guarded environment than its plan's."""


@dataclass(frozen=True)
class CallRequest:
    server: str
    tool: str
    arguments: dict[str, Any]
    timeout: float | None = None
    confirmed: bool = False


@dataclass(frozen=True)
class Assessment:
    """What the rules make of one call before it is sent."""

    tool: ToolSpec
    risk: Risk
    environment: str | None
    destructive: bool
    # A fleet call's hosts by the environment they declare (None: they declare none).
    hosts_by_environment: Mapping[str | None, tuple[str, ...]] = field(default_factory=dict)


async def call_tool(app: App, identity: Identity, request: CallRequest, *, via: str = "call") -> ToolResult:
    """Check, call and audit one tool call. Raises CallRefused (audited) before sending anything."""
    if request.timeout is not None and request.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {request.timeout:g}")
    known_server(app, request.server)  # an unknown server is named before anything starts
    if request.server in off_names(app):
        raise UsageError(
            f"server {request.server!r} is stopped by an operator",
            hint=f"start it first: opsmith servers start {request.server}",
        )
    async with running_servers(app, [request.server]) as pool:
        spec = pool.catalog.get(request.server, request.tool)
        if spec is None:
            # The pool names the nearest tools; its error is the one to show.
            await pool.call(request.server, request.tool, request.arguments, timeout=request.timeout)
            raise UnknownToolError(
                f"{request.server} offers no tool {request.tool!r}",
                hint=f"`opsmith tools --server {request.server}` lists its tools",
            )
        return await checked_call(app, identity, pool, request, spec, via=via)


async def checked_call(
    app: App,
    identity: Identity,
    pool: ToolProvider,
    request: CallRequest,
    spec: ToolSpec,
    *,
    via: str = "call",
) -> ToolResult:
    """The rules of a direct call, on servers already running: assess, authorise, call, audit."""
    found = assess_call(app, spec, request.arguments)
    _authorise(app, identity, request, found, via)
    return await _call_audited(app, identity, pool, request, found, via)


def assess_call(app: App, spec: ToolSpec, arguments: dict[str, Any]) -> Assessment:
    """Risk as a planned step would get it: action words, annotations, the environment named."""
    by_environment = _host_environments(app, spec, arguments)
    declared = [e for e in ENVIRONMENTS if e in by_environment]  # the most guarded first
    environment = declared[0] if declared else environment_of(arguments)
    read_only = spec.hints.effective_read_only
    risk = assess(
        spec.name,
        spec.hints,
        changes_target=not read_only,
        environment=environment,
        rules=risk_rules(app.config),
    ).level
    return Assessment(
        spec,
        risk,
        environment,
        destructive=spec.hints.effective_destructive,
        hosts_by_environment=by_environment,
    )


def _host_environments(
    app: App, spec: ToolSpec, arguments: Mapping[str, Any]
) -> dict[str | None, tuple[str, ...]]:
    """A fleet call's hosts grouped by the environment they declare; empty for other servers' tools."""
    if spec.server != HOSTS_SERVER:
        return {}
    from opsmith.services.inventory import current

    return hosts_by_environment(call_hosts(current(app), arguments))


class PlannedFor:
    """The tools of one plan's run: a fleet call whose hosts declare a more guarded environment than
    the one the plan was made for is refused before it is sent, for a step and for an undo alike
    (the engine checks what the arguments name; only the inventory knows what the hosts are)."""

    def __init__(self, inner: ToolProvider, app: App, environment: str | None) -> None:
        self._inner = inner
        self._app = app
        self._environment = environment

    @property
    def catalog(self) -> Catalog:
        return self._inner.catalog

    def statuses(self) -> list[ServerStatus]:
        return self._inner.statuses()

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
        finished: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ToolResult:
        if server == HOSTS_SERVER:
            from opsmith.services.inventory import current

            grouped = hosts_by_environment(call_hosts(current(self._app), arguments))
            guarded = [(e, names) for e, names in grouped.items() if more_guarded(e, self._environment)]
            if guarded:
                shown = "; ".join(f"{', '.join(names[:5])} declare {e}" for e, names in guarded)
                raise EnvironmentRefused(
                    f"{server}/{tool} was not sent: {shown}, and the plan was made for"
                    f" {self._environment or 'no environment'}",
                    hint="plan it again for that environment (its approvals and roles apply), or"
                    " correct the hosts' `environment` variable",
                )
        # The check above saw every target host; the finished ones are left out only by the fleet.
        return await self._inner.call(
            server, tool, arguments, timeout=timeout, progress=progress, finished=finished
        )


def _authorise(app: App, identity: Identity, request: CallRequest, found: Assessment, via: str) -> None:
    permission = permission_of(app.config, identity)
    qualified = f"{request.server}/{request.tool}"
    read_only = found.tool.hints.effective_read_only
    if read_only:
        # Reading needs no action, only a tool the role may see: what a viewer is for.
        decision = decide(
            identity,
            permission.model_copy(update={"actions": [Action.EXECUTE]}),
            Action.EXECUTE,
            tool=qualified,
        )
    else:
        decision = decide(
            identity,
            permission,
            Action.EXECUTE,
            # A fleet call's environments are checked below, each naming its hosts.
            environment=None if found.hosts_by_environment else found.environment,
            risk=found.risk,
            tool=qualified,
        )
        for environment, hosts in found.hosts_by_environment.items():
            if not decision.allowed:
                break
            decision = _on_hosts(identity, permission, environment, hosts)
    details = _details(request, found, via)
    if not decision.allowed:
        app.audit.append(identity.user, "tool.refused", qualified, {**details, "why": decision.reason})
        raise CallRefused(decision.reason, hint="ask someone whose role may call this tool")
    if found.destructive and not request.confirmed:
        why = "may destroy or change something and was not confirmed"
        app.audit.append(identity.user, "tool.refused", qualified, {**details, "why": why})
        raise ConfirmationNeeded(
            f"{qualified} {why} ({found.risk.value} risk)",
            hint="confirm it in a terminal, or pass --yes",
        )


def _on_hosts(
    identity: Identity, permission: Permission, environment: str | None, hosts: Sequence[str]
) -> Decision:
    """Whether the role may execute on these hosts, which declare `environment` (or none)."""
    shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    if environment is None:
        if "*" in permission.environments:
            return Decision(allowed=True, reason="any environment")
        return Decision(
            allowed=False,
            reason=f"{identity.user} ({identity.role}) may execute only in"
            f" {', '.join(permission.environments) or 'no environment'}, and {shown} declare no environment",
        )
    decision = decide(identity, permission, Action.EXECUTE, environment=environment)
    if decision.allowed:
        return decision
    return Decision(allowed=False, reason=f"{decision.reason} (the environment of {shown})")


async def _call_audited(
    app: App, identity: Identity, pool: ToolProvider, request: CallRequest, found: Assessment, via: str
) -> ToolResult:
    from opsmith.engine.local import summarize

    qualified = f"{request.server}/{request.tool}"
    details = _details(request, found, via)
    try:
        result = await pool.call(request.server, request.tool, request.arguments, timeout=request.timeout)
    except OpsmithError as error:
        app.audit.append(
            identity.user, "tool.called", qualified, {**details, "ok": False, "result": error.message[:300]}
        )
        raise
    summary = summarize(result.structured) if result.structured is not None else result.text
    app.audit.append(
        identity.user,
        "tool.called",
        qualified,
        {**details, "ok": True, "result": summary[:300], "ms": round(result.duration_ms, 1)},
    )
    return result


def _details(request: CallRequest, found: Assessment, via: str) -> dict[str, Any]:
    return {
        "tool": f"{request.server}/{request.tool}",
        "args": request.arguments,
        "risk": found.risk.value,
        "environment": found.environment,
        "via": via,
    }

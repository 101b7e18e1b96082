"""Call one tool directly (`opsmith call`, the API's tool call): the same rules as a step of a run.

The tool must exist; the acting role must match the tool's glob, and unless the tool is read-only
(annotated so) the role must also be allowed to execute in the environment the arguments name, up
to the tool's risk. A tool that may destroy something runs only when the caller confirmed it.
Every call, and every refusal, is an audit entry with the arguments redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.catalog import ToolSpec
from opsmith.domain.errors import OpsmithError, UnknownToolError, UsageError
from opsmith.domain.identity import Action, Identity, decide
from opsmith.domain.results import ToolResult
from opsmith.domain.risk import Risk, assess
from opsmith.planner.policy import risk_rules
from opsmith.ports import ToolProvider
from opsmith.services.discovery import known_server, off_names, running_servers
from opsmith.services.identity import permission_of

ENVIRONMENTS = ("production", "staging", "development")
_ENVIRONMENT_KEYS = ("environment", "env", "namespace", "stage", "target")


class CallRefused(UsageError):
    """A direct tool call the acting identity may not make, or must confirm first."""


class ConfirmationNeeded(CallRefused):
    """A tool that may destroy something, called without confirmation."""


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
    environment = environment_of(arguments)
    read_only = spec.hints.effective_read_only
    risk = assess(
        spec.name,
        spec.hints,
        changes_target=not read_only,
        environment=environment,
        rules=risk_rules(app.config),
    ).level
    return Assessment(spec, risk, environment, destructive=spec.hints.effective_destructive)


def environment_of(arguments: dict[str, Any]) -> str | None:
    """The environment an argument names (namespace: production...), if any does."""
    for key in _ENVIRONMENT_KEYS:
        value = arguments.get(key)
        if isinstance(value, str):
            for environment in ENVIRONMENTS:
                if value.lower() in (environment, environment[:4], environment[:3]):
                    return environment
    return None


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
            environment=found.environment,
            risk=found.risk,
            tool=qualified,
        )
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

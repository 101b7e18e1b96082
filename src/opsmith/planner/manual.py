"""A plan written by hand (`opsmith plan --file PLAN.yaml`), checked and assessed like a planned one.

The document, YAML or JSON:

    title: Build and ship web              # required
    request: ship web 1.4 to staging       # optional; the title when absent
    environment: staging                   # production | staging | development; when absent,
                                           # planning.default_environment
    steps:
      - id: build                          # letters, digits, '_' and '-'; unique
        name: Build web                    # optional
        capability: build                  # optional: a known capability; else the one the
                                           # planner's tool scoring gives the tool, if any
        description: ...                   # optional
        server: ci
        tool: trigger_build
        args: {app: web, branch: main}     # checked against the tool's inputSchema
        depends_on: [checkout]
        rollback:                          # server: the step's when absent; idempotent: from
          server: ci                       # the tool's annotations when absent
          tool: abort_build
          args: {number: "${steps.build.number}"}
          idempotent: true
        requires_validation: false         # a gate: a person validates before dependents start
        idempotent: true                   # optional; from the tool's annotations when absent
        expect: [{path: status, op: "==", value: SUCCESS}]      # on this step's output
        when: [{step: scan, path: passed, op: truthy}]          # on an earlier step's output
        retry: {attempts: 3, initial_delay: 1, multiplier: 2, max_delay: 60, jitter: 0.1}
        timeout: 300                       # seconds

`${steps.ID.path}` in arguments and in condition values is filled at run time from step ID's
output, so ID must be a step this one waits for (directly or through others); a rollback's
arguments may also use its own step's output.

The plan gets what a planned plan gets, computed by the same rules: risk per step from the tool's
name and annotations, compliance of the environment (the capability says whether a step ships code,
changes the target or provides evidence; with none, a tool that is not read-only counts as a
change), the approval policy, the estimate, the status and the hash.

A step's `retry` (merged over `execution`'s policy) and `timeout` (per attempt, over
`execution.step_timeout`) are part of the plan and its hash, and the engine applies them.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode
from yaml.nodes import Node as YamlNode

from opsmith.config import Config
from opsmith.domain.approval_rule import approval_need
from opsmith.domain.call_environment import foreign_environment
from opsmith.domain.capabilities import CAPABILITIES, Capability
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.errors import (
    GraphError,
    PlanError,
    ToolArgumentsError,
    UnknownServerError,
    UnknownToolError,
    UsageError,
)
from opsmith.domain.evidence import Condition, StepCondition
from opsmith.domain.graph import Node, topological_order
from opsmith.domain.intent import Environment, Intent
from opsmith.domain.plan import Plan, PlanStatus, Step, StepRetry, ToolCall
from opsmith.domain.risk import RiskRules, assess, highest
from opsmith.engine.errors import InvalidSetting
from opsmith.engine.retry import RetryPolicy
from opsmith.planner import arguments, describe
from opsmith.planner.compliance import attach_requirements
from opsmith.planner.mapping import THRESHOLD, score
from opsmith.planner.policy import approval_rule, risk_rules
from opsmith.planner.templates import RUNTIME_REF, runtime_refs

__all__ = [
    "ACTION",
    "MAX_DOCUMENT_CHARS",
    "PLAYBOOK",
    "CallDocument",
    "PlanDocument",
    "RetryDocument",
    "StepDocument",
    "approval_rule",
    "plan_from_document",
    "read_document",
    "risk_rules",
]

# What a hand-written plan is, where a planned one names its action and playbook.
ACTION = "manual"
PLAYBOOK = "manual"
MAX_DOCUMENT_CHARS = 1_000_000
# Arguments are small values; deeper nesting is a mistake (or an attack on the parser).
MAX_DEPTH = 32
# Step ids must fit `${steps.ID.path}` (RUNTIME_REF), or nothing could refer to them.
STEP_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# A step without a capability and without past durations: a capability's default.
DEFAULT_DURATION = (30.0, 120.0)
_SHAPE = "a plan file has title, steps: [{id, server, tool, args, depends_on, rollback, ...}]"


# --- the document -----------------------------------------------------------------------------


class _Strict(BaseModel):
    # Strict: in a hand-written file "3" for a number is a mistake to show, not to guess at.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class CallDocument(_Strict):
    """A rollback: a tool call; the step's server when `server` is absent."""

    server: str | None = Field(default=None, min_length=1)
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    idempotent: bool | None = None


class RetryDocument(_Strict):
    """The engine's retry policy (opsmith.engine.retry.RetryPolicy); absent fields take its defaults."""

    attempts: int | None = None
    initial_delay: float | None = None
    multiplier: float | None = None
    max_delay: float | None = None
    jitter: float | None = None


class StepDocument(_Strict):
    id: str = Field(pattern=STEP_ID)
    name: str | None = None
    capability: str | None = None
    description: str = ""
    server: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    rollback: CallDocument | None = None
    requires_validation: bool = False
    idempotent: bool | None = None
    expect: list[Condition] = Field(default_factory=list)
    when: list[StepCondition] = Field(default_factory=list)
    retry: RetryDocument | None = None
    timeout: float | None = Field(default=None, gt=0, le=24 * 3600)


class PlanDocument(_Strict):
    title: str = Field(min_length=1, max_length=300)
    request: str | None = Field(default=None, min_length=1, max_length=2000)
    environment: Environment | None = None
    steps: list[StepDocument] = Field(min_length=1)


# --- the plan ---------------------------------------------------------------------------------


def plan_from_document(
    text: str,
    *,
    source: str,
    catalog: Catalog,
    config: Config,
    now: datetime,
    durations: Mapping[str, float] | None = None,
    degraded: frozenset[str] = frozenset(),
    taken_ids: frozenset[str] = frozenset(),
) -> Plan:
    """The plan a hand-written document describes, with its hash; or one UsageError, nothing else.

    `source` names the document in messages (a path); `durations` are past seconds per
    `server/tool`, `degraded` the servers that answer but are unwell, `taken_ids` the plan ids in
    use, as the planner's Situation has them. `requested_by` is left for the caller to set.
    """
    try:
        document = read_document(text, source=source)
        return _Assembly(document, source, catalog, config, now, durations or {}, degraded).plan(taken_ids)
    except UsageError:
        raise
    except Exception as exc:  # the contract is "only UsageError": a bug here must not leak out raw
        raise PlanError(
            f"{source}: internal error while reading the plan ({type(exc).__name__}); "
            "this is a bug in opsmith",
            hint="please report it with the plan file; meanwhile check the file against the documented shape",
        ) from exc


def read_document(text: str, *, source: str) -> PlanDocument:
    """The document parsed and checked for shape: keys, types, values; PlanError otherwise."""
    data = _load(text, source)
    if not isinstance(data, dict):
        raise PlanError(
            f"{source}: the top level must be a mapping, got {_kind(data)}", hint=f"{_SHAPE}; see the example"
        )
    _check_values(data, [], 0, source, data)
    _check_keys(data, source)
    try:
        return PlanDocument.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(exc, source, data) from None


@dataclass(frozen=True)
class _Resolved:
    """A step of the document with its tools found and its capability known (or not)."""

    doc: StepDocument
    tool: ToolSpec
    undo: ToolSpec | None
    capability: Capability | None

    @property
    def changes_target(self) -> bool:
        if self.capability is not None:
            return self.capability.changes_target
        # Nothing says what the call is for: anything that may write counts as a change.
        return not self.tool.hints.effective_read_only


class _Assembly:
    """One document becoming one plan; every check raises before anything is built."""

    def __init__(
        self,
        document: PlanDocument,
        source: str,
        catalog: Catalog,
        config: Config,
        now: datetime,
        durations: Mapping[str, float],
        degraded: frozenset[str],
    ) -> None:
        self.document = document
        self.source = source
        self.catalog = catalog
        self.config = config
        self.now = now
        self.durations = durations
        self.degraded = degraded
        self.ids = [s.id for s in document.steps]

    def plan(self, taken_ids: frozenset[str]) -> Plan:
        nodes = [Node(id=s.id, depends_on=tuple(s.depends_on)) for s in self.document.steps]
        order = self._graph(nodes)
        before = _ancestors(order, {s.id: s.depends_on for s in self.document.steps})
        resolved = [self._resolve(s) for s in self.document.steps]
        for step in self.document.steps:
            self._references(step, before[step.id])
            _refuse_unsupported(step, self.source, self.config)
        environment, source_of = self._environment(resolved)
        self._refuse_foreign(resolved, environment)
        rules = risk_rules(self.config)
        steps = [self._step(r, environment, rules) for r in resolved]
        return self._assemble(steps, environment, source_of, taken_ids)

    # -- checks ---------------------------------------------------------------------------------

    def _refuse_foreign(self, resolved: Sequence[_Resolved], environment: str | None) -> None:
        """A step whose arguments (or undo's) name a more guarded environment than the plan's would
        be judged, approved and allowed by the wrong rules; the run denies it, so say it now."""
        for r in resolved:
            undo_args = r.doc.rollback.args if r.doc.rollback is not None else {}
            for args in (r.doc.args, undo_args):
                foreign = foreign_environment(args, environment)
                if foreign is not None:
                    raise PlanError(
                        f"{self.source}: step {r.doc.id!r} acts in {foreign}, and the plan is for"
                        f" {environment or 'no environment'}",
                        hint=f"set environment: {foreign} at the top of the file (its approvals and"
                        " roles then apply), or correct the step's arguments",
                    )

    def _graph(self, nodes: list[Node]) -> list[str]:
        try:
            return topological_order(nodes)
        except GraphError as exc:
            raise GraphError(f"{self.source}: {exc.message}", hint=exc.hint) from exc

    def _resolve(self, step: StepDocument) -> _Resolved:
        label = f"step {step.id!r}"
        if step.capability is not None and step.capability not in CAPABILITIES:
            raise PlanError(
                f"{self.source}: {label}: unknown capability {step.capability!r}",
                hint=f"nearest: {_nearest(step.capability, list(CAPABILITIES))}; or leave it out",
            )
        tool = self._tool(step.server, step.tool, label)
        self._arguments(tool, step.args, label)
        undo = None
        if step.rollback is not None:
            server = step.rollback.server or step.server
            undo = self._tool(server, step.rollback.tool, f"{label} rollback")
            self._arguments(undo, step.rollback.args, f"{label} rollback")
        capability = step.capability or self._capability_of(tool)
        return _Resolved(step, tool, undo, CAPABILITIES[capability] if capability else None)

    def _capability_of(self, tool: ToolSpec) -> str | None:
        """The capability the planner would give this tool, so that compliance applies as it does
        to planned plans (a build ships code; a backup's output is evidence)."""
        best: tuple[float, str] | None = None
        for capability in CAPABILITIES.values():
            found = score(capability, tool, words=self.catalog.words(tool))
            if found is not None and found[0] >= THRESHOLD and (best is None or found[0] > best[0]):
                best = (found[0], capability.name)
        return best[1] if best else None

    def _tool(self, server: str, name: str, label: str) -> ToolSpec:
        servers = self.catalog.servers()
        if server not in servers:
            raise UnknownServerError(
                f"{self.source}: {label}: no server {server!r} among the running servers",
                hint=f"nearest: {_nearest(server, servers)}; see `opsmith servers status`"
                if servers
                else "no server is running; see `opsmith servers status`",
            )
        tool = self.catalog.get(server, name)
        if tool is not None:
            return tool
        elsewhere = [s for s in servers if self.catalog.get(s, name) is not None]
        also = f"; {', '.join(elsewhere)} offer(s) {name!r}" if elsewhere else ""
        known = self.catalog.names(server)
        raise UnknownToolError(
            f"{self.source}: {label}: server {server!r} has no tool {name!r}",
            hint=(f"nearest on {server}: {_nearest(name, known)}" if known else f"{server} offers no tools")
            + also
            + f"; see `opsmith tools {server}`",
        )

    def _arguments(self, tool: ToolSpec, args: dict[str, Any], label: str) -> None:
        malformed = _malformed_reference(args)
        if malformed is not None:
            raise PlanError(
                f"{self.source}: {label}: args: {_short(malformed)} is not a reference opsmith can fill",
                hint="write ${steps.ID.path}, e.g. ${steps.build.number}; ID is a step this one waits for",
            )
        schema = tool.input_schema or {"type": "object"}
        where = f"{self.source}: {label}: {tool.qualified_name}"
        problem = _schema_problem(json.dumps(schema, sort_keys=True, default=str))
        if problem is not None:
            raise ToolArgumentsError(
                f"{where} publishes an invalid input schema: {_short(problem)}",
                hint="report this to the server's maintainers; opsmith cannot check arguments against it",
            )
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        if schema.get("additionalProperties", True) is False:
            for name in args:
                if name not in props:
                    near = f"nearest: {_nearest(name, list(props))}; " if props else ""
                    raise ToolArgumentsError(
                        f"{where} has no argument {name!r}", hint=near + _expected(schema)
                    )
        required = schema.get("required")
        for name in required if isinstance(required, list) else []:
            if name not in args:
                raise ToolArgumentsError(
                    f"{where}: required argument {name!r} is missing",
                    hint=f"add it under args; {_expected(schema)}",
                )
        try:
            problems = arguments.check(schema, args)
        except Exception as exc:  # jsonschema's reference resolution has errors of its own
            raise ToolArgumentsError(
                f"{where}: its input schema cannot be applied: {_short(str(exc))}",
                hint="report this to the server's maintainers; opsmith cannot check arguments against it",
            ) from exc
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ToolArgumentsError(f"{where}: argument {_short(problems[0])}{more}", hint=_expected(schema))

    def _references(self, step: StepDocument, before: set[str]) -> None:
        label = f"step {step.id!r}"
        self._refs_in(step.args, f"{label}: args", step.id, before)
        if step.rollback is not None:
            self._refs_in(step.rollback.args, f"{label} rollback: args", step.id, before | {step.id})
        for condition in step.when:
            self._waits_for(condition.step, f"{label}: when {condition.describe()}", step.id, before)
        # Condition values may be references too (the image a deploy step set), read from earlier steps.
        values = [("expect", i, c.value) for i, c in enumerate(step.expect)]
        values += [("when", i, c.value) for i, c in enumerate(step.when)]
        for key, index, value in values:
            self._refs_in(value, f"{label}: {key}[{index}] value", step.id, before)

    def _refs_in(self, value: Any, label: str, step_id: str, allowed: set[str]) -> None:
        malformed = _malformed_reference(value)
        if malformed is not None:
            raise PlanError(
                f"{self.source}: {label}: {_short(malformed)} is not a reference opsmith can fill",
                hint="write ${steps.ID.path}, e.g. ${steps.build.number}; ID is a step this one waits for",
            )
        for ref_step, path in runtime_refs(value):
            self._waits_for(ref_step, f"{label} refer to ${{steps.{ref_step}.{path}}}", step_id, allowed)

    def _waits_for(self, ref_step: str, label: str, step_id: str, allowed: set[str]) -> None:
        if ref_step not in self.ids:
            raise GraphError(
                f"{self.source}: {label}, but the plan has no step {ref_step!r}",
                hint=f"steps, nearest first: {_nearest(ref_step, self.ids)}",
            )
        if ref_step not in allowed:
            raise GraphError(
                f"{self.source}: {label}, but {step_id} does not wait for {ref_step}, "
                "so its output may not exist yet",
                hint=f"add {ref_step!r} to the depends_on of {step_id!r}",
            )

    def _environment(
        self, resolved: Sequence[_Resolved]
    ) -> tuple[Environment | None, Literal["request", "default"] | None]:
        if self.document.environment is not None:
            return self.document.environment, "request"
        default = self.config.planning.default_environment
        if default is not None:
            return default, "default"
        changing = [r.doc for r in resolved if r.changes_target]
        if changing:
            first = changing[0]
            raise PlanError(
                f"{self.source}: step {first.id!r} ({first.server}/{first.tool}) changes something, "
                "but the plan names no environment",
                hint="add environment: production, staging or development at the top of the file, "
                "or set planning.default_environment",
            )
        return None, None

    # -- building -------------------------------------------------------------------------------

    def _step(self, resolved: _Resolved, environment: str | None, rules: RiskRules) -> Step:
        doc, tool, undo = resolved.doc, resolved.tool, resolved.undo
        changes = resolved.changes_target
        risk = assess(tool.name, tool.hints, changes_target=changes, environment=environment, rules=rules)
        rollback = None
        if doc.rollback is not None and undo is not None:
            stated = doc.rollback.idempotent
            rollback = ToolCall(
                server=undo.server,
                tool=undo.name,
                args=dict(doc.rollback.args),
                description=undo.summary,
                idempotent=stated
                if stated is not None
                else bool(undo.hints.idempotent or undo.hints.read_only),
            )
        return Step(
            id=doc.id,
            name=doc.name or tool.title or tool.qualified_name,
            capability=resolved.capability.name if resolved.capability else ACTION,
            server=tool.server,
            tool=tool.name,
            args=dict(doc.args),
            depends_on=list(dict.fromkeys(doc.depends_on)),
            risk=risk.level,
            risk_reasons=risk.reasons,
            requires_validation=doc.requires_validation,
            rollback=rollback,
            # As the planner: a read-only tool can always be called again (MCP gives idempotentHint
            # meaning only for tools that are not read-only).
            idempotent=doc.idempotent
            if doc.idempotent is not None
            else bool(tool.hints.idempotent or tool.hints.read_only),
            changes_target=changes,
            estimated_duration=self._duration(resolved),
            expect=list(doc.expect),
            when=list(doc.when),
            timeout=doc.timeout,
            retry=StepRetry(**doc.retry.model_dump()) if doc.retry is not None else None,
            description=doc.description or tool.summary,
        )

    def _duration(self, resolved: _Resolved) -> tuple[float, float]:
        seconds = self.durations.get(resolved.tool.qualified_name)
        if seconds:
            return (seconds * 0.8, seconds * 1.5)
        if resolved.capability is not None:
            low, high = resolved.capability.default_duration
            return (float(low), float(high))
        return DEFAULT_DURATION

    def _assemble(
        self,
        steps: list[Step],
        environment: Environment | None,
        environment_source: Literal["request", "default"] | None,
        taken_ids: frozenset[str],
    ) -> Plan:
        document = self.document
        request = document.request or document.title
        schemas = {s.id: _output_schema(self.catalog, s) for s in steps}
        steps, requirements = attach_requirements(steps, environment, self.config.policy.compliance, schemas)
        nodes = [Node(id=s.id, depends_on=tuple(s.depends_on), duration=s.estimated_duration) for s in steps]
        risk = highest([s.risk for s in steps])
        need = approval_need(
            risk,
            environment,
            changes_target=any(s.changes_target for s in steps),
            rule=approval_rule(self.config),
        )
        incomplete = any(r.unmet for r in requirements)
        status = (
            PlanStatus.INCOMPLETE
            if incomplete
            else (PlanStatus.PENDING_APPROVAL if need.required else PlanStatus.APPROVED)
        )
        intent = Intent(
            request=request,
            action=ACTION,
            actions=[ACTION],
            environment=environment,
            environment_source=environment_source,
        )
        plan = Plan(
            id=_plan_id(environment, self.now, taken_ids),
            request=request,
            title=document.title,
            intent=intent,
            playbook=PLAYBOOK,
            priority=describe.priority(environment, intent.urgency),
            risk=risk,
            requires_approval=need.required,
            approval_reasons=list(need.reasons) or ["policy does not require approval for this plan"],
            approvals_needed=need.approvals,
            **describe.outline(steps, requirements, environment, nodes),
            warnings=[
                f"server {server} is degraded; steps on it may fail"
                for server in dict.fromkeys(s.server for s in steps)
                if server in self.degraded
            ],
            status=status,
            created_at=self.now,
        )
        return plan.model_copy(update={"hash": plan.content_hash()})


# --- policy from the configuration -----------------------------------------------------------


def _refuse_unsupported(step: StepDocument, source: str, config: Config) -> None:
    """A step's retry policy must be one the engine can apply (merged over the configuration's)."""
    if step.retry is None:
        return
    given = step.retry.model_dump(exclude_none=True)
    try:
        RetryPolicy(**{**dataclasses.asdict(config.execution.settings().retry), **given})
    except InvalidSetting as exc:
        raise PlanError(f"{source}: step {step.id!r}: {exc.message}", hint=exc.hint) from exc


def _ancestors(order: Sequence[str], depends_on: Mapping[str, list[str]]) -> dict[str, set[str]]:
    """Per step, every step it waits for, directly or through others."""
    before: dict[str, set[str]] = {}
    for ident in order:
        found: set[str] = set()
        for dep in depends_on[ident]:
            found |= {dep} | before[dep]
        before[ident] = found
    return before


def _plan_id(environment: str | None, now: datetime, taken: frozenset[str]) -> str:
    base = f"plan_{ACTION}_{environment or 'none'}_{int(now.timestamp())}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _output_schema(catalog: Catalog, step: Step) -> dict[str, Any] | None:
    tool = catalog.get(step.server, step.tool)
    return tool.output_schema if tool else None


def _malformed_reference(value: Any) -> str | None:
    """Text that starts a `${steps.` reference the engine would not fill (it would be sent as is)."""
    if isinstance(value, str):
        if value.count("${steps.") > len(RUNTIME_REF.findall(value)):
            return value
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        found = _malformed_reference(item)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=1024)
def _schema_problem(schema_json: str) -> str | None:
    # Checking a schema costs far more than checking arguments against it: once per distinct schema.
    schema = json.loads(schema_json)
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        return exc.message
    return None


def _expected(schema: dict[str, Any]) -> str:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    parts = []
    for name, prop in props.items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        kind = "|".join(str(k) for k in kind) if isinstance(kind, list) else kind
        parts.append(f"{name}: {kind}{' (required)' if name in required else ''}")
    return "the tool expects " + (", ".join(parts) if parts else "no arguments")


# --- reading the text -------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML without the surprises: no aliases, no repeated keys, dates stay text."""

    # PyYAML looks resolvers up on the class; the stubs call it an instance variable.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: YamlNode | None, index: int) -> YamlNode | None:
        # An alias repeats a subtree by reference; a few nested ones make a tiny file expand
        # into an enormous plan when it is hashed or stored.
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(
                None, None, "aliases (*name) are not allowed in a plan file", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"key {_short(repr(key))} appears twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load(text: str, source: str) -> Any:
    if len(text) > MAX_DOCUMENT_CHARS:
        raise PlanError(
            f"{source}: {len(text)} characters is more than a plan file may have ({MAX_DOCUMENT_CHARS})",
            hint="split it into smaller plans",
        )
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text, object_pairs_hook=_no_repeated_keys)
        except (ValueError, RecursionError):
            pass  # YAML's flow style also starts with a brace: let the YAML reader say what is wrong
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise PlanError(
            f"{where}: not valid YAML: {exc.problem or exc.context}", hint="fix the syntax at that line"
        ) from exc
    except Exception as exc:  # PyYAML's constructors raise ValueError & co. for odd scalars
        raise PlanError(
            f"{source}: not valid YAML: {_short(str(exc))}", hint="fix the file's syntax"
        ) from exc
    return data


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice")
        result[key] = value
    return result


def _check_values(value: Any, path: list[str | int], depth: int, source: str, data: Any) -> None:
    """Only what JSON can say, so that the plan stored and shown is exactly the one read."""
    if depth > MAX_DEPTH:
        raise PlanError(
            f"{source}: {_where(path, data)}: nested more than {MAX_DEPTH} levels deep",
            hint="flatten the value",
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanError(
                    f"{source}: {_where(path, data)}: key {_short(repr(key))} is not text",
                    hint="quote the key",
                )
            _check_values(item, [*path, key], depth + 1, source, data)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, [*path, index], depth + 1, source, data)
    elif isinstance(value, float) and not math.isfinite(value):
        raise PlanError(
            f"{source}: {_where(path, data)}: {value} is not a finite number", hint="use a number"
        )
    elif not (value is None or isinstance(value, str | bool | int | float)):
        raise PlanError(
            f"{source}: {_where(path, data)}: a {_kind(value)} value is not allowed",
            hint="use text, numbers, true/false, null, lists and mappings; quote anything else",
        )


def _check_keys(data: dict[str, Any], source: str) -> None:
    _known_keys(data, PlanDocument, [], source, data)
    steps = data.get("steps")
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        at: list[str | int] = ["steps", index]
        _known_keys(step, StepDocument, at, source, data)
        for key, model in (("rollback", CallDocument), ("retry", RetryDocument)):
            if isinstance(step.get(key), dict):
                _known_keys(step[key], model, [*at, key], source, data)
        for key, condition in (("expect", Condition), ("when", StepCondition)):
            items = step.get(key)
            for position, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict):
                    _known_keys(item, condition, [*at, key, position], source, data)


def _known_keys(
    mapping: dict[str, Any], model: type[BaseModel], path: list[str | int], source: str, data: Any
) -> None:
    allowed = list(model.model_fields)
    for key in mapping:
        if key not in allowed:
            nearest = difflib.get_close_matches(key, allowed, n=1, cutoff=0.0)
            guess = f"did you mean {nearest[0]!r}? " if nearest else ""
            raise PlanError(
                f"{source}: {_where(path, data)}: unknown key {_short(repr(key))}",
                hint=f"{guess}allowed here: {', '.join(allowed)}",
            )


def _shape_error(exc: ValidationError, source: str, data: Any) -> PlanError:
    first = exc.errors()[0]
    path = [p for p in first["loc"] if isinstance(p, str | int)]
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    hint = _SHAPE
    if path[-1:] == ["id"]:
        hint = "a step id is letters, digits, '_' and '-', starting with a letter or digit, at most 64"
    elif first["type"] == "missing" and path:
        hint = f"add {path[-1]!r}; {_SHAPE}"
    elif path[-1:] == ["capability"]:
        hint = f"known capabilities: {', '.join(CAPABILITIES)}"
    return PlanError(f"{source}: {_where(path, data)}: {first['msg']}{more}", hint=hint)


def _where(path: Sequence[str | int], data: Any) -> str:
    """`steps[2].args.x` as people read it: `step 'deploy': args.x`."""
    if not path:
        return "top level"
    if path[0] == "steps" and len(path) > 1 and isinstance(path[1], int):
        steps = data.get("steps") if isinstance(data, dict) else None
        step = steps[path[1]] if isinstance(steps, list) and path[1] < len(steps) else None
        ident = step.get("id") if isinstance(step, dict) else None
        label = f"step {ident!r}" if isinstance(ident, str) and ident else f"step #{path[1] + 1}"
        rest = _dotted(path[2:])
        return f"{label}: {rest}" if rest else label
    return _dotted(path)


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _nearest(name: str, known: Sequence[str], count: int = 3) -> str:
    close = difflib.get_close_matches(name, known, n=count, cutoff=0.0)
    return ", ".join(close) if close else "(none)"


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "text", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

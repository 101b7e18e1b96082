"""Request -> Intent -> Plan. Pure: the catalog, the clock and the history come in as values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsmith.config import Config
from opsmith.domain.approval_rule import approval_need
from opsmith.domain.binding import Binding, BindingSet
from opsmith.domain.call_environment import (
    call_hosts,
    foreign_environment,
    hosts_by_environment,
    more_guarded,
)
from opsmith.domain.capabilities import CAPABILITIES, Capability
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.domain.errors import (
    IntentError,
    OpsmithError,
    PlanError,
    ServerUnavailableError,
    UnknownNameError,
)
from opsmith.domain.graph import Node, validate
from opsmith.domain.hosts import HOSTS_SERVER
from opsmith.domain.intent import Intent, Vocabulary, parse_intent, require_environment
from opsmith.domain.intent_hosts import refuse_contradicted, stated_counts
from opsmith.domain.intent_text import tokenize
from opsmith.domain.intent_words import ENVIRONMENTS
from opsmith.domain.inventory import Inventory
from opsmith.domain.plan import Candidate, Plan, PlanStatus, Step, ToolCall
from opsmith.domain.plan import Mapping as ToolMapping
from opsmith.domain.playbook import Playbook, PlaybookStep, choose
from opsmith.domain.risk import assess, highest
from opsmith.domain.scripts import package_name, process_name, service_name
from opsmith.planner import describe
from opsmith.planner.argnames import match
from opsmith.planner.arguments import ALIASES, FilledArguments, fill_arguments
from opsmith.planner.binding_args import bound_arguments
from opsmith.planner.bindings import Bound, bound, load_bindings
from opsmith.planner.compliance import attach_requirements
from opsmith.planner.context import Moment, adjust, staging_steps
from opsmith.planner.expand import Draft, drop, expand
from opsmith.planner.given_image import with_given_image
from opsmith.planner.mapping import DOMAIN_FIT, choice_reads, choose_tool, rejections, server_fit
from opsmith.planner.playbooks import Coverage, refuse_unserved
from opsmith.planner.policy import approval_rule, risk_rules
from opsmith.planner.templates import RUNTIME_REF, Unfilled, render, render_text


@dataclass(frozen=True)
class Pick:
    """The tool chosen for a capability, and the binding that chose it, if one did."""

    mapping: ToolMapping
    tool: ToolSpec
    bound: Bound | None = None


@dataclass(frozen=True)
class Situation:
    """Everything outside the request that a plan depends on, as plain values."""

    catalog: Catalog
    now: datetime
    degraded: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()  # configured servers that did not answer
    durations: Mapping[str, float] = field(default_factory=dict)
    recent_failures: Mapping[tuple[str, str], int] = field(default_factory=dict)
    taken_ids: frozenset[str] = frozenset()


class Planner:
    def __init__(
        self,
        config: Config,
        playbooks: list[Playbook],
        bindings: Sequence[BindingSet] | None = None,
        applications: Sequence[str] = (),
        inventory: Inventory | None = None,
    ) -> None:
        self._config = config
        self._playbooks = playbooks
        self._inventory = inventory if inventory is not None and inventory.host_count else None
        self._bindings = (
            list(bindings)
            if bindings is not None
            else load_bindings(config.planning.bindings, config.planning.binding_dirs)
        )
        self.vocabulary = Vocabulary(
            # The configuration's applications, then those the live systems listed at discovery.
            applications=list(dict.fromkeys([*config.applications, *applications])),
            # The reader takes a group as written; `_on_hosts` finds it in the inventory, loosely.
            groups=[],
            default_application=config.planning.default_application,
            default_environment=config.planning.default_environment,
        )
        # Choices per (situation, capability): one plan asks for the same capability many times.
        self._picks: dict[tuple[int, str], Pick | None] = {}
        self._checked: tuple[str, Intent] | None = None
        self._risk_rules = risk_rules(config)

    @property
    def bindings(self) -> list[BindingSet]:
        """The binding sets consulted, in order: the user's, then the bundled ones."""
        return list(self._bindings)

    def intent(self, request: str) -> Intent:
        return parse_intent(request, self.vocabulary)

    def check(self, request: str) -> Intent:
        """What can be refused before any server is asked: the request itself."""
        # A use case checks before it plans and then plans: the same text, the same answer.
        if self._checked is not None and self._checked[0] == request:
            return self._checked[1]
        intent = self._on_hosts(self.intent(request))
        # Before unknown names: in "... and purge the cache" the part, not the name, is the problem.
        playbook = self._playbook(intent)
        if playbook is not None:
            refuse_unserved(intent, Coverage.of_playbook(playbook), self._playbooks)
        self._refuse_unknown(intent)
        require_environment(intent)
        self._checked = (request, intent)
        return intent

    def _target_hosts(self, intent: Intent) -> list[str] | None:
        targets = intent.targets
        if self._inventory is None or not (targets.group or targets.hosts):
            return None
        if targets.group:
            return self._inventory.host_names_of(self._inventory.find_group(targets.group).name)
        return list(dict.fromkeys(targets.hosts))

    def _on_hosts(self, intent: Intent) -> Intent:
        """A request about hosts, checked against the inventory: its group by the name it has there
        ('Production Web' is production_web), UnknownGroupError naming the nearest ones otherwise;
        every count (each with its OS) and every OS it states of them (intent_hosts.refuse_contradicted);
        and, when the request names no environment, the one its hosts' `environment` variable says."""
        targets = intent.targets
        if not (targets.group or targets.hosts):
            return intent
        where = targets.group or ", ".join(targets.hosts)
        if self._inventory is None:
            raise PlanError(
                f"'{intent.request}' is about hosts ({where}), and no inventory of hosts is configured",
                hint="declare `inventory:` in opsmith.yaml (inline, or an Ansible inventory file),"
                " or run `opsmith inventory import FILE`",
            )
        if targets.group:
            group = self._inventory.find_group(targets.group).name
            hosts = self._inventory.hosts_of(group)
            if not hosts:
                raise PlanError(
                    f"the group {group!r} has no hosts", hint=f"see `opsmith inventory show {group}`"
                )
            intent = intent.model_copy(update={"targets": targets.model_copy(update={"group": group})})
        else:
            hosts = [self._inventory.host(name) for name in targets.hosts]
        # "25 Windows systems in group X": a count or an OS the hosts contradict is refused, never narrowed.
        # Every count is read, each with its OS ("3 linux and 2 windows servers"), not only the first.
        group_name = intent.targets.group if targets.group else None
        counts = stated_counts(tokenize(intent.request))
        refuse_contradicted(intent.request, counts=counts, os=targets.os, hosts=hosts, group=group_name)
        # Agreed with, so the plan's intent shows what was checked: the total said, every OS said.
        oses = list(dict.fromkeys([*targets.os, *(c.os for c in counts if c.os is not None)]))
        total = len({h.name for h in hosts}) if counts else None
        intent = intent.model_copy(
            update={"targets": intent.targets.model_copy(update={"count": total, "os": oses})}
        )
        _refuse_unsafe_names(intent, {h.os for h in hosts})
        if intent.environment_source == "request":
            return intent
        said = sorted({str(h.vars["environment"]) for h in hosts if h.vars.get("environment")})
        known = sorted({ENVIRONMENTS.get(word.lower(), "?") for word in said})
        if len(known) > 1 or known == ["?"]:
            raise IntentError(
                f"the `environment` variable of the hosts of {where} says {', '.join(said)}:"
                " not one of production, staging or development",
                hint=f'name it in the request, e.g. "{intent.request.rstrip(".!? ")} in staging",'
                " or set the group's `environment` variable",
            )
        if known:
            return intent.model_copy(update={"environment": known[0], "environment_source": "inventory"})
        return intent

    def plan(self, request: str, situation: Situation, overrides: Mapping[str, Any] | None = None) -> Plan:
        """A complete plan, an incomplete one (missing arguments listed), or a PlanError/IntentError."""
        intent = self.check(request)
        self._picks.clear()
        subjects = intent.subjects
        subject = subjects[0] if subjects else None
        playbook = self._playbook(intent)
        if playbook is None:
            raise self._no_playbook(intent, self._strategy(intent, subject))
        if not subjects and any(s.for_each or "subject" in str(s.args) for s in playbook.steps):
            raise PlanError(
                f"'{intent.request}' names no application and no default_application is configured",
                hint=f"name one, e.g. '{intent.action} {next(iter(self._config.applications), 'APP')} ...'",
            )
        moment = Moment(
            now=situation.now,
            recent_failures=situation.recent_failures.get((subject or "", intent.environment or ""), 0),
            failure_window_days=self._config.planning.recent_failure_days,
            friday_cutoff_hour=self._config.planning.friday_cutoff_hour,
        )
        has_staging = any(s.environment == "staging" for s in playbook.steps)
        adjustment = adjust(intent.environment, intent.urgency, subject, moment, has_staging)
        can_stage = adjustment.staging_validation and any(s.id == "push_image" for s in playbook.steps)
        source_steps, skipped = self._source_steps(playbook, intent, can_stage)
        given = (overrides or {}).get("image")
        if isinstance(given, str) and given.strip():
            source_steps, left_out = with_given_image(source_steps, given.strip(), subjects)
            skipped += left_out
        source_steps += _after_last(adjustment.extra_steps, source_steps)
        drafts = expand(source_steps, subjects)
        steps, warnings, dropped = self._concrete(drafts, intent, situation, dict(overrides or {}))
        skipped += dropped
        # A part served by an optional step is not served once that step is left out.
        refuse_unserved(intent, Coverage.of_steps(playbook, steps), self._playbooks, left_out=True)
        return self._assemble(
            intent, playbook, steps, warnings, skipped, adjustment, situation, dict(overrides or {})
        )

    # -- pieces -----------------------------------------------------------------------------

    def _refuse_unknown(self, intent: Intent) -> None:
        if intent.unknown:
            first = intent.unknown[0]
            near = f"; nearest known: {', '.join(first.nearest)}" if first.nearest else ""
            # In a compound request, which part it is in: "... and purge the cache" names no app.
            parts = [c.text for c in intent.clauses if first.name.lower() in c.text.lower()]
            where = f' in "{parts[0]}"' if len(intent.clauses) > 1 and parts else ""
            raise UnknownNameError(
                f"unknown {first.kind} {first.name!r}{where}{near}",
                hint=f"known applications: {', '.join(self.vocabulary.applications) or 'none configured'}",
            )

    def _playbook(self, intent: Intent) -> Playbook | None:
        subject = intent.subjects[0] if intent.subjects else None
        return choose(self._playbooks, intent, self._strategy(intent, subject))

    def _strategy(self, intent: Intent, subject: str | None) -> str:
        asked = intent.params.get("strategy")
        if isinstance(asked, str):
            return asked.replace("_", "-")
        app = self._config.applications.get(subject or "")
        return app.strategy if app else "rolling"

    def _no_playbook(self, intent: Intent, strategy: str) -> PlanError:
        on_hosts = bool(intent.targets.group or intent.targets.hosts)
        kind = [p for p in self._playbooks if p.match.targets == on_hosts]
        serving = sorted({a for p in kind for a in p.match.actions})
        for_action = [p for p in kind if intent.action in p.match.actions]
        if not intent.subjects and for_action and all(p.match.min_subjects >= 1 for p in for_action):
            known = list(self.vocabulary.applications)
            example = f"{intent.action} {known[0] if known else 'APP'} in {intent.environment or 'staging'}"
            return PlanError(
                f"'{intent.request}' names no application, and no planning.default_application is configured",
                hint=f"name one, e.g. '{example}'; known: {', '.join(known) or 'none configured'}",
            )
        return PlanError(
            f"no playbook for {intent.action} in {intent.environment or 'no environment'}"
            f" ({len(intent.subjects)} subject(s), {intent.urgency}, {strategy})",
            hint=f"playbooks exist for: {', '.join(serving)}; add one under planning.playbook_dirs",
        )

    def _source_steps(
        self, playbook: Playbook, intent: Intent, add_staging: bool
    ) -> tuple[list[PlaybookStep], list[str]]:
        steps = list(playbook.steps)
        skipped = list(playbook.skips)
        if intent.urgency in ("fast", "urgent"):
            left_out = [s for s in steps if s.optional or s.urgent_skip]
            steps = [s for s in steps if s not in left_out]
            skipped += [
                f"{s.id}: optional, left out because the request is {intent.urgency}" for s in left_out
            ]
            steps = _without(steps, {s.id for s in left_out})
        if add_staging:
            extra = staging_steps(intent.subjects[0] if intent.subjects else None)
            steps = _insert_before_change(steps, extra)
        return steps, skipped

    def _concrete(
        self, drafts: list[Draft], intent: Intent, situation: Situation, overrides: dict[str, Any]
    ) -> tuple[list[Step], list[str], list[str]]:
        warnings: list[str] = []
        chosen: dict[str, Pick] = {}
        gone: set[str] = set()
        missing: dict[str, list[str]] = {}  # capability -> the steps that need it
        for draft in drafts:
            capability = CAPABILITIES[draft.source.capability]
            found = self._pick(capability, situation)
            if found is None:
                if draft.source.optional:
                    gone.add(draft.id)
                    warnings.append(
                        f"optional step {draft.id} left out: no tool for capability {capability.name} "
                        f"(needs {capability.provider})"
                    )
                    continue
                missing.setdefault(capability.name, []).append(draft.id)
                continue
            chosen[draft.id] = found
        if missing:
            raise self._unserved(missing, situation)
        drafts = drop(drafts, gone)
        backups = _backup_steps(drafts)
        steps = [
            self._step(d, chosen[d.id], intent, situation, overrides, warnings, chosen, backups.get(d.id))
            for d in drafts
        ]
        return steps, warnings, []

    def _unserved(self, missing: Mapping[str, list[str]], situation: Situation) -> OpsmithError:
        """One refusal naming every capability no configured server serves, and why each server was not
        taken; a server that is running is never suggested as the thing to add."""
        lines = []
        for name, step_ids in missing.items():
            capability = CAPABILITIES[name]
            why = rejections(capability, situation.catalog, self._bindings)
            considered = "; ".join(f"{server}: {reason}" for server, reason in why.items()) or "no server"
            # A server of the right kind is running: say that none of its tools does it, not "add one".
            of_kind = [
                s
                for s in situation.catalog.servers()
                if server_fit(capability, situation.catalog, s) >= DOMAIN_FIT
            ]
            need = f"no tool of {', '.join(of_kind)} does it" if of_kind else f"needs {capability.provider}"
            lines.append(f"{name} (step {', '.join(step_ids)}): {need}; considered {considered}")
        summary = f"no tool for {len(missing)} capabilit{'y' if len(missing) == 1 else 'ies'}: " + " | ".join(
            lines
        )
        if situation.down:
            # Not the request's fault: a server that may offer it did not answer.
            names = ", ".join(sorted(situation.down))
            return ServerUnavailableError(
                f"{summary}; down: {names}", hint="see `opsmith servers status`, then plan again"
            )
        return PlanError(
            summary,
            hint="configure a server offering each of them, or add a binding (planning.bindings)"
            " for a tool of a running server that does the job",
        )

    def _pick(self, capability: Capability, situation: Situation) -> Pick | None:
        key = (id(situation), capability.name)
        if key not in self._picks:
            self._picks[key] = self._choose(capability, situation)
        return self._picks[key]

    def _choose(self, capability: Capability, situation: Situation) -> Pick | None:
        mapping = choose_tool(
            capability, situation.catalog, degraded=situation.degraded, durations=situation.durations
        )
        offered = bound(capability.name, situation.catalog, self._bindings)
        usable = [b for b in offered if b.binding.role != "undo" and _may_serve(capability, b)]
        if usable:
            # A healthy server first; among those, the first set (the user's) and the configuration's order.
            best = sorted(usable, key=lambda b: b.tool.server in situation.degraded)[0]
            fixed = ", ".join(f"{k}={v}" for k, v in best.binding.fixed.items())
            reasons = [f"binding {best.set_name}: {best.binding.why or capability.name}"]
            if fixed:
                reasons.append(f"fixed {fixed}")
            chosen = Candidate(tool=best.tool.qualified_name, score=BOUND_SCORE, reasons=reasons)
            others = [c for c in (mapping.runners_up if mapping else []) if c.tool != chosen.tool]
            if mapping is not None and mapping.chosen.tool != chosen.tool:
                others = [mapping.chosen, *others]
            return Pick(
                ToolMapping(capability=capability.name, chosen=chosen, runners_up=others[:3]), best.tool, best
            )
        if mapping is None:
            return None
        server, name = mapping.chosen.tool.split("/", 1)
        tool = situation.catalog.get(server, name)
        assert tool is not None
        return Pick(mapping, tool)

    def _step(
        self,
        draft: Draft,
        found: Pick,
        intent: Intent,
        situation: Situation,
        overrides: dict[str, Any],
        warnings: list[str],
        chosen: Mapping[str, Pick],
        backup_step: str | None,
    ) -> Step:
        mapping, tool = found.mapping, found.tool
        binding = found.bound.binding if found.bound else None
        source = draft.source
        capability = CAPABILITIES[source.capability]
        environment = source.environment or intent.environment
        facts = self._facts(intent, draft.subject, environment)
        facts["backup_step"] = backup_step
        # A value set for this step (`scale.replicas=40`) wins over one set for every step (`replicas=5`).
        step_overrides = {
            k: v for k, v in overrides.items() if "." not in k and match(k, _props(tool)).target is not None
        }
        step_overrides |= {
            k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith(f"{draft.id}.")
        }
        if binding is not None:
            filled = bound_arguments(binding, tool.input_schema, draft.args, facts, step_overrides)
        else:
            named = {**facts, "subject": facts.get(capability.object_fact)}
            filled = fill_arguments(tool.input_schema, draft.args, facts, step_overrides, object_facts=named)
            filled = _with_fixed(filled, mapping.chosen.fixed, step_overrides, tool)
        if binding is None and mapping.chosen.fixed:
            binding = _choice_binding(capability.name, tool, mapping.chosen.fixed)
        hosts = facts.get("target_hosts")
        if tool.server == HOSTS_SERVER and hosts:
            # What runs is what was approved: the hosts the group has now are written into the plan
            # (and its hash), so a host added to the group later is not acted on by this plan.
            given = filled.args.get("targets")
            if given is None or given == facts.get("targets"):
                filled.args["targets"] = list(hosts)
        settle = _settle(draft, tool, binding, filled, facts)
        if settle is not None:
            filled.dropped.remove("wait_seconds")
            warnings.append(
                f"step {draft.id}: {tool.qualified_name} cannot wait itself; opsmith calls it again until"
                f" its checks hold, for up to {settle:g}s"
            )
        warnings += _adapted(f"step {draft.id}", tool, filled)
        rollback = self._rollback(draft, facts, situation, warnings, chosen)
        changes = capability.changes_target
        hints = _bound_hints(tool, binding)
        risk = assess(
            tool.name, hints, changes_target=changes, environment=environment, rules=self._risk_rules
        )
        seconds = situation.durations.get(tool.qualified_name)
        duration = (
            (seconds * 0.8, seconds * 1.5) if seconds else (source.duration or capability.default_duration)
        )
        return Step(
            id=draft.id,
            name=_render_text(source.name, _shown(facts, step_overrides)),
            capability=capability.name,
            server=tool.server,
            tool=tool.name,
            args=filled.args,
            depends_on=list(draft.depends_on),
            risk=risk.level,
            risk_reasons=risk.reasons,
            requires_validation=source.requires_validation,
            rollback=rollback,
            optional=source.optional,
            # A read-only tool changes nothing, so calling it again is safe whatever idempotentHint says
            # (the MCP spec gives idempotentHint meaning only for tools that are not read-only).
            idempotent=source.idempotent
            if source.idempotent is not None
            else bool(hints.idempotent or hints.read_only),
            changes_target=changes,
            targets=list(hosts) if tool.server == HOSTS_SERVER and hosts else [],
            estimated_duration=(float(duration[0]), float(duration[1])),
            missing_args=filled.missing + [f"invalid: {p}" for p in filled.problems],
            expect=list(source.expect),
            settle=settle,
            when=list(draft.when),
            description=source.description or (binding.why if binding else "") or tool.summary,
            mapping=mapping,
            extract=dict(binding.output) if binding else {},
        )

    def _rollback(
        self,
        draft: Draft,
        facts: dict[str, Any],
        situation: Situation,
        warnings: list[str],
        chosen: Mapping[str, Pick],
    ) -> ToolCall | None:
        if draft.source.rollback is None:
            return None
        capability = CAPABILITIES[draft.source.rollback]
        undos = [
            b
            for b in bound(capability.name, situation.catalog, self._bindings)
            if b.binding.role in ("undo", "any") and _may_serve(capability, b)
        ]
        args = _reachable(draft.rollback_args, chosen, f"undo of {draft.id}", warnings)
        picked: tuple[ToolSpec, Binding | None, FilledArguments] | None = None
        for candidate in undos:
            filled = bound_arguments(candidate.binding, candidate.tool.input_schema, args, facts, {})
            if not filled.missing and not filled.problems:
                picked = (candidate.tool, candidate.binding, filled)
                break  # the first whose arguments can all be filled: the most exact way back
        if picked is None:
            found = self._pick(capability, situation)
            if found is None:
                return None
            binding = found.bound.binding if found.bound else None
            if binding is not None:
                filled = bound_arguments(binding, found.tool.input_schema, args, facts, {})
            else:
                filled = fill_arguments(found.tool.input_schema, args, facts, {})
                filled = _with_fixed(filled, found.mapping.chosen.fixed, {}, found.tool)
                if found.mapping.chosen.fixed:
                    binding = _choice_binding(capability.name, found.tool, found.mapping.chosen.fixed)
            picked = (found.tool, binding, filled)
        tool, binding, filled = picked
        warnings += _adapted(f"undo of {draft.id}", tool, filled)
        stated = draft.source.rollback_idempotent
        hints = _bound_hints(tool, binding)
        # As for steps: a read-only tool changes nothing, so running it again is safe.
        idempotent = stated if stated is not None else bool(hints.idempotent or hints.read_only)
        return ToolCall(
            server=tool.server,
            tool=tool.name,
            args=filled.args,
            description=(binding.why if binding else "") or tool.summary,
            idempotent=idempotent,
        )

    def _facts(self, intent: Intent, subject: str | None, environment: str | None) -> dict[str, Any]:
        planning = self._config.planning
        app = self._config.applications.get(subject or "")
        repository = app.image_repository if app and app.image_repository else planning.image_repository
        params = dict(intent.params)
        targets = intent.targets
        return {
            # A fleet request's: the hosts it is about, and the names it gave for them.
            "targets": targets.group or (list(targets.hosts) or None),
            "group": targets.group,
            "target_hosts": self._target_hosts(intent),
            # No service named: the one of the package (nginx) or of the program (stationcontroller.exe);
            # the plan shows it, and `--set service=NAME` says otherwise.
            "service": _first_of(params, "services")
            or _first_of(params, "packages")
            or _program(_first_of(params, "processes")),
            "package": _first_of(params, "packages"),
            "process": _first_of(params, "processes"),
            "subject": subject,
            "subjects": intent.subjects,
            "app": subject,
            "environment": environment,
            "namespace": environment,
            "service_name": planning.service_name.format(app=subject) if subject else None,
            "image_repository": repository.format(app=subject) if subject else None,
            "branch": (app.branch if app and app.branch else None) or planning.default_branch,
            "replicas": params.get("replicas"),
            "version": params.get("version"),
            "params": params,
            "urgency": intent.urgency,
        }

    def _refuse_foreign(self, steps: list[Step], environment: str | None, overrides: dict[str, Any]) -> None:
        """A step whose arguments (set by `--set`, or by a playbook) or whose hosts name a more
        guarded environment than the request's would be approved by the wrong rules; the run would
        deny it, so say it now, naming what to change."""
        for step in steps:
            calls = [(step.server, step.args)]
            if step.rollback is not None:
                calls.append((step.rollback.server, step.rollback.args))
            for server, args in calls:
                foreign = foreign_environment(args, environment)
                if foreign is None and self._inventory is not None and server == HOSTS_SERVER:
                    try:
                        declared = hosts_by_environment(call_hosts(self._inventory, args))
                    except OpsmithError:
                        declared = {}  # unknown targets: the host checks name them
                    guarded = [e for e in declared if e is not None and more_guarded(e, environment)]
                    foreign = guarded[0] if guarded else None
                if foreign is None:
                    continue
                set_here = sorted(k for k in overrides if k.rsplit(".", 1)[-1] in args)
                cause = f" (set with --set {', '.join(set_here)})" if set_here else ""
                raise PlanError(
                    f"step {step.id!r} acts in {foreign}{cause}, and the request is for"
                    f" {environment or 'no environment'}",
                    hint=f"ask for {foreign} in the request (its approvals and roles then apply),"
                    " or correct the value",
                )

    def _assemble(
        self,
        intent: Intent,
        playbook: Playbook,
        steps: list[Step],
        warnings: list[str],
        skipped: list[str],
        adjustment: Any,
        situation: Situation,
        overrides: dict[str, Any],
    ) -> Plan:
        self._refuse_foreign(steps, intent.environment, overrides)
        nodes = [Node(id=s.id, depends_on=tuple(s.depends_on), duration=s.estimated_duration) for s in steps]
        validate(nodes)
        schemas = {s.id: _output_schema(situation.catalog, s) for s in steps}
        steps, requirements = attach_requirements(
            steps, intent.environment, self._config.policy.compliance, schemas
        )
        risk = highest([s.risk for s in steps])
        changes = any(s.changes_target for s in steps)
        need = approval_need(
            risk, intent.environment, changes_target=changes, rule=approval_rule(self._config)
        )
        reasons, needed = list(need.reasons), need.approvals
        if adjustment.extra_approvals:
            needed = max(needed, 1) + adjustment.extra_approvals
            reasons.append(f"recent failures: {adjustment.extra_approvals} more approval(s)")
        incomplete = any(s.missing_args for s in steps) or any(r.unmet for r in requirements)
        facts = self._facts(intent, intent.subjects[0] if intent.subjects else None, intent.environment)
        title = _render_text(playbook.title, _shown(facts, overrides))
        plan = Plan(
            id=_plan_id(intent, situation),
            request=intent.request,
            title=title,
            intent=intent,
            playbook=playbook.name,
            priority=describe.priority(intent.environment, intent.urgency),
            risk=risk,
            requires_approval=bool(reasons),
            approval_reasons=reasons or ["policy does not require approval for this plan"],
            approvals_needed=needed,
            **describe.outline(steps, requirements, intent.environment, nodes),
            context_rules=adjustment.rules,
            skipped=skipped,
            warnings=warnings,
            overrides=dict(overrides),
            status=PlanStatus.INCOMPLETE
            if incomplete
            else (PlanStatus.PENDING_APPROVAL if reasons else PlanStatus.APPROVED),
            created_at=situation.now,
        )
        return plan.model_copy(update={"hash": plan.content_hash()})


BOUND_SCORE = 100.0  # a binding says outright that the tool does the job: above any word score


def _may_serve(capability: Capability, found: Bound) -> bool:
    """A check never uses a tool that may destroy something, unless the binding's fixed arguments
    make it read-only (kubectl_rollout with subCommand=status)."""
    if capability.effect != "read" or found.binding.read_only:
        return True
    return not found.tool.hints.effective_destructive or bool(found.tool.hints.read_only)


def _bound_hints(tool: ToolSpec, binding: Binding | None) -> ToolHints:
    """The tool's annotations, as the binding's fixed arguments make them."""
    if binding is None or binding.read_only is None:
        return tool.hints
    if binding.read_only:
        return tool.hints.model_copy(update={"read_only": True, "destructive": False})
    return tool.hints.model_copy(update={"read_only": False})


def _with_fixed(
    filled: FilledArguments, fixed: Mapping[str, Any], overrides: Mapping[str, Any], tool: ToolSpec
) -> FilledArguments:
    """The operation the mapping chose (`subCommand=undo`) is sent as chosen, whatever else says."""
    if not fixed:
        return filled
    problems = list(filled.problems)
    for name in sorted(set(overrides) & set(fixed)):
        problems.append(f"{name}: fixed to {fixed[name]!r}, the operation of {tool.name} this step is")
    args = {**filled.args, **fixed}
    missing = [m for m in filled.missing if m not in fixed]
    return dataclasses.replace(filled, args=args, missing=missing, problems=problems)


def _choice_binding(capability: str, tool: ToolSpec, fixed: Mapping[str, Any]) -> Binding:
    """What an operation chosen from a tool's schema amounts to: a binding with that value fixed,
    read-only when the operation only reads."""
    reads = all(choice_reads(str(v)) for v in fixed.values())
    return Binding(capability=capability, tool=tool.name, fixed=dict(fixed), read_only=reads or None)


def _settle(
    draft: Draft, tool: ToolSpec, binding: Binding | None, filled: FilledArguments, facts: dict[str, Any]
) -> float | None:
    """A check told to wait (`wait_seconds`) on a tool that takes no such argument is polled instead,
    when it is read-only and has something to wait for."""
    if "wait_seconds" not in filled.dropped or not draft.source.expect:
        return None
    if not _bound_hints(tool, binding).read_only:
        return None  # calling a tool that may change something again is never the way to wait
    try:
        seconds = float(render(draft.args["wait_seconds"], {k: v for k, v in facts.items() if v is not None}))
    except (Unfilled, TypeError, ValueError):
        return None
    return seconds if 0 < seconds <= 3600 else None


def _backup_steps(drafts: list[Draft]) -> dict[str, str]:
    """For each step, the nearest backup step it waits for: its undo may restore what that recorded."""
    by_id = {d.id: d for d in drafts}
    found: dict[str, str] = {}
    for draft in drafts:
        queue, seen = list(draft.depends_on), set()
        while queue:
            current = queue.pop(0)
            if current in seen or current not in by_id:
                continue
            seen.add(current)
            if by_id[current].source.capability == "backup":
                found[draft.id] = current
                break
            queue.extend(by_id[current].depends_on)
    return found


def _reachable(
    args: dict[str, Any], chosen: Mapping[str, Pick], where: str, warnings: list[str]
) -> dict[str, Any]:
    """Undo arguments without references to fields the referenced step's binding never reads (a
    `previous_revision` kubectl_apply does not report): left out, and said, rather than an undo
    that cannot start when it is needed."""
    kept: dict[str, Any] = {}
    for name, value in args.items():
        ref = RUNTIME_REF.fullmatch(value) if isinstance(value, str) else None
        source = chosen.get(ref.group(1)) if ref else None
        if ref and source is not None and source.bound is not None:
            field_name = ref.group(2).split(".", 1)[0]
            declared = (source.tool.output_schema or {}).get("properties") or {}
            if field_name not in source.bound.binding.output and field_name not in declared:
                warnings.append(
                    f"{where}: {source.tool.qualified_name} does not report {field_name}; {name} left out"
                )
                continue
        kept[name] = value
    return kept


def _adapted(where: str, tool: ToolSpec, filled: FilledArguments) -> list[str]:
    """What the plan says about arguments it renamed for the tool or left out."""
    notes = []
    if filled.renamed:
        notes.append(f"{where}: {tool.qualified_name} takes {', '.join(filled.renamed)}")
    for name in filled.dropped:
        why = filled.why_dropped.get(name)
        notes.append(
            f"{where}: {tool.qualified_name} does not declare {name}"
            + (f" ({why})" if why else "")
            + "; not sent"
        )
    return notes


def _plan_id(intent: Intent, situation: Situation) -> str:
    base = f"plan_{intent.action}_{intent.environment or 'none'}_{int(situation.now.timestamp())}"
    candidate, n = base, 1
    while candidate in situation.taken_ids:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _output_schema(catalog: Catalog, step: Step) -> dict[str, Any] | None:
    tool = catalog.get(step.server, step.tool)
    return tool.output_schema if tool else None


def _props(tool: ToolSpec) -> dict[str, Any]:
    props = tool.input_schema.get("properties")
    return props if isinstance(props, dict) else {}


def _render_text(template: str, facts: dict[str, Any]) -> str:
    return render_text(template, facts)


def _shown(facts: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The facts a title or step name shows, with what --set gave (`replicas=5`, `scale.replicas=40`),
    so the text never says "?" or an old value next to the argument that is sent."""
    shown = dict(facts)
    params = dict(facts.get("params") or {})
    for key, value in overrides.items():
        fact = ALIASES.get(key.rsplit(".", 1)[-1])
        if fact in ("replicas", "version"):
            shown[fact] = params[fact] = value
    shown["params"] = params
    return shown


def _without(steps: list[PlaybookStep], gone: set[str]) -> list[PlaybookStep]:
    parents = {s.id: s.depends_on for s in steps}
    result = []
    for step in steps:
        deps: list[str] = []
        for dep in step.depends_on:
            deps.extend(_surviving(dep, gone, parents))
        result.append(step.model_copy(update={"depends_on": list(dict.fromkeys(deps))}))
    return result


def _surviving(dep: str, gone: set[str], parents: Mapping[str, list[str]]) -> list[str]:
    if dep not in gone:
        return [dep]
    return [x for parent in parents.get(dep, []) for x in _surviving(parent, gone, parents)]


def _after_last(extra: list[PlaybookStep], steps: list[PlaybookStep]) -> list[PlaybookStep]:
    """Extra steps run after the plan's last step (so they watch the finished change)."""
    if not extra or not steps:
        return extra
    depended = {d for s in steps for d in s.depends_on}
    leaves = [s.id for s in steps if s.id not in depended]
    return [e.model_copy(update={"depends_on": leaves}) for e in extra]


def _insert_before_change(steps: list[PlaybookStep], extra: list[PlaybookStep]) -> list[PlaybookStep]:
    """Put staging steps before the first step that changes production, which then waits for them."""
    index = next((i for i, s in enumerate(steps) if CAPABILITIES[s.capability].changes_target), len(steps))
    first = steps[index] if index < len(steps) else None
    head = steps[:index]
    anchors = first.depends_on if first else [s.id for s in head[-1:]]
    staged = [extra[0].model_copy(update={"depends_on": list(anchors)}), *extra[1:]]
    tail = steps[index:]
    if first is not None:
        tail = [first.model_copy(update={"depends_on": [*first.depends_on, extra[-1].id]}), *tail[1:]]
    return [*head, *staged, *tail]


__all__ = ["Planner", "Situation"]


def _first_of(params: Mapping[str, Any], name: str) -> Any:
    found = params.get(name)
    return found[0] if isinstance(found, list) and found else None


def _program(process: str | None) -> str | None:
    if not process:
        return None
    return process[:-4] if process.lower().endswith(".exe") else process


def _refuse_unsafe_names(intent: Intent, systems: set[str]) -> None:
    """ScriptInputError before anything is planned for a name no script may carry (`nginx; rm -rf /`):
    each service, package and program the request names, by the rules of each OS its hosts run."""
    params = intent.params
    for os in sorted(systems):
        for name in params.get("services") or []:
            service_name(name, os="windows" if os == "windows" else "linux")
        for name in params.get("processes") or []:
            process_name(name)
        if os == "linux":
            for name in params.get("packages") or []:
                package_name(name)

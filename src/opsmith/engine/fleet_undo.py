"""Where the undo of a step that fanned out over hosts goes: only where the step acted.

A fleet step keeps each host's outcome (its answer's rows, and `StepState.fan_out` as hosts finish),
so its undo is sent to the hosts where it acted and never to those whose outcome says it did not:
- acted: the host said it changed something, or the command ran there (it succeeded, or it failed
  after starting: it may have changed something part-way, and an undo of a fleet operation puts a
  state back, which is harmless where it already holds);
- did not act: the host said it changed nothing (`"changed": false`: already as asked, or refused
  before changing anything), or the command never started there (unreachable, host key, login
  refused, refused by opsmith);
- unknown: no recorded outcome, in flight when the process stopped. It may have acted, so it is
  undone: that is what the undo is for, and undoing where nothing changed is harmless.

The undo's own targets are narrowed, never widened: hosts that did not act are taken out of a list
of host names (`${steps.stop.changed_hosts}`) and out of a version per host; targets naming the
step's own group become the step's hosts without those that did not act. When the run never
recorded the names of some hosts (a crash mid-call of a step on a group), a group cannot be
narrowed: the undo waits for a person (see `blind_hosts`), and when they choose to run it, it goes to
the hosts that were recorded.

A failed step whose call answered nothing (a crash, a timeout) still has its rows: its undo's
references read an answer made of them (`recorded_answer`), when every host is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsmith.domain.hosts import HOSTS_SERVER, HostFailure
from opsmith.domain.plan import Plan, ToolCall
from opsmith.engine.errors import UnresolvedReference
from opsmith.engine.references import RUNTIME_REF, resolve
from opsmith.engine.scheduler import plan_step
from opsmith.engine.state import Outputs, RunState

__all__ = ["Reach", "blind_hosts", "narrowed", "reach", "recorded_answer", "sent_hosts"]

TARGETS = "targets"
VERSION = "version"  # package_install: a version per host names the hosts it runs on
# Failures before the command started: nothing ran there.
_NEVER_RAN = frozenset(f.value for f in HostFailure if not f.may_have_run)


@dataclass(frozen=True)
class Reach:
    """A fan-out step's hosts by what their outcomes say (see the module docstring), each in the
    order the step's answer or record holds them."""

    acted: tuple[str, ...]
    untouched: tuple[str, ...]  # did not act: its undo never goes there
    unknown: tuple[str, ...]  # named, no recorded outcome
    unnamed: int = 0  # no recorded outcome and no name the run recorded

    @property
    def undone(self) -> tuple[str, ...]:
        """The named hosts the undo goes to: where the step acted or may have."""
        return self.acted + self.unknown


def reach(plan: Plan, run_state: RunState, step_id: str) -> Reach | None:
    """Where the step acted, from its answer's rows or its fan-out record; None for a step that
    did not fan out over hosts (or never recorded a host)."""
    step = plan_step(plan, step_id)
    state = run_state.step(step_id)
    if step.server != HOSTS_SERVER:
        return None
    answered = _answer_rows(state.output)
    record = state.fan_out
    if answered is None and record is None:
        return None
    rows: dict[str, Mapping[str, Any]] = dict(record.rows) if record is not None else {}
    rows.update(answered or {})
    unknown: list[str] = []
    unnamed = 0
    if answered is None and record is not None:
        # The call stopped before its answer: hosts in flight have no row, and only the step's own
        # arguments may name them.
        names = _step_hosts(plan, run_state, step_id)
        if names is None:
            unnamed = record.unknown
        else:
            unknown = [name for name in names if name not in rows]
    acted = tuple(name for name, row in rows.items() if _acted(row))
    untouched = tuple(name for name in rows if name not in acted)
    return Reach(acted, untouched, tuple(unknown), unnamed)


def recorded_answer(plan: Plan, run_state: RunState, step_id: str) -> dict[str, Any] | None:
    """For a failed fleet step that recorded hosts' outcomes but no answer (a crash, a timeout):
    the host lists of an answer made of them, which its undo's references read. Every host in flight
    counts as changed (it may have). None when some hosts were never named, or there is an answer."""
    state = run_state.step(step_id)
    found = reach(plan, run_state, step_id)
    if state.output is not None or state.fan_out is None or found is None or found.unnamed:
        return None
    rows = state.fan_out.rows
    return {
        "total": len(rows) + len(found.unknown),
        "hosts": [dict(row) for row in rows.values()],
        "succeeded_hosts": [name for name, row in rows.items() if row.get("ok") is True],
        "failed_hosts": [name for name, row in rows.items() if row.get("ok") is not True],
        "changed_hosts": list(found.undone),
        "unknown_hosts": list(found.unknown),
    }


def blind_hosts(plan: Plan, run_state: RunState, step_id: str) -> int:
    """How many hosts with no recorded name stand in the way of narrowing the step's undo: its undo
    targets the step's own group, some hosts did not act, and some were never named (0: none)."""
    step = plan_step(plan, step_id)
    if step.rollback is None or step.rollback.server != HOSTS_SERVER:
        return 0
    found = reach(plan, run_state, step_id)
    if found is None or not found.unnamed or not found.untouched:
        return 0
    return found.unnamed if _same_group(step.args, step.rollback.args) else 0


def narrowed(plan: Plan, run_state: RunState, step_id: str, call: ToolCall) -> ToolCall:
    """`call` (the step's undo, its references filled) sent only where the step acted."""
    found = reach(plan, run_state, step_id)
    if found is None or call.server != HOSTS_SERVER or not found.untouched:
        return call
    left_out = set(found.untouched)
    args = dict(call.args)
    targets = args.get(TARGETS)
    if isinstance(targets, list):
        args[TARGETS] = [name for name in targets if name not in left_out]
    elif isinstance(targets, str) and _same_group(plan_step(plan, step_id).args, call.args):
        # The hosts the run never named are left out: a person chose this undo knowing it.
        args[TARGETS] = list(found.undone)
    version = args.get(VERSION)
    if isinstance(version, Mapping):
        args[VERSION] = {name: v for name, v in version.items() if name not in left_out}
    return call.model_copy(update={"args": args})


def sent_hosts(call: ToolCall) -> list[str] | None:
    """The hosts a fleet call names, when it names them (not a group)."""
    targets = call.args.get(TARGETS)
    if isinstance(targets, list):
        return [str(name) for name in targets]
    version = call.args.get(VERSION)
    if targets is None and isinstance(version, Mapping):
        return [str(name) for name in version]
    return None


def _acted(row: Mapping[str, Any]) -> bool:
    result = row.get("result")
    changed = result.get("changed") if isinstance(result, Mapping) else None
    if isinstance(changed, bool):
        return changed
    if row.get("ok") is True:
        return True
    return not (row.get("exit_code") is None and row.get("failure") in _NEVER_RAN)


def _answer_rows(output: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]] | None:
    """The rows of a fleet answer, by host; None when `output` is not one."""
    hosts = output.get("hosts") if output is not None else None
    if not isinstance(hosts, list):
        return None
    rows = {
        row["host"]: row for row in hosts if isinstance(row, Mapping) and isinstance(row.get("host"), str)
    }
    return rows if len(rows) == len(hosts) else None


def _step_hosts(plan: Plan, run_state: RunState, step_id: str) -> list[str] | None:
    """The host names the step's arguments give (a list, or a version per host); None for a group."""
    step = plan_step(plan, step_id)
    try:
        args = resolve(step.args, Outputs(run_state), step_id=step_id)
    except UnresolvedReference:
        return None
    call = ToolCall(server=step.server, tool=step.tool, args=args)
    return sent_hosts(call)


def _same_group(step_args: Mapping[str, Any], undo_args: Mapping[str, Any]) -> bool:
    """The undo targets the very group the step ran on (a literal, not a reference)."""
    group = step_args.get(TARGETS)
    return isinstance(group, str) and not RUNTIME_REF.search(group) and undo_args.get(TARGETS) == group

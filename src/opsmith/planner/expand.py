"""Turn a playbook's steps into this request's step list: per-subject copies, dropped optionals."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from opsmith.domain.evidence import StepCondition
from opsmith.domain.playbook import PlaybookStep
from opsmith.planner.templates import rename_refs


@dataclass(frozen=True)
class Draft:
    """A step on its way to becoming a plan step."""

    id: str
    source: PlaybookStep
    subject: str | None
    depends_on: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)
    rollback_args: dict[str, Any] = field(default_factory=dict)
    when: tuple[StepCondition, ...] = ()


def expand(steps: list[PlaybookStep], subjects: list[str]) -> list[Draft]:
    """One draft per step, or per (step, subject) for `for_each` steps, dependencies rewired."""
    repeated = {s.id for s in steps if s.for_each}
    multi = len(subjects) > 1
    drafts: list[Draft] = []
    for step in steps:
        instances = subjects if step.for_each and subjects else [subjects[0] if subjects else None]
        for index, subject in enumerate(instances):
            suffix = f"_{_slug(subject)}" if step.for_each and multi and subject else ""
            renames = {r: f"{r}{suffix}" for r in repeated} if suffix else {}
            deps = [renames.get(d, d) if d in repeated else d for d in step.depends_on]
            if step.serial_after and index > 0:
                deps.append(f"{step.serial_after}_{_slug(instances[index - 1])}")
            drafts.append(
                Draft(
                    id=f"{step.id}{suffix}",
                    source=_renamed_expectations(step, renames),
                    subject=subject,
                    depends_on=tuple(
                        _expand_dep(d, repeated, subjects, multi, bool(step.for_each)) for d in deps
                    ),
                    args=rename_refs(step.args, renames),
                    rollback_args=rename_refs(step.rollback_args, renames),
                    when=tuple(c.model_copy(update={"step": renames.get(c.step, c.step)}) for c in step.when),
                )
            )
    return _flatten(drafts)


def _renamed_expectations(step: PlaybookStep, renames: dict[str, str]) -> PlaybookStep:
    """The step with references in its expectations' values (`${steps.deploy.image}`) pointing
    at this instance's copies of repeated steps, as its arguments do."""
    if not renames or not step.expect:
        return step
    expect = [c.model_copy(update={"value": rename_refs(c.value, renames)}) for c in step.expect]
    return step.model_copy(update={"expect": expect})


def drop(drafts: list[Draft], gone: set[str]) -> list[Draft]:
    """Remove steps; whoever depended on them now depends on what they depended on."""
    inherited = {d.id: d.depends_on for d in drafts}

    def resolve(dep: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        if dep not in gone:
            return (dep,)
        if dep in seen:
            return ()
        return tuple(x for parent in inherited.get(dep, ()) for x in resolve(parent, seen | {dep}))

    kept = []
    for draft in drafts:
        if draft.id in gone:
            continue
        deps = tuple(dict.fromkeys(x for dep in draft.depends_on for x in resolve(dep)))
        kept.append(replace(draft, depends_on=deps))
    return kept


def _expand_dep(dep: str, repeated: set[str], subjects: list[str], multi: bool, own_for_each: bool) -> str:
    # A single step waiting on a repeated one waits for every copy: marked here, split in _flatten.
    if dep in repeated and multi and not own_for_each:
        return "*" + dep
    return dep


def _flatten(drafts: list[Draft]) -> list[Draft]:
    copies: dict[str, list[str]] = {}
    for draft in drafts:
        if draft.source.for_each:
            copies.setdefault(draft.source.id, []).append(draft.id)
    result = []
    for draft in drafts:
        deps: list[str] = []
        for dep in draft.depends_on:
            deps.extend(copies.get(dep[1:], [dep[1:]]) if dep.startswith("*") else [dep])
        result.append(replace(draft, depends_on=tuple(deps)))
    return result


def _slug(subject: str | None) -> str:
    return "".join(c if c.isalnum() else "_" for c in (subject or "")).strip("_").lower()

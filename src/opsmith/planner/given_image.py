"""Deploy an image that is already built: `--set image=REF` leaves out the steps that would make one.

The steps left out are every `push_image` step and everything it waits for (build, tests, scans),
unless a step that stays needs them for something else than the image. References to the pushed
image (`${steps.push_image.image}`) become the given one, so the deploy, its checks and its
undo name the image that was asked for. Production's compliance still asks for the evidence those
steps would have given, and shows what is unmet.
"""

from __future__ import annotations

import re
from typing import Any

from opsmith.domain.errors import PlanError
from opsmith.domain.playbook import PlaybookStep

_REF = re.compile(r"\$\{steps\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_.\-]+)\}")


def with_given_image(
    steps: list[PlaybookStep], image: str, subjects: list[str]
) -> tuple[list[PlaybookStep], list[str]]:
    """The steps without the ones that build the image, and what was left out and why."""
    pushes = {s.id for s in steps if s.capability == "push_image"}
    if not pushes:
        return steps, []
    if len(subjects) > 1:
        raise PlanError(
            f"--set image={image} names one image, and the request deploys {len(subjects)} applications",
            hint="deploy one application with a given image, or leave image out to build each",
        )
    parents = {s.id: set(s.depends_on) for s in steps}
    gone = set(pushes)
    frontier = list(pushes)
    while frontier:
        for parent in parents.get(frontier.pop(), set()):
            if parent not in gone:
                gone.add(parent)
                frontier.append(parent)
    kept = [s for s in steps if s.id not in gone]
    for step in kept:
        for ref_step, path in _REF.findall(str([step.args, step.rollback_args, step.expect, step.when])):
            if ref_step in gone and not (ref_step in pushes and path == "image"):
                needed = f"${{steps.{ref_step}.{path}}}"
                raise PlanError(
                    f"step {step.id} needs {needed}, which is not made when an image is given",
                    hint="leave --set image out to build the image in this plan",
                )
    survivors = {s.id for s in kept}
    rewritten = [
        step.model_copy(
            update={
                "args": _replace(step.args, pushes, image),
                "rollback_args": _replace(step.rollback_args, pushes, image),
                "expect": [
                    c.model_copy(update={"value": _replace(c.value, pushes, image)}) for c in step.expect
                ],
                "depends_on": _kept_parents(step, gone, parents, survivors),
            }
        )
        for step in kept
    ]
    skipped = [f"{s.id}: left out, the image {image} is given (--set image)" for s in steps if s.id in gone]
    return rewritten, skipped


def _replace(value: Any, pushes: set[str], image: str) -> Any:
    if isinstance(value, str):
        for push in pushes:
            if value == f"${{steps.{push}.image}}":
                return image
            value = value.replace(f"${{steps.{push}.image}}", image)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, pushes, image) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, pushes, image) for v in value]
    return value


def _kept_parents(
    step: PlaybookStep, gone: set[str], parents: dict[str, set[str]], kept: set[str]
) -> list[str]:
    """A step that waited for a step left out waits for what that one waited for, if it stays."""
    found: list[str] = []
    for dep in step.depends_on:
        stack = [dep]
        while stack:
            current = stack.pop()
            if current in kept:
                found.append(current)
            elif current in gone:
                stack.extend(parents.get(current, set()))
    return list(dict.fromkeys(found))


__all__ = ["with_given_image"]

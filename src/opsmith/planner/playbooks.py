"""Load playbooks (bundled, then the user's directories) and refuse inconsistent ones clearly."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from opsmith.domain.capabilities import CAPABILITIES
from opsmith.domain.errors import GraphError, PlaybookError
from opsmith.domain.graph import Node, validate
from opsmith.domain.playbook import Playbook
from opsmith.planner.templates import check_syntax, runtime_refs

BUNDLED = Path(__file__).resolve().parent.parent / "bundled" / "playbooks"


def load_playbooks(directories: Iterable[Path] = ()) -> list[Playbook]:
    """Bundled playbooks, then user ones; a user playbook with a bundled name replaces it."""
    by_name: dict[str, Playbook] = {}
    for directory in [BUNDLED, *directories]:
        if not directory.is_dir():
            raise PlaybookError(
                f"playbook directory {directory} does not exist", hint="fix planning.playbook_dirs"
            )
        for path in sorted(directory.glob("*.y*ml")):
            playbook = load_playbook(path)
            by_name[playbook.name] = playbook
    return list(by_name.values())


def load_playbook(path: Path) -> Playbook:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"cannot read playbook {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PlaybookError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_playbook(data, source=str(path))


def parse_playbook(data: object, *, source: str) -> Playbook:
    """Validate one playbook's data: shape, capabilities, dependencies, cycles, templates."""
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise PlaybookError(
            f"{source}: {path}: {message}", hint="see src/opsmith/bundled/playbooks/ for examples"
        ) from None
    _check(playbook, source)
    return playbook.model_copy(update={"source": source})


def _check(playbook: Playbook, source: str) -> None:
    known = ", ".join(sorted(CAPABILITIES))
    ids = [s.id for s in playbook.steps]
    for index, step in enumerate(playbook.steps):
        where = f"{source}: steps[{index}] ({step.id})"
        for capability in (step.capability, step.rollback):
            if capability is not None and capability not in CAPABILITIES:
                raise PlaybookError(f"{where}: unknown capability {capability!r}", hint=f"known: {known}")
        for text in _strings([step.name, step.args, step.rollback_args]):
            error = check_syntax(text)
            if error:
                raise PlaybookError(f"{where}: template {text!r}: {error}")
        for ref, _ in runtime_refs([step.args, step.rollback_args]):
            if ref not in ids:
                raise PlaybookError(
                    f"{where}: refers to the output of unknown step {ref!r}", hint=f"steps: {', '.join(ids)}"
                )
        for condition in step.when:
            if condition.step not in ids[:index]:
                raise PlaybookError(
                    f"{where}: when: refers to {condition.step!r}, which is not an earlier step",
                    hint="a condition reads the output of a step listed before this one (and depended on)",
                )
        if step.serial_after is not None and (step.for_each is None or step.serial_after not in ids):
            raise PlaybookError(f"{where}: serial_after needs for_each and an existing step id")
    try:
        validate([Node(id=s.id, depends_on=tuple(s.depends_on)) for s in playbook.steps])
    except GraphError as exc:
        raise PlaybookError(f"{source}: {exc.message}", hint=exc.hint) from None
    error = check_syntax(playbook.title)
    if error:
        raise PlaybookError(f"{source}: title: {error}")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []

"""Load playbooks (bundled, then the user's directories) and refuse inconsistent ones clearly;
say which parts of a request a playbook serves, and refuse a request with a part none serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from pydantic import ValidationError

from opsmith.domain.capabilities import CAPABILITIES
from opsmith.domain.errors import GraphError, PlanError, PlaybookError
from opsmith.domain.graph import Node, validate
from opsmith.domain.intent import READ_ONLY_ACTIONS, Intent, RequestClause
from opsmith.domain.intent_words import APP_ACTIONS
from opsmith.domain.plan import Step
from opsmith.domain.playbook import Playbook
from opsmith.planner.templates import check_syntax, runtime_refs

BUNDLED = Path(__file__).resolve().parent.parent / "bundled" / "playbooks"

# Steps that look at what a plan changed: they serve "... and verify it is healthy".
VERIFYING = frozenset({"verify_pods", "check_service", "check_logs", "deployment_status", "verify_image"})
# What a note asks for, by its words: a step with one of these capabilities does it. A note's verb
# decides ("build", "notify"), or its object after a verb that says only "do it" ("run smoke tests").
NOTE_CAPABILITIES: dict[str, frozenset[str]] = {
    **dict.fromkeys(("build", "builds", "compile"), frozenset({"build"})),
    **dict.fromkeys(("test", "tests", "testsuite"), frozenset({"test"})),
    **dict.fromkeys(("scan", "scans", "analysis", "sonar"), frozenset({"quality_scan", "security_scan"})),
    **dict.fromkeys(("backup", "backups", "snapshot", "snapshots"), frozenset({"backup"})),
    **dict.fromkeys(("notify", "alert", "page", "message", "tell"), frozenset({"notify"})),
    **dict.fromkeys(("monitor", "watch", "confirm", "healthcheck", "healthchecks"), VERIFYING),
}
OBJECT_VERBS = frozenset({"run", "execute", "make", "ensure", "create", "take", "do"})
# Every run is journaled, audited and shown live, and reaches its servers: no step needed.
ALWAYS_DONE = frozenset({"log", "record", "report", "connect"})


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
    return cached_by_stat(path, _load_playbook)


def _load_playbook(path: Path) -> Playbook:
    return parse_playbook(read_yaml(path, "playbook"), source=str(path))


T = TypeVar("T")
_PARSED: dict[tuple[str, Callable[[Path], Any]], tuple[tuple[int, ...], Any]] = {}

# libyaml's parser where PyYAML was built with it: every plan reads all playbooks and binding sets,
# and the pure-Python one spends a tenth of a second on the bundled files alone.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def cached_by_stat(path: Path, load: Callable[[Path], T]) -> T:
    """`load(path)`, read again only when the file's modification time or size changed: a server
    plans many requests over the same files, and an edited file is still picked up at once."""
    try:
        info = path.stat()
    except OSError:
        return load(path)  # the loader reports the file it cannot read
    # The inode too: an editor that saves by renaming a new file over the old one makes a new inode,
    # even within one tick of a coarse file-system clock and at the same size.
    stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
    key = (str(path), load)
    found = _PARSED.get(key)
    if found is not None and found[0] == stamp:
        return cast(T, found[1])
    value = load(path)
    _PARSED[key] = (stamp, value)
    return value


def read_yaml(path: Path, what: str) -> object:
    """A playbook's or a binding set's file as data; one clear error, with the line, if it is not."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # a safe loader
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"cannot read {what} {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PlaybookError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc


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
        ) from exc
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
        raise PlaybookError(f"{source}: {exc.message}", hint=exc.hint) from exc
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


@dataclass(frozen=True)
class Coverage:
    """What a plan (or the playbook it comes from) can do for the parts of a request."""

    playbook: Playbook
    capabilities: frozenset[str]
    undoable: bool  # some step has a rollback: "... and roll back if it fails" is served

    @classmethod
    def of_playbook(cls, playbook: Playbook) -> Coverage:
        steps = playbook.steps
        return cls(playbook, frozenset(s.capability for s in steps), any(s.rollback for s in steps))

    @classmethod
    def of_steps(cls, playbook: Playbook, steps: Sequence[Step]) -> Coverage:
        capabilities = frozenset(s.capability for s in steps)
        return cls(playbook, capabilities, any(s.rollback is not None for s in steps))

    def does(self, clause: RequestClause) -> bool:
        """Does a step of the plan do what this clause asks, though the playbook was not chosen for it?"""
        if clause.action is None:
            verb = clause.verb or ""
            if verb in ALWAYS_DONE:
                return True
            words = (
                [verb]
                if verb not in OBJECT_VERBS
                else [w.strip(".,:!?'\"") for w in clause.text.lower().split()]
            )
            return any(NOTE_CAPABILITIES.get(word, frozenset()) & self.capabilities for word in words)
        if clause.action == "check":
            return bool(VERIFYING & self.capabilities)
        return clause.action == "rollback" and clause.conditional and self.undoable


def refuse_unserved(
    intent: Intent, coverage: Coverage, playbooks: Sequence[Playbook], *, left_out: bool = False
) -> None:
    """PlanError naming the first part of the request the plan would not serve, if there is one.

    Planning the parts a playbook serves and dropping the others would do less than was asked
    without a word; acting on what another part only mentions ("... and check the status of b"
    must not deploy b) would do more. Refusing the whole request says what to do instead.
    """
    # What else could serve a part: playbooks of the same kind (about hosts, or not).
    playbooks = [p for p in playbooks if p.match.targets == coverage.playbook.match.targets]
    actions = coverage.playbook.match.actions
    chosen = [c for c in intent.clauses if c.action in actions]
    scope = {s for c in chosen for s in c.subjects}
    several = len(intent.clauses) > 1
    problems: list[tuple[RequestClause, str, list[str]]] = []
    for clause in intent.clauses:
        others = [s for s in clause.subjects if s not in scope]
        if clause in chosen:
            # An application action naming no application does nothing; on hosts, the hosts are the object.
            on_hosts = coverage.playbook.match.targets
            if (
                several
                and not clause.subjects
                and not on_hosts
                and clause.action not in APP_ACTIONS | READ_ONLY_ACTIONS
            ):
                problems.append((clause, "nothing", []))
        elif not coverage.does(clause):
            problems.append((clause, "undone", []))
        elif others:
            problems.append((clause, "other", others))
    if problems:
        serving = sorted({a for p in playbooks for a in p.match.actions})
        raise _unserved(intent, coverage.playbook, problems, serving, left_out=left_out)


def _unserved(
    intent: Intent,
    playbook: Playbook,
    problems: list[tuple[RequestClause, str, list[str]]],
    serving: list[str],
    *,
    left_out: bool,
) -> PlanError:
    clause, why, others = problems[0]
    text, action, verb = clause.text, clause.action, clause.verb
    part = f'"{text}"' + "".join(f' (nor "{c.text}")' for c, _, _ in problems[1:])
    rest = ", then ".join(c.text for c in intent.clauses if all(c is not p for p, _, _ in problems))
    anchor = next((c.text for c in intent.clauses if c.action in playbook.match.actions), intent.request)
    split = f'split the request and plan each part on its own: "{rest}", then "{text}"'
    listed = ", ".join(serving)
    if why == "nothing":
        message = f'cannot plan {part}: it asks to {action} ("{verb}") but names nothing known to {action}'
        hint = f'name the application, or leave that part out and plan "{rest}" on its own'
    elif why == "other":
        does = playbook.match.actions[0]
        message = (
            f'cannot plan {part} together with "{anchor}": it is about {", ".join(others)}, '
            f"which the {playbook.name} plan would then {does} as well"
        )
        hint = split
    elif action is None:
        how = (
            "the step that would do it is left out of this plan"
            if left_out
            else "no step of this plan does it"
        )
        message = f'cannot plan {part}: {how} ("{verb}" is not one of the actions opsmith plans)'
        hint = (
            f'leave it out and plan "{rest}" on its own, doing it another way; playbooks exist for: {listed}'
        )
    elif action in serving:
        message = (
            f'cannot plan {part} together with "{anchor}": it asks to {action} ("{verb}"), '
            f"which the {playbook.name} plan does not do"
        )
        hint = split
    else:
        message = f'cannot plan {part}: it asks to {action} ("{verb}"), and no playbook does that'
        hint = (
            f'plan "{rest}" on its own and do that part another way; playbooks exist for: {listed}; '
            "add one under planning.playbook_dirs"
        )
    return PlanError(message + "; opsmith plans every part of a request or none of it", hint=hint)

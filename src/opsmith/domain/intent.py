"""Plain-language request -> Intent: what to do, to what, where, how urgently.

`parse_intent` reads a request such as "Deploy microservice-one to production" or "Connect to
25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running, stop the
service, copy new file, restart service" into an `Intent`. It is deterministic, does no I/O and
raises only `IntentError`: for text that is empty, too long, holds control characters or shell
metacharacters, names things with characters a name cannot have, or asks for no action at all.

It does not refuse names it does not know (they are listed in `Intent.unknown` with the
nearest known ones) nor a missing environment (`require_environment` does that), so
`opsmith intent` can always show what it understood.

Every part of a request is accounted for: `Intent.clauses` lists each clause that asks for
something (an action, or a note such as "log results") with its text, and a part that asks
for something with a verb opsmith does not know ("... and then wipe the staging cache") is
refused with an IntentError naming it, never dropped. Whether a playbook serves every clause
is the planner's question.

`Intent.targets` holds the hosts a request is about: an inventory group, named hosts, and what it
says of them, a count ("25 ... systems", "five servers"; "all" states none) and OS families
("Windows systems", see intent_hosts), which the planner checks against the hosts they resolve to.

`Intent.params` keys, present only when the request says so:
  replicas (int), version (str, "latest" for "latest version"), from_version, tag (str),
  services, processes, packages, files, paths, images, urls, options (list[str]),
  canary_percent, percent (int), strategy ("canary" | "blue-green" | "rolling" | "recreate"),
  direction ("up" | "down", for scale), namespace (str), dry_run (bool),
  environments (list[str], when more than one is named), groups (list[str], the groups after
  the first), notes (list[str]: clauses asked for that are not actions, e.g. "log results").
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsmith.domain.errors import IntentError
from opsmith.domain.hosts import OsFamily
from opsmith.domain.intent_clauses import Clause, Known, split_clauses
from opsmith.domain.intent_hosts import stated_counts, stated_os
from opsmith.domain.intent_names import Reading
from opsmith.domain.intent_reader import read_clauses
from opsmith.domain.intent_text import MAX_REQUEST_LENGTH, Token, merge_phrases, screen, shorten, tokenize
from opsmith.domain.intent_words import ACTIONS, APP_ACTIONS, CONDITION_WORDS, LEAD_WORDS, READ_ONLY_ACTIONS

__all__ = [
    "ACTIONS",
    "MAX_REQUEST_LENGTH",
    "READ_ONLY_ACTIONS",
    "Environment",
    "Intent",
    "RequestClause",
    "Targets",
    "UnknownName",
    "Vocabulary",
    "parse_intent",
    "require_environment",
]

Environment = Literal["production", "staging", "development"]
Platform = Literal["kubernetes", "docker", "windows", "linux"]
Urgency = Literal["normal", "fast", "urgent"]
UnknownKind = Literal["application", "group"]
SENSITIVITY = {"production": 0, "staging": 1, "development": 2}
# Names only ever used in examples when the vocabulary has none of its own.
EXAMPLE_APPLICATION = "microservice-one"
# Lists the reader collects into params, in the order they are reported.
LIST_PARAMS = ("services", "processes", "packages", "files", "paths", "images", "urls", "options")


class Targets(BaseModel):
    """The hosts a request is about: an inventory group, explicit hosts, a head count."""

    model_config = ConfigDict(frozen=True)

    group: str | None = None
    hosts: list[str] = Field(default_factory=list)
    count: int | None = None
    # The OS families the request says its hosts run ("25 Windows systems"), checked by the planner.
    os: list[OsFamily] = Field(default_factory=list)


class UnknownName(BaseModel):
    """A name the request used that the vocabulary does not know, with the nearest known ones."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: UnknownKind
    nearest: list[str] = Field(default_factory=list)


class RequestClause(BaseModel):
    """One part of a request that asks for something, as read: a place the planner must serve."""

    model_config = ConfigDict(frozen=True)

    text: str
    action: str | None = None  # None: a note, something asked for that is not an action
    verb: str | None = None  # the words it was read by ("roll back", a note's "log"), lowercase
    conditional: bool = False  # holds a condition: "roll back if it fails"
    # The applications it is about: named in it, or meant by "it" / an app action naming none.
    subjects: list[str] = Field(default_factory=list)


class Vocabulary(BaseModel):
    """What the reader may recognise by name: applications and inventory groups."""

    model_config = ConfigDict(frozen=True)

    applications: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    default_application: str | None = None
    default_environment: Environment | None = None


class Intent(BaseModel):
    """What a request asks for; the Intent JSON of DESIGN.md."""

    model_config = ConfigDict(frozen=True)

    request: str
    action: str
    actions: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    environment: Environment | None = None
    # "inventory": the `environment` variable of the hosts the request names.
    environment_source: Literal["request", "default", "inventory"] | None = None
    platform: Platform | None = None
    urgency: Urgency = "normal"
    targets: Targets = Field(default_factory=Targets)
    params: dict[str, Any] = Field(default_factory=dict)
    unknown: list[UnknownName] = Field(default_factory=list)
    # Empty for intents built by hand and for plans stored before clauses were kept.
    clauses: list[RequestClause] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _actions_include_action(cls, data: Any) -> Any:
        # Built by hand (tests, stored plans) with only `action`: it is the whole list.
        if isinstance(data, dict) and data.get("action") and not data.get("actions"):
            return {**data, "actions": [data["action"]]}
        return data

    @property
    def mutating(self) -> bool:
        """True unless every action only reads (check/status/show/list)."""
        return any(action not in READ_ONLY_ACTIONS for action in self.actions or [self.action])


def parse_intent(text: str, vocabulary: Vocabulary) -> Intent:
    """Read a request into an Intent; IntentError (only) if it cannot or must not be read."""
    try:
        return _parse(text, vocabulary)
    except IntentError:
        raise
    except Exception as exc:  # the contract is "only IntentError": a reader bug must not leak out
        raise IntentError(
            f"internal error while reading the request ({type(exc).__name__}); this is a bug in opsmith",
            hint="rephrase the request, and please report it with the exact text",
        ) from exc


def _parse(text: str, vocabulary: Vocabulary) -> Intent:
    request = screen(text)
    known = _known(vocabulary)
    phrases = {tuple(group.lower().split()): group for group in vocabulary.groups if group.strip()}
    tokens = merge_phrases(tokenize(request), phrases)
    clauses = split_clauses(tokens, known)
    reading = read_clauses(clauses, known, tokens)
    notes = [request[c.tokens[0].start : c.tokens[-1].span_end] for c in clauses if c.note and c.tokens]
    if not reading.actions:
        raise _no_action(request, reading, vocabulary, notes)
    unaccounted = _unaccounted(clauses, reading)
    if unaccounted:
        raise _not_understood(request, clauses, unaccounted)
    intent = _intent(request, reading, vocabulary, notes)
    # Every count said, each with its OS ("3 linux and 2 windows servers" is 5 hosts), as the
    # planner checks them; the reader alone keeps the first.
    counts = stated_counts(tokens)
    total = sum(c.count for c in counts) if counts else intent.targets.count
    oses = list(dict.fromkeys([*stated_os(tokens), *(c.os for c in counts if c.os is not None)]))
    targets = intent.targets.model_copy(update={"os": oses, "count": total})
    parts = _parts(request, clauses, reading, intent.subjects)
    return intent.model_copy(update={"clauses": parts, "targets": targets})


def _parts(request: str, clauses: list[Clause], reading: Reading, subjects: list[str]) -> list[RequestClause]:
    # Without a name of its own, a clause is about the one the clause before named ("deploy x to
    # staging and check it"), or, if none did, about the request's subjects (the default app).
    fallback = subjects if not any(named for named, _ in reading.clause_subjects) else []
    antecedent: list[str] = []
    parts: list[RequestClause] = []
    for clause, (named, refers) in zip(clauses, reading.clause_subjects, strict=True):
        own = _unique(named)
        if not own and (refers or clause.action in APP_ACTIONS):
            own = antecedent or fallback
        antecedent = own or antecedent
        if clause.action is not None or clause.note:
            parts.append(_part(request, clause).model_copy(update={"subjects": own}))
    return parts


def _part(request: str, clause: Clause) -> RequestClause:
    if clause.verb is not None:
        verb: str | None = " ".join(t.low for t in clause.tokens[clause.verb[0] : clause.verb[1]])
    else:
        verb = clause.first_word() if clause.note else None  # "is x running?" has no verb
    return RequestClause(
        text=_text(request, clause.tokens[0], clause.tokens[-1]),
        action=clause.action,
        verb=verb,
        conditional=clause.action not in READ_ONLY_ACTIONS
        and any(t.low in CONDITION_WORDS for t in clause.tokens if not t.quoted and not t.group),
    )


def _text(request: str, first: Token, last: Token) -> str:
    return request[first.start : last.span_end]


def _unaccounted(clauses: list[Clause], reading: Reading) -> list[tuple[Token, Token, Token, bool]]:
    """The parts nothing in the request stands for: (first, word, last, whether it reads as a request)."""
    found: list[tuple[Token, Token, Token, bool]] = []
    for clause in clauses:
        if clause.unrecognised:
            word = next(t for t in clause.tokens if t.quoted or t.group or t.low not in LEAD_WORDS)
            found.append((clause.tokens[0], word, clause.tokens[-1], True))
    found.extend((first, word, last, False) for first, word, last in reading.unplaced)
    return sorted(found, key=lambda part: part[0].start)


def _not_understood(
    request: str, clauses: list[Clause], unaccounted: list[tuple[Token, Token, Token, bool]]
) -> IntentError:
    first, word, last, asks = unaccounted[0]
    text = shorten(_text(request, first, last))
    if asks:
        message = f'found no known action in "{text}" ("{word.text}" is not one of the actions opsmith plans)'
    else:
        message = f'did not understand "{text}": "{word.text}" is neither an action nor a name opsmith knows'
    more = [f'"{shorten(_text(request, start, end))}"' for start, _, end, _ in unaccounted[1:]]
    if more:
        message += f" (nor {', '.join(more)})"
    # Planning the rest alone would leave that part undone without a word, which is never fine.
    message += "; opsmith plans every part of a request or none of it"
    cuts = [(start.start, end.span_end) for start, _, end, _ in unaccounted]
    rest = ", then ".join(_kept(request, c, cuts) for c in clauses if c.action is not None or c.note)
    return IntentError(
        message,
        hint=f'leave that part out and plan "{shorten(rest)}" on its own, doing that part another way; '
        f"or ask for one of: {', '.join(ACTIONS)}",
    )


def _kept(request: str, clause: Clause, cuts: list[tuple[int, int]]) -> str:
    """The clause's text without the parts cut out of it ("deploy x to staging and then wipe")."""
    runs: list[list[Token]] = [[]]
    for token in clause.tokens:
        if any(start <= token.start < end for start, end in cuts):
            runs.append([])
        else:
            runs[-1].append(token)
    return ", ".join(_text(request, run[0], run[-1]) for run in runs if run)


def _known(vocabulary: Vocabulary) -> Known:
    # The first spelling wins if the vocabulary lists a name twice in different cases.
    applications: dict[str, str] = {}
    for name in vocabulary.applications:
        applications.setdefault(name.lower(), name)
    groups: dict[str, str] = {}
    for name in vocabulary.groups:
        groups.setdefault(name.lower(), name)
    return Known(applications=applications, groups=groups)


def _intent(request: str, reading: Reading, vocabulary: Vocabulary, notes: list[str]) -> Intent:
    environment, source = _environment(reading, vocabulary)
    params = _params(reading, notes)
    return Intent(
        request=request,
        action=reading.actions[0],
        actions=reading.actions,
        subjects=_subjects(reading, vocabulary),
        environment=environment,
        environment_source=source,
        # The reader only produces values from its tables, which are these literals.
        platform=cast(Platform | None, _first(reading.platforms)),
        urgency=cast(Urgency, reading.urgency),
        targets=Targets(group=_first(reading.groups), hosts=reading.hosts, count=reading.count),
        params=params,
        unknown=[
            UnknownName(name=n, kind=cast(UnknownKind, k), nearest=near) for n, k, near in reading.unknown
        ],
    )


def _subjects(reading: Reading, vocabulary: Vocabulary) -> list[str]:
    subjects = _unique(reading.subjects)
    default = vocabulary.default_application
    if subjects or default is None or any(kind == "application" for _, kind, _ in reading.unknown):
        return subjects
    names_other_things = any(reading.lists.get(key) for key in ("services", "processes", "packages"))
    # "the code", "the app", "it" mean the default application; so does no subject at all for
    # an action that is always about an application (deploy, rollback, scale, hotfix).
    if (reading.app_reference and not names_other_things) or APP_ACTIONS.intersection(reading.actions):
        return [default]
    return []


def _environment(
    reading: Reading, vocabulary: Vocabulary
) -> tuple[Environment | None, Literal["request", "default"] | None]:
    if reading.environments:
        # The environment a request goes *to* wins over one it comes *from*; among equals the most
        # sensitive one, so that risk and approval are never judged on the milder of two.
        _, _, chosen = min(reading.environments, key=lambda e: (e[0], SENSITIVITY[e[2]], e[1]))
        return cast(Environment, chosen), "request"
    if vocabulary.default_environment is not None:
        return vocabulary.default_environment, "default"
    return None, None  # never guess: require_environment asks the user


def _params(reading: Reading, notes: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = dict(reading.values)
    for key in LIST_PARAMS:
        if reading.lists.get(key):
            params[key] = list(reading.lists[key])
    mentioned = _unique([environment for _, _, environment in reading.environments])
    if len(mentioned) > 1:
        params["environments"] = mentioned
    groups = _unique(reading.groups)
    if len(groups) > 1:
        params["groups"] = groups[1:]
    if notes:
        params["notes"] = notes
    return params


def require_environment(intent: Intent) -> None:
    """IntentError if a request that changes something says nowhere which environment."""
    if not intent.mutating or intent.environment is not None:
        return
    preposition = "to" if intent.action in ("deploy", "hotfix", "copy") else "in"
    example = f"{intent.request.rstrip('.!? ')} {preposition} staging"
    raise IntentError(
        f'"{shorten(intent.request)}" would {_join(_unique(intent.actions))} but names no environment: '
        f"say which one, production, staging or development",
        hint=f'e.g. "{shorten(example)}", or set a default environment in the configuration',
    )


def _no_action(request: str, reading: Reading, vocabulary: Vocabulary, notes: list[str]) -> IntentError:
    understood = _understood(reading, vocabulary, notes)
    verbs = ", ".join(ACTIONS)
    if understood:
        message = f'understood {_join(understood)} but no action in "{shorten(request)}"'
    else:
        message = f'understood no action, application or environment in "{shorten(request)}"'
    subjects = _subjects(reading, vocabulary) or reading.subjects
    app = _first(subjects) or vocabulary.default_application or _first(vocabulary.applications)
    app = app or EXAMPLE_APPLICATION
    environment = _environment(reading, vocabulary)[0] or "staging"
    return IntentError(
        f"{message}; missing: what to do, one of {verbs}",
        hint=f'e.g. "Deploy {app} to {environment}" or "Show status of {app} in {environment}"',
    )


def _understood(reading: Reading, vocabulary: Vocabulary, notes: list[str]) -> list[str]:
    parts: list[str] = []
    subjects = _unique(reading.subjects) or (
        [vocabulary.default_application] if reading.app_reference and vocabulary.default_application else []
    )
    if subjects:
        parts.append(f"application{'s' if len(subjects) > 1 else ''} {', '.join(subjects)}")
    parts.extend(f"unknown {kind} {name}" for name, kind, _ in reading.unknown)
    environment = _environment(reading, vocabulary)[0] if reading.environments else None
    if environment:
        parts.append(f"environment {environment}")
    if reading.platforms:
        parts.append(f"platform {reading.platforms[0]}")
    if reading.groups:
        parts.append(f'group "{reading.groups[0]}"')
    if reading.hosts:
        parts.append(f"hosts {', '.join(reading.hosts)}")
    if reading.count is not None:
        parts.append(f"{reading.count} hosts")
    for key in LIST_PARAMS:
        if reading.lists.get(key):
            parts.append(f"{key} {', '.join(reading.lists[key])}")
    parts.extend(f"{key} {value}" for key, value in reading.values.items())
    parts.extend(f'note "{note}"' for note in notes)
    return parts


def _first(items: list[str]) -> str | None:
    return items[0] if items else None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

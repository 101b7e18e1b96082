"""The environment a tool call's own arguments name (`namespace: production`, `env: stg`...).

One rule for a direct call (`services.tool_calls`) and for a step of a run (the engine): a call
is judged by where its arguments say it acts, not only by what its plan was written for, so a
plan for staging (a hand-written one, or one whose arguments were set by hand) cannot carry a
step that names production past the checks, approvals and roles of staging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opsmith.domain.hosts import Host
from opsmith.domain.intent_words import ENVIRONMENTS as ENVIRONMENT_WORDS
from opsmith.domain.inventory import Inventory

ENVIRONMENTS = ("production", "staging", "development")  # the most guarded first
_ENVIRONMENT_KEYS = ("environment", "env", "namespace", "stage", "target")


def environment_of(arguments: Mapping[str, Any]) -> str | None:
    """The environment an argument names (namespace: production...), if any does."""
    for key in _ENVIRONMENT_KEYS:
        value = arguments.get(key)
        if isinstance(value, str):
            word = value.lower()
            if word in ENVIRONMENT_WORDS:  # the words a request may use: prd, live, stg, uat...
                return ENVIRONMENT_WORDS[word]
            for environment in ENVIRONMENTS:
                if word in (environment, environment[:4], environment[:3]):
                    return environment
    return None


def foreign_environment(arguments: Mapping[str, Any], planned_for: str | None) -> str | None:
    """The environment the arguments name when it is more guarded than the one the plan was made
    for (None: they name none, the same, or a less guarded one, as a production plan's staging
    validation does: the plan was judged by the stricter rules)."""
    named = environment_of(arguments)
    if named is None or _rank(named) <= _rank(planned_for):
        return None
    return named


def call_hosts(inventory: Inventory, arguments: Mapping[str, Any]) -> list[Host]:
    """The hosts a fleet call acts on: its `targets` (a group or host names) and the hosts of a
    version per host. Unknown names raise as the inventory's lookups do."""
    hosts = []
    targets = arguments.get("targets")
    if isinstance(targets, str) and targets:
        hosts += inventory.resolve(targets)
    elif isinstance(targets, list) and targets:
        hosts += inventory.resolve([str(t) for t in targets])
    version = arguments.get("version")
    if isinstance(version, Mapping):
        hosts += inventory.resolve([str(name) for name in version])
    return hosts


def hosts_by_environment(hosts: Iterable[Host]) -> dict[str | None, tuple[str, ...]]:
    """Host names, each once, by the environment their `environment` variable declares (None: none,
    or a word that is no environment)."""
    grouped: dict[str | None, list[str]] = {}
    for host in hosts:
        said = host.vars.get("environment")
        environment = ENVIRONMENT_WORDS.get(said.lower()) if isinstance(said, str) else None
        names = grouped.setdefault(environment, [])
        if host.name not in names:
            names.append(host.name)
    return {environment: tuple(names) for environment, names in grouped.items()}


def more_guarded(environment: str | None, than: str | None) -> bool:
    return _rank(environment) > _rank(than)


def _rank(environment: str | None) -> int:
    return len(ENVIRONMENTS) - ENVIRONMENTS.index(environment) if environment in ENVIRONMENTS else 0

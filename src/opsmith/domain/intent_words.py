"""The words the intent reader knows, as data tables.

Every table maps lowercase words (or word tuples, for phrases) to what they mean. Extending
the reader's vocabulary should mostly mean adding a row here, not code in the reader.
"""

from __future__ import annotations

from typing import Final

ACTIONS: Final[tuple[str, ...]] = (
    "deploy",
    "rollback",
    "scale",
    "restart",
    "start",
    "stop",
    "update",
    "install",
    "check",
    "copy",
    "delete",
    "hotfix",
)

READ_ONLY_ACTIONS: Final[frozenset[str]] = frozenset({"check"})

# Actions about an application rather than a host service: an unnamed subject means the default app.
APP_ACTIONS: Final[frozenset[str]] = frozenset({"deploy", "rollback", "scale", "hotfix"})

# Verb phrases -> action. Phrases are matched longest first, whole words, case-insensitive.
VERBS: Final[dict[tuple[str, ...], str]] = {
    ("deploy",): "deploy",
    ("redeploy",): "deploy",
    ("release",): "deploy",
    ("ship",): "deploy",
    ("rollout",): "deploy",
    ("roll-out",): "deploy",
    ("roll", "out"): "deploy",
    ("push",): "deploy",
    ("promote",): "deploy",
    ("publish",): "deploy",
    ("rollback",): "rollback",
    ("roll-back",): "rollback",
    ("roll", "back"): "rollback",
    ("revert",): "rollback",
    ("undo",): "rollback",
    ("scale",): "scale",
    ("scale", "up"): "scale",
    ("scale", "down"): "scale",
    ("resize",): "scale",
    ("restart",): "restart",
    ("re-start",): "restart",
    ("reboot",): "restart",
    ("bounce",): "restart",
    ("start",): "start",
    ("bring", "up"): "start",
    ("turn", "on"): "start",
    ("spin", "up"): "start",
    ("stop",): "stop",
    ("halt",): "stop",
    ("shutdown",): "stop",
    ("shut", "down"): "stop",
    ("bring", "down"): "stop",
    ("turn", "off"): "stop",
    ("spin", "down"): "stop",
    ("kill",): "stop",
    ("terminate",): "stop",
    ("update",): "update",
    ("upgrade",): "update",
    ("patch",): "update",
    ("install",): "install",
    ("check",): "check",
    ("status",): "check",
    ("show",): "check",
    ("list",): "check",
    ("verify",): "check",
    ("get",): "check",
    ("validate",): "check",
    ("describe",): "check",
    ("inspect",): "check",
    ("view",): "check",
    ("display",): "check",
    ("copy",): "copy",
    ("cp",): "copy",
    ("transfer",): "copy",
    ("upload",): "copy",
    ("download",): "copy",
    ("delete",): "delete",
    ("remove",): "delete",
    ("destroy",): "delete",
    ("uninstall",): "delete",
    ("purge",): "delete",
    ("decommission",): "delete",
    ("teardown",): "delete",
    ("tear", "down"): "delete",
    ("hotfix",): "hotfix",
    ("hot-fix",): "hotfix",
    ("hot", "fix"): "hotfix",
}

# Parameters some verb phrases carry with them.
VERB_PARAMS: Final[dict[tuple[str, ...], dict[str, str]]] = {
    ("scale", "up"): {"direction": "up"},
    ("scale", "down"): {"direction": "down"},
}

LONGEST_VERB: Final[int] = max(len(phrase) for phrase in VERBS)

# "Deploy hotfix ..." is a hotfix, not a plain deploy.
HOTFIX_WORDS: Final[frozenset[str]] = frozenset({"hotfix", "hot-fix", "hotfixes"})

# Clauses that start with these are things the user asked for that are not actions of their own
# ("connect to ...", "log results"): kept as notes so nothing the user asked is silently dropped.
NOTE_VERBS: Final[frozenset[str]] = frozenset(
    {
        "connect",
        "log",
        "notify",
        "alert",
        "email",
        "message",
        "page",
        "send",
        "report",
        "record",
        "monitor",
        "watch",
        "wait",
        "backup",
        "archive",
        "run",
        "execute",
        "ensure",
        "make",
        "build",
        "test",
        "create",
        "open",
        "post",
        "tell",
        "confirm",
        "drain",
        "snapshot",
    }
)

# A verbless clause starting with one of these and holding a state word asks about status.
QUESTION_WORDS: Final[frozenset[str]] = frozenset({"is", "are", "was", "were", "whether", "how", "what"})
STATE_WORDS: Final[frozenset[str]] = frozenset(
    {"running", "healthy", "health", "alive", "up", "down", "stopped", "available", "reachable", "responding"}
)
# A verbless clause naming one of these asks about status too: "what is the status of x?".
CHECK_NOUNS: Final[frozenset[str]] = frozenset({"health", "healthy", "status", "uptime"})

ENVIRONMENTS: Final[dict[str, str]] = {
    "prod": "production",
    "production": "production",
    "live": "production",
    "prd": "production",
    "staging": "staging",
    "stage": "staging",
    "stg": "staging",
    "uat": "staging",
    "preprod": "staging",
    "pre-prod": "staging",
    "preproduction": "staging",
    "pre-production": "staging",
    "dev": "development",
    "development": "development",
    "devel": "development",
}

# Words that name an environment only where an environment is expected ("deploy to test",
# "the test environment"), since "test" is also an ordinary word.
POSITIONAL_ENVIRONMENTS: Final[dict[str, str]] = {
    "test": "development",
    "testing": "development",
}
ENVIRONMENT_NOUNS: Final[frozenset[str]] = frozenset({"env", "environment", "environments"})

PLATFORMS: Final[dict[str, str]] = {
    "kubernetes": "kubernetes",
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "kubectl": "kubernetes",
    "cluster": "kubernetes",
    "helm": "kubernetes",
    "openshift": "kubernetes",
    "docker": "docker",
    "container": "docker",
    "containers": "docker",
    "docker-compose": "docker",
    "windows": "windows",
    "win": "windows",
    "powershell": "windows",
    "winrm": "windows",
    "linux": "linux",
    "ubuntu": "linux",
    "rhel": "linux",
    "debian": "linux",
    "centos": "linux",
    "fedora": "linux",
    "redhat": "linux",
    "rocky": "linux",
    "systemd": "linux",
    "systemctl": "linux",
}

# Platform words that are also things one installs: "install docker" names a package.
INSTALLABLE_PLATFORMS: Final[frozenset[str]] = frozenset(
    {"docker", "kubectl", "helm", "powershell", "docker-compose"}
)

URGENCY: Final[dict[str, str]] = {
    "urgent": "urgent",
    "urgently": "urgent",
    "now": "urgent",
    "asap": "urgent",
    "immediately": "urgent",
    "emergency": "urgent",
    "critical": "urgent",
    "hotfix": "urgent",
    "hot-fix": "urgent",
    "p0": "urgent",
    "p1": "urgent",
    "sev1": "urgent",
    "quick": "fast",
    "quickly": "fast",
    "fast": "fast",
    "soon": "fast",
    "fast-track": "fast",
    "speedy": "fast",
}
URGENCY_RANK: Final[dict[str, int]] = {"normal": 0, "fast": 1, "urgent": 2}

STRATEGIES: Final[dict[tuple[str, ...], str]] = {
    ("canary",): "canary",
    ("blue-green",): "blue-green",
    ("bluegreen",): "blue-green",
    ("blue/green",): "blue-green",
    ("blue", "green"): "blue-green",
    ("rolling",): "rolling",
    ("recreate",): "recreate",
}

# Prepositions switch the "slot" the next names fill: "to prod", "on web-01", "in 'Web'".
SLOTS: Final[dict[str, str]] = {
    "to": "dest",
    "into": "dest",
    "onto": "dest",
    "on": "location",
    "at": "location",
    "across": "location",
    "in": "scope",
    "inside": "scope",
    "within": "scope",
    "from": "source",
    "with": "option",
    "using": "option",
    "via": "option",
    "through": "option",
    "of": "object",
    "for": "object",
    "if": "object",
    "whether": "object",
    "about": "object",
    "after": "aside",
    "before": "aside",
    "when": "aside",
    "once": "aside",
    "until": "aside",
    "unless": "aside",
    "because": "aside",
    "while": "aside",
    "during": "aside",
    "since": "aside",
    "so": "aside",
    "but": "aside",
}

# Words that separate the parts of a compound request, besides punctuation.
CONNECTORS: Final[frozenset[str]] = frozenset({"and", "then", "also", "finally", "afterwards", "&", "plus"})

HOST_NOUNS_PLURAL: Final[frozenset[str]] = frozenset(
    {"servers", "hosts", "systems", "machines", "nodes", "vms", "boxes", "computers", "workstations"}
)
HOST_NOUNS_SINGULAR: Final[frozenset[str]] = frozenset(
    {"server", "host", "system", "machine", "node", "vm", "box", "computer", "workstation"}
)
REPLICA_NOUNS: Final[frozenset[str]] = frozenset(
    {"replicas", "replica", "pods", "pod", "instances", "instance", "copies"}
)

# Marker words that say what kind of name stands next to them ("'x' service", "process y").
MARKERS: Final[dict[str, str]] = {
    "group": "group",
    "groups": "group",
    "service": "service",
    "services": "service",
    "daemon": "service",
    "process": "process",
    "processes": "process",
    "package": "package",
    "packages": "package",
    "namespace": "namespace",
    "ns": "namespace",
    **{noun: "host" for noun in HOST_NOUNS_SINGULAR | HOST_NOUNS_PLURAL},
}
# Words that introduce a version: "version 1.2.3", "tag v1.0.0-prod".
VERSION_KEYS: Final[dict[str, str]] = {"version": "version", "tag": "tag", "v": "version"}

# key=value forms a user may type ("replicas=5").
ASSIGNMENT_KEYS: Final[frozenset[str]] = frozenset({"replicas", "version", "tag", "namespace"})

NUMBER_WORDS: Final[dict[str, int]] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
}

# Words that refer to "the application" without naming it: the vocabulary's default app.
APP_REFERENCES: Final[frozenset[str]] = frozenset({"code", "app", "application", "codebase", "it", "project"})

# Process names are recognised by their extension.
PROCESS_SUFFIXES: Final[tuple[str, ...]] = (".exe",)

# Words that are never names: articles, fillers, generic nouns of operations talk.
GENERIC_WORDS: Final[frozenset[str]] = frozenset(
    {
        # articles, pronouns, fillers
        "a", "an", "the", "this", "that", "these", "those", "my", "our", "your", "their", "its",
        "all", "every", "each", "any", "both", "some", "other", "another", "same", "them", "they",
        "i", "we", "you", "me", "us", "he", "she", "please", "pls", "kindly", "can", "could",
        "would", "should", "will", "shall", "may", "might", "must", "need", "needs", "want",
        "wants", "like", "let", "lets", "do", "does", "did", "done", "be", "been", "being", "is",
        "are", "was", "were", "am", "has", "have", "had", "not", "no", "yes", "ok", "okay",
        "just", "again", "already", "still", "right", "away", "there", "here", "up", "down",
        "out", "off", "over", "back", "as", "by", "per", "than", "too", "very", "much", "many",
        "more", "most", "less", "only", "also", "thanks", "thank", "thx", "hi", "hello",
        "hey", "team", "everything", "something", "anything", "nothing", "stuff", "thing",
        "things", "what", "which", "who", "how", "why", "where", "e.g", "i.e", "etc", "or",
        "nor", "either", "neither", "currently", "sure", "make", "ensure", "go", "going",
        "one", "ones", "first", "second", "third", "last", "next", "previous", "prior", "earlier",
        "current", "new", "newer", "old", "older", "known", "good", "stable", "working", "final",
        "today", "tonight", "tomorrow", "later", "time", "minutes", "minute", "hours", "hour",
        "seconds", "whole", "entire", "full", "fully", "safely", "carefully", "monday", "tuesday",
        "wednesday", "thursday", "friday", "saturday", "sunday", "weekend", "morning", "evening",
        "night", "midnight", "noon", "him", "her", "cheers", "ty", "tia", "regards", "appreciated",
        "appreciate", "thankyou", "kthx", "tnx", "well", "sorry",
        # generic nouns of operations talk
        "service", "services", "deployment", "deployments", "deploys", "code", "app", "apps",
        "application", "applications", "hotfix", "hotfixes", "hot-fix", "change", "changes",
        "version", "versions", "latest", "release", "releases", "build", "builds", "image",
        "images", "artifact", "artifacts", "file", "files", "config", "configuration", "configs",
        "settings", "server", "servers", "host", "hosts", "system", "systems", "machine",
        "machines", "node", "nodes", "vm", "vms", "box", "boxes", "computer", "computers",
        "workstation", "workstations", "instance", "instances", "pod", "pods", "replica",
        "replicas", "copies", "environment", "environments", "env", "group", "groups", "status",
        "health", "healthy", "running", "started", "stopped", "startup", "start-up", "results",
        "result", "logs", "log", "output", "process", "processes", "package", "packages",
        "daemon", "namespace", "fix", "fixes", "patch", "patches", "security", "update",
        "updates", "upgrade", "upgrades", "tag", "tags", "project", "codebase", "it", "fleet",
        "target", "targets", "traffic",
        "check", "checks", "test", "tests", "state", "strategy", "mode", "steps", "step",
        "rollout", "rollback", "issue", "issues", "problem", "bug", "bugs", "ticket", "alive",
        "available", "reachable", "responding", "data", "whatever", "somehow", "with", "without",
        "rest", "run", "runs", "via", "way", "path", "paths", "directory", "folder",
    }
)  # fmt: skip

# A condition on the clause it is in ("roll back if it fails"); after "check" it asks about state.
CONDITION_WORDS: Final[frozenset[str]] = frozenset({"if", "unless", "whether", "otherwise", "when", "once"})

# Words that may lead into a part of a request before its verb: "then", "can you", "we need to".
LEAD_WORDS: Final[frozenset[str]] = frozenset(
    {
        "please", "pls", "kindly", "then", "now", "also", "just", "and", "finally", "can", "could",
        "would", "will", "you", "we", "i", "need", "needs", "want", "wants", "to", "let", "lets", "us",
        "should", "must", "go", "ahead", "but", "so", "afterwards", "next", "plus", "lastly",
        "additionally", "too",
    }
)  # fmt: skip

# Words that may follow a name without being its object: "apache too", "nginx as well, please".
TRAILING_WORDS: Final[frozenset[str]] = frozenset(
    {
        "please", "pls", "thanks", "thank", "thx", "ty", "cheers", "too", "also", "again", "as",
        "well", "now", "then", "just", "either", "first", "afterwards", "later", *URGENCY,
    }
)  # fmt: skip

# Every word some table above gives a meaning to: a part of a request that starts with a word
# outside these (and outside the vocabulary's names) starts with a verb opsmith does not know.
KNOWN_WORDS: Final[frozenset[str]] = frozenset().union(
    GENERIC_WORDS,
    CONNECTORS,
    SLOTS,
    MARKERS,
    ENVIRONMENTS,
    POSITIONAL_ENVIRONMENTS,
    ENVIRONMENT_NOUNS,
    PLATFORMS,
    URGENCY,
    NUMBER_WORDS,
    APP_REFERENCES,
    HOST_NOUNS_PLURAL,
    HOST_NOUNS_SINGULAR,
    REPLICA_NOUNS,
    STATE_WORDS,
    QUESTION_WORDS,
    CHECK_NOUNS,
    VERSION_KEYS,
    NOTE_VERBS,
    HOTFIX_WORDS,
    CONDITION_WORDS,
    LEAD_WORDS,
    TRAILING_WORDS,
    {"hot", "fix", "dry"},
    *(phrase for phrase in VERBS),
    *(phrase for phrase in STRATEGIES),
)

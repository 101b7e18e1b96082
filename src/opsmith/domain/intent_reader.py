"""Reading clauses into the parts of an intent: actions, names, context and parameters.

Inside a clause, prepositions set the slot the next name fills: "to" a destination, "on" a
location (hosts), "in" a scope (groups), "from" a source, "with" an option. Strong signals win
over slots: a known application name, a quoted group, "'x' service", "y.exe", an IP address.
What is left falls back on the clause's action: the unnamed object of a deploy is an
application, of a restart on hosts a service, of an install a package.
"""

from __future__ import annotations

from opsmith.domain.intent_clauses import Clause, Known, verb_params
from opsmith.domain.intent_hosts import HOST_OS_WORDS
from opsmith.domain.intent_names import PACKAGE_ACTIONS, Cursor, NameReader, Reading
from opsmith.domain.intent_text import (
    IMAGE_CHARS,
    URL_CHARS,
    Token,
    has_alnum,
    is_ipv4,
    is_number,
    is_path,
    is_url,
    is_version,
    require_chars,
    require_name,
    require_path,
)
from opsmith.domain.intent_words import (
    APP_REFERENCES,
    ASSIGNMENT_KEYS,
    CONDITION_WORDS,
    CONNECTORS,
    ENVIRONMENT_NOUNS,
    ENVIRONMENTS,
    GENERIC_WORDS,
    HOST_NOUNS_PLURAL,
    HOST_NOUNS_SINGULAR,
    INSTALLABLE_PLATFORMS,
    MARKERS,
    NOTE_VERBS,
    NUMBER_WORDS,
    PLATFORMS,
    POSITIONAL_ENVIRONMENTS,
    QUESTION_WORDS,
    READ_ONLY_ACTIONS,
    REPLICA_NOUNS,
    SLOTS,
    STATE_WORDS,
    STRATEGIES,
    URGENCY,
    URGENCY_RANK,
    VERBS,
    VERSION_KEYS,
)

# Which slot an environment word stood in decides which one wins when several are named:
# "promote from staging to production" is about production.
ENVIRONMENT_RANK = {"dest": 0, "scope": 1, "location": 1, "object": 2, "option": 2, "aside": 3, "source": 4}
SINGLE_VERBS = frozenset(phrase[0] for phrase in VERBS if len(phrase) == 1)
DRY_RUN = frozenset({"dry-run", "dryrun"})


class Reader(NameReader):
    """Reads every clause of one request into one Reading."""

    def __init__(self, known: Known, tokens: list[Token]) -> None:
        super().__init__(known, tokens)
        self.canary = any(t.low == "canary" for t in tokens)
        self.order = 0

    def read(self, clause: Clause) -> None:
        named, referred = len(self.reading.subjects), self.reading.app_reference
        self.reading.app_reference = False
        self._read(clause)
        self.reading.clause_subjects.append((self.reading.subjects[named:], self.reading.app_reference))
        self.reading.app_reference = referred or self.reading.app_reference

    def _read(self, clause: Clause) -> None:
        if clause.action is not None:
            self.reading.actions.append(clause.action)
        for key, value in verb_params(clause).items():
            self.reading.set_once(key, value)
        cursor = Cursor(clause)
        while cursor.index < len(clause.tokens):
            if clause.verb is not None and cursor.index == clause.verb[0]:
                cursor.slot, cursor.filled, cursor.index = "object", False, clause.verb[1]
                continue
            if cursor.index in clause.joins:
                cursor.filled = False  # "on web-01 and web-02": the list goes on in the same slot
            if cursor.index not in cursor.consumed:
                self._token(cursor)
            cursor.index += 1
        for start, head, end in clause.doubtful:
            if head in cursor.ignored:  # "and then wipe": not a name, not an action, not filler
                self.reading.unplaced.append(
                    (clause.tokens[start], clause.tokens[head], clause.tokens[end - 1])
                )

    # -- one token -------------------------------------------------------------------------

    def _token(self, cur: Cursor) -> None:
        token = cur.token
        if token.group:
            self._group(token.text, cur)
        elif token.quoted:
            self._quoted(cur)
        elif token.low in SLOTS:
            if not (token.low == "to" and cur.near_low(1) in SINGLE_VERBS):  # "need to restart"
                cur.slot, cur.filled = self._slot(token.low, cur), False
        elif not any(
            step(cur)
            for step in (
                self._application,
                self._environment,
                self._platform,
                self._strategy,
                self._urgency,
                self._number,
                self._assignment,
                self._version,
                self._address,
                self._flag,
                self._app_reference,
                self._skippable,
            )
        ):
            self._name(cur.token.text, cur)

    def _slot(self, low: str, cur: Cursor) -> str:
        # "check if x is running" asks about x; "deploy it if it passes" sets a condition aside,
        # whose words ("passes") are not names of what to deploy.
        if low in CONDITION_WORDS and cur.clause.action not in READ_ONLY_ACTIONS:
            return "aside"
        return SLOTS[low]

    def _application(self, cur: Cursor) -> bool:
        name = self.known.applications.get(cur.token.low)
        if name is None:
            return False
        self.reading.subjects.append(name)
        cur.filled = True
        return True

    def _environment(self, cur: Cursor) -> bool:
        low = cur.token.low
        environment = ENVIRONMENTS.get(low)
        if environment is None and low in POSITIONAL_ENVIRONMENTS:
            expected = cur.slot in {"dest", "scope", "location", "source"} and not cur.filled
            if expected or cur.near_low(1) in ENVIRONMENT_NOUNS:
                environment = POSITIONAL_ENVIRONMENTS[low]
        if environment is None:
            return False
        self.order += 1
        self.reading.environments.append((ENVIRONMENT_RANK.get(cur.slot, 2), self.order, environment))
        cur.filled = True
        return True

    def _platform(self, cur: Cursor) -> bool:
        low = cur.token.low
        platform = PLATFORMS.get(low)
        if platform is None:
            return False
        installing = cur.clause.action in PACKAGE_ACTIONS | {"delete"}
        if low in INSTALLABLE_PLATFORMS and installing and cur.slot == "object" and not cur.filled:
            self.reading.add("packages", low)  # "install docker on ubuntu": docker is the package
            cur.filled = True
            return True
        self.reading.platforms.append(platform)
        cur.filled = True
        return True

    def _strategy(self, cur: Cursor) -> bool:
        for length in (2, 1):
            run = [cur.near(k) for k in range(length)]
            if any(t is None or t.quoted or t.group for t in run):
                continue
            strategy = STRATEGIES.get(tuple(t.low for t in run if t is not None))
            if strategy is not None:
                self.reading.set_once("strategy", strategy)
                cur.consumed.update(range(cur.index, cur.index + length))
                return True
        return False

    def _urgency(self, cur: Cursor) -> bool:
        level = URGENCY.get(cur.token.low)
        if level is None:
            return False
        if URGENCY_RANK[level] > URGENCY_RANK[self.reading.urgency]:
            self.reading.urgency = level
        return True

    def _number(self, cur: Cursor) -> bool:
        low = cur.token.low
        if low.endswith("%") and is_number(low[:-1]):
            self.reading.set_once("canary_percent" if self.canary else "percent", int(low[:-1]))
            if self.canary:
                self.reading.set_once("strategy", "canary")
            return True
        if is_number(low):
            value = int(low)
        elif low in NUMBER_WORDS:
            value = NUMBER_WORDS[low]
        else:
            return False
        counted = self._counted(cur, value)
        if counted or not is_number(low):
            return counted
        if cur.near_low(-1) in REPLICA_NOUNS or (cur.slot == "dest" and cur.clause.action == "scale"):
            self.reading.set_once("replicas", value)
        elif cur.near_low(-1) in VERSION_KEYS:
            self._set_version(low, cur)
        return True  # a bare number is never a name

    def _counted(self, cur: Cursor, value: int) -> bool:
        """'5 replicas', '25 Windows systems', '3 web servers': the noun after the number decides."""
        if cur.near_low(-1) in HOST_OS_WORDS:
            return False  # "Windows 2019 servers", "rhel 8 hosts": a release, not how many
        for offset in range(1, 4):
            token = cur.near(offset)
            if token is None or token.quoted or token.group or token.boundary:
                return False
            if token.low in REPLICA_NOUNS:
                self.reading.set_once("replicas", value)
                return True
            if token.low in HOST_NOUNS_PLURAL or token.low in HOST_NOUNS_SINGULAR:
                if self.reading.count is None:
                    self.reading.count = value
                return True
            if token.low in SLOTS or token.low in SINGLE_VERBS or is_number(token.low):
                return False
        return False

    def _assignment(self, cur: Cursor) -> bool:
        key, sign, value = cur.token.text.partition("=")
        if not sign or key.lower() not in ASSIGNMENT_KEYS or not value:
            return False
        key = key.lower()
        if key == "replicas":
            if not is_number(value):
                require_name(value, "replica count")  # refuses shell-ish text, else falls through
                return False
            self.reading.set_once("replicas", int(value))
        elif key == "namespace":
            self.reading.set_once("namespace", require_name(value, "namespace"))
        else:
            self._set_version(require_name(value, key), cur, tag=key == "tag")
        return True

    def _version(self, cur: Cursor) -> bool:
        token = cur.token
        before = cur.near_low(-1)
        if before in VERSION_KEYS and has_alnum(token.text) and token.low not in GENERIC_WORDS - {"latest"}:
            self._set_version(require_name(token.text, "version"), cur, tag=VERSION_KEYS[before] == "tag")
            return True
        if token.low == "latest":
            self.reading.values.setdefault("version", "latest")
            return True
        if is_version(token.text) and not is_ipv4(token.text):
            self._set_version(token.text, cur, tag=before == "tag")
            return True
        return False

    def _set_version(self, value: str, cur: Cursor, *, tag: bool = False) -> None:
        if cur.slot == "source":
            self.reading.set_once("from_version", value)
            return
        if self.reading.values.get("version") == "latest":
            del self.reading.values["version"]  # an explicit version beats "latest"
        self.reading.set_once("version", value)
        if tag:
            self.reading.set_once("tag", value)
        cur.filled = True

    def _address(self, cur: Cursor) -> bool:
        text = cur.token.text
        if is_ipv4(text):
            self._host(text, cur)
        elif is_url(text.lower()):
            self.reading.add("urls", require_chars(text, URL_CHARS, "URL"))
        elif is_path(text):
            self.reading.add("paths", require_path(text))
        elif all(c.isdigit() or c == ":" for c in text) and ":" in text:
            pass  # a time of day, "at 10:30"
        elif self._tagged_application(text, cur):
            pass
        elif "/" in text or ":" in text:
            if not text[0].isalnum():
                require_name(text, "image")
            self.reading.add("images", require_chars(text, IMAGE_CHARS, "image reference"))
        else:
            return False
        cur.filled = True
        return True

    def _tagged_application(self, text: str, cur: Cursor) -> bool:
        """payments-api:v1.2.3, a known application with a tag: the subject and its version."""
        name, colon, tag = text.partition(":")
        app = self.known.applications.get(name.lower())
        if not colon or app is None or not tag:
            return False
        self.reading.subjects.append(app)
        self._set_version(require_name(tag, "version"), cur, tag=True)
        return True

    def _flag(self, cur: Cursor) -> bool:
        low = cur.token.low
        if low in DRY_RUN or (low == "dry" and cur.near_low(1) == "run"):
            self.reading.values["dry_run"] = True
            cur.consumed.add(cur.index + 1)
            return True
        if not low.startswith("-") or not has_alnum(low):
            return False
        flag = low.lstrip("-")
        if flag in DRY_RUN:
            self.reading.values["dry_run"] = True
        else:
            self.reading.add("options", require_name(flag, "option"))
        return True

    def _app_reference(self, cur: Cursor) -> bool:
        if cur.token.low not in APP_REFERENCES or cur.near_low(1) in HOST_NOUNS_PLURAL:
            return False
        self.reading.app_reference = True
        cur.filled = True
        return True

    def _skippable(self, cur: Cursor) -> bool:
        token = cur.token
        low = token.low
        if not has_alnum(low) or low in CONNECTORS:
            return True
        if low in GENERIC_WORDS or low in SINGLE_VERBS or low in NOTE_VERBS or low in MARKERS:
            return True
        if low in QUESTION_WORDS or low in STATE_WORDS or low in ENVIRONMENT_NOUNS:
            return True
        if low in POSITIONAL_ENVIRONMENTS or low in NUMBER_WORDS or low in ("hot", "fix", "dry"):
            return True
        if ("'" in low or "’" in low) and all(c.isalpha() or c in "'’" for c in low):
            return True  # a contraction: "don't", "let's"
        # "web servers", "database hosts": a word describing the hosts, not a name
        return cur.near_low(1) in HOST_NOUNS_PLURAL

    # -- names -----------------------------------------------------------------------------


def read_clauses(clauses: list[Clause], known: Known, tokens: list[Token]) -> Reading:
    reader = Reader(known, tokens)
    for clause in clauses:
        reader.read(clause)
    return reader.reading

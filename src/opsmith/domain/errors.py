"""The one exception hierarchy of opsmith.

    OpsmithError                                  every error a user can see; .hint says what to do next
    ├── UsageError                                bad input from the user (CLI exit 2, API 4xx)
    │   ├── ConfigError                           opsmith.yaml is missing, malformed or inconsistent
    │   │   └── VaultKeyError [domain.vault]      the vault's secrets are under another key than the given one
    │   ├── NotFoundError                         a name or id that names nothing opsmith has (API 404)
    │   │   ├── UnknownServerError                a server name that is not configured
    │   │   ├── UnknownToolError                  a tool name the server does not offer
    │   │   ├── UnknownGroupError                 a host group the inventory does not have
    │   │   ├── UnknownPlanError [store.plans]    a plan id that is not in the store
    │   │   ├── UnknownRunError [store.runs]      a run id that is not in the store
    │   │   ├── UnknownStep [engine.errors]       a step id that the plan or the run does not have
    │   │   ├── UnknownSecretError [domain.vault] a secret name the vault does not hold
    │   │   ├── UnknownTokenError                 a token id that names no token
    │   │   ├── UnknownUserError                  a user name the configuration does not have
    │   │   ├── UnknownIssueError [domain.issues] an issue id the built-in tracker does not have
    │   │   ├── UnknownTaskError [domain.tasks]   a task id that names no task
    │   │   ├── UnknownAgentError [domain.agents] an agent id that names no agent
    │   │   └── UnknownNotificationError [domain.notifications]  a notification id not in the outbox
    │   ├── ToolArgumentsError                    arguments that break the tool's input schema
    │   │   └── EnvironmentRefused [services.tool_calls]  a fleet call on hosts more guarded than its plan
    │   ├── IntentError                           a request opsmith cannot understand or must refuse
    │   ├── GraphError                            a step graph with a cycle, duplicate or unknown step
    │   ├── PlaybookError                         a playbook file that is malformed or inconsistent
    │   ├── RuleFileError [domain.root_cause_rules]  a root-cause rule file that is malformed or wrong
    │   ├── RunNotFailed [services.explain]       an explanation asked of a run that did not fail
    │   ├── TaskInputError [domain.tasks]         a task or bug report with missing or malformed fields
    │   ├── TaskRefused [domain.tasks]            a task action its status or the agent's room does not allow
    │   ├── WebhookRefused [domain.push]          a webhook delivery refused; nothing of it is written
    │   │   ├── SignatureMismatch [domain.push]   X-Hub-Signature-256 missing, malformed or wrong (401)
    │   │   ├── DeliveryReplayed [domain.push]    a delivery id accepted before (409)
    │   │   ├── MalformedPayload [domain.push]    a body or header that is not the event's (400)
    │   │   └── UnwatchedRepository [domain.push] a repository webhooks.github does not list (404)
    │   ├── ScriptInputError                      a value refused for a fleet script (name, path, url, argv)
    │   ├── InventoryError                        an inventory malformed, unsupported or holding a secret
    │   ├── PlanError                             a request that cannot become a plan (capability missing)
    │   │   └── UnknownNameError                  a request naming an application no source knows
    │   ├── ApprovalError [domain.approval]       an approval that may not be given or used
    │   │   ├── PlanChanged [domain.approval]     the plan moved on from the hash its approver saw
    │   │   └── PlanNotOpen [domain.approval]     its status does not allow this now (incomplete, closed)
    │   ├── PlanTaken [store.runs]                another run claimed the approved plan first
    │   ├── RunRefused [services.running]         a plan or run that may not run now, and why
    │   ├── AccessRefused [services.access]       an action the acting identity's role does not allow
    │   ├── AuthenticationError                   a bearer token missing, malformed, unknown, revoked or stale
    │   │   └── SignatureRefused [domain.slack]   a Slack callback unsigned, wrongly signed or stale (API 401)
    │   ├── InteractionRefused [domain.slack]     a signed Slack callback, not a click on our buttons (400)
    │   ├── CallRefused [services.tool_calls]     a direct tool call this identity may not make
    │   │   └── ConfirmationNeeded [services.tool_calls]  a destructive tool called without confirming
    │   ├── IllegalTransition [engine.errors]     a status change the current status does not allow
    │   ├── InvalidSetting [engine.errors]        an engine setting out of range (retry policy, limits)
    │   └── NoRollback [engine.errors]            undo asked of a step whose plan gives it no rollback
    └── OperationError                            something we tried failed (CLI exit 1)
        ├── StoreError                            the database could not be opened, migrated or written
        │   ├── StoreBusyError                    it was busy: locked, a serialization failure, a deadlock
        │   └── StoreConflictError                a concurrent write took the same unique key first
        ├── ServerUnavailableError                an MCP server is down or not started: the call was not sent
        │   └── ConnectionLostError               the connection ended during the call: it may have run
        ├── ToolCallError                         a tool call failed (is_error result or protocol error)
        ├── StepTimedOut [engine.local]           one attempt outlived the step's timeout; it may have run
        ├── LeaseLost [store.runs]                another process took over the run: stop driving it
        ├── VaultError [domain.vault]             a stored secret does not decrypt: its row was changed
        ├── UnresolvedReference [engine.errors]   a `${steps.ID.path}` argument with no value at run time
        ├── EvidenceUnmet [engine.errors]         a compliance requirement guarding a step is not proven
        ├── AgentFailed [domain.agents]           an agent could not do its task; .retryable
        ├── TrackerError [domain.issues]          an issue tracker (GitHub) did not take a change
        │   ├── TrackerUnavailable [domain.issues]  unreachable, timed out, 5xx, 429: retryable, .retry_after
        │   └── TrackerRefused [domain.issues]    401, 403, 404, 422: fails again until the config is fixed
        └── DeliveryFailed [domain.notifications] a notification not delivered; .retryable, .retry_after

A class without [module] lives here (`opsmith.errors` re-exports them); the others in
`opsmith.<module>`. tests/unit/test_errors.py checks that this tree is the real one.

Retry semantics live on the error, never in message matching: `retryable` says whether the same
thing may succeed if done again; `ServerUnavailableError.may_have_reached` says whether a tool call
may have reached its server (so repeating a call that is not idempotent could do its work twice).

Whatever names something opsmith does not have raises a NotFoundError, so every face answers it
the same way (the API with 404, the CLI with exit 2) without knowing each kind. UnknownNameError is
a PlanError instead: the request was understood, and what it names is missing from the sources it
plans over, not from opsmith.
"""

from typing import Any, Literal

AuthFailure = Literal["missing", "malformed", "unknown", "revoked", "role_changed"]

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectionLostError",
    "GraphError",
    "IntentError",
    "InventoryError",
    "NotFoundError",
    "OperationError",
    "OpsmithError",
    "PlanError",
    "PlaybookError",
    "ScriptInputError",
    "ServerUnavailableError",
    "StoreBusyError",
    "StoreConflictError",
    "StoreError",
    "ToolArgumentsError",
    "ToolCallError",
    "UnknownGroupError",
    "UnknownNameError",
    "UnknownServerError",
    "UnknownTokenError",
    "UnknownToolError",
    "UnknownUserError",
    "UsageError",
]


class OpsmithError(Exception):
    """Base of all errors opsmith reports to a user."""

    exit_code = 1
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(OpsmithError):
    """The user asked for something malformed or unknown."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is missing, malformed or inconsistent."""


class NotFoundError(UsageError):
    """A name or id that names nothing opsmith has (a plan, run, step, server, tool, group, secret,
    token, user): the base every face maps once (the API's 404), never kind by kind."""


class UnknownServerError(NotFoundError):
    """A server name that the configuration does not define."""


class UnknownToolError(NotFoundError):
    """A tool name the named server does not offer."""


class UnknownTokenError(NotFoundError):
    """A token id that names no token, revoked or not."""


class UnknownUserError(NotFoundError):
    """A user name that is not among the configuration's users (rbac.users)."""


class ToolArgumentsError(UsageError):
    """Arguments that do not satisfy a tool's input schema."""


class IntentError(UsageError):
    """A request that cannot be understood, or must be refused, as written."""


class GraphError(UsageError):
    """A dependency graph that is not a DAG or names steps that do not exist."""


class PlaybookError(UsageError):
    """A playbook file that is malformed or inconsistent."""


class ScriptInputError(UsageError):
    """A value refused for a fleet script (a service, package or process name, a path, a URL, a
    command line, an operation's parameters): the message names the value and what was wrong, the
    hint what is allowed."""


class InventoryError(UsageError):
    """An inventory (Ansible INI/YAML, or opsmith.yaml's own) that is malformed, uses something
    opsmith does not support, or holds a secret. `source` and `line` say where, when known; the
    message starts with them (`hosts.ini:12: ...`), and `reason` is the rest."""

    def __init__(
        self, reason: str, *, hint: str | None = None, source: str | None = None, line: int | None = None
    ) -> None:
        where = source if line is None or source is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}" if where else reason, hint=hint)
        self.reason = reason
        self.source = source
        self.line = line


class UnknownGroupError(NotFoundError):
    """A host group the inventory does not have; the message names the nearest known ones."""


class PlanError(UsageError):
    """A request that was understood but cannot be turned into a plan here."""


class UnknownNameError(PlanError):
    """A request naming an application neither the configuration nor a live listing knows."""


class AuthenticationError(UsageError):
    """A bearer token that is missing, malformed, unknown, revoked or no longer matches its user's
    role. `reason` says which (None when the raiser did not say), for a face that answers
    differently, never by the message; the message never contains the presented token nor any
    part of its secret."""

    def __init__(self, message: str, *, hint: str | None = None, reason: AuthFailure | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason: AuthFailure | None = reason


class OperationError(OpsmithError):
    """An operation was attempted and failed."""


class StoreError(OperationError):
    """The database could not be opened, migrated or written."""


class StoreBusyError(StoreError):
    """The database was busy (another writer held the lock, a serialization failure, a deadlock):
    the transaction was rolled back, and the same work may succeed in a moment."""

    retryable = True


class StoreConflictError(StoreError):
    """A concurrent write took the same unique key first (two appenders chose the same audit seq):
    done again from a fresh read, the work may succeed."""

    retryable = True


class ServerUnavailableError(OperationError):
    """An MCP server is down, failed to start or is restarting: the call was not sent to it."""

    retryable = True
    # Whether the call may have reached the server. False here: sending it again cannot do its
    # work twice, so even a tool that is not idempotent may be called again.
    may_have_reached = False


class ConnectionLostError(ServerUnavailableError):
    """The connection to an MCP server ended while a call was in flight (the server exited or
    closed it): the call may have reached the server and done its work."""

    may_have_reached = True


class ToolCallError(OperationError):
    """A tool call failed: the tool reported an error or the protocol did."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool = False,
        output: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        # What the tool reported with its error (MCP structuredContent of an isError result): what
        # a failed step did, for its undo.
        self.output = output

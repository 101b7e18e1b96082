"""The one exception hierarchy of opsmith.

    OpsmithError                      every error a user can see; .hint says what to do next
    ├── UsageError                    bad input from the user (CLI exit 2, API 4xx)
    │   ├── ConfigError               opsmith.yaml is missing, malformed or inconsistent
    │   ├── UnknownServerError        a server name that is not configured
    │   ├── UnknownToolError          a tool name the server does not offer
    │   ├── ToolArgumentsError        arguments that break the tool's input schema
    │   ├── IntentError               a request opsmith cannot understand or must refuse
    │   ├── GraphError                a step graph with a cycle, duplicate or unknown dependency
    │   ├── PlaybookError             a playbook file that is malformed or inconsistent
    │   └── PlanError                 a request that cannot become a plan (capability missing...)
    └── OperationError                something we tried failed (CLI exit 1)
        ├── StoreError                the database could not be opened or migrated
        ├── ServerUnavailableError    an MCP server is down, did not start or stopped answering
        └── ToolCallError             a tool call failed (is_error result or protocol error)

Retry semantics live on the error (`retryable`), never in message matching.
"""

__all__ = [
    "ConfigError",
    "GraphError",
    "IntentError",
    "OperationError",
    "OpsmithError",
    "PlanError",
    "PlaybookError",
    "ServerUnavailableError",
    "StoreError",
    "ToolArgumentsError",
    "ToolCallError",
    "UnknownServerError",
    "UnknownToolError",
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


class UnknownServerError(UsageError):
    """A server name that the configuration does not define."""


class UnknownToolError(UsageError):
    """A tool name the named server does not offer."""


class ToolArgumentsError(UsageError):
    """Arguments that do not satisfy a tool's input schema."""


class IntentError(UsageError):
    """A request that cannot be understood, or must be refused, as written."""


class GraphError(UsageError):
    """A dependency graph that is not a DAG or names steps that do not exist."""


class PlaybookError(UsageError):
    """A playbook file that is malformed or inconsistent."""


class PlanError(UsageError):
    """A request that was understood but cannot be turned into a plan here."""


class OperationError(OpsmithError):
    """An operation was attempted and failed."""


class StoreError(OperationError):
    """The database could not be opened, migrated or written."""


class ServerUnavailableError(OperationError):
    """An MCP server is down, failed to start or stopped answering."""

    retryable = True


class ToolCallError(OperationError):
    """A tool call failed: the tool reported an error or the protocol did."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable

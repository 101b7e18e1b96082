"""The one error type of the sandbox: an anticipated failure whose message reaches the caller."""

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel


class SandboxError(ToolError):
    """Raised by world logic; MCPServer passes the message through as the tool's error result."""


class RolloutFailed(SandboxError):
    """A rollout that failed after it changed the deployment: the error result carries what it did
    (the new and previous revision), as a real server reports a failed rollout's status."""

    def __init__(self, message: str, result: BaseModel) -> None:
        super().__init__(message)
        self.result = result

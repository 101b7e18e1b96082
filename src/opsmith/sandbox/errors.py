"""The one error type of the sandbox: an anticipated failure whose message reaches the caller."""

from mcp.server.mcpserver.exceptions import ToolError


class SandboxError(ToolError):
    """Raised by world logic; MCPServer passes the message through as the tool's error result."""

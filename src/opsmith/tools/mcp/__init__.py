"""MCP adapter of the ToolProvider port, on the official `mcp` SDK (stdio and streamable HTTP)."""

from opsmith.tools.mcp.pool import ServerPool

__all__ = ["ServerPool"]

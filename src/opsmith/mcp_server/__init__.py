"""opsmith as an MCP server: the same planning, approvals and runs, offered to MCP clients."""

from opsmith.mcp_server.server import build_server

__all__ = ["build_server"]

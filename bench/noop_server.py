"""A server with one tool that does nothing, to measure what a call costs around the tool."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("noop")


@server.tool(description="Do nothing and say so")
def noop() -> str:
    return "ok"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")

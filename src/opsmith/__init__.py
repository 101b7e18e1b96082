"""opsmith: plain-language operations requests turned into approved, audited runs over MCP tools."""

__version__ = "0.1.0"

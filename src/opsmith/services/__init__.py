"""The use cases, each once: every face (CLI, MCP face, API) calls these and nothing else.

A service takes the acting identity, checks what that identity may do, writes the audit entries,
and returns plain values; the faces only parse input and map results and errors to output.
"""

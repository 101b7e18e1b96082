"""The pure core: plain data and rules, no I/O, no framework imports beyond pydantic."""

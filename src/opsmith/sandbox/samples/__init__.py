"""Sample application histories and the bundled advisory table, kept as data."""

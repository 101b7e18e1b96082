"""The execution engine. Its pure core (state machines, scheduling, retries, references,
evidence gates, rollback order) does no I/O: time and randomness come in as values."""

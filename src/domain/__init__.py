"""The closed loop's aggregates, events, rules and command service (pure Python, no I/O)."""

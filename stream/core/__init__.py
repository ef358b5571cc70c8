"""The vocabulary every package may import: the event contract, records, errors, JSON Lines, logging."""

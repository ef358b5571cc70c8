"""Learning: what we know of a shopper (behaviour), online learners, the archive (history), nightly snapshots."""

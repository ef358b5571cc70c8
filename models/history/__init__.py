"""The archive of events and decisions, its recency sample, and backfills from exports."""

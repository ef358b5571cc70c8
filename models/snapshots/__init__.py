"""The nightly XGBoost snapshot: rows from the archive, training, the gate, the registry, the schedule."""

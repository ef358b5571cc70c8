"""The application assembled from the settings: the Kafka worker, file replay, recovery, monitoring."""

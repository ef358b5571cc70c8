"""The processing core and the loop that drives it: stages, checkpoints, de-duplication. Knows no Kafka."""

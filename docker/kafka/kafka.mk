# Local Kafka broker (no Docker): Make targets around docker/kafka/kafka.sh.
# Include from the top-level Makefile:   include docker/kafka/kafka.mk
# Settings pass through the environment or the make command line, e.g.
#   make kafka-up KAFKA_PORT=29092 KAFKA_DATA_DIR=/tmp/kafka-test
# (KAFKA_DATA_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT, OFFERSTREAM_CACHE: see kafka.sh's header.)

# Resolved when this file is read, so it works whatever the including Makefile's directory layout.
KAFKA_SH := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))/kafka.sh

.PHONY: kafka-fetch kafka-up kafka-down kafka-status kafka-reset kafka-logs

kafka-fetch: ## Fetch the Kafka 4.1.1 broker jars from Maven Central into the cache (once)
	@bash "$(KAFKA_SH)" fetch

kafka-up: ## Start the local single-node Kafka broker (127.0.0.1:9092 unless KAFKA_PORT is set)
	@bash "$(KAFKA_SH)" up

kafka-down: ## Stop the local Kafka broker
	@bash "$(KAFKA_SH)" down

kafka-status: ## Show whether the local Kafka broker is running
	@bash "$(KAFKA_SH)" status || true

kafka-reset: ## Stop the local broker, wipe its data and start it again empty
	@bash "$(KAFKA_SH)" up --fresh

kafka-logs: ## Show the last 50 lines of the local broker's server.log
	@bash "$(KAFKA_SH)" logs 50

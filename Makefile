# offerstream — `make help` lists every target.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Where `make run` looks for a broker; unset means "start the local one".
KAFKA_PORT ?= 9092

.DEFAULT_GOAL := help
.PHONY: help setup lint format test test-fast ci run bench bench-retrain bench-freshness clean

include docker/kafka/kafka.mk

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/offerstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/offerstream kafka-fetch ## Create .venv with offerstream and its dev tools, fetch the broker jars

lint: $(BIN)/offerstream ## ruff (lint + format check) and mypy
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy stream models bandits

format: $(BIN)/offerstream ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(BIN)/offerstream ## All tests, broker-backed ones included (starts a throw-away broker unless OFFERSTREAM_TEST_BOOTSTRAP is set)
	$(BIN)/pytest --doctest-modules stream models bandits tests

test-fast: $(BIN)/offerstream ## Tests that need no broker
	$(BIN)/pytest -m "not kafka" --doctest-modules stream models bandits tests

ci: lint test ## What .ci/run runs after installing and starting the broker

run: $(BIN)/offerstream ## Worker + closed-loop simulated shop with a live summary (local broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then \
		echo "using KAFKA_BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP_SERVERS"; \
		exec $(BIN)/offerstream demo; \
	else \
		eval "$$(KAFKA_PORT=$(KAFKA_PORT) bash docker/kafka/kafka.sh up)" && export KAFKA_BOOTSTRAP_SERVERS && \
		echo "local broker at $$KAFKA_BOOTSTRAP_SERVERS (stop it with: make kafka-down)" && \
		exec $(BIN)/offerstream demo; \
	fi

bench: $(BIN)/offerstream ## Replay throughput, worker vs raw pass-through, then the nightly retrain and freshness benches
	$(PY) -m stream.benchmark
	$(PY) -m stream.bench_retrain
	$(PY) -m stream.bench_freshness

bench-retrain: $(BIN)/offerstream ## Nightly retrain on a generated 180-day archive (~9.5M events): scratch vs warm
	$(PY) -m stream.bench_retrain

bench-freshness: $(BIN)/offerstream ## Online learner vs nightly snapshot around an abrupt shift (both curves)
	$(PY) -m stream.bench_freshness

clean: ## Remove build and run artefacts (not the broker jar cache)
	rm -rf .run build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

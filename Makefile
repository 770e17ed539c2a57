# The two commands the README promises: `make demo` and `make test`.
# Everything else they need (a virtualenv, the package, tools) is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools demo test lint bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Options go through ARGS, e.g. make demo ARGS="--duration 20" (see scripts/demo.py --help).
demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(ARGS)

# Debian's prometheus package (server and promtool), for the rule and end-to-end tests.
tools:
	scripts/install-prometheus.sh

test: lint tools
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check processor tests bench scripts
	$(BIN)/ruff format --check processor tests bench scripts
	$(BIN)/mypy

# The benchmark harness (bench/run.py): every case in one run, one table, also in out/bench.json.
# Tansu on loopback unless FUNNEL_TEST_BROKER names a Kafka. bench-smoke: tiny sizes, about a minute.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

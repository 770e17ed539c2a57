# The two commands the README promises: `make demo` and `make test`.
# Everything else they need (a virtualenv, the package, tools) is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Debian's prometheus package (server and promtool), for the rule and end-to-end tests.
tools:
	scripts/install-prometheus.sh

test: lint tools
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check processor tests bench scripts
	$(BIN)/ruff format --check processor tests bench scripts
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/replay_bench.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

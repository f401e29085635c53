# Everything runs from a local virtualenv made from pyproject.toml; only Python 3.11+ needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# optional extras to install too, e.g. HIVEKEEPER_EXTRAS=ray (CI sets it: the Ray tests run there)
HIVEKEEPER_EXTRAS ?=

.PHONY: demo test lint unit bench bench-all soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(if $(HIVEKEEPER_EXTRAS),$(BIN)/python -m pip install -q -e '.[$(HIVEKEEPER_EXTRAS)]')
	touch $(STAMP)

## make demo: install, then run the support-desk demo (offline, no API key needed)
demo: $(STAMP)
	$(BIN)/hivekeeper demo

## make test: install, then lint (ruff, mypy --strict, import-linter layers) and run the whole test suite
test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check supervisor actors strategies
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q

## make bench: every performance target in one table, vs raw pykka in the same run (quiet machine)
bench: $(STAMP)
	$(BIN)/python -m bench

## make bench-all: the other benchmarks too (cascade, agent layer, a short chaos soak)
bench-all: bench
	$(BIN)/python -m bench.run_all

## make soak: the full chaos soak (100 agents, 100,000 asks)
soak: $(STAMP)
	$(BIN)/python -m bench.chaos_soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts

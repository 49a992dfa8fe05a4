# dvms — two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-test
BASE    := $(VENV)/.installed-base
OUT     ?= runs/demo

.PHONY: demo test bench lint typecheck pytest sysdeps clean help

help:
	@echo "make demo   - create .venv, install, run the default simulation, write results and plots to $(OUT)"
	@echo "make test   - install what the tests need (system packages included), then ruff, mypy, pytest"
	@echo "make bench  - run the benchmarks, figures to bench/results/"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# demo needs only the core dependencies
$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(BASE)

# tests need system packages first (libvirt-python builds against libvirt-dev)
$(STAMP): pyproject.toml scripts/sysdeps/*.txt | $(BIN)/python
	bash scripts/install-sysdeps.sh
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP) $(BASE)

sysdeps:
	@bash scripts/install-sysdeps.sh

demo: $(BASE)
	$(BIN)/dvms demo --force --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check peeractor dvms sim deploy tests bench scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache

# dvms — two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-test
BASE    := $(VENV)/.installed-base
OUT     ?= runs/demo
# the modules setup.py compiles with mypyc (dvms/compiled.py): an edit re-runs the build,
# since an in-place extension shadows its .py (DVMS_PURE=1 builds pure Python)
COMPILED := setup.py dvms/compiled.py $(shell sed -n 's/^    "\(.*\.py\)",$$/\1/p' dvms/compiled.py)

.PHONY: demo test bench lint typecheck pytest sysdeps clean help

help:
	@echo "make demo   - create .venv, install, run the default simulation, write results and plots to $(OUT)"
	@echo "make test   - install what the tests need (system packages included), then ruff, mypy, pytest"
	@echo "make bench  - run the benchmarks, figures to bench/results/"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# demo needs only the core dependencies
$(BASE): pyproject.toml $(COMPILED) | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(BASE)

# tests need system packages first (libvirt-python builds against libvirt-dev)
$(STAMP): pyproject.toml $(COMPILED) scripts/sysdeps/*.txt | $(BIN)/python
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
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache build
	find peeractor dvms sim deploy -name '*.so' -delete
	rm -f *__mypyc*.so

# Two entry points on a fresh machine: `make demo` and `make test`. Everything else is
# installed by these targets into .venv (nothing to install or export by hand).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench bench-quick bench-profile clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[all]"
	touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	@rm -rf examples/.lazyflow
	@echo "== first run: every call executes =="
	cd examples && ../$(BIN)/lazyflow run demo.py main --n 200
	@echo "== second run: served from the cache =="
	cd examples && ../$(BIN)/lazyflow run demo.py main --n 200

test: $(VENV)/.installed-all
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-all
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .lazyflow examples/.lazyflow .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (issue 7): every scenario, ~15 min on 2 cores; rewrites the results section
# of benchmarks/README.md. The runner creates .venv-redun (redun 0.44) itself.
bench: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks

bench-quick: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks --quick

bench-profile: $(VENV)/.installed-all
	$(PIP) install pyinstrument py-spy
	$(BIN)/python -m benchmarks.profile fanout:100k --tool py-spy
	$(BIN)/python -m benchmarks.profile cached-flat:100k --tool py-spy
	$(BIN)/python -m benchmarks.profile chain:100k --tool py-spy

# Two entry points on a fresh machine: `make demo` and `make test`. Everything else is
# installed by these targets into .venv (nothing to install or export by hand).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: demo test system-deps lint typecheck docs bench bench-quick bench-profile mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-ui: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[ui]"
	touch $@ $(VENV)/.installed-core

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[all]"
	touch $@ $(VENV)/.installed-core $(VENV)/.installed-ui

demo: $(VENV)/.installed-ui
	@rm -rf examples/.lazyflow
	@echo "== first run: every call executes =="
	cd examples && ../$(BIN)/lazyflow run demo.py main --n 200
	@echo "== second run: served from the cache =="
	cd examples && ../$(BIN)/lazyflow run demo.py main --n 200
	@echo "== browse both runs (executions, call graph, jobs, lineage, diff) in a web browser: =="
	@echo "$(BIN)/lazyflow ui --db sqlite:///$(CURDIR)/examples/.lazyflow/lazyflow.db --open"

# Debian packages some tests need (.ci/apt-packages); installs only what is missing.
system-deps:
	@.ci/system-deps

test: $(VENV)/.installed-all system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# The documentation site (MkDocs + Material + mkdocstrings) into site/; the test suite
# builds it with --strict too (tests/docs/test_site.py).
docs: $(VENV)/.installed-all
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-all
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .lazyflow examples/.lazyflow .pytest_cache .mypy_cache .ruff_cache site mutants

# Benchmarks (issues 7 and 18): every scenario, ~20-25 min on 2 cores; rewrites the results
# section of benchmarks/README.md and the peers table of README.md. The runner creates each
# peer's venv itself (.venv-redun, .venv-dask, .venv-joblib, .venv-hamilton, .venv-prefect).
bench: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks

bench-quick: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks --quick

bench-profile: $(VENV)/.installed-all
	$(PIP) install pyinstrument py-spy
	$(BIN)/python -m benchmarks.profile fanout:100k --tool py-spy
	$(BIN)/python -m benchmarks.profile cached-flat:100k --tool py-spy
	$(BIN)/python -m benchmarks.profile chain:100k --tool py-spy

# Mutation testing (issue 16; not part of `make test`): mutmut mutates hashing, codehash,
# files and recording ([tool.mutmut] in pyproject.toml says which tests run) and reports
# what the tests caught; 20-40 min on 2 cores. Scores and survivors: docs/testing.md.
mutation: $(VENV)/.installed-all
	$(PIP) install "mutmut>=3.3,<4"
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python tools/mutation_score.py

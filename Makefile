# suvnet: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck pytest install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the main job: the full suvnet demo on the embedded defaults (or on SUVNET_* URLs).
demo: $(STAMP)
	$(VENV)/bin/suvnet demo $(ARGS)

## Run the checks CI runs: ruff, mypy (strict) and pytest (slow tests and benchmarks excluded).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

pytest: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## Benchmarks in quick mode (each prints a JSON line last).
bench: $(STAMP)
	for b in edge_poll ingest consumption leak_detection api payments dashboard_queries; do \
	  $(PY) -m bench.$$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

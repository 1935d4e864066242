# suvnet: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck pytest test-dates install bench clean

# The tests whose subject is dates (billing periods, payments, alarms, the API's clocks, dashboards)
# run a second and third time with the process clock moved by libfaketime: just after midnight on
# the 1st of a month in Tashkent (still the last day of the month in UTC), and on a leap day. A test
# that reads today's date instead of its injected clock fails here before it can fail on some date.
DATE_TESTS ?= tests/billing tests/payments tests/alarms tests/api tests/dashboards tests/test_wall_clock.py
SHIFTED_DATES ?= 2027-02-28T19:30:00 2028-02-29T18:59:30

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
	$(MAKE) --no-print-directory test-dates

## The date-sensitive tests again under shifted dates (needs Debian's faketime; skipped without it).
test-dates: $(STAMP)
	@if ! command -v faketime >/dev/null; then \
	  echo "faketime is not installed: the shifted-date run is skipped (apt install faketime)"; \
	else for d in $(SHIFTED_DATES); do \
	  echo "== the date-sensitive tests with the clock at $$d UTC"; \
	  TZ=UTC faketime -f "@$$(echo $$d | tr T ' ')" $(VENV)/bin/pytest -q -p no:cacheprovider \
	    $(DATE_TESTS) || exit 1; \
	done; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

pytest: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## Benchmarks in quick mode (each prints a JSON line last).
bench: $(STAMP)
	for b in edge_poll ingest consumption leak_detection api payments dashboard_queries \
	  pressure_management assets isolation; do \
	  $(PY) -m bench.$$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

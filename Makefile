# watchfloor: `make demo` to see it run, `make test` to test it. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-unit lint bench prometheus chromium compose kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is needed" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# setuptools' editable build warns (8 lines) that a ./watchfloor folder may shadow the
	@# installed package: here that folder *is* the package, so the warning is muted.
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

install: $(STAMP)

# Prometheus from Debian's package, for the integration tests that scrape the worker.
prometheus:
	@bash deploy/prometheus/install.sh

# Debian's Chromium and chromedriver, for the tests that open pages in a real browser.
chromium:
	@bash deploy/chromium/install.sh

# Debian's docker-compose, for the test that parses deploy/compose (no engine needed).
compose:
	@bash deploy/compose/install.sh

demo: install
	$(BIN)/watchfloor demo

# The whole suite. The session fixture starts a local Kafka broker (jars fetched once with
# Maven) unless WATCHFLOOR_BROKER points at an existing one.
test: install prometheus chromium compose
	$(BIN)/python -m ruff check watchfloor tests
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not broker and not prometheus"

lint: install
	$(BIN)/python -m ruff check watchfloor tests

# Benchmarks, never tests: each prints ratios to a reference measured in the same run;
# bench_worker starts its own broker and writes benchmarks/results/worker.json.
bench: install
	$(BIN)/python benchmarks/bench_detectors.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_alerts.py
	$(BIN)/python benchmarks/bench_worker.py

kafka-start: install
	$(BIN)/watchfloor kafka start

kafka-stop: install
	$(BIN)/watchfloor kafka stop

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# Everything runs from .venv, made here with python3 -m venv and pip (no uv on these machines).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test soak install bench-install clean dev

# The venv is rebuilt whenever the project's dependencies change. An editable install leaves
# the package uncompiled, and where PYTHONDONTWRITEBYTECODE is set every run would compile it
# again (0.1-0.2 s of each run's start-up): compileall writes its bytecode once.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q emergency_pipeline
	touch $(STAMP)

install: $(STAMP)

# The official Telnyx SDK, for the benchmark's baseline script only (not a runtime dependency).
bench-install: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'

demo: $(STAMP)
	$(BIN)/emergency-pipeline demo

# Two workers a core, each with its own lease, state and temp folders (tests/conftest.py):
# a third of the suite's wall time is spent waiting on servers, daemons and CLI processes,
# so on 2 cores 4 workers took 4 min 51 s where 2 took 5 min 40 s (idle machine).
# The fixed-seed Hypothesis profile; the soak tier is `make soak`. worksteal: an idle worker
# takes queued tests from a busy one. tests/README.md says how the suite is organised.
TEST_WORKERS ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --hypothesis-profile ci \
		-m "not soak"

# The long soaks: real processes in pairs, killed and resumed (at most 25 min).
soak: $(STAMP)
	$(BIN)/python -m pytest -q --hypothesis-profile ci -m soak

# The UI and the daemon (launches, schedules, sensors, backfills) with the demo's emulator and
# its key; `emergency-pipeline dev --no-emulator` uses TELNYX_API_KEY / TELNYX_BASE_URL instead.
dev: $(STAMP)
	$(BIN)/emergency-pipeline dev --dagster-home $(CURDIR)/.dagster_home

clean:
	rm -rf $(VENV) .dagster_home data/*.duckdb data/*.duckdb.wal

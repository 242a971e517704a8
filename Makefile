# The two set-up commands of the README: `make run` and `make test`.
# `make run` installs what running needs; `make test` adds the test extras (pytest,
# Playwright, schemathesis, mypy, ruff, ...); both at the tested versions of constraints.txt.
PYTHON    ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed

.PHONY: run test lint typecheck unit soak bench bench-smoke bench-10m clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The deployed shape in the foreground: API, projector and snapshot writer as supervised
# processes on the embedded Redis (or LEDGER_REDIS_URL); Ctrl-C stops everything.
run: $(RUN_STAMP)
	$(BIN)/ledger run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# The pure tests alone (events, projections, settings, sealing): no Redis, about a minute.
unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# The benchmarks (BENCHMARKS.md): the full run (1M events, ~13 min) and the CI smoke run
# (both scripts at a few thousand events: every stage still works; no timing checks).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench --out var/bench-result.json

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.bench --events 5000 --peer-events 1000 --http-events 4000 \
		--e2e-events 4000 --live-seconds 3 --timeout 120
	$(BIN)/python -m benchmarks.big --events 5000 --seconds 2 --reads 5 --timeout 120

# By hand (about an hour, BENCHMARKS.md): a 10,000,000-event log, stage by stage.
bench-10m: $(STAMP)
	$(BIN)/python -m benchmarks.big --events 10000000 --out var/bench-10m.json

# The fault tests (and the generated-request run) at soak sizes, and the soak-only load run:
# 15 Redis kills, 20 projector kills over 200,000 events, 10 minutes of 2,000 events/s.
soak: $(STAMP)
	LEDGER_SOAK=1 $(BIN)/pytest tests/faults tests/security/test_schemathesis.py -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

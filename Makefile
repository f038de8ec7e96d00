# The two commands a newcomer needs: `make run` and `make test`.
# Everything is installed into .venv from PyPI; nothing else is assumed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Two workers: the machines this runs on have two cores.
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck unit units bench soak mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## run: the daemon in the foreground against a local receiver and the example shop
run: $(STAMP)
	$(BIN)/python devtools/run_demo.py

## test: everything CI checks (lint, types, tests; the unit files when systemd-analyze is here)
test: lint typecheck unit units

lint: $(STAMP)
	$(BIN)/ruff check pulsed tests devtools bench soak
	$(BIN)/ruff format --check pulsed tests devtools bench soak

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

units:
	@if command -v systemd-analyze >/dev/null; then bash .ci/check-units; \
	elif [ -n "$$CI" ]; then echo "units: systemd-analyze is missing" >&2; exit 1; \
	else echo "units: systemd-analyze not installed here; skipped (CI installs it)"; fi

## bench: footprint and speed against baselines (issue 4); prints a table, writes bench/results.md
bench: $(STAMP)
	$(BIN)/python bench/bench.py

## soak: issue 5's long reliability scenarios (< 15 min); prints figures, writes docs/reliability.md
soak: $(STAMP)
	$(BIN)/python soak/soak.py

## mutate: mutation testing per module (issue 8, not in CI); prints a table, writes docs/mutation-results.md
# Two workers, as for pytest; MUTATE_WORKERS=1 leaves a core free on a shared machine.
# MUTATE_ONLY=pulsed/_schedule.py runs one module (its table is printed, not written).
MUTATE_WORKERS ?= 2
mutate: $(STAMP)
	$(BIN)/python devtools/mutate.py --workers $(MUTATE_WORKERS) $(MUTATE_ONLY)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info build/mutate

include mk/install.mk

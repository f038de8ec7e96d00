# The two commands a newcomer needs: `make run` and `make test`.
# Everything is installed into .venv from PyPI; nothing else is assumed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit bench soak install uninstall clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## run: the daemon in the foreground against a local receiver and the example shop
run: $(STAMP)
	$(BIN)/python devtools/run_demo.py

## test: everything CI checks
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check pulsed tests devtools
	$(BIN)/ruff format --check pulsed tests devtools

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

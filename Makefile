# The two commands a newcomer needs: `make run` and `make test`.
# Everything is installed into .venv from PyPI, exactly the versions and hashes of
# requirements/dev.txt (`make lock` writes it); nothing else is assumed.

PYTHON ?= python3
# The Pythons pulsed runs on (contract §12): the lock is resolved for all of them, CI
# runs the suite on each (.ci/run), and make and make install refuse any other.
PYTHONS := 3.10 3.11 3.12 3.13
# PYTHON named (make unit PYTHON=python3.12, or in the environment): a venv of its
# own, .venv-3.12, so that run is on 3.12 and the default .venv stays as it is.
PYTHON_NAMED := $(filter command environment,$(firstword $(origin PYTHON)))
ifneq ($(PYTHON_NAMED),)
VENV ?= .venv-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
endif
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Two workers: the machines this runs on have two cores.
PYTEST_WORKERS ?= 2

LOCK_DEV     := requirements/dev.txt
LOCK_RUNTIME := requirements/runtime.txt
# Hash checking refuses anything not in the lock, dependencies included; --no-deps
# and --no-build-isolation keep pip from resolving or fetching a build backend
# behind it (setuptools is in the lock, from requirements/build.in).
PIP_LOCKED   := -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps
PIP_SELF     := -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation

.PHONY: run test lint typecheck unit units bench soak soak-month mutate clean lock lock-check \
	systemtest systemtest-trixie

# $(call python_check,INTERPRETER,WHO): one line and exit 1 unless INTERPRETER is one of
# $(PYTHONS). Its question parses on any Python, 2.7 included: an old one hears which
# versions work, not a SyntaxError.
python_check = v=$$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || \
	{ echo "$(2): $(1) does not run" >&2; exit 1; }; \
	case " $(PYTHONS) " in *" $$v "*) ;; *) echo "$(2): $(1) is Python $$v; pulsed runs on Python" \
	    "$(firstword $(PYTHONS)) to $(lastword $(PYTHONS)) (PYTHON=/path/to/python3.11 names another)" >&2; \
	    exit 1;; esac

# --clear: a package dropped from the lock must not linger in the venv.
$(STAMP): pyproject.toml $(LOCK_DEV)
	@$(call python_check,$(PYTHON),make)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python $(PIP_LOCKED) -r $(LOCK_DEV)
	$(BIN)/python $(PIP_SELF) -e .
	touch $@

## lock: re-resolve requirements/*.txt from pyproject.toml (every extra) and requirements/build.in
# Pins already in the lock are kept unless the inputs need otherwise; to move them:
#   make lock LOCK_FLAGS=--upgrade   or   make lock LOCK_FLAGS='--upgrade-package httpx'
# The runtime lock is constrained by the dev one, so both name the same versions.
LOCK_FLAGS ?=
# Resolved from the oldest of $(PYTHONS) up: where a newer Python takes another pin (or
# 3.10 needs a backport), uv forks and the lock names each behind a marker.
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version $(firstword $(PYTHONS)) \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)
lock: $(STAMP)
	$(UV_COMPILE) --all-extras pyproject.toml requirements/build.in -o $(LOCK_DEV)
	$(UV_COMPILE) pyproject.toml requirements/build.in -c $(LOCK_DEV) -o $(LOCK_RUNTIME)

## lock-check: fails when requirements/ is not what `make lock` makes of pyproject.toml now
# A merge that adds a dependency without re-locking would otherwise pass CI on a venv
# that lacks it only by luck, and break `make install`.
lock-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp requirements/*.txt "$$tmp/" && \
	$(UV_COMPILE) --all-extras pyproject.toml requirements/build.in -o "$$tmp/dev.txt" && \
	$(UV_COMPILE) pyproject.toml requirements/build.in -c "$$tmp/dev.txt" -o "$$tmp/runtime.txt" && \
	sed -i 's|'"$$tmp"'/|requirements/|g' "$$tmp"/*.txt && \
	diff -u $(LOCK_DEV) "$$tmp/dev.txt" && diff -u $(LOCK_RUNTIME) "$$tmp/runtime.txt" || \
	{ echo "lock-check: requirements/ is stale; run make lock and commit it" >&2; exit 1; }

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

## systemtest: the .deb and make install under a real systemd in a throwaway container (root)
# One line and exit 0 where systemd-nspawn cannot run; in CI that is a failure.
# $(call systemtest_can_run,TARGET,EXTRA-CHECK): that line, or nothing.
systemtest_can_run = why=$$($(BIN)/python -c 'from tests.system.container import why_not_here as w; print(w() or "")'); \
	$(if $(2),[ -n "$$why" ] || why=$$($(2));) \
	if [ -n "$$why" ]; then \
	    if [ -n "$$CI" ]; then echo "$(1): cannot run in CI: $$why" >&2; exit 1; fi; \
	    echo "$(1): skipped, cannot run here ($$why)"; exit 0; \
	fi
SYSTEMTEST_PYTEST = PULSED_SYSTEMTEST=1 $(BIN)/pytest -q -p no:cacheprovider tests/system $(SYSTEMTEST_ARGS)
systemtest: $(STAMP)
	@$(call systemtest_can_run,systemtest); \
	echo "$(SYSTEMTEST_PYTEST)"; \
	$(SYSTEMTEST_PYTEST)

## systemtest-trixie: the same tests on Debian 13, the package built inside it (root)
# The root is debootstrapped once into $(TRIXIE_ROOT) (minutes, from Debian's
# archive) and kept, like everything under build/, which git ignores; it is made again
# when its recipe in tests/system/release.py changes, or after rm -rf $(TRIXIE_ROOT)*.
TRIXIE_ROOT ?= build/trixie-root
systemtest-trixie: $(STAMP)
	@$(call systemtest_can_run,systemtest-trixie,command -v debootstrap >/dev/null || \
	    echo "debootstrap missing (Debian package debootstrap)"); \
	start=$$(date +%s); \
	$(BIN)/python -m tests.system.release trixie '$(TRIXIE_ROOT)' || exit 1; \
	echo "PULSED_SYSTEMTEST_ROOT=$(TRIXIE_ROOT) $(SYSTEMTEST_PYTEST)"; \
	PULSED_SYSTEMTEST_ROOT='$(TRIXIE_ROOT)' $(SYSTEMTEST_PYTEST) || exit 1; \
	echo "systemtest-trixie: $$(( $$(date +%s) - start )) s, the root included"

## bench: footprint and speed against baselines (issue 4); prints a table, writes bench/results.md
# BENCH_ONLY='cpu shops' runs those figures after the idle one they start from (their
# table is printed, not written); the names are bench/figures/*.py.
BENCH_ONLY ?=
bench: $(STAMP)
	$(BIN)/python bench/bench.py $(addprefix --only ,$(BENCH_ONLY))

## soak: issue 5's long reliability scenarios (< 15 min); prints figures, writes docs/reliability.md
# Its "Month in an hour" row is listed as not run (a million deliveries take over an
# hour); MONTH_BEATS=N runs it within the soak, to N deliveries (docs/testing.md).
MONTH_BEATS ?=
MONTH_FLAG = $(if $(MONTH_BEATS),--month-beats $(MONTH_BEATS))
soak: $(STAMP)
	$(BIN)/python soak/soak.py $(MONTH_FLAG)

## soak-month: one daemon, 200 shops, 1 s, a million deliveries (> 1 h); prints, writes nothing
# MONTH_BEATS=100000 runs a tenth of it.
soak-month: $(STAMP)
	$(BIN)/python soak/soak.py --only month $(MONTH_FLAG)

## mutate: mutation testing per module (issue 8, not in CI); prints a table, writes docs/mutation-results.md
# Two workers, as for pytest; MUTATE_WORKERS=1 leaves a core free on a shared machine.
# MUTATE_ONLY=pulsed/_schedule.py runs one module (paths, not names); its row replaces
# that module's in docs/mutation-results.md and the others' rows stay.
MUTATE_WORKERS ?= 2
mutate: $(STAMP)
	$(BIN)/python devtools/mutate.py --workers $(MUTATE_WORKERS) $(MUTATE_ONLY)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info build/mutate

include mk/install.mk
include mk/deb.mk

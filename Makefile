# The two commands of the README:  make run  (start the gateway)  and  make test  (all tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test test-workers test-postgres setup test-setup check lint bench binary clean

$(BIN)/converger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgresql,events]'
	@touch $@

setup: $(BIN)/converger

## Start the gateway on ./data with a dev tenant, echo channel and admin token printed.
run: setup
	$(BIN)/converger serve --dev

# The suite runs on TEST_WORKERS pytest-xdist worker processes (`-n`): by default one per CPU,
# at most 4 (CI's machine has 2; each worker's tests start servers, browsers and node processes
# of their own, so more workers than cores only adds load: the suite is CPU-bound, ~10 min of
# CPU for `make test`, docs/performance.md §9); `TEST_WORKERS=0 make test` runs it
# in one process. `--dist loadfile`: a test module runs whole, in order, in one worker, so its
# module-scoped servers and browsers start once and scenario modules (one server, tests in
# order) hold; tests/conftest.py refuses the modes that split modules. Each worker has its own
# session servers, temporary directories and range of ports (tests/support/server.py).
# `--durations=25` prints the slowest tests. pytest's exit 5 (no test ran) fails the target too.
TEST_WORKERS ?= logical
PYTEST = $(BIN)/python -m pytest -q -p no:cacheprovider
XDIST  = -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

## Install what the tests need (browser, node client) and run every test.
test: setup test-setup
	$(PYTEST) $(XDIST) --durations=25

test-setup: setup
	bash tests/setup.sh

## The real-time, delivery and gateway tests again, each server with two worker processes
## (`make test` runs everything with one; tests/integration/cluster always uses three).
## `CONVERGER_WORKERS=2 make test` runs the whole suite that way.
test-workers: setup test-setup
	CONVERGER_WORKERS=2 $(PYTEST) $(XDIST) --durations=10 \
	    tests/integration/realtime tests/integration/delivery tests/integration/gateway

## The store's and domain's unit tests and every integration test again with PostgreSQL as the
## store: each server on a database of its own in a throwaway cluster the tests start
## (initdb/pg_ctl in a temp directory, tests/support/postgres.py; one cluster per pytest-xdist
## worker, each server's database a copy of a migrated template). Tests of what only the SQLite
## file has are skipped there (tests.support.postgres.sqlite_only), and so are tests whose subject
## does not touch the store, which `make test` already ran (tests.support.postgres.store_independent:
## the phone layout of the pages, TLS and service files, CORS, connection limits); the fuzz test
## sends a quarter of its cases, the event stream's full run a quarter of its 10,000 activities,
## the broker pipeline's a fifth of its 5,000 deliveries (the same faults, on PostgreSQL, where an
## activity costs several times the CPU). tests/integration/postgres is left out: it always runs
## on PostgreSQL, in `make test`.
## CONVERGER_TEST_CPU_LOG=FILE (any test target): where the CPU went, per test module
## (tests/support/cpulog.py; `.venv/bin/python -m tests.support.cpulog FILE` sums it up).
## `CONVERGER_TEST_DATABASE=postgres make test` runs the whole suite that way.
test-postgres: setup test-setup
	CONVERGER_TEST_DATABASE=postgres $(PYTEST) $(XDIST) --durations=10 \
	    tests/unit/store tests/unit/domain tests/integration \
	    --ignore=tests/integration/postgres

## Style (ruff), types (mypy) and the architecture's import rules (import-linter; all configured
## in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: setup
	PYTHONPATH=. $(BIN)/python -m tests.bench.run_all

binary: setup
	bash build/build.sh

## Soak (not in `make test`): bounded mixed load, RSS and fds over time (docs/guarantees.md).
.PHONY: soak
SOAK_MINUTES ?= 2
soak: setup
	PYTHONPATH=. $(BIN)/python -m tests.bench.soak --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) dist .pyi-work data

## The whole test suite against the single binary instead of `python -m gateway`.
.PHONY: test-binary
test-binary: binary test-setup
	CONVERGER_TEST_BINARY=dist/converger $(PYTEST) $(XDIST)

## Refresh docs/screenshots/ (admin panel, headless Chromium).
.PHONY: screenshots
screenshots: setup test-setup
	CONVERGER_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/web/test_browser.py -k screenshots
	CONVERGER_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/web/test_analytics_browser.py

## The long API fuzz run (issue 9; not in `make test`): FUZZ_EXAMPLES cases per operation and mode.
.PHONY: fuzz
FUZZ_EXAMPLES ?= 300
fuzz: setup
	PYTHONPATH=. $(BIN)/python tests/fuzz/run_fuzz.py --examples $(FUZZ_EXAMPLES)

## Mutation testing of the core (issue 24): each mutant of tests/mutants/mutants.py, applied to a
## copy of the tree, must fail the tests docs/guarantees.md cites; prints the table.
.PHONY: mutants
mutants: setup
	$(BIN)/python -m tests.mutants.run

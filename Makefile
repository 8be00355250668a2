# The two commands: `make test` (what CI runs, through .ci/run) and `make run` (the site on this machine).
# The work is done by the scripts in scripts/, which say why they do what they do.

.DEFAULT_GOAL := help

VENV := .venv

# Debian packages the tests need beyond what the machine image ships, installed with apt-get (after an
# apt-get update) only when missing. Add names here, space-separated, e.g. chromium chromium-driver.
DEBIAN_PACKAGES :=

# Where `make test` runs the suite. PostgreSQL always (the concurrency tests need it; pytest-django makes
# and drops its own test_<name> database); Redis database 1, so that the tests' cache.clear() never wipes
# the database 0 that `make run` uses. Override on the command line: make test TEST_DATABASE_URL=...
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ticketing
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k holds -x"
PYTEST_ARGS ?=

.PHONY: help test run lint venv services debian-packages clean

help:
	@echo "make test   lint (ruff check) and the whole test suite on PostgreSQL and Redis; what CI runs"
	@echo "make run    the site on http://127.0.0.1:8000 with demo data (SQLite single-process fallback"
	@echo "            when PostgreSQL is not there); Ctrl-C stops everything"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make clean  remove caches, the demo SQLite database and collected static files (keeps .venv)"

venv:
	@bash scripts/venv.sh

debian-packages:
	@bash scripts/debian_packages.sh $(DEBIAN_PACKAGES)

services:
	@bash scripts/services.sh ensure

test: debian-packages venv services
	$(VENV)/bin/ruff check .
	@# pytest exits 5 when it collected no tests; that is a failure too, and said so.
	@status=0; \
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' $(VENV)/bin/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests, which counts as a failure" >&2; fi; \
	exit $$status

run: debian-packages
	@bash scripts/run.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .pytest_cache .ruff_cache staticfiles var/demo.sqlite3 var/celerybeat-schedule*
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

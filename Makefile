# The two commands: `make test` (what CI runs, through .ci/run) and `make run` (the site on this machine).
# The work is done by the scripts in scripts/, which say why they do what they do.

.DEFAULT_GOAL := help

VENV := .venv

# Debian packages the tests, `make chaos` and `make bench-sweep` need beyond what the machine image ships
# (Chromium for the browser tests, HAProxy for the scale-out test and the benchmarks), installed with apt-get
# (after an apt-get update) only when missing; `make run` needs none of them. Add names here, space-separated.
DEBIAN_PACKAGES := chromium haproxy pg-auto-failover-cli postgresql-15-auto-failover

# Where `make test` runs the suite. PostgreSQL always (the concurrency tests need it; pytest-django makes
# and drops its own test_<name> database), named after this checkout (scripts/checkout.sh) so that two
# checkouts can test at once; a Redis database other than the 0 that `make run` uses, chosen the same way,
# and every Redis key the run writes under the checkout's own prefix (TICKETING_REDIS_PREFIX), as a shared
# database number can't keep two runs apart. Override on the command line or in the environment:
# make test TEST_DATABASE_URL=... TEST_REDIS_URL=... TEST_REDIS_PREFIX=...
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/$(shell bash scripts/checkout.sh database)
TEST_REDIS_URL ?= redis://127.0.0.1:6379/$(shell bash scripts/checkout.sh redis-db)
TEST_REDIS_PREFIX ?= $(shell bash scripts/checkout.sh database):
# The design study's scale for benchmarks: its own database, loaded once (about 1.6 GB, 1.5 minutes).
STUDY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ticketing_study
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k holds -x"
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers, each with test databases and Redis keys of its own; then the
# tests marked `serial` (timings under load, one collection of generated operations) run alone. 0: all in one.
PYTEST_WORKERS ?= 3

.PHONY: help test run serve lint venv services debian-packages clean study-db bench-search bench-sales bench-browse bench-holds bench-sweep bench-sell-out bench-waiting bench-surge bench-sql-ceiling bench-push bench-shards bench-browse-replica chaos locust-venv

help:
	@echo "make test   lint (ruff check) and the whole test suite on PostgreSQL and Redis; what CI runs"
	@echo "make run    the site on http://127.0.0.1:8000 with demo data (PostgreSQL required; without Redis,"
	@echo "            one process with in-process tasks); Ctrl-C stops everything"
	@echo "make serve  the production setup here: uvicorn (WEB_WORKERS=2), a Celery worker and beat, DEBUG off"
	@echo "make lint   ruff check, ruff format --check and lint-imports (the apps' import contracts)"
	@echo "make bench-search  SearchMovies latency at the study scale (loads it once into its own database)"
	@echo "make bench-browse  searches, seat maps and pages at the study scale under load, through uvicorn"
	@echo "make bench-sales   the staff's sales dashboard at the study scale (books its sales there once)"
	@echo "make bench-holds   holds per second and latency on one hot show through uvicorn (its own database)"
	@echo "make bench-sweep   the hot show at 10-200 clients, --workers 2 and behind HAProxy; draws the plot"
	@echo "make bench-sell-out 1,000 buyers sell out a 2,000-seat show, paid"
	@echo "make bench-surge   5,000 long-polling waiters and 1,000 seat-map watchers while holds lapse"
	@echo "make bench-sql-ceiling  the same holds in pgbench, no Python: the ceiling (after bench-holds)"
	@echo "make bench-push    how soon a seat change reaches 1,000 WebSocket watchers of a show"
	@echo "make bench-waiting how soon a waiting line's head is served once seats come free (its own database)"
	@echo "make bench-shards  two hot shows on two shards (two PostgreSQL primaries) against both on one"
	@echo "make bench-browse-replica  the browse benchmark with and without a replica serving catalog reads"
	@echo "make clean  remove caches and collected static files (keeps .venv)"

venv:
	@bash scripts/venv.sh

debian-packages:
	@bash scripts/debian_packages.sh $(DEBIAN_PACKAGES)

services:
	@bash scripts/services.sh ensure

test: debian-packages venv services
	$(VENV)/bin/ruff check .
	@# Comparing the models with the migration files needs no database; an in-memory SQLite one keeps Django from trying
	@# (and failing, with a page of pool errors) to open one that does not exist yet.
	DATABASE_URL='sqlite://:memory:' DJANGO_DEBUG=1 $(VENV)/bin/python manage.py makemigrations --check --dry-run
	@# pytest exits 5 when it collected no tests: a failure when no part collected any, and said so.
	@parallel=0; alone=5; \
	if [ "$(PYTEST_WORKERS)" = 0 ]; then \
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' TICKETING_REDIS_PREFIX='$(TEST_REDIS_PREFIX)' \
		$(VENV)/bin/pytest $(PYTEST_ARGS) || parallel=$$?; \
	else \
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' TICKETING_REDIS_PREFIX='$(TEST_REDIS_PREFIX)' \
		$(VENV)/bin/pytest -n $(PYTEST_WORKERS) -m "not serial" $(PYTEST_ARGS) || parallel=$$?; \
	alone=0; \
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' TICKETING_REDIS_PREFIX='$(TEST_REDIS_PREFIX)' \
		$(VENV)/bin/pytest -m serial $(PYTEST_ARGS) || alone=$$?; \
	fi; \
	if [ $$parallel -eq 5 ] && [ $$alone -eq 5 ]; then echo "make test: pytest collected no tests, which counts as a failure" >&2; exit 5; fi; \
	for status in $$parallel $$alone; do if [ $$status -ne 0 ] && [ $$status -ne 5 ]; then exit $$status; fi; done

run:
	@bash scripts/run.sh

serve:
	@TICKETING_MODE=serve bash scripts/run.sh

study-db: venv services
	@createdb -h 127.0.0.1 -U postgres ticketing_study 2>/dev/null || true
	DATABASE_URL='$(STUDY_DATABASE_URL)' DJANGO_DEBUG=1 $(VENV)/bin/python manage.py migrate -v0
	DATABASE_URL='$(STUDY_DATABASE_URL)' DJANGO_DEBUG=1 $(VENV)/bin/python manage.py seed_demo --scale study

bench-search: study-db
	DATABASE_URL='$(STUDY_DATABASE_URL)' $(VENV)/bin/python -m bench.search_movies --json bench/results/search_movies.json

bench-sales: study-db
	DATABASE_URL='$(STUDY_DATABASE_URL)' $(VENV)/bin/python -m bench.sales_dashboard --json bench/results/sales_dashboard.json

# Locust, the benchmarks' HTTP load generator, in a virtualenv of its own (its gevent and Flask have no place in the
# site's), made from the registry's pinned release when missing.
locust-venv:
	@test -x .venv-locust/bin/locust || \
		{ python3 -m venv .venv-locust && .venv-locust/bin/pip install -r bench/requirements-locust.txt; }

bench-browse: study-db locust-venv
	$(VENV)/bin/python -m bench.browse --database-url '$(STUDY_DATABASE_URL)' --concurrency 10,50 \
		--locust .venv-locust/bin/locust --json bench/results/browse.json

bench-sweep: debian-packages venv services locust-venv
	$(VENV)/bin/python -m bench.sweep

bench-sell-out: venv services locust-venv
	$(VENV)/bin/python -m bench.sell_out --json bench/results/sell_out.json

bench-surge: venv services
	$(VENV)/bin/python -m bench.waiting_surge --json bench/results/waiting_surge.json

bench-waiting: venv services
	$(VENV)/bin/python -m bench.waiting_line --json bench/results/waiting_line.json

bench-holds: venv services locust-venv
	$(VENV)/bin/python -m bench.hold_path --json bench/results/hold_path.json

bench-sql-ceiling: venv services
	$(VENV)/bin/python -m bench.sql_ceiling --json bench/results/sql_ceiling.json

bench-push: venv services
	$(VENV)/bin/python -m bench.seat_push --json bench/results/seat_push.json

bench-shards: debian-packages venv services
	$(VENV)/bin/python -m bench.two_shards --json bench/results/two_shards.json

bench-browse-replica: debian-packages venv services locust-venv
	$(VENV)/bin/python -m bench.browse_replica --json bench/results/browse_replica.json

# Faults during a sale (TEST-PLAN.md F-items) on a PostgreSQL and Redis of the run's own: about 12 minutes.
chaos: debian-packages venv services
	$(VENV)/bin/python -m chaos.run --json bench/results/chaos.json

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

clean:
	rm -rf .pytest_cache .ruff_cache staticfiles var/celerybeat-schedule*
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

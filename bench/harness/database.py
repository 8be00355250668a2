"""The scenario's database, and Django in the scenario's own process: created when missing (ensure_database),
PostgreSQL's connections shared out between the web processes (connection_budget), Django set up for the
scenario's own reads and writes (setup_django), the planner's statistics refreshed (refresh_planner_statistics).
"""

import logging
import os
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.harness.site import SECRET_KEY

# Connections PostgreSQL keeps for everything else on the machine (psql, tests others run, this script).
CONNECTIONS_KEPT_FREE = 20


def ensure_database(database_url):
    """Create the bench's database when it is missing (CREATE DATABASE can't run inside a transaction)."""
    params = conninfo_to_dict(database_url)
    name = params["dbname"]
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", file=sys.stderr)


def connection_budget(database_url, workers, wanted):
    """(max_connections, connections in use now, pool size per worker) so the server fits beside the rest."""
    with psycopg.connect(database_url) as connection:
        maximum = int(connection.execute("SHOW max_connections").fetchone()[0])
        in_use = connection.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
    per_worker = min(wanted, (maximum - in_use - CONNECTIONS_KEPT_FREE) // workers)
    if per_worker < 1:
        sys.exit(f"PostgreSQL has {in_use} of {maximum} connections in use: no room for {workers} workers.")
    return maximum, in_use, per_worker


def setup_django(database_url, redis_url, **extra_environment):
    """Django in this process, for the bench's own reads and writes; the load itself goes through the server.

    extra_environment: more settings (e.g. TICKETING_HOLD_SECONDS="3600"). Like the rest, they stay in
    os.environ, so the server started afterwards inherits them (server_environment copies os.environ).
    """
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "ticketing.settings",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": "2",
            **extra_environment,
        }
    )
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the settings' INFO would log every request


def refresh_planner_statistics():
    """ANALYZE the bench's database once its tables hold what the run starts from, as autovacuum does within a
    minute or so of a table's growth on a live site.

    A bench database fills in seconds: planned on the statistics of a nearly empty table, the show's seat count
    is a nested loop reading every reservation once per claim (50 ms for 2,000 held seats, where the right plan
    takes a fraction of a millisecond), and the benchmark would measure that plan instead of the code. Not
    right after emptying the tables, though: statistics saying "empty" are just as wrong a second later.
    VACUUM first: the earlier runs' rows were deleted, and a table whose pages are there but whose rows are not
    (the waiters', until the joins) is ANALYZEd as "no row in any page", which the planner keeps believing
    however many rows come (a line of 4,000 read as one row: waiting migration 0007). A live site never deletes
    those rows; vacuumed, an emptied table has no pages, as a fresh one.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

"""Catalog reads on a replica under the browse benchmark: bench.browse against a primary alone, and against the
same primary with a streaming replica serving the catalog's reads (DATABASE_REPLICA_URL, ticketing.db_routers),
alternated in the same sitting.

    python -m bench.browse_replica [--cities 500] [--rounds 2] [--concurrency 50] [--duration 20] [--json FILE]

A PostgreSQL cluster and a Redis of the run's own (bench/harness/services.py) hold the study catalog
(`seed_demo --scale study --cities N`: N cities of 10 cinemas, a 2,000-seat hall each, a week of shows; 500 is the
design study's), and a hot standby streams from it (`pg_basebackup -R`, asynchronous). Each round runs `python -m
bench.browse --balanced 2` twice, once with DATABASE_REPLICA_URL naming the standby and once without, in
alternating order. Which node served the catalog is read from each node's own counters of scans of the catalog's
tables (pg_stat_user_tables, `cinemas_*`) before and after each run: the share the standby served is what the
replica took off the primary. bench.browse's own checks (every answer 200, the hot shows' seat maps and statuses
as the database has them) run in every run, reading the primary.

The primary, the standby, the web processes, HAProxy and Locust share this machine's two cores: a replica on the
same cores moves reads, it adds no CPU; the figure to read is the share of catalog reads it served.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.harness.figures import alternated_sitting, medians_of, publish_report
from bench.harness.processes import ROOT, unwind_on_sigterm
from bench.harness.services import catalog_scans, own_services, standby_running
from bench.harness.site import SECRET_KEY

DATABASE = "ticketing_study"
SETUPS = ("primary alone", "with a replica")


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.browse_replica",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cities", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    with own_services(max_connections=200) as (primary, redis_server):
        primary.create_database(DATABASE)
        loaded = _load_the_study_catalog(primary.url(DATABASE), redis_server.url, options.cities)
        with standby_running(primary) as standby:

            def run_one(setup):
                replica = standby.url(DATABASE) if setup == "with a replica" else None
                return _browse(primary, standby, redis_server.url, replica, options)

            report = alternated_sitting("bench.browse_replica", SETUPS, options.rounds, run_one, _medians)
    publish_report({**report, "catalog": loaded}, options)


def _load_the_study_catalog(database_url, redis_url, cities):
    environment = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "1", "REDIS_URL": redis_url}
    started = time.monotonic()
    for command in (["migrate", "-v0"], ["seed_demo", "--scale", "study", "--cities", str(cities)]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=environment, check=True)
    with psycopg.connect(database_url) as connection:
        connection.execute("ANALYZE")  # this machine's PostgreSQL runs without autovacuum
        shows = connection.execute("SELECT count(*) FROM cinemas_show").fetchone()[0]
    return {"cities": cities, "shows": shows, "load_s": round(time.monotonic() - started, 1)}


def _browse(primary, standby, redis_url, replica_url, options):
    """One bench.browse run (the replica's URL in its server's environment, or none): its figures, and the catalog
    scans each node made meanwhile."""
    environment = {**os.environ, "DJANGO_SECRET_KEY": SECRET_KEY}
    environment.pop("DATABASE_REPLICA_URL", None)
    if replica_url:
        environment["DATABASE_REPLICA_URL"] = replica_url
    before = catalog_scans(primary, standby, DATABASE)
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        done = subprocess.run(
            [sys.executable, "-m", "bench.browse", "--balanced", "2", "--concurrency", str(options.concurrency)]
            + ["--duration", str(options.duration), "--database-url", primary.url(DATABASE)]
            + ["--redis-url", redis_url, "--json", output.name],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
        )
        text = Path(output.name).read_text()
    after = catalog_scans(primary, standby, DATABASE)
    if done.returncode != 0 or not text:
        return {"ok": False, "error": done.stderr[-2000:]}
    report = json.loads(text)
    (level,) = report["levels"]
    scans = {node: after[node] - before[node] for node in after}
    seat_maps = report["seat_map_p50_ms_by_concurrency"][str(options.concurrency)]  # the ones no hold made hot
    return {
        "requests_per_s": level["requests_per_s"],
        "search_movies_p95_ms": report["search_movies_p95_ms_by_concurrency"][str(options.concurrency)],
        "seat_map_api_p50_ms": seat_maps["SeatMap"],
        "seat_map_page_p50_ms": seat_maps["page:seat_map"],
        "catalog_scans": scans,
        "share_of_catalog_scans_on_the_replica": round(scans["standby"] / max(1, sum(scans.values())), 3),
        "ok": report["ok"],
    }


def _medians(runs):
    names = ("requests_per_s", "search_movies_p95_ms", "seat_map_api_p50_ms", "seat_map_page_p50_ms")
    names += ("share_of_catalog_scans_on_the_replica",)
    return medians_of(runs, names)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

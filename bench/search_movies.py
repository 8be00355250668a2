"""SearchMovies latency at the design study's scale, on one database connection.

Usage (make bench-search does all of it):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ticketing_study python -m bench.search_movies [--requests N]

The database must hold `seed_demo --scale study` (500 cities x 10 cinemas x 2,000 seats, 2 shows a day for
7 days). Requests go through the whole API stack in-process (key check, quota, parameters, queries, JSON)
with a realistic mix of parameters drawn from the data (bench/catalog_queries.py); the figures are wall-clock
per request.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from bench.catalog_queries import parameter_mix
from bench.harness.figures import percentile, publish_report
from bench.harness.site import SECRET_KEY

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", SECRET_KEY)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DATABASE_POOL_MIN", "1")  # "on one connection"
os.environ.setdefault("DATABASE_POOL_MAX", "1")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from cinemas.models import Cinema, City, Movie, Seat, Show  # noqa: E402
from cinemas.search import SORTING_ORDERS  # noqa: E402
from ticketing.models import ApiKey  # noqa: E402
from ticketing.services import create_api_key  # noqa: E402

BENCH_KEY = "tk_bench_search_movies_key"


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.search_movies", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()

    shows = Show.objects.count()
    if shows < 50_000:
        sys.exit(f"Only {shows} shows here: load the study scale first (seed_demo --scale study).")
    if not ApiKey.objects.filter(name="bench").exists():
        create_api_key(name="bench", rate_per_minute=10_000_000, held_seats_per_show=None, raw_key=BENCH_KEY)
    cities, cinemas = list(City.objects.all()), list(Cinema.objects.all())
    timings = time_searches(arguments, cities=cities, cinemas=cinemas)
    publish_report(report(timings, cities=cities, cinemas=cinemas, shows=shows), arguments)


def time_searches(arguments, *, cities, cinemas):
    """{kind of search: [milliseconds]} of --requests SearchMovies calls after --warmup uncounted ones."""
    rng = random.Random(arguments.seed)
    at = timezone.now()
    titles = list(Movie.objects.values_list("title", flat=True))
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=BENCH_KEY)
    timings = {}
    for number in range(arguments.warmup + arguments.requests):
        kind, parameters = parameter_mix(
            rng, cities=cities, cinemas=cinemas, titles=titles, at=at, sorting_orders=list(SORTING_ORDERS)
        )
        started = time.perf_counter()
        response = client.get("/api/v1/movies/search", parameters)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            sys.exit(f"{parameters} -> {response.status_code} {response.content[:300]!r}")
        if number >= arguments.warmup:
            timings.setdefault(kind, []).append(elapsed_ms)
    return timings


def report(timings, *, cities, cinemas, shows):
    every = [ms for values in timings.values() for ms in values]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        database_size = cursor.fetchone()[0]
    return {
        "catalog": {
            "cities": len(cities),
            "cinemas": len(cinemas),
            "seats": Seat.objects.count(),
            "shows": shows,
            "database_size": database_size,
        },
        "requests": len(every),
        "overall_ms": {
            "p50": round(statistics.median(every), 2),
            "p95": round(percentile(every, 0.95), 2),
            "p99": round(percentile(every, 0.99), 2),
            "max": round(max(every), 2),
        },
        "by_kind_ms": {
            kind: {
                "n": len(values),
                "p50": round(statistics.median(values), 2),
                "p95": round(percentile(values, 0.95), 2),
            }
            for kind, values in sorted(timings.items())
        },
    }


if __name__ == "__main__":
    main()

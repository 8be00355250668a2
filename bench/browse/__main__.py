"""Browsing at the design study's catalog scale under load: moviegoers and partners reading through a real server.

Usage (the study catalog first: `make bench-search` loads it once into ticketing_study):
    python -m bench.browse [--concurrency 10,50] [--duration 20] [--workers 2 | --balanced 2] [--pool-max 10]
                           [--locust .venv-locust/bin/locust] [--json FILE]

What it does, all on this machine:
1. The study catalog (postgres://postgres@127.0.0.1:5432/ticketing_study unless --database-url: 500 cities,
   5,000 cinemas, 70,000 shows; it is reused, never dropped or reloaded) and its own Redis database (/4).
   Rows this benchmark made in earlier runs (reservations of its own API key) are deleted first and again at
   the end, so the catalog is left as it was found.
2. `uvicorn ticketing.asgi:application --workers N` with production settings (bench/harness/site.py), or with
   --balanced K, K uvicorn processes of one worker each behind HAProxy (bench/harness/balancer.py; the CPU
   report then counts every web process and HAProxy, and the report says how many responses each process sent);
   each worker's pool sized to fit PostgreSQL's max_connections, holds lasting an hour so that the seat maps
   set up in step 3 stay as they are for the whole run.
3. "Hot" shows, so that seat maps and seat-type statuses are not trivially empty: --hot-shows upcoming shows in
   three cities get holds through the API (each a new session, 1-6 neighbouring seats, a quarter of them paid
   with the sandbox card so some seats are booked); one of them is held to 85 % of every seat type (Almost
   Full) and one has every Regular seat held (Regular: Full).
4. For each --concurrency level in turn, C virtual visitors for --duration seconds (after a --warmup that is
   not counted), each running journeys back to back (no think time unless --think). The visitors are Locust's
   users (bench/browse/locustfile.py, one headless Locust run per level), Locust running from a virtualenv of
   its own (--locust; `make bench-browse` makes it from bench/requirements-locust.txt); issue 17 asks for a
   well-kept tool, and bench/client_cost.py measured Locust's CPU per request close to our aiohttp client's:
   - partner search (45 %): SearchMovies with bench/catalog_queries.parameter_mix, then half the time the
     details of a show it found, and often that show's seat map;
   - app catalog (10 %): a city's movies, a movie's shows in that city, a show's seat map (API);
   - website (35 %): sometimes the home page (500 cities), a city's page, a movie's showtimes page (another
     day now and then), the seat map page of a show linked from it; a third of these visits go to a hot
     show's city, movie and day; now and then the people's search page instead. Each visitor keeps its
     session cookie (the site remembers its city in a database session) and now and then comes back as a
     new visitor;
   - hot seat map (10 %): a hot show's seat map or details through the API, as a live client re-reads it;
   - hot seat map page (0 %: `--mix hot_seat_map=1,hot_seat_map_page=1` gives an on-sale's read storm): a hot
     show's seat map page, as everyone opens it when a show goes on sale.
5. Figures per level: requests/s, per call n/p50/p95/p99/max and status counts, SearchMovies by kind of
   search and against the issue's target (p95 < 50 ms at the study's scale), the 2,000-seat seat map's p50
   (page and API; ":hot" for the hot shows everyone reads, the others apart) against issue 16's (page p50 <
   20 ms under load), the slowest requests, and where the CPU went (bench/harness/figures.py). Latencies are
   Locust's, rounded as its histogram keeps them (bench/browse/locust_runs.py says what else differs from the
   hand-written visitors before it).
6. Checks: every answer must be a 200 (any 5xx, other status or connection error fails the run); every read
   of a hot show's seat map (API or page) or details during the load must show the held and booked counts the
   setup made, and its showtimes page must link to it; at the end, for every hot show, the held and booked
   seats read straight from PostgreSQL must equal what the setup was answered, the API's seat map (counts and
   which seats), the show's details and the seat map page, and its seat-type statuses (Available / Almost
   Full / Full) must follow from the database; a few SearchMovies totals must equal a count made in SQL.
   The exit status is 1 on any failure.

The website's visitors leave their sessions behind (django_session rows, which expire after 14 days); the
holds and bookings go. The visitors, the server, PostgreSQL and Redis share this machine's cores: the figures
are what one small machine does with everything on it (the report says how the CPU time was split).
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from bench.browse.catalog import BENCH_KEY, delete_bench_rows, drop_queued_tasks, load_catalog
from bench.browse.final_checks import check_at_end
from bench.browse.hot_shows import prepare_hot_shows
from bench.browse.locust_runs import (
    LOCUST_NOTE,
    SEARCH_TARGET_P95_MS,
    SEAT_MAP_TARGET_P50_MS,
    counted_level,
    locust_plan,
    warm_up,
)
from bench.harness.database import setup_django
from bench.harness.figures import publish_report, responses_by_process
from bench.harness.processes import ROOT, unwind_on_sigterm
from bench.harness.servers import add_server_options, bench_server_running, plan_server

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_study"
# Not 0 (make run), 1 (make test) nor 2 (bench-holds): the tasks this run queues must reach nobody's worker.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"
DEFAULT_LOCUST = ".venv-locust/bin/locust"  # from the project's root
# Holds made at the start must outlast every level of the run, or the seat maps would change under the checks.
HOLD_SECONDS = 3600
JOURNEYS = {
    "partner_search": 0.45,
    "app_catalog": 0.10,
    "website": 0.35,
    "hot_seat_map": 0.10,
    # Not in the default mix: an on-sale's read storm, everyone on the hot shows' seat map pages
    # (`--mix hot_seat_map=1,hot_seat_map_page=1`).
    "hot_seat_map_page": 0.0,
}


def journey_mix(text):
    """'partner_search=1,website=0.5' -> {"partner_search": 1.0, "website": 0.5}: relative weights."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--mix wants NAME=WEIGHT,..., got {part!r}") from None
    unknown = set(mix) - set(JOURNEYS)
    if unknown or not any(weight > 0 for weight in mix.values()) or min(mix.values()) < 0:
        raise argparse.ArgumentTypeError(f"--mix names some of {', '.join(JOURNEYS)} with weights >= 0, got {text!r}")
    return mix


def concurrency_levels(text):
    """'10,50' -> [10, 50]."""
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency must be N or N,M,... with every N >= 1, got {text!r}")
    return levels


def run(options, catalog, *, base_url, server):
    """The hot shows' setup, the warm-up, each level's load, the checks at the end: (setup, levels, problems)."""
    setup = asyncio.run(
        prepare_hot_shows(
            options, catalog, base_url=base_url, server=server, api_key=BENCH_KEY, run_tag=uuid.uuid4().hex[:8]
        )
    )
    plan = locust_plan(options, catalog, api_key=BENCH_KEY)
    # Warm every worker's imports, pools and caches (not counted), at the first level's concurrency.
    setup["warmup_failures"] = warm_up(options, plan, base_url=base_url)
    levels = []
    for concurrency in options.concurrency:
        level = counted_level(options, plan, base_url=base_url, server=server, concurrency=concurrency)
        levels.append(level)
        search, seat_maps = level["search_movies_target"], level["seat_map_target"]["p50_ms"]
        print(
            f"concurrency {concurrency}: {level['requests_per_s']} requests/s, "
            f"SearchMovies p95 {search['p95_ms']} ms, hot seat map p50 page {seat_maps['page:seat_map:hot']} / "
            f"API {seat_maps['SeatMap:hot']} ms, failures {len(level['failures'])}, "
            f"wrong answers {level['wrong_answer_count']}",
            file=sys.stderr,
        )
        if level["failures"]:
            break
    problems = asyncio.run(check_at_end(options, catalog, base_url=base_url, api_key=BENCH_KEY))
    return setup, levels, problems


def parse_options():
    parser = argparse.ArgumentParser(
        prog="python -m bench.browse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=concurrency_levels, default=[10, 50], help="visitors at once, one level after another"
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds per concurrency level (default 20)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the first level, not counted")
    add_server_options(parser)
    parser.add_argument("--hot-shows", type=int, default=20, help="shows given holds and bookings (at least 2)")
    parser.add_argument(
        "--mix",
        type=journey_mix,
        default=dict(JOURNEYS),
        help="journeys' relative weights, e.g. partner_search=1 for partner searches alone (default "
        + ",".join(f"{name}={weight}" for name, weight in JOURNEYS.items())
        + ")",
    )
    parser.add_argument("--think", type=float, default=0, help="mean seconds a visitor waits between requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--locust",
        type=Path,
        default=ROOT / DEFAULT_LOCUST,
        help=f"the locust of Locust's own virtualenv (default {DEFAULT_LOCUST}; make bench-browse makes it)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.hot_shows < 2:
        parser.error("--hot-shows must be at least 2 (one Almost Full, one with Regular Full)")
    if not os.access(options.locust, os.X_OK):
        parser.error(
            f"no Locust at {options.locust}: `make bench-browse` makes it, or python3 -m venv .venv-locust && "
            ".venv-locust/bin/pip install -r bench/requirements-locust.txt"
        )
    return options


def main():
    options = parse_options()
    pool_max, server_settings = plan_server(options)
    # The holds outlast the run; the server inherits the setting (it copies os.environ).
    setup_django(options.database_url, options.redis_url, TICKETING_HOLD_SECONDS=str(HOLD_SECONDS))
    deleted = delete_bench_rows()  # an interrupted run's holds would skew this one's seat maps
    drop_queued_tasks(options.redis_url)
    catalog = load_catalog(options, random.Random(options.seed))
    server_settings["hold_seconds"] = HOLD_SECONDS
    with tempfile.NamedTemporaryFile("w+", prefix="bench-browse-server-", suffix=".log", delete=False) as log:
        try:
            with bench_server_running(options, pool_max=pool_max, log=log) as (server, base_url):
                try:
                    setup, levels, problems = run(options, catalog, base_url=base_url, server=server)
                except (RuntimeError, httpx.HTTPError) as exc:  # the setup, Locust or a final check failed
                    log.seek(0)
                    sys.exit(f"FAILED: {exc}\nThe server's log ({log.name}) ends with:\n{log.read()[-3000:]}")
                spread = responses_by_process(server)
        finally:
            server_settings["celery_tasks_queued"] = drop_queued_tasks(options.redis_url)
            delete_bench_rows()  # leave the study catalog as it was found
        log.seek(0)
        server_log = log.read()
    failed = (
        bool(setup["warmup_failures"])
        or any(level["failures"] or level["wrong_answer_count"] for level in levels)
        or any(problems.values())
    )
    report = {
        "setup": {
            **server_settings,
            "concurrency_levels": options.concurrency,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "think_s": options.think,
            "journey_mix": options.mix,
            "earlier_rows_deleted": deleted,
        },
        "catalog": catalog.database,
        "hot_shows": setup,
        "search_movies_p95_ms_by_concurrency": {
            level["concurrency"]: level["search_movies_target"]["p95_ms"] for level in levels
        },
        "search_movies_target_p95_ms": SEARCH_TARGET_P95_MS,
        "seat_map_p50_ms_by_concurrency": {
            level["concurrency"]: level["seat_map_target"]["p50_ms"] for level in levels
        },
        "seat_map_target_p50_ms": SEAT_MAP_TARGET_P50_MS,
        "levels": levels,
        **({"responses_by_process": spread} if options.balanced else {}),
        "checks": {name: len(found) for name, found in problems.items()},
        "check_examples": {name: found[:5] for name, found in problems.items() if found},
        "note": LOCUST_NOTE,
        "ok": not failed,
    }
    publish_report(report, options, log=log, server_log=server_log)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

"""The load of one level, run by Locust: the plan its visitors read (locust_plan), a headless run of C users
(run_locust), the warm-up (warm_up) and a counted level with the CPU taken around it (counted_level), and the
level's figures (level_report): from Locust's CSV stats the requests, requests/s and each call's n, p50, p95, p99,
max and calls/s; from the visitors' tally (tally.py) the status counts, SearchMovies by kind of search, the
slowest requests, the failures and wrong answers.

What differs from the hand-written (httpx) visitors of bench/browse.py before it used Locust:
- its percentiles are its histogram's (LOCUST_NOTE), and a call's n and percentiles count every request of it,
  failed ones too (a failure fails the run anyway);
- requests/s and elapsed_s are over Locust's own span (its first user's start to its last request); the CPU
  report's wall clock and load generator are the whole Locust process's, its start included (a few tenths of a
  CPU-second, which a 20-s level hardly notices; this process only waits meanwhile);
- --duration and --warmup are run as whole seconds (Locust's --run-time), at least 1;
- SearchMovies by kind times the request alone (with --think, the think time after it was counted in before);
- each user keeps its own connection (the hand-written visitors shared a pool of them), so they all start at
  once (SPAWN_RATE) for their connections to be shared between uvicorn's workers as before.
"""

import csv
import dataclasses
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness.figures import cpu_report, take_cpu_snapshot
from bench.harness.processes import ROOT

LOCUSTFILE = ROOT / "bench" / "browse" / "locustfile.py"
SEARCH_TARGET_P95_MS = 50
# Issue 16's target for a 2,000-seat seat map under load (the page; the API's JSON is reported beside it).
SEAT_MAP_TARGET_P50_MS = 20
SEAT_MAP_CALLS = ("page:seat_map:hot", "SeatMap:hot", "page:seat_map", "SeatMap")
SLOWEST_KEPT = 8
# Every user at once, as the hand-written visitors started: their first connections come in one burst, which the
# uvicorn workers share between them; spawned one by one, they could all be accepted by the same worker.
SPAWN_RATE = 10_000
# The level's figures that the visitors' tally gives, in the report's order.
TALLIED = (
    "search_movies_by_kind_ms",
    "status_counts",
    "slowest_requests",
    "failures",
    "wrong_answers",
    "wrong_answer_count",
)
LOCUST_NOTE = (
    "The load is Locust's (FastHttpUser, bench/browse/locustfile.py). Its percentiles are those of its histogram, "
    "which keeps response times rounded: to the millisecond under 100 ms, to 10 ms under 1 s, to 100 ms under 10 s "
    "(max is exact); n and the percentiles count every request of a call, failed or not."
)


def locust_plan(options, catalog, *, api_key):
    """What the Locust visitors read (locustfile.py's PLAN, as JSON): the catalog, the hot shows as the setup
    left them, the options that shape the load. run_locust adds the level's concurrency and the files to write."""
    from cinemas.search import SORTING_ORDERS

    return {
        "seed": options.seed,
        "mix": options.mix,
        "think": options.think,
        "api_key": api_key,
        "slowest_kept": SLOWEST_KEPT,
        "at": catalog.at.isoformat(),
        "orders": list(SORTING_ORDERS),
        "cities": [[city.pk, city.name] for city in catalog.cities],
        "cinemas": [[cinema.latitude, cinema.longitude, cinema.postal_code] for cinema in catalog.cinemas],
        "titles": catalog.titles,
        "hot_shows": [
            {
                "show_id": hot.show_id,
                "movie_id": hot.movie_id,
                "city_id": hot.city_id,
                "local_day": hot.local_day,
                "kind": hot.kind,
                "counts": hot.counts(),
            }
            for hot in catalog.hot
        ],
    }


def run_locust(options, plan, *, base_url, concurrency, seconds):
    """Locust, headless, `concurrency` users for `seconds`: (its stats CSV's rows by call, the visitors' tally,
    the CPU seconds Locust took as the kernel counts a child's). RuntimeError when Locust itself fails."""
    with tempfile.TemporaryDirectory(prefix="bench-browse-locust-") as folder:
        folder = Path(folder)
        plan_file, tally_file, stats_file = folder / "plan.json", folder / "tally.json", folder / "stats.csv"
        plan = {**plan, "concurrency": concurrency, "tally": str(tally_file), "stats": str(stats_file)}
        plan_file.write_text(json.dumps(plan))
        command = [options.locust, "-f", str(LOCUSTFILE), "--headless", "--host", base_url, "--only-summary"]
        command += ["--users", str(concurrency), "--spawn-rate", str(SPAWN_RATE)]
        command += ["--run-time", f"{max(1, round(seconds))}s", "--loglevel", "WARNING"]
        command += ["--exit-code-on-error", "0"]  # the tally judges the answers
        environment = {**os.environ, "BROWSE_PLAN": str(plan_file), "PYTHONPATH": str(ROOT)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        finished = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if finished.returncode != 0 or not stats_file.exists():
            raise RuntimeError(f"Locust exited with status {finished.returncode}:\n{finished.stderr[-3000:]}")
        with open(stats_file) as stats:
            rows = {row["Name"]: row for row in csv.DictReader(stats)}
        tally = json.loads(tally_file.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rows, tally, cpu


def warm_up(options, plan, *, base_url):
    """--warmup seconds of load at the first level's concurrency, not counted: its failures and wrong answers."""
    if options.warmup <= 0:
        return []
    _, tally, _ = run_locust(
        options, plan, base_url=base_url, concurrency=options.concurrency[0], seconds=options.warmup
    )
    return tally["failures"] + tally["wrong_answers"]


def counted_level(options, plan, *, base_url, server, concurrency):
    """One level of --duration seconds: its figures (level_report), with where the CPU went meanwhile."""
    before = take_cpu_snapshot(server, options.database_url)
    started = time.monotonic()
    rows, tally, locust_cpu = run_locust(
        options, plan, base_url=base_url, concurrency=concurrency, seconds=options.duration
    )
    elapsed = time.monotonic() - started
    # cpu_report counts this process's CPU as the load generator's: the load generator was Locust.
    after = take_cpu_snapshot(server, options.database_url)
    after = dataclasses.replace(after, client=after.client + locust_cpu)
    return level_report(concurrency, rows, tally, cpu_report(before, after, server.pid, elapsed))


def csv_summary(row):
    """n, p50, p95, p99 and max (ms) of a call's row in Locust's stats CSV."""
    return {
        "n": int(row["Request Count"]),
        "p50": int(row["50%"]),
        "p95": int(row["95%"]),
        "p99": int(row["99%"]),
        "max": round(float(row["Max Response Time"]), 1),
    }


def seat_map_target(latency):
    """The 2,000-seat seat map's p50 (page and API), of the hot shows that everyone reads (":hot") and of the
    others (a show found by a search or a listing, often read by no one before), against the issue's target."""
    p50 = {call: latency.get(call, {}).get("p50") for call in SEAT_MAP_CALLS}
    hot_page = p50["page:seat_map:hot"]
    return {
        "p50_ms": p50,
        "target_p50_ms": SEAT_MAP_TARGET_P50_MS,
        "met": hot_page is not None and hot_page < SEAT_MAP_TARGET_P50_MS,
    }


def level_report(concurrency, rows, tally, cpu):
    total = rows.pop("Aggregated")
    requests, per_second = int(total["Request Count"]), float(total["Requests/s"])
    latency = {call: csv_summary(row) for call, row in sorted(rows.items())}
    search_p95 = latency.get("SearchMovies", {}).get("p95")
    return {
        "concurrency": concurrency,
        "elapsed_s": round(requests / per_second, 2) if per_second else 0.0,
        "requests": requests,
        "requests_per_s": round(per_second, 1),
        "search_movies_target": {
            "p95_ms": search_p95,
            "target_p95_ms": SEARCH_TARGET_P95_MS,
            "met": search_p95 is not None and search_p95 < SEARCH_TARGET_P95_MS,
        },
        "seat_map_target": seat_map_target(latency),
        "latency_ms": latency,
        "calls_per_s": {call: round(float(row["Requests/s"]), 1) for call, row in sorted(rows.items())},
        **{key: tally[key] for key in TALLIED},
        "cpu": cpu,
    }

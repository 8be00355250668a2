"""What a load generator costs per request on this machine: the benchmarks' own aiohttp client against Locust.

Usage:
    python -m bench.client_cost --locust .venv-locust/bin/locust [--users 50] [--duration 20] [--json FILE]

Locust runs from a virtualenv of its own (its gevent and Flask have no place in the site's):
    python3 -m venv .venv-locust && .venv-locust/bin/pip install -r bench/requirements-locust.txt

The load generator shares the 2 cores with the server and PostgreSQL, so every CPU-millisecond it spends on a
request is taken from the server (issue 16: "keep its CPU per request small and reported"); issue 17 asks to use
a well-kept tool such as Locust unless it measurably can't do the job here. This measures the one thing that
decides it:

1. The hot show's database and show (bench.show.prepare_show), one uvicorn worker (bench.harness).
2. Each client in turn, `--users` concurrent users, no wait between requests, on two paths: /health/live
   (answered before Django: what the client itself costs) and the show's seat map (/api/v1/shows/{id}/seats,
   the 2,000-seat hall's JSON, parsed as the buyers do).
3. Its CPU per request: the aiohttp client's from this process's own CPU time over its requests; Locust's
   from two runs of `--duration` and a third of it (the difference of CPU over the difference of requests, so
   that Locust's start is not charged to its requests).
"""

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness.database import ensure_database
from bench.harness.processes import ROOT, free_port, unwind_on_sigterm, wait_until_url_answers
from bench.harness.site import server_environment, server_running
from bench.show import BENCH_KEY, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, prepare_show

LOCUSTFILE = ROOT / "bench" / "locust_seat_map.py"


async def aiohttp_reads(url, *, users, duration, parse_json):
    """`(requests, cpu_seconds)` of `users` aiohttp loops reading `url` for `duration` seconds."""
    done = 0
    deadline = time.monotonic() + duration

    async def user(session):
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                if parse_json:
                    await response.json()
                else:
                    await response.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=users)
    async with aiohttp.ClientSession(connector=connector, headers={"X-API-Key": BENCH_KEY}) as session:
        started = time.process_time()
        await asyncio.gather(*(user(session) for _ in range(users)))
        return done, time.process_time() - started


def locust_run(locust, base_url, path, *, users, seconds, parse_json):
    """`(requests, cpu_seconds)` of one headless Locust run (the child's CPU, as the kernel counts it)."""
    environment = {**os.environ, "LOCUST_PATH": path, "LOCUST_JSON": "1" if parse_json else "0"}
    environment["LOCUST_API_KEY"] = BENCH_KEY
    with tempfile.TemporaryDirectory() as folder:
        prefix = str(Path(folder) / "run")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [locust, "-f", str(LOCUSTFILE), "--headless", "--users", str(users), "--spawn-rate", str(users)]
            + ["--run-time", f"{seconds}s", "--host", base_url, "--only-summary", "--csv", prefix]
            + ["--loglevel", "WARNING", "--exit-code-on-error", "0"],
            env=environment,
            check=True,
            capture_output=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(f"{prefix}_stats.csv") as stats:
            total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(total["Request Count"]), cpu


def marginal_locust_cost(locust, base_url, path, *, users, duration, parse_json):
    """Locust's CPU per request over a long and a short run, its start taken out; and the long run's rate."""
    short = max(3, duration // 3)
    long_requests, long_cpu = locust_run(locust, base_url, path, users=users, seconds=duration, parse_json=parse_json)
    short_requests, short_cpu = locust_run(locust, base_url, path, users=users, seconds=short, parse_json=parse_json)
    per_request = (long_cpu - short_cpu) / max(1, long_requests - short_requests)
    return {"requests_per_s": round(long_requests / duration, 1), "cpu_ms_per_request": round(per_request * 1000, 3)}


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.client_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--locust", required=True, help="the locust executable of its own virtualenv")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json")
    options = parser.parse_args()
    unwind_on_sigterm()
    ensure_database(options.database_url)
    show_id, _, _ = prepare_show(options.database_url, options.redis_url)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    paths = {"liveness": ("/health/live", False), "seat map": (f"/api/v1/shows/{show_id}/seats", True)}
    report = {"users": options.users, "duration_s": options.duration, "clients": {}}
    with (
        tempfile.TemporaryFile() as log,
        server_running(
            workers=1,
            port=port,
            environment=server_environment(database_url=options.database_url, redis_url=options.redis_url, pool_max=10),
            log=log,
        ) as server,
    ):
        wait_until_url_answers(f"{base_url}/health/live", server, "uvicorn")
        for name, (path, parse_json) in paths.items():
            requests, cpu = asyncio.run(
                aiohttp_reads(base_url + path, users=options.users, duration=options.duration, parse_json=parse_json)
            )
            report["clients"].setdefault("aiohttp", {})[name] = {
                "requests_per_s": round(requests / options.duration, 1),
                "cpu_ms_per_request": round(cpu / requests * 1000, 3),
            }
            report["clients"].setdefault("locust", {})[name] = marginal_locust_cost(
                options.locust, base_url, path, users=options.users, duration=options.duration, parse_json=parse_json
            )
    print(json.dumps(report, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

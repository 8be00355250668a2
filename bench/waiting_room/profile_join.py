"""What a join of the room costs the web process, measured as the bench measures it: one uvicorn process, N
partner sessions POST /api/v1/on-sales/{id}/room (the lean endpoint on the async pool), --concurrency at a
time; the process's CPU seconds over the run (from /proc, as cpu_report reads them) divided by the joins, and the
same for this run's PostgreSQL backends. With --py-spy FILE, py-spy samples the server during the joins (FILE:
collapsed stacks, speedscope's and flamegraph.pl's input) and the functions with the most samples are printed.

    python -m bench.waiting_room.profile_join [--joins 3000] [--concurrency 100] [--rounds 3] [--py-spy FILE]

Its own database and Redis are the bench's (ticketing_bench_room, /10, roombench:), emptied of on-sales first.
Each round is a fresh on-sale and a fresh server; the figures are per round and their median.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from bench.harness.database import connection_budget, ensure_database
from bench.harness.figures import code_version
from bench.harness.processes import free_port
from bench.harness.site import server_environment, server_running
from bench.show import prepare_show
from bench.waiting_room import database as db
from bench.waiting_room.__main__ import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    HALL_SEATS,
    REDIS_PREFIX,
    joined_on,
    run_loop,
    warm,
)

PY_SPY = str(Path(sys.executable).parent / "py-spy")


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.waiting_room.profile_join")
    parser.add_argument("--joins", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--py-spy", type=Path, help="sample the server with py-spy in the last round (collapsed)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    options = parser.parse_args()
    # joined_on reads these names of the bench's options
    options.join_concurrency, options.http_client = options.concurrency, "aiohttp"
    ensure_database(options.database_url)
    db.forget_earlier_on_sales(options.database_url)
    redis.Redis.from_url(options.redis_url).flushdb()
    os.environ.update({"TICKETING_ROOM_GRACE_SECONDS": "3600", "TICKETING_REDIS_PREFIX": REDIS_PREFIX})
    show_id, _movie, _hall = prepare_show(options.database_url, options.redis_url, hall_seats=HALL_SEATS)
    _, _, pool_max = connection_budget(options.database_url, 1, 10)
    environment = server_environment(database_url=options.database_url, redis_url=options.redis_url, pool_max=pool_max)
    rounds = []
    for number in range(options.rounds):
        spy = options.py_spy if number == options.rounds - 1 else None
        rounds.append(one_round(options, environment, show_id, f"p{os.getpid()}-{number}", spy))
        print(json.dumps(rounds[-1]), flush=True)
    report = {
        "code": code_version(),
        "joins_per_round": options.joins,
        "concurrency": options.concurrency,
        "rounds": rounds,
        "median_web_cpu_ms_per_join": statistics.median(r["web_cpu_ms_per_join"] for r in rounds),
        "median_postgres_cpu_ms_per_join": statistics.median(r["postgres_cpu_ms_per_join"] for r in rounds),
        "median_joins_per_s": statistics.median(r["joins_per_s"] for r in rounds),
    }
    if options.py_spy:
        report["py_spy_top"] = top_functions(options.py_spy)
    print(json.dumps(report, indent=1))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=1) + "\n")


def one_round(options, environment, show_id, tag, spy):
    on_sale_id = db.mark_show_on_sale(show_id, rate=3000)
    sessions = [f"{tag}-{n}" for n in range(options.joins)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryFile("w+") as log,
        server_running(workers=1, port=port, environment=environment, log=log) as server,
    ):
        sampler = None
        if spy:
            run_loop(warm(url, on_sale_id))  # imports and pools warmed before sampling
            # stopped by SIGINT after the joins
            sampler = subprocess.Popen(
                [PY_SPY, "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw", "--output", str(spy)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        figures = joined_on(options, server, url, on_sale_id, sessions)
        if sampler:
            sampler.send_signal(2)
            sampler.wait(timeout=60)
    db.delete_on_sale(options.database_url, on_sale_id)
    cpu = figures["cpu"]["cpu_seconds"]
    joined = figures["joined"]
    return {
        "joined": joined,
        "failures": len(figures["failures"]),
        "joins_per_s": figures["joins_per_s"]["overall_per_s"],
        "p50_ms": figures["join_latency_ms"].get("p50"),
        "web_cpu_seconds": cpu["server_workers"][0],
        "web_cpu_ms_per_join": round(1000 * cpu["server_workers"][0] / joined, 2),
        "postgres_cpu_ms_per_join": round(1000 * cpu["postgres_backends_of_this_run"] / joined, 2),
        "load_generator_cpu_ms_per_join": round(1000 * cpu["load_generator"] / joined, 2),
        "machine_busy_percent": figures["cpu"]["machine_busy_percent"],
        "everything_else_cpu_seconds": cpu.get("everything_else"),
    }


# Threads waiting (the async pool's workers, the thread pool's idle workers): py-spy samples them too.
WAITING = ("Condition.wait", "Queue.get", "_worker (concurrent/futures/thread.py", "selectors.py")


def top_functions(path, count=30):
    """py-spy's collapsed stacks (function (file:line) frames): of the samples not waiting (WAITING), the share of
    each function (by name and file, any line) on the stack (inclusive, counted once a stack) and at its top."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in Path(path).read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in WAITING):
            continue
        names = [frame.rpartition(":")[0] + ")" if ":" in frame else frame for frame in frames]
        total += int(samples)
        own[names[-1]] += int(samples)
        for name in set(names):
            inclusive[name] += int(samples)
    share = lambda n: round(100 * n / total, 1)  # noqa: E731
    return {
        "samples_not_waiting": total,
        "inclusive_percent": {name: share(n) for name, n in inclusive.most_common(count)},
        "self_percent": {name: share(n) for name, n in own.most_common(count)},
    }


if __name__ == "__main__":
    main()

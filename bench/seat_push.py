"""How soon a seat change reaches every watcher of a show's live seat map (issue 6: 1,000 watchers, p99 < 1 s).

Usage (after a run of a bench that makes the show, bench/show.py, e.g. python -m bench.hold_path):
    python -m bench.seat_push [--watchers 1000] [--rounds 20] [--workers 2 | --balanced 2] [--json FILE]

1. The hold benchmark's database and show (bench/show.py.prepare_show), a real uvicorn with --workers N,
   or with --balanced K, K uvicorn processes (one worker each) behind HAProxy (bench/harness/balancer.py).
2. W WebSocket clients on ws/shows/{id}/ (one asyncio process, spread over the workers by the kernel, or
   over the processes by HAProxy, which names the process in the upgrade's X-Served-By header), each
   waiting for its version greeting.
3. R rounds: a hold of two seats through the API; a clock starts when the hold request is sent (the push goes
   out on commit, often before the 201 is back), and each watcher stops it when the push naming those seats
   arrives: the figure is the hold's own time plus the push's. Then the hold is given up.
4. Figures: latency percentiles over every (round, watcher), pushes missing after 5 s (at most once delivery:
   a watcher that misses one re-reads the map in the real page), the server's workers, and the CPU the web
   processes and Redis spent per round (two API calls and the two pushes they make) while the rounds ran.
The watchers, the server, PostgreSQL and Redis share this machine's 2 cores: the figures include the time the
one client process takes to read 1,000 sockets.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.harness.clients import PUSH_MISSING_AFTER_SECONDS
from bench.harness.database import connection_budget, ensure_database
from bench.harness.figures import cpu_report, percentile, take_cpu_snapshot
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import bench_server_running, describe_server, wait_until_answering
from bench.seat_watchers import cancel_all, open_watchers, seat_map_socket, watch
from bench.show import BENCH_KEY, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, prepare_show


async def run(options, show_id, movie_id, seat_ids, port, *, base_url=None, served_by=None):
    base = base_url or f"http://127.0.0.1:{port}"
    socket_url, origin = seat_map_socket(base, show_id)
    arrivals = [{} for _ in range(options.watchers)]

    async def watch_one(n, greeted):
        def read(frame):
            now = time.perf_counter()
            for change in json.loads(frame).get("changes", []):
                arrivals[n].setdefault(change["id"], []).append(now)

        await watch(socket_url, origin, read, greeted=greeted, served_by=served_by)

    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": BENCH_KEY}, timeout=30) as client:
        await wait_until_answering(client, options.server, show_id)
        watchers = await open_watchers(options.watchers, watch_one, timeout=120)
        latencies, missing = [], 0
        before, started = take_cpu_snapshot(options.server, options.database_url), time.perf_counter()
        for round_number in range(options.rounds):
            seats = seat_ids[2 * round_number : 2 * round_number + 2]
            body = {"session_id": f"push-{round_number}", "show_id": show_id, "movie_id": movie_id}
            sent = time.perf_counter()
            response = await client.post("/api/v1/reservations", json={**body, "seats_to_reserve": seats})
            if response.status_code != 201:
                raise RuntimeError(f"hold answered {response.status_code}: {response.text[:300]}")
            await asyncio.sleep(PUSH_MISSING_AFTER_SECONDS if round_number == options.rounds - 1 else 1.0)
            for seen in arrivals:
                times = [moment for moment in seen.get(seats[0], []) if moment >= sent]
                if times:
                    latencies.append(min(times) - sent)
                else:
                    missing += 1
            reservation = response.json()["reservation_id"]
            await client.delete(f"/api/v1/reservations/{reservation}", params={"session_id": f"push-{round_number}"})
            await asyncio.sleep(0.5)
            for seen in arrivals:
                seen.clear()
        after = take_cpu_snapshot(options.server, options.database_url)
        cpu = cpu_report(before, after, options.server.pid, time.perf_counter() - started)
        await cancel_all(watchers)
    return latencies, missing, cpu


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.seat_push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--balanced", type=int, metavar="K", help="K uvicorn processes behind HAProxy instead")
    parser.add_argument("--pool-max", type=int, default=10, help="database connections per web process (default 10)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()

    ensure_database(options.database_url)
    _, _, pool_max = connection_budget(options.database_url, options.balanced or options.workers, options.pool_max)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url)
    served_by = Counter()
    with (
        tempfile.NamedTemporaryFile("w+", prefix="bench-push-server-", suffix=".log", delete=False) as log,
        bench_server_running(options, pool_max=pool_max, log=log) as (options.server, base_url),
    ):
        latencies, missing, cpu = asyncio.run(
            run(options, show_id, movie_id, hall.seat_ids, None, base_url=base_url, served_by=served_by)
        )
    milliseconds = [seconds * 1000 for seconds in latencies]
    report = {
        "watchers": options.watchers,
        "rounds": options.rounds,
        "server": describe_server(workers=options.workers, balanced=options.balanced) + ", Redis channel layer",
        "deliveries": len(milliseconds),
        "missing": missing,
        "push_after_hold_sent_ms": {
            "p50": round(statistics.median(milliseconds), 1),
            "p95": round(percentile(milliseconds, 0.95), 1),
            "p99": round(percentile(milliseconds, 0.99), 1),
            "max": round(max(milliseconds), 1),
        }
        if milliseconds
        else None,
        # Each round pushes twice (the hold, then giving it up) and answers those two API calls.
        "server_cpu_ms_per_round": round(1000 * sum(cpu["cpu_seconds"]["server_workers"]) / options.rounds, 1),
        "redis_cpu_ms_per_round": round(1000 * cpu["cpu_seconds"]["redis"] / options.rounds, 1),
        "cpu": cpu,
    }
    if options.balanced:
        report["watchers_by_process"] = dict(sorted(served_by.items()))
    print(json.dumps(report, indent=2))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2))
    os.unlink(log.name)
    return 1 if missing else 0


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())

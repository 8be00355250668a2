"""How soon the head of a waiting line is served once seats come free: the after-commit wake-up path.

Usage (make bench-waiting runs it):
    python -m bench.waiting_line [--rounds 40] [--json FILE]

On this machine: its own database (ticketing_bench_waiting) and Redis database (/7), a real uvicorn (one
worker) and a real Celery worker WITHOUT beat, so the only thing that can serve the line is the wake-up sent
after commit. The show is the benchmarks' (bench.show.prepare_show) in a hall of 2 seats. Each round: a buyer
holds both seats, a waiter joins the line for 2 seats,
the buyer cancels its hold (DELETE), and the script polls PostgreSQL every 5 ms until the waiter is
"Seats Available". The figure is the time from sending the DELETE to that row change (an upper bound: it
includes the cancel's own round trip).
"""

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import redis

from bench.harness.database import ensure_database
from bench.harness.figures import publish_report
from bench.harness.processes import free_port, start_process, stop_processes, unwind_on_sigterm, wait_until_url_answers
from bench.harness.site import celery_environment, celery_worker_command, server_environment, start_server
from bench.show import BENCH_KEY, prepare_show

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_waiting"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"


def one_round(client, database, number, *, show_id, movie_id, seats):
    """Hold both seats, queue a waiter for 2, give the hold up; milliseconds until the waiter is served."""
    holder, waiter = f"holder-{number}", f"w-{number}"
    body = {"session_id": holder, "movie_id": movie_id, "show_id": show_id, "seats_to_reserve": seats}
    hold = client.post("/api/v1/reservations", json=body)
    assert hold.status_code == 201, hold.text
    joined = client.post(f"/api/v1/shows/{show_id}/waitlist", json={"session_id": waiter, "seats_wanted": 2})
    assert joined.status_code == 201, joined.text
    waiter_id = joined.json()["waiter_id"]
    # From sending the DELETE: the waiter is often served before its answer is back, since the wake-up goes out
    # at commit, inside the request. So this is the cancel's whole round trip plus the serving.
    freed_at = time.monotonic()
    client.delete(f"/api/v1/reservations/{hold.json()['reservation_id']}", params={"session_id": holder})
    while True:
        status, reservation_id = database.execute(
            "SELECT status, reservation_id FROM waiting_waiter WHERE id = %s", [waiter_id]
        ).fetchone()
        if status == "Seats Available" or time.monotonic() - freed_at > 30:
            break
        time.sleep(0.005)
    served_ms = (time.monotonic() - freed_at) * 1000
    # Give the served hold up, so the next round starts from an empty hall and an empty line.
    client.delete(f"/api/v1/reservations/{reservation_id}", params={"session_id": waiter})
    return served_ms


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.waiting_line", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)

    ensure_database(arguments.database_url)
    redis.Redis.from_url(arguments.redis_url).flushdb()
    show_id, movie_id, plan = prepare_show(arguments.database_url, arguments.redis_url, hall_seats=2)
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115  (kept open for the subprocesses' whole life)
    environment = server_environment(database_url=arguments.database_url, redis_url=arguments.redis_url, pool_max=8)
    server = start_server(workers=1, port=port, environment=environment, log=log)
    worker = start_process(celery_worker_command(), environment=celery_environment(environment), log=log)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": BENCH_KEY}, timeout=30)
        wait_until_url_answers(f"http://127.0.0.1:{port}/api/v1/shows/{show_id}", server, "the server")
        time.sleep(3)  # let the worker connect to the broker
        database = psycopg.connect(arguments.database_url, autocommit=True)
        latencies = [
            one_round(client, database, number, show_id=show_id, movie_id=movie_id, seats=plan.seat_ids)
            for number in range(arguments.rounds)
        ]
    finally:
        stop_processes([server, worker])

    ordered = sorted(latencies)
    report = {
        "rounds": len(latencies),
        "wake_up_ms": {
            "p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1),
        },
        "setup": "uvicorn 1 worker + Celery worker without beat, PostgreSQL and Redis, all on this 2-core machine",
    }
    publish_report(report, arguments)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

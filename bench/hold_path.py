"""The hold path under load: many buyers holding seats of one hot show through a real ASGI server.

Usage (make bench-holds runs it with the defaults):
    python -m bench.hold_path [--concurrency 100] [--workers 2 | --balanced 2] [--seats 2 | 1-4] [--duration 20]
                              [--http-client locust [--locust PATH] | aiohttp | httpx] [--json FILE]

What it does, all on this machine:
1. Its own database (postgres://postgres@127.0.0.1:5432/ticketing_bench_holds unless --database-url; created
   and migrated when missing) and its own Redis database (/2). Rows of earlier runs are deleted, then one show
   is scheduled tomorrow in a 2,000-seat hall (40 rows x 50 seats with aisles, the demo's plan) with an API
   key whose quota never bites.
2. `uvicorn ticketing.asgi:application --workers N` on a free loopback port, production settings
   (DJANGO_DEBUG=0), each worker's connection pool sized so that all of them fit under PostgreSQL's
   max_connections. It is stopped by its process id at the end, also when something fails.
   With --balanced K instead: K uvicorn processes of one worker each, every one on its own port, behind
   HAProxy (bench/harness/balancer.py, configured from deploy/haproxy.cfg); the clients talk to HAProxy, the CPU report
   counts every web process and HAProxy, and the report says how many responses each process sent.
3. C virtual buyers (asyncio on aiohttp, or Locust: see below) for --duration seconds or until the show sells
   out. Each buyer comes with its own session_id and wants --seats neighbouring seats, 70% of the time in the
   middle third of the rows (the hot seats). It picks them from the live seat map (what it knows is held), so a 409
   means another buyer got there first. On 409 it picks other seats; on 201 it gives the hold up at once
   with probability --release (so the show does not sell out in seconds) or keeps it, and the next buyer
   takes its place.
4. Figures: attempts/s, holds/s, seats held/s, latency percentiles of the hold POST (all, 201 only, 409
   only) and of the DELETE, status counts, and where the CPU went. Any 5xx, other unexpected status or
   connection error fails the run.
5. Invariants, read straight from PostgreSQL (not through the app), then the seat map through the API:
   no seat with two live claims; every reservation row is one the clients were answered 201 for, and its
   live claims are exactly the seats it was answered with (kept holds) or none (given-up holds); the seat
   map's held seats are exactly the seats of the holds the clients kept. The exit status is 1 on any
   violation or failed request.

The load generator shares the machine's cores with the server, PostgreSQL and Redis: the figures are what
one small machine does with everything on it, not what the server does alone (the report says how the CPU
time was split).

The load generator (--http-client): the buyers are written once, as generators of the requests they send
(bench/hold_path_moves.py), and run as the FastHttpUsers of one headless Locust process (the default),
or as asyncio tasks on aiohttp or httpx clients in this process (bench/hold_path_buyers.py); Locust's are
in bench/hold_path_locust.py, run by --locust from its own virtualenv (bench/requirements-locust.txt; the
plumbing shared with the sell-out is bench/locust_run.py's and bench/locust_users.py's). Its users share one sale
as the asyncio buyers do; the plan goes to Locust in a JSON file and the counts come back in another, so the
checks and the report are the same. The warm-up and the final seat map still go through one aiohttp client,
and the report's load_generator CPU is Locust's process (getrusage of this process's children, its start
included) plus this one's. Measured side by side on this machine (docs/performance/README.md, issue 17),
Locust carried the hot show as our aiohttp client did (medians 985.6 and 954.4 attempts/s of the pairs, 400.4 and
392.9 of 20-s hold-and-release runs, at the same load-generator CPU per request), so Locust is the default;
--http-client aiohttp compares with the sittings before it, whose figures were measured on aiohttp.

The server, the clients and the CPU report are bench/harness's, as for every scenario; this module is the hot
show's own invariants and report, its buyers are bench/hold_path_moves.py's (run by bench/hold_path_buyers.py),
what it shares with the sell-out bench/sale.py's; the show itself is bench/show.py's, which other scenarios and
chaos/ share.
"""

import argparse
import secrets
from pathlib import Path

import psycopg
import redis

from bench.harness.clients import seat_range
from bench.harness.database import ensure_database
from bench.harness.figures import publish_report, summary_ms
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import add_server_options, plan_server, serve_sale
from bench.hold_path_buyers import HoldSale, run_sale
from bench.locust_run import CPU_NOTE, add_load_generator_options
from bench.sale import add_run_options, verdict
from bench.show import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, prepare_show

# A 503 with Retry-After is a process shedding load (its admission queue full or too slow): the client sends
# the request again after it (minding_busy), and the report counts them.
EXPECTED = {"POST 201", "POST 409", "DELETE 200", "POST 503"}


# --- The show ---------------------------------------------------------------------------------------------------------


def drop_queued_wake_ups(redis_url):
    """Count, and in the bench's own Redis database delete, the waiting-line wake-ups no worker will take.

    Every given-up hold queues one Celery task (waiting.wake_ups.wake_waiting_line); no worker runs here.
    """
    broker = redis.Redis.from_url(redis_url)
    queued = broker.llen("celery")
    if redis_url == DEFAULT_REDIS_URL:
        broker.delete("celery")
    broker.close()
    return queued


# --- Invariants -----------------------------------------------------------------------------------------------


def check_invariants(database_url, sale, seat_map):
    """Each check's list of violations (empty when it holds), read from PostgreSQL and the seat map."""
    violations = {}
    with psycopg.connect(database_url) as connection:
        doubled = connection.execute(
            "SELECT show_id, seat_id, count(*) FROM bookings_seatclaim WHERE released_at IS NULL "
            "GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        violations["seats_with_two_live_claims"] = [f"show {s} seat {seat}: {n} claims" for s, seat, n in doubled]
        rows = connection.execute(
            "SELECT r.id::text, r.status, "
            "       coalesce(array_agg(c.seat_id ORDER BY c.seat_id) FILTER (WHERE c.released_at IS NULL), '{}'), "
            "       count(c.id) "
            "FROM bookings_reservation r LEFT JOIN bookings_seatclaim c ON c.reservation_id = r.id "
            "WHERE r.show_id = %s GROUP BY r.id, r.status",
            [sale.show_id],
        ).fetchall()
    in_database = {reservation_id: (status, live, claims) for reservation_id, status, live, claims in rows}
    violations["reservations_without_a_201"] = sorted(set(in_database) - set(sale.answered))
    violations["201s_without_a_reservation"] = sorted(set(sale.answered) - set(in_database))
    partial, wrong_status = [], []
    for reservation_id, (status, live, claims) in in_database.items():
        answered = sale.answered.get(reservation_id)
        if answered is None:
            continue
        if claims != len(answered):
            partial.append(f"{reservation_id}: answered {len(answered)} seats, has {claims} claims")
        if status in {"Reserved", "Booked"} and list(live) != answered:
            partial.append(f"{reservation_id} ({status}): answered seats {answered}, live claims {list(live)}")
        expected = "Cancelled" if reservation_id in sale.given_up else "Reserved"
        if status != expected:
            wrong_status.append(f"{reservation_id}: {status}, expected {expected}")
        if status == "Cancelled" and live:
            partial.append(f"{reservation_id} (Cancelled) still claims {list(live)}")
    violations["partial_or_wrong_holds"] = partial
    violations["unexpected_statuses"] = wrong_status

    if seat_map.status_code != 200:
        violations["seat_map_matches_kept_holds"] = [f"GET seats answered {seat_map.status_code}"]
    else:
        listed = seat_map.json()["seats"]
        on_map = {seat["id"] for seat in listed if seat["status"] == "held"}
        kept = {seat_id for seats in sale.kept.values() for seat_id in seats}
        booked = [seat["id"] for seat in listed if seat["status"] == "booked"]
        violations["seat_map_matches_kept_holds"] = (
            [f"held on the map, not by any kept hold: {sorted(on_map - kept)}"] * bool(on_map - kept)
            + [f"kept holds' seats not held on the map: {sorted(kept - on_map)}"] * bool(kept - on_map)
            + [f"booked seats, but nobody paid: {booked}"] * bool(booked)
        )
    return violations


# --- The report -----------------------------------------------------------------------------------------------


def build_report(sale, *, elapsed, cpu, server_settings, violations):
    options = sale.options
    posts = sum(count for status, count in sale.statuses.items() if status.startswith("POST "))
    holds = sale.statuses["POST 201"]
    seats_held = sum(len(seats) for seats in sale.answered.values())
    every_post = [ms for status, values in sale.latencies.items() if status.startswith("POST ") for ms in values]
    unexpected = {status: count for status, count in sale.statuses.items() if status not in EXPECTED}
    return {
        "setup": {
            **server_settings,
            "concurrency": options.concurrency,
            "seats_per_hold": "-".join(map(str, sorted(set(options.seats)))),
            "release_probability": options.release,
            "hot_share": options.hot_share,
            "hall_seats": len(sale.hall.seat_ids),
            "show_id": sale.show_id,
            "duration_s": options.duration,
            "key_cap": options.key_cap,
        },
        "elapsed_s": round(elapsed, 2),
        "ended_by": "failure"
        if sale.failures
        else ("all answered" if options.pairs else ("sold out" if sale.sold_out else "time")),
        "scenario": "pairs: each seat pair asked for by two buyers" if options.pairs else "random buyers",
        "throughput_per_s": {
            "attempts": round(posts / elapsed, 1),
            "holds": round(holds / elapsed, 1),
            "seats_held": round(seats_held / elapsed, 1),
            "holds_given_up": round(sale.statuses["DELETE 200"] / elapsed, 1),
        },
        "conflicts_percent_of_attempts": round(100 * sale.statuses["POST 409"] / max(1, posts), 1),
        "latency_ms": {
            "hold_all": summary_ms(every_post),
            "hold_201": summary_ms(sale.latencies.get("POST 201", [])),
            "hold_409": summary_ms(sale.latencies.get("POST 409", [])),
            "give_up_200": summary_ms(sale.latencies.get("DELETE 200", [])),
        },
        "status_counts": dict(sorted(sale.statuses.items())),
        "conflicts_by_code": dict(sale.conflicts),
        "unexpected_statuses": unexpected,
        "failures": sale.failures[:20],
        "holds_kept_at_end": len(sale.kept),
        "seats_kept_at_end": sale.kept_seats,
        "cpu": cpu,
        **verdict(sale, unexpected, violations),
    }


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.hold_path", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=100, help="virtual buyers at once (default 100)")
    add_server_options(parser)
    add_load_generator_options(parser)
    parser.add_argument("--seats", type=seat_range, default=(2, 2), help="seats per hold: N or LOW-HIGH (default 2)")
    parser.add_argument("--duration", type=float, default=20, help="seconds, unless the show sells out first")
    parser.add_argument("--release", type=float, default=0.5, help="chance a buyer gives a hold up at once")
    parser.add_argument("--hot-share", type=float, default=0.7, help="share of picks in the middle third of rows")
    add_run_options(parser, database_url=DEFAULT_DATABASE_URL, redis_url=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--pairs",
        action="store_true",
        help="issue 6's hot show instead: every pair of neighbouring seats asked for by two buyers, once each "
        "(2,000 requests on the 2,000-seat hall), no give-ups; ends when all are answered",
    )
    parser.add_argument(
        "--key-cap",
        type=int,
        help="the bench key's cap on held seats per show (default: none); at the hall's size it never refuses, "
        "so a run measures only what the cap costs",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.seats[1] > 10:
        parser.error("a hold takes at most 10 seats (TICKETING_MAX_SEATS)")

    ensure_database(options.database_url)
    drop_queued_wake_ups(options.redis_url)  # an interrupted run may have left some
    pool_max, server_settings = plan_server(options)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url, key_cap=options.key_cap)
    sale = HoldSale(show_id=show_id, movie_id=movie_id, hall=hall, options=options, run_tag=secrets.token_hex(4))
    served = serve_sale(sale, run_sale, pool_max=pool_max, log_prefix="bench-holds-server-")
    server_settings["celery_wake_ups_queued"] = drop_queued_wake_ups(options.redis_url)
    if options.http_client == "locust":
        served.cpu["note"] += CPU_NOTE
    violations = check_invariants(options.database_url, sale, served.seat_map)
    report = build_report(
        sale, elapsed=served.elapsed, cpu=served.cpu, server_settings=server_settings, violations=violations
    )
    if options.balanced:
        report["responses_by_process"] = served.responses_by_process
    publish_report(report, options, log=served.log, server_log=served.server_log)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

"""A show sells out: 1,000 buyers hold and pay for the 2,000 seats of one show through a real ASGI server.

Usage:
    python -m bench.sell_out [--buyers 1000] [--workers 2 | --balanced 2] [--pool-max 10] [--duration 60] [--seed 7]
                             [--http-client locust [--locust PATH] | aiohttp | httpx] [--json FILE]
    python -m bench.sell_out --buyers 200 --hall-seats 500 --workers 1 --pool-max 4   # a quick sell-out

The scenario of a ticket drop: the sale opens and every buyer arrives at once. Reuses bench/show.py's show,
bench/harness/ (database setup, server, CPU accounting and percentiles) and what the hot show's sale shares
(bench/sale.py), and adds payment; its buyers are bench/sell_out_moves.py's (run by bench/sell_out_buyers.py),
its invariants bench/sell_out_checks.py's. All on this machine:
1. Its own database (postgres://postgres@127.0.0.1:5432/ticketing_bench_sell_out unless --database-url; created
   and migrated when missing) and its own Redis database (/3, which also keeps the sandbox payment provider's
   ledger). Rows and ledger entries of earlier runs are deleted, then one show is scheduled in a 2,000-seat hall
   (bench.show.prepare_show).
2. `uvicorn ticketing.asgi:application --workers N` on a free loopback port, production settings, the real
   sandbox payment provider (bookings.providers.sandbox.SandboxProvider, the default), each worker's connection pool
   sized so that all of them fit under PostgreSQL's max_connections. With --balanced K instead: K uvicorn
   processes of one worker each behind HAProxy (servers.web_server_running, bench/harness/balancer.py); the CPU report
   counts every web process and HAProxy, and the report says how many responses each process sent.
3. B virtual buyers, all started together: the FastHttpUsers of one headless Locust process (the default;
   --http-client aiohttp or httpx: the same buyers as asyncio tasks, the client of the sittings before issue 17)
   (bench/sell_out_locust.py, run by --locust from its own virtualenv, as bench.hold_path's: bench/locust_run.py
   sends the plan in a JSON file, the counts come back in another; the report's load_generator CPU is Locust's
   process, its start included, plus this one's). Each wants 1-10 seats (random) and would settle for fewer,
   down to its own random minimum. About half ask for `best_available`, the rest choose neighbouring
   seats from what they believe is free: the seats of every hold the clients have been answered, as a seat map
   kept live over the WebSocket would show them (idealised: no delay). Each buyer:
   - holds (POST /api/v1/reservations). On 409 it does what a person would: "Seats Unavailable" means choose
     again (a chooser picks other seats; a best-available buyer turns to the map, since best available without
     a type never gives Wheelchair or Companion places); "Show Full" means it gives up; "Retry" (too few seats
     free, the rest held by others, who all pay here) means it asks for one seat fewer, or gives up below its
     minimum. Before each ask it looks at the map: it asks for no more than the map shows free, and gives up
     without asking when that is below its minimum. At most MAX_HOLD_ATTEMPTS holds a buyer.
   - pays (POST /api/v1/reservations/{id}/pay) with the sandbox's succeeding card and its own Idempotency-Key.
   The run ends when every buyer has booked or given up (the show is sold out for them), or at --duration (no
   new hold after it; a hold already granted is still paid for), or at the first failure.
4. Figures: the wall time from the first request to the last booking ("sold out in N s"; issue's target under
   10 s), bookings/s and seats booked/s over that time, latency percentiles per call and answer (hold 201, hold
   409, pay 200), answers by status and error code, what became of the buyers, and where the CPU went.
5. Invariants, read straight from PostgreSQL and the provider's ledger (not through the app): no seat with two
   live claims; held + booked + free seats = the hall's size; no partial hold (each reservation's claims are
   exactly the seats it was answered with); each booking has exactly one successful charge, of the sum of its
   seats' prices, which the provider's ledger also has; the booked seats are exactly the ones clients were
   answered; no more seats booked than the hall has. Then the API's seat map must agree. The exit status is 1
   on any violation, any 5xx or other unexpected answer, or any connection error.

The load generator shares the machine's cores with the server, PostgreSQL and Redis: the figures are what one
small machine does with everything on it (the report says how the CPU time was split).
"""

import argparse
import os
import re
import secrets
import sys
from collections import Counter
from pathlib import Path

import psycopg
import redis

from bench.harness.database import ensure_database
from bench.harness.figures import publish_report, summary_ms
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import add_server_options, plan_server, serve_sale
from bench.locust_run import CPU_NOTE, add_load_generator_options
from bench.sale import add_run_options, verdict
from bench.sell_out_buyers import SellOutSale, run_sale
from bench.sell_out_checks import check_invariants
from bench.sell_out_moves import BEST_AVAILABLE_SHARE, HOT_SHARE, MAX_HOLD_ATTEMPTS, MOST_SEATS
from bench.show import HALL_SEATS, prepare_show

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_sell_out"
# Not 0 (make run), 1 (make test) or 2 (bench-holds): this run's ledger and any queued task stay its own.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
SANDBOX_PROVIDER = "bookings.providers.sandbox.SandboxProvider"
# 503s are expected too: a process whose admission queue is full or too slow sheds the request with a
# Retry-After, and the buyer sends it again then (harness.minding_busy); the report counts them.
EXPECTED = {"hold 201", "hold 409", "pay 200", "hold 503", "pay 503"}
# The last line of a traceback in the server's log, e.g. "django.db.utils.OperationalError: couldn't get a ...".
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b.*")


def percent(part, whole):
    return round(100 * part / max(1, whole), 1)


# --- The database, the ledger and the hall -------------------------------------------------------------------


def forget_earlier_runs(redis_url):
    """Delete the sandbox ledger and any queued Celery task that earlier runs left in the bench's own Redis db.

    Only with the default URL: another Redis database may be someone else's. Returns how many keys went.
    """
    if redis_url != DEFAULT_REDIS_URL:
        return 0
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match="*sandbox-payments:*", count=1000)) + [b"celery"]
    deleted = store.delete(*keys)
    store.close()
    return deleted


def queued_tasks(redis_url):
    """Celery tasks the run queued (no worker runs here; none are expected: nobody waits in line, no mail)."""
    broker = redis.Redis.from_url(redis_url)
    queued = broker.llen("celery")
    broker.close()
    return queued


def seat_types_of_show(database_url, show_id):
    """{seat id: seat type} of the show's hall: the seat map shows each seat's type."""
    with psycopg.connect(database_url) as connection:
        return dict(
            connection.execute(
                "SELECT s.id, s.seat_type FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id "
                "WHERE sh.id = %s",
                [show_id],
            ).fetchall()
        )


# --- The report -----------------------------------------------------------------------------------------------


def how_it_ended(sale, *, free):
    if sale.failures:
        return "failure"
    if free == 0:
        return "sold out"
    if any(reason.startswith("stopped") for reason in sale.buyers):
        return "time limit"
    if free < sale.fewest_given_up:
        return f"sold out for the buyers left: {free} seats free, too few for any who gave up"
    if any(reason.startswith("gave up") for reason in sale.buyers):
        return f"every buyer booked or gave up, {free} seats free that some could have used"
    return f"every buyer booked: {free} seats free (too few buyers to sell out)"


def build_report(sale, *, elapsed, cpu, server_settings, counts, violations):
    options = sale.options
    bookings = len(sale.booked)
    seats_booked = sum(len(seats) for seats, _ in sale.booked.values())
    to_last_booking_s = (sale.last_booking - sale.started) if sale.last_booking else None
    unexpected = {status: n for status, n in sale.statuses.items() if status not in EXPECTED}
    buyers_done = sum(sale.buyers.values())
    ended_by = how_it_ended(sale, free=counts["free"])
    requests = sum(sale.statuses.values())
    return {
        "setup": {
            **server_settings,
            "buyers": options.buyers,
            "seats_wanted": f"1-{MOST_SEATS}, each buyer settling for fewer down to its own random minimum",
            "best_available_share": BEST_AVAILABLE_SHARE,
            "hot_share_of_choosers": HOT_SHARE,
            "max_hold_attempts_per_buyer": MAX_HOLD_ATTEMPTS,
            "payment": f"the sandbox provider ({SANDBOX_PROVIDER}), card 4242424242424242",
            "hall_seats": len(sale.seat_types),
            "show_id": sale.show_id,
            "duration_limit_s": options.duration,
            "seed": options.seed,
        },
        "ended_by": ended_by,
        "sold_out_in_s": round(to_last_booking_s, 2) if ended_by.startswith("sold out") else None,
        "target_s": 10,
        "first_request_to_last_booking_s": round(to_last_booking_s, 2) if to_last_booking_s else None,
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": {
            "bookings": round(bookings / to_last_booking_s, 1) if to_last_booking_s else 0,
            "seats_booked": round(seats_booked / to_last_booking_s, 1) if to_last_booking_s else 0,
            "requests": round(requests / elapsed, 1),
        },
        "demand": dict(sale.demand),
        "bookings": bookings,
        "seats_booked": seats_booked,
        "seats_at_end": counts,
        "latency_ms": {status: summary_ms(values) for status, values in sorted(sale.latencies.items())},
        "status_counts": dict(sorted(sale.statuses.items())),
        "error_codes": dict(sorted(sale.error_codes.items())),
        "hold_409_percent_of_holds": percent(
            sale.statuses["hold 409"], sale.statuses["hold 201"] + sale.statuses["hold 409"]
        ),
        "buyers_outcome": dict(sorted(sale.buyers.items())),
        "buyers_unaccounted": options.buyers - buyers_done,
        "unexpected_statuses": unexpected,
        "failures": sale.failures[:20],
        "cpu": cpu,
        **verdict(sale, unexpected, violations),
    }


def server_exceptions(server_log):
    """The server log's exception lines ("psycopg_pool.PoolTimeout: ...") counted: why the 5xx came, at a glance."""
    found = Counter(
        line.strip()
        for line in server_log.splitlines()
        if EXCEPTION_LINE.match(line) and not line.startswith(("Traceback", "During handling"))
    )
    return dict(found.most_common(10))


def bookings_and_seats(report):
    rates = report["throughput_per_s"]
    return (
        f"{report['bookings']} bookings ({rates['bookings']}/s), {report['seats_booked']} seats "
        f"({rates['seats_booked']}/s)"
    )


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.sell_out", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buyers", type=int, default=1000, help="virtual buyers, all arriving at once (default 1000)")
    add_server_options(parser)
    add_load_generator_options(parser)
    parser.add_argument("--duration", type=float, default=60, help="seconds before no new hold is asked (default 60)")
    parser.add_argument(
        "--hall-seats",
        type=int,
        default=HALL_SEATS,
        help=f"seats of the hall (default {HALL_SEATS}); fewer for a quick sell-out with fewer buyers",
    )
    add_run_options(parser, database_url=DEFAULT_DATABASE_URL, redis_url=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    # The run pays through the real sandbox provider, whose ledger the checks read: no stand-in may replace it.
    if os.environ.get("TICKETING_PAYMENT_PROVIDER", SANDBOX_PROVIDER) != SANDBOX_PROVIDER:
        sys.exit(f"Unset TICKETING_PAYMENT_PROVIDER: this benchmark pays through {SANDBOX_PROVIDER}.")
    ensure_database(options.database_url)
    forget_earlier_runs(options.redis_url)
    pool_max, server_settings = plan_server(options)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url, hall_seats=options.hall_seats)
    sale = SellOutSale(
        show_id=show_id,
        movie_id=movie_id,
        hall=hall,
        seat_types=seat_types_of_show(options.database_url, show_id),
        options=options,
        run_tag=secrets.token_hex(4),
    )
    server_settings["hold_seconds"] = int(os.environ.get("TICKETING_HOLD_SECONDS", 300))
    served = serve_sale(sale, run_sale, pool_max=pool_max, log_prefix="bench-sell-out-server-")
    server_settings["celery_tasks_queued"] = queued_tasks(options.redis_url)
    if options.http_client == "locust":
        served.cpu["note"] += CPU_NOTE
    counts, violations = check_invariants(options.database_url, sale, served.seat_map)
    report = build_report(
        sale,
        elapsed=served.elapsed,
        cpu=served.cpu,
        server_settings=server_settings,
        counts=counts,
        violations=violations,
    )
    if options.balanced:
        report["responses_by_process"] = served.responses_by_process
    report["server_exceptions"] = server_exceptions(served.server_log)
    summary = (
        f"{report['ended_by']}; first request to last booking {report['first_request_to_last_booking_s']} s, "
        f"{bookings_and_seats(report)}; invariants {'hold' if not any(violations.values()) else 'VIOLATED'}"
    )
    publish_report(report, options, log=served.log, server_log=served.server_log, summary=summary)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

"""python -m bench.waiting_room: the options and the run (the package's docstring says what it does)."""

import argparse
import asyncio
import os
import random
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

import bench.waiting_room
from bench.harness.balancer import stack_running
from bench.harness.clients import bench_clients
from bench.harness.database import connection_budget, ensure_database, refresh_planner_statistics
from bench.harness.figures import code_version, cpu_report, publish_report, take_cpu_snapshot
from bench.harness.processes import free_port, unwind_on_sigterm
from bench.harness.site import server_environment, server_running
from bench.show import BENCH_KEY, prepare_show
from bench.waiting_room import database as db
from bench.waiting_room.checks import admission_order, outcome_checks, seat_checks
from bench.waiting_room.report import (
    HOLD_CAPACITY_PER_SECOND,
    join_figures,
    markdown,
    rate_figures,
    tend_rooms_ticks,
)
from bench.waiting_room.visitors import (
    CLIENT_TIMEOUT_SECONDS,
    POLL_MAX_SECONDS,
    Sale,
    drive_visitor,
    join_all,
    join_late,
)
from bench.waiting_surge.figures import process_footprint

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_room"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
REDIS_PREFIX = "roombench:"
HALL_SEATS = 2000


def parse_options():
    parser = argparse.ArgumentParser(
        prog="python -m bench.waiting_room",
        description=bench.waiting_room.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--visitors", type=int, default=100_000, help="visitors joining before the opening")
    parser.add_argument(
        "--api-joins",
        type=int,
        help="NOT the issue's figure, a shortcut for a short run: of the visitors, how many join through the API on "
        "each server (default: all of them); the rest are written into the room straight, before the joins",
    )
    parser.add_argument("--join-concurrency", type=int, default=300, help="joins in flight at once (default 300)")
    parser.add_argument(
        "--rate", type=int, default=3000, help="the room's admissions a minute during the sale (default 3000: 50/s)"
    )
    parser.add_argument("--drain-rate", type=int, default=60000, help="admissions a minute once the show is full")
    parser.add_argument("--drive", type=int, default=1500, help="the first places the bench plays (poll, hold, pay)")
    parser.add_argument("--late", type=int, default=200, help="visitors joining after the opening, one at a time")
    parser.add_argument("--opening-in", type=float, default=5, help="seconds from the joins' end to the opening")
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=CLIENT_TIMEOUT_SECONDS,
        help="seconds the driven visitors' clients wait for an answer before sending it again (default 60)",
    )
    parser.add_argument("--sale-connections", type=int, default=200, help="the driven visitors' connections")
    parser.add_argument("--pool-max", type=int, default=10, help="database connections per web process")
    parser.add_argument("--max-sale-seconds", type=float, default=300)
    parser.add_argument("--max-drain-seconds", type=float, default=400)
    parser.add_argument("--skip-single", action="store_true", help="skip the join phase on one uvicorn process")
    parser.add_argument("--http-client", choices=("aiohttp", "httpx"), default="aiohttp")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here (and a markdown summary as .md)")
    return parser.parse_args()


def run_loop(coroutine):
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


# The tables a sale grows: analyzed as autovacuum would while it runs (db.analyzed_as_it_grows).
SALE_TABLES = (
    "waiting_roomvisitor",
    "bookings_reservation",
    "bookings_seatclaim",
    "bookings_payment",
    "bookings_idempotentrequest",
    "bookings_showseatcount",
    "bookings_showsales",
)


def main():
    options = parse_options()
    phase_seconds, started = {}, time.monotonic()
    ensure_database(options.database_url)
    db.forget_earlier_on_sales(options.database_url)
    redis.Redis.from_url(options.redis_url).flushdb()  # this bench's own Redis database
    # Every process started from here inherits these (server_environment copies os.environ).
    os.environ.update({"TICKETING_ROOM_GRACE_SECONDS": "3600", "TICKETING_REDIS_PREFIX": REDIS_PREFIX})
    show_id, movie_id, _hall = prepare_show(options.database_url, options.redis_url, hall_seats=HALL_SEATS)
    refresh_planner_statistics()
    _, _, pool_max = connection_budget(options.database_url, 2, options.pool_max)
    environment = server_environment(database_url=options.database_url, redis_url=options.redis_url, pool_max=pool_max)
    tag = datetime.now(UTC).strftime("r%H%M%S")
    api_joins = options.visitors if options.api_joins is None else min(options.api_joins, options.visitors)
    sessions = [f"{tag}-{n}" for n in range(api_joins)]
    phase_seconds["prepare"] = round(time.monotonic() - started, 1)
    report = {"setup": setup_of(options, pool_max, show_id), "join": {}}
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-room-", suffix=".log", delete=False)  # noqa: SIM115

    if not options.skip_single:
        mark = time.monotonic()
        on_sale_id = db.mark_show_on_sale(show_id, rate=options.rate)
        db.seed_visitors(options.database_url, on_sale_id, options.visitors - api_joins, f"{tag}a")
        port = free_port()
        with server_running(workers=1, port=port, environment=environment, log=log) as server:
            report["join"]["one uvicorn process"] = joined_on(
                options, server, f"http://127.0.0.1:{port}", on_sale_id, sessions
            )
        db.delete_on_sale(options.database_url, on_sale_id)
        phase_seconds["join, one process"] = round(time.monotonic() - mark, 1)

    mark = time.monotonic()
    on_sale_id = db.mark_show_on_sale(show_id, rate=options.rate)
    db.seed_visitors(options.database_url, on_sale_id, options.visitors - api_joins, f"{tag}b")
    with stack_running(
        web_processes=2,
        haproxy_template=slack_health_checks(log),
        environment=environment,
        celery_workers=1,
        beat=True,
        celery_environment={"DATABASE_POOL_MIN": "1", "DATABASE_POOL_MAX": "2"},
        log=log,
    ) as stack:
        report["join"]["2 processes behind HAProxy"] = joined_on(options, stack, stack.url, on_sale_id, sessions)
        phase_seconds["join, behind HAProxy"] = round(time.monotonic() - mark, 1)
        refresh_planner_statistics()  # as autovacuum would after 100,000 rows
        opens_at = db.open_sale_in(on_sale_id, options.opening_in)
        mark = time.monotonic()
        before = take_cpu_snapshot(stack, options.database_url)
        with db.analyzed_as_it_grows(options.database_url, SALE_TABLES):
            sale, late, timeline = run_loop(run_sale(options, stack.url, on_sale_id, show_id, movie_id, opens_at, tag))
        after = take_cpu_snapshot(stack, options.database_url)
        cpu = cpu_report(before, after, stack.pid, time.monotonic() - mark)
        spread = stack.responses_by_process()
    phase_seconds.update(timeline.pop("phase_seconds"))
    log.seek(0)
    server_log = "".join(line for line in log if not line.startswith("Conflict: "))

    mark = time.monotonic()
    report.update(sale_report(options, on_sale_id, show_id, sale, late, timeline, cpu, spread, server_log))
    phase_seconds["checks"] = round(time.monotonic() - mark, 1)
    phase_seconds["total"] = round(time.monotonic() - started, 1)
    report["phase_seconds"] = phase_seconds
    join_failures = sum(len(phase["failures"]) for phase in report["join"].values())
    report["invariants"]["joins_all_201"] = join_failures
    report["ok"] = report["ok"] and not join_failures
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.with_suffix(".md").write_text(markdown(report))
    publish_report(report, options, log=log, server_log=server_log, summary=markdown(report))


# HAProxy's health checks with more slack than deploy/haproxy.cfg's (a 2-s check, 3 misses take a process out):
# on this machine, saturated by the bench itself and by others' work, a check answered late took both web
# processes out of rotation and HAProxy answered 503 to everyone, a failure of the load's machine, not of the
# room. Here a check may take 10 s and a process is out after 10 misses 2 s apart.
HEALTH_CHECK_SLACK = {
    "timeout check 2s": "timeout check 10s",
    "default-server check inter 1s fall 3 rise 2": "default-server check inter 2s fall 10 rise 2",
}


def slack_health_checks(log):
    """deploy/haproxy.cfg with HEALTH_CHECK_SLACK, written beside the run's log: the template's path."""
    from bench.harness.haproxy import HAPROXY_TEMPLATE

    text = HAPROXY_TEMPLATE.read_text()
    for strict, slack in HEALTH_CHECK_SLACK.items():
        if strict not in text:
            raise RuntimeError(f"deploy/haproxy.cfg has no {strict!r} any more: update HEALTH_CHECK_SLACK")
        text = text.replace(strict, slack)
    path = Path(log.name).with_suffix(".haproxy.cfg")
    path.write_text(text)
    return path


def setup_of(options, pool_max, show_id):
    return {
        "code": code_version(),
        "command": "python -m bench.waiting_room " + shlex.join(sys.argv[1:]),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "visitors": options.visitors,
        "visitors_joined_through_the_api": options.visitors if options.api_joins is None else options.api_joins,
        "client_timeout_s": {"joins": CLIENT_TIMEOUT_SECONDS, "driven visitors": options.client_timeout},
        "haproxy_health_checks": "timeout check 10s, inter 2s fall 10 rise 2 (deploy/haproxy.cfg: 2s, 1s, 3, 2)",
        "late_visitors": options.late,
        "driven_visitors": options.drive,
        "join_concurrency": options.join_concurrency,
        "rate_per_minute": options.rate,
        "drain_rate_per_minute": options.drain_rate,
        "hall_seats": HALL_SEATS,
        "seats_wanted": "1-4, best available",
        "pool_max_per_web_process": pool_max,
        "celery": "1 worker (solo) + beat (waiting.tend_rooms every 1 s), behind HAProxy's phase and the sale",
        "http_client": options.http_client,
        "room_grace_seconds": 3600,
        "show_id": show_id,
    }


def joined_on(options, server, url, on_sale_id, sessions):
    """The join phase on a running server: the joins, then their figures and the memory they took."""
    web_pids = getattr(server, "web_pids", None) or [server.pid]
    rss = lambda: round(sum(process_footprint(pid)["rss_mb"] for pid in web_pids), 1)  # noqa: E731
    run_loop(warm(url, on_sale_id))
    rss_before, redis_before = rss(), db.redis_used_memory(options.redis_url)
    before = take_cpu_snapshot(server, options.database_url)
    with db.analyzed_as_it_grows(options.database_url) as analyzed:
        joins = run_loop(
            join_all(url, on_sale_id, sessions, concurrency=options.join_concurrency, http_client=options.http_client)
        )
    after = take_cpu_snapshot(server, options.database_url)
    figures = join_figures(
        joins,
        memory=db.postgres_memory(options.database_url, on_sale_id),
        rss_before_mb=rss_before,
        rss_after_mb=rss(),
        redis_before=redis_before,
        redis_after=db.redis_used_memory(options.redis_url),
        presence=db.redis_presence(options.redis_url),
        cpu=cpu_report(before, after, server.pid, joins.finished - joins.started),
    )
    figures["analyze_runs"] = len(analyzed)  # as autovacuum would (db.analyzed_as_it_grows)
    return figures


async def warm(url, on_sale_id):
    """The server up, and each web process's imports and pools warmed on the room's page."""
    from bench.waiting_room.visitors import warm_up

    async with bench_clients(url, 20, api_key=BENCH_KEY, keep_cookies=False) as clients:
        await warm_up(clients, f"/api/v1/on-sales/{on_sale_id}/room")


async def run_sale(options, url, on_sale_id, show_id, movie_id, opens_at, tag):
    """The opening, the sale to the driven visitors, and the drain: (Sale, the late joiners, the timeline)."""
    timeline, phases = {"opens_at": opens_at.timestamp()}, {}
    await asyncio.sleep(max(0.0, opens_at.timestamp() - time.time()) + 0.05)
    mark = time.monotonic()
    late_sessions = [f"{tag}-late-{n}" for n in range(options.late)]
    late_task = asyncio.create_task(join_late(url, on_sale_id, late_sessions, http_client=options.http_client))
    await asyncio.to_thread(db.wait_until_drawn, options.database_url, on_sale_id, seconds=60)
    head = await asyncio.to_thread(db.head_of_line, options.database_url, on_sale_id, options.drive)
    per_second = options.rate / 60
    async with bench_clients(
        url,
        options.sale_connections,
        api_key=BENCH_KEY,
        keep_cookies=False,
        http_client=options.http_client,
        timeout=options.client_timeout,
    ) as clients:
        sale = Sale(client=clients, show_id=show_id, movie_id=movie_id, rng=random.Random(options.seed))
        early = [
            asyncio.create_task(
                drive_visitor(sale, vid, session, first_poll_within=min(POLL_MAX_SECONDS, place / per_second))
            )
            for vid, session, place in head
        ]
        late = await late_task
        timeline["late_joined_s_after_opening"] = round(time.time() - opens_at.timestamp(), 1)
        late_tasks = [
            asyncio.create_task(drive_visitor(sale, vid, session, first_poll_within=POLL_MIN_SECONDS_FIRST))
            for session, vid, _place in late
        ]
        done, _ = await asyncio.wait(early, timeout=options.max_sale_seconds)
        timeline["sale_end"] = time.time()
        phases["sale (driven early visitors done)"] = round(time.monotonic() - mark, 1)
        timeline["driven_early_unfinished"] = len(early) - len(done)
        mark = time.monotonic()
        await asyncio.to_thread(db.set_rate, on_sale_id, options.drain_rate)
        total = options.visitors + options.late
        deadline = time.monotonic() + options.max_drain_seconds
        while time.monotonic() < deadline:
            called, _last, _admitted = await asyncio.to_thread(db.room_state, options.database_url, on_sale_id)
            if called >= total and all(task.done() for task in late_tasks):
                break
            await asyncio.sleep(1)
        timeline["drain_end"] = time.time()
        phases["drain (to the last late joiner)"] = round(time.monotonic() - mark, 1)
        sale.stop.set()
        await asyncio.gather(*early, *late_tasks)
    timeline["driven"] = [vid for vid, _, _ in head] + [vid for _, vid, _ in late]
    timeline["phase_seconds"] = phases
    return sale, late, timeline


POLL_MIN_SECONDS_FIRST = 1.0


def sale_report(options, on_sale_id, show_id, sale, late, timeline, cpu, spread, server_log):
    from bench.harness.figures import summary_ms

    visitors = db.read_visitors(options.database_url, on_sale_id)
    secret, drawn_at, drawn_count, opens_at = db.read_room(options.database_url, on_sale_id)
    order_wrong, order = admission_order(visitors, secret, late)
    seats_wrong, seats = seat_checks(options.database_url, show_id, sale.booked_seats)
    outcome_wrong, outcomes = outcome_checks(sale, timeline["driven"])
    admitted_at = [row[5] for row in visitors if row[5] is not None]
    sale_end, drain_end = timeline["sale_end"], timeline["drain_end"]
    in_sale = [t for t in admitted_at if t <= sale_end]
    ticks = sorted(set(admitted_at))
    told = [sale.told_admitted[row[0]] - row[5] for row in visitors if row[0] in sale.told_admitted]
    violations = {"admission_order": order_wrong, **seats_wrong, **outcome_wrong}
    holds = rate_figures(sale.hold_sent)
    return {
        "sale": {
            "draw": {
                "drawn_count": drawn_count,
                "drawn_after_opening_s": round(drawn_at - opens_at, 2),
                "first_admission_after_opening_s": round(min(admitted_at) - opens_at, 2) if admitted_at else None,
            },
            "admissions_per_s": rate_figures(in_sale, start=opens_at, end=sale_end, window=10.0),
            "admissions_per_s_1s_windows": rate_figures(in_sale, start=opens_at, end=sale_end),
            "admission_ticks": {
                "count": len([t for t in ticks if t <= sale_end]),
                "interval_ms": summary_ms(
                    [1000 * (b - a) for a, b in zip(ticks, ticks[1:], strict=False) if b <= sale_end]
                ),
            },
            "holds_per_s": {
                **holds,
                "capacity_per_s": HOLD_CAPACITY_PER_SECOND,
                "max_within_capacity": (holds["max_per_s"] or 0) <= HOLD_CAPACITY_PER_SECOND,
            },
            "granted_holds_per_s": rate_figures(sale.hold_granted),
            "polls_per_s": rate_figures(sale.poll_sent),
            "tend_rooms_ticks": tend_rooms_ticks(server_log),
            "admitted_to_told_ms": summary_ms([1000 * t for t in told]),
            "latency_ms": {status: summary_ms(values) for status, values in sorted(sale.latencies.items())},
            "statuses": dict(sorted(sale.statuses.items())),
            "error_codes": dict(sorted(sale.error_codes.items())),
            "outcomes": outcomes,
            "failures": sale.failures[:20],
            "cpu": cpu,
            "responses_by_process": spread,
            "late_joined_s_after_opening": timeline["late_joined_s_after_opening"],
            "driven_early_unfinished": timeline["driven_early_unfinished"],
        },
        "drain": {
            "admissions_per_s": rate_figures([t for t in admitted_at if t > sale_end], start=sale_end, end=drain_end),
            "called_everyone": order["admitted"] == len(visitors),
        },
        "order": order,
        "seats_at_end": seats,
        "server_tracebacks_logged": server_log.count("Traceback"),
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
        "ok": not any(violations.values()) and not server_log.count("Traceback"),
    }


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

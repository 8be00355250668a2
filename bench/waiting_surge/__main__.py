"""python -m bench.waiting_surge: the options and the run (the package's docstring says what it does)."""

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import redis

import bench.waiting_surge
from bench.harness.clients import seat_range
from bench.harness.database import connection_budget, ensure_database, refresh_planner_statistics
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import add_balanced_option, web_server_running
from bench.harness.site import celery_running, server_environment
from bench.show import prepare_show
from bench.waiting_surge.database import (
    CELERY_APPLICATION_NAME,
    WEB_APPLICATION_NAME,
    forget_earlier_lines,
    hold_every_seat,
    read_line,
    with_application_name,
)
from bench.waiting_surge.invariants import check_invariants
from bench.waiting_surge.listener import ChannelListener, listen
from bench.waiting_surge.phases import run_surge
from bench.waiting_surge.report import build_report, setup_figures
from bench.waiting_surge.waiters import POLL_WAIT_SECONDS, Surge

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_surge"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"


def parse_options():
    parser = argparse.ArgumentParser(
        prog="python -m bench.waiting_surge",
        description=bench.waiting_surge.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--waiters", type=int, default=5000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--seats-wanted", type=seat_range, default=(1, 4), help="per waiter: N or LOW-HIGH (1-4)")
    parser.add_argument("--join-concurrency", type=int, default=50, help="joins in flight at once (default 50)")
    parser.add_argument("--poll-wait", type=int, default=POLL_WAIT_SECONDS, help="the polls' wait= (default 60)")
    parser.add_argument("--pool-max", type=int, default=8, help="the web process's database pool (default 8)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes (make serve: 2)")
    parser.add_argument("--celery-workers", type=int, default=1, help="Celery workers, each with its pool (default 1)")
    add_balanced_option(parser, instead_of="one uvicorn process")
    parser.add_argument("--hold-seconds", type=int, default=20, help="TICKETING_HOLD_SECONDS of the servers")
    parser.add_argument("--grace-seconds", type=int, default=1, help="TICKETING_HOLD_GRACE_SECONDS of the servers")
    parser.add_argument("--lapse-spread", type=float, default=10, help="the holders' holds lapse over this many s")
    parser.add_argument("--pay-share", type=float, default=0.8, help="chance a served waiter pays (else walks away)")
    parser.add_argument("--max-serving-seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--listener", action="store_true", help=argparse.SUPPRESS)  # the listener process
    parser.add_argument("--show-id", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if not options.listener and options.seats_wanted[1] > 10:
        parser.error("a waiter wants at most 10 seats (TICKETING_MAX_SEATS)")
    return options


def main():
    options = parse_options()
    if options.listener:
        return listen(options.redis_url, options.show_id)
    (max_connections, in_use, pool_max), show_id, movie_id, hall = prepare(options)
    listener = ChannelListener(options.redis_url, show_id)
    surge, figures, log_path = surge_on_servers(options, show_id, movie_id, pool_max=pool_max)
    listener.stop()

    line = read_line(options.database_url, show_id)
    violations, seat_counts = check_invariants(options.database_url, show_id, line, surge)
    setup = setup_figures(
        options,
        pool_max=pool_max,
        max_connections=max_connections,
        in_use=in_use,
        hall_seats=len(hall.seat_ids),
        show_id=show_id,
    )
    report = build_report(
        setup,
        figures,
        surge=surge,
        listener=listener,
        line=line,
        violations=violations,
        seat_counts=seat_counts,
        server_log=log_path.read_text(),
    )
    print(json.dumps(report, indent=2))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2) + "\n")
    if not report["ok"]:
        print(f"\nFAILED. The servers' log is {log_path}; it ends with:", file=sys.stderr)
        print(log_path.read_text()[-3000:], file=sys.stderr)
        sys.exit(1)


def prepare(options):
    """The database, Redis and the show, every seat held: (the connection budget, show id, movie id, hall)."""
    ensure_database(options.database_url)
    forget_earlier_lines(options.database_url)
    redis.Redis.from_url(options.redis_url).flushdb()  # this bench's own Redis database: queued tasks, groups
    # Every process this script starts inherits these: the served waiters' holds run on the short clock.
    os.environ.update(
        {
            "TICKETING_HOLD_SECONDS": str(options.hold_seconds),
            "TICKETING_HOLD_GRACE_SECONDS": str(options.grace_seconds),
        }
    )
    web_processes = options.balanced or 1
    max_connections, in_use, pool_max = connection_budget(options.database_url, web_processes, options.pool_max)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url)
    hold_every_seat(show_id, hall.seat_ids)
    refresh_planner_statistics()  # the hall is now full of claims
    return (max_connections, in_use, pool_max), show_id, movie_id, hall


def surge_on_servers(options, show_id, movie_id, *, pool_max):
    """The servers started, the surge run on them, the servers stopped: (surge, its figures, the servers' log)."""
    try:
        import uvloop

        run_loop = uvloop.run
    except ImportError:
        run_loop = asyncio.run
    work = Path(tempfile.mkdtemp(prefix="bench-surge-"))
    log_path = work / "servers.log"
    with (
        open(log_path, "w+") as log,
        web_server_running(
            workers=1,
            balanced=options.balanced,
            database_url=with_application_name(options.database_url, WEB_APPLICATION_NAME),
            redis_url=options.redis_url,
            pool_max=pool_max,
            log=log,
        ) as (server, url),
        celery_running(
            environment=server_environment(
                database_url=with_application_name(options.database_url, CELERY_APPLICATION_NAME),
                redis_url=options.redis_url,
                pool_max=2,
            ),
            schedule=work / "celerybeat-schedule",
            workers=options.celery_workers,
            concurrency=options.worker_concurrency,
            log=log,
            name="surge",
        ) as (workers, beat),
    ):
        host, port = url.removeprefix("http://").split(":")
        surge = Surge(options=options, show_id=show_id, movie_id=movie_id, host=host, port=int(port))
        figures = run_loop(run_surge(surge, server=server, workers=workers, beat=beat))
    return surge, figures, log_path


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

"""The hold path under load: many buyers holding seats of one hot show through a real ASGI server.

Usage (make bench-holds runs it with the defaults):
    python bench/hold_path.py [--concurrency 100] [--workers 2 | --balanced 2] [--seats 2 | 1-4] [--duration 20]
                              [--json FILE]

What it does, all on this machine:
1. Its own database (postgres://postgres@127.0.0.1:5432/ticketing_bench_holds unless --database-url; created
   and migrated when missing) and its own Redis database (/2). Rows of earlier runs are deleted, then one show
   is scheduled tomorrow in a 2,000-seat hall (40 rows x 50 seats with aisles, the demo's plan) with an API
   key whose quota never bites.
2. `uvicorn ticketing.asgi:application --workers N` on a free loopback port, production settings
   (DJANGO_DEBUG=0), each worker's connection pool sized so that all of them fit under PostgreSQL's
   max_connections. It is stopped by its process id at the end, also when something fails.
   With --balanced K instead: K uvicorn processes of one worker each, every one on its own port, behind
   HAProxy (bench/stack.py, configured from deploy/haproxy.cfg); the clients talk to HAProxy, the CPU report
   counts every web process and HAProxy, and the report says how many responses each process sent.
3. C virtual buyers (asyncio, httpx) for --duration seconds or until the show sells out. Each
   buyer comes with its own session_id and wants --seats neighbouring seats, 70% of the time in the middle
   third of the rows (the hot seats). It picks them from the live seat map (what it knows is held), so a 409
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
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import aiohttp
import httpx
import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project: its apps, and bench/ as a package
from bench.stack import ROOT, free_port, proc_stats, stack_running
from ticketing.proxies import uvicorn_options

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_holds"
# Not 0 (make run) nor 1 (make test): the wake-up tasks this run queues must not reach anyone's worker.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
BENCH_KEY = "tk_bench_hold_path_key"
BENCH_KEY_NAME = "bench-holds"
HALL_SEATS = 2000
# Connections PostgreSQL keeps for everything else on the machine (psql, tests others run, this script).
CONNECTIONS_KEPT_FREE = 20
# The default connection pool per worker. Under load a worker runs many requests at once (a thread each);
# those beyond the pool wait for a connection, which is part of the latency measured. More connections
# would only add PostgreSQL backends competing for the same cores.
DEFAULT_POOL_MAX = 10
SERVER_START_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30
# Connections per httpx client (see run_sale).
CONNECTIONS_PER_CLIENT = 25
# A 503 with Retry-After is a process shedding load (its admission queue full or too slow): the client sends
# the request again after it (minding_busy), and the report counts them.
EXPECTED = {"POST 201", "POST 409", "DELETE 200", "POST 503"}


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary_ms(values):
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(percentile(values, 0.95), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def seat_range(text):
    """'2' -> (2, 2); '1-4' -> (1, 4)."""
    low, _, high = text.partition("-")
    low, high = int(low), int(high or low)
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"seats must be N or LOW-HIGH with 1 <= LOW <= HIGH, got {text!r}")
    return low, high


# --- The database and the show ------------------------------------------------------------------------------


def ensure_database(database_url):
    """Create the bench's database when it is missing (CREATE DATABASE can't run inside a transaction)."""
    params = conninfo_to_dict(database_url)
    name = params["dbname"]
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", file=sys.stderr)


def connection_budget(database_url, workers, wanted):
    """(max_connections, connections in use now, pool size per worker) so the server fits beside the rest."""
    with psycopg.connect(database_url) as connection:
        maximum = int(connection.execute("SHOW max_connections").fetchone()[0])
        in_use = connection.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
    per_worker = min(wanted, (maximum - in_use - CONNECTIONS_KEPT_FREE) // workers)
    if per_worker < 1:
        sys.exit(f"PostgreSQL has {in_use} of {maximum} connections in use: no room for {workers} workers.")
    return maximum, in_use, per_worker


def setup_django(database_url, redis_url, **extra_environment):
    """Django in this process, for the bench's own reads and writes; the load itself goes through the server.

    extra_environment: more settings (e.g. TICKETING_HOLD_SECONDS="3600"). Like the rest, they stay in
    os.environ, so the server started afterwards inherits them (server_environment copies os.environ).
    """
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "ticketing.settings",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": "2",
            **extra_environment,
        }
    )
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the settings' INFO would log every request


def prepare_show(database_url, redis_url, *, key_cap=None):
    """Migrate, delete earlier runs' rows, and schedule a fresh show; return what the buyers need to know.

    `key_cap`: the bench key's held seats per show (None: no cap), for the price of a capped partner.

    Django is set up here, in this process, only for the catalog services; the load goes through the server.
    """
    setup_django(database_url, redis_url)
    # Imported after setup, as Django requires.
    from django.core.management import call_command
    from django.db import transaction

    from bookings.models import IdempotentRequest, Payment, Reservation, SeatClaim
    from cinemas.demo import hall_plan, ticket_prices
    from cinemas.models import Cinema, City, Hall, Movie, Seat, Show
    from cinemas.services import build_seat_layout, schedule_show
    from ticketing.models import ApiKey
    from ticketing.services import create_api_key

    call_command("migrate", verbosity=0)
    with transaction.atomic():
        city, _ = City.objects.get_or_create(name="Bench City", state="", country="Nowhere")
        cinema, _ = Cinema.objects.get_or_create(
            city=city,
            name="Bench Cinema",
            defaults={"address": "1 Load Street", "postal_code": "00000", "latitude": 0, "longitude": 0},
            time_zone="UTC",
        )
        hall, _ = Hall.objects.get_or_create(cinema=cinema, name=f"Bench Hall {HALL_SEATS}")
        movie, _ = Movie.objects.get_or_create(
            title="Bench Premiere",
            defaults={
                "duration": 150,
                "genre": "Action",
                "language": "English",
                "release_date": datetime.now(UTC).date(),
                "country": "Nowhere",
            },
        )
        # Earlier runs' holds would skew this one's seat map and counts; the database is the bench's own.
        old_shows = Show.objects.filter(hall=hall)
        SeatClaim.objects.filter(show__in=old_shows).delete()
        Payment.objects.filter(reservation__show__in=old_shows).delete()
        Reservation.objects.filter(show__in=old_shows).delete()
        IdempotentRequest.objects.filter(api_key__name=BENCH_KEY_NAME).delete()
        old_shows.delete()
        if not hall.seats.exists():
            hall = build_seat_layout(hall=hall, plan=hall_plan(HALL_SEATS))
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        show = schedule_show(
            movie=movie,
            hall=hall,
            starts_at=datetime(tomorrow.year, tomorrow.month, tomorrow.day, 20, 0, tzinfo=UTC),
            prices=ticket_prices(hall.capacity),
        )
        if not ApiKey.objects.filter(name=BENCH_KEY_NAME).exists():
            create_api_key(
                name=BENCH_KEY_NAME, rate_per_minute=1_000_000_000, held_seats_per_show=None, raw_key=BENCH_KEY
            )
        ApiKey.objects.filter(name=BENCH_KEY_NAME).update(held_seats_per_show=key_cap)
    rows = {}
    for seat_id, y in Seat.objects.filter(hall=hall).order_by("y", "x").values_list("id", "y"):
        rows.setdefault(y, []).append(seat_id)
    return show.pk, show.movie_id, SeatingPlan(rows=list(rows.values()))


def refresh_planner_statistics():
    """ANALYZE the bench's database once its tables hold what the run starts from, as autovacuum does within a
    minute or so of a table's growth on a live site.

    A bench database fills in seconds: planned on the statistics of a nearly empty table, the show's seat count
    is a nested loop reading every reservation once per claim (50 ms for 2,000 held seats, where the right plan
    takes a fraction of a millisecond), and the benchmark would measure that plan instead of the code. Not
    right after emptying the tables, though: statistics saying "empty" are just as wrong a second later.
    VACUUM first: the earlier runs' rows were deleted, and a table whose pages are there but whose rows are not
    (the waiters', until the joins) is ANALYZEd as "no row in any page", which the planner keeps believing
    however many rows come (a line of 4,000 read as one row: waiting migration 0007). A live site never deletes
    those rows; vacuumed, an emptied table has no pages, as a fresh one.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


@dataclass
class SeatingPlan:
    """The hall as buyers see it: rows of seat ids from the screen back, each row left to right."""

    rows: list

    def __post_init__(self):
        self.seat_ids = [seat_id for row in self.rows for seat_id in row]
        third = len(self.rows) // 3
        self.hot_rows = self.rows[third : len(self.rows) - third]

    def pick(self, rng, count, *, held, avoid, hot_share):
        """`count` neighbouring free seats of one row (free as far as the live map knows), or None."""
        for _ in range(8):
            row = rng.choice(self.hot_rows if rng.random() < hot_share else self.rows)
            free = [seat_id for seat_id in row if seat_id not in held and seat_id not in avoid]
            if len(free) >= count:
                start = rng.randrange(len(free) - count + 1)
                return free[start : start + count]
        # Rows chosen at random kept coming up full: near the end of a sale, take whatever is left.
        free = [seat_id for seat_id in self.seat_ids if seat_id not in held]
        return rng.sample(free, count) if len(free) >= count else None


# --- The server --------------------------------------------------------------------------------------------


def server_environment(*, database_url, redis_url, pool_max):
    """What every web process of the bench runs with: production settings, a pool of `pool_max` connections."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ticketing.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DATABASE_POOL_MIN": str(min(2, pool_max)),
        "DATABASE_POOL_MAX": str(pool_max),
    }


def start_server(*, workers, port, database_url, redis_url, pool_max, log):
    environment = server_environment(database_url=database_url, redis_url=redis_url, pool_max=pool_max)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "ticketing.asgi:application",
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",  # Django's ASGI handler has no lifespan support; "auto" only logs that
        "--no-access-log",  # a log line per request would cost the shared cores more than the app's logging
        *uvicorn_options(environment),  # no proxy in front: forwarding headers are believed from nobody
    ]
    # Its own session, so that the fallback SIGKILL can reach the workers as well as the supervisor.
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=log, start_new_session=True)


@contextlib.contextmanager
def server_running(*, workers, port, database_url, redis_url, pool_max, log):
    """start_server, stopped (by stop_process) when the block ends, also when it fails."""
    server = start_server(
        workers=workers, port=port, database_url=database_url, redis_url=redis_url, pool_max=pool_max, log=log
    )
    try:
        yield server
    finally:
        stop_process(server)


def unwind_on_sigterm():
    """`kill` (SIGTERM) unwinds a bench like Ctrl-C, so its `finally` blocks stop the servers it started: they
    run in sessions of their own, and a bench killed outright leaves them serving (and, worse, a leftover
    Celery worker consuming the next run's tasks with the old code)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def stop_process(process, *, seconds=15):
    """SIGTERM the leader alone (uvicorn's supervisor and Celery's main process stop their children and wait for
    them, running tasks finish); SIGKILL its whole session if it is still up after `seconds`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def balanced_server_running(*, processes, database_url, redis_url, pool_max, log):
    """--balanced: `processes` uvicorn processes (one worker each, each its own port) behind HAProxy.

    Yields bench/stack.py's Stack: its `url` is HAProxy's; `pid`, `poll()` and `returncode` stand in for the
    uvicorn Popen of server_running, and `web_pids` / `balancer_pid` are what the CPU report counts. Every
    web process has the environment and pool of start_server's workers; no Celery (as with --workers).
    """
    with stack_running(
        web_processes=processes,
        environment=server_environment(database_url=database_url, redis_url=redis_url, pool_max=pool_max),
        log=log,
        start_seconds=SERVER_START_SECONDS,
    ) as stack:
        yield stack


@contextlib.contextmanager
def web_server_running(*, workers, balanced, database_url, redis_url, pool_max, log):
    """uvicorn --workers `workers` (server_running), or with `balanced` K, K processes behind HAProxy.

    Yields (server, base URL): the one the clients use, HAProxy's when balanced.
    """
    if balanced:
        with balanced_server_running(
            processes=balanced, database_url=database_url, redis_url=redis_url, pool_max=pool_max, log=log
        ) as stack:
            yield stack, stack.url
        return
    port = free_port()
    with server_running(
        workers=workers, port=port, database_url=database_url, redis_url=redis_url, pool_max=pool_max, log=log
    ) as server:
        yield server, f"http://127.0.0.1:{port}"


def describe_server(*, workers, balanced):
    if balanced:
        return f"{balanced} uvicorn processes (1 worker each) behind HAProxy (leastconn), DJANGO_DEBUG=0"
    return f"uvicorn --workers {workers} (uvloop, httptools), DJANGO_DEBUG=0"


# What a scenario script shares: its options for the server (add_server_options), the connection budget and the
# report's server settings (plan_server), the server itself (bench_server_running) and HAProxy's spread.


def add_http_client_option(parser):
    """--http-client, for the scenarios whose clients need no more of a response than AiohttpClient gives."""
    parser.add_argument(
        "--http-client",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="the load generator's HTTP client (default aiohttp: a fraction of httpx's CPU per request)",
    )


def add_server_options(parser):
    """--workers, --balanced and --pool-max, as every scenario takes them."""
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument(
        "--balanced",
        type=int,
        metavar="K",
        help="instead of uvicorn --workers: K uvicorn processes (1 worker each) behind HAProxy (bench/stack.py)",
    )
    parser.add_argument(
        "--pool-max",
        type=int,
        default=DEFAULT_POOL_MAX,
        help=f"database connections per worker (default {DEFAULT_POOL_MAX})",
    )


def web_processes(options):
    """How many processes serve the app: --balanced K's K, else uvicorn's --workers."""
    return getattr(options, "balanced", None) or options.workers


def plan_server(options):
    """(pool size per web process, the report's server settings) for the server the options ask for.

    The pool is --pool-max, or less so that every web process fits under PostgreSQL's max_connections.
    """
    max_connections, in_use, pool_max = connection_budget(
        options.database_url, web_processes(options), options.pool_max
    )
    settings = {
        "code": code_version(),
        "server": describe_server(workers=options.workers, balanced=options.balanced),
        "workers": web_processes(options),
        "pool_max_per_worker": pool_max,
        "postgres_max_connections": max_connections,
        "postgres_connections_in_use_before": in_use,
    }
    return pool_max, settings


def bench_server_running(options, *, pool_max, log):
    """web_server_running as the options say: --workers or --balanced, --database-url, --redis-url."""
    return web_server_running(
        workers=options.workers,
        balanced=options.balanced,
        database_url=options.database_url,
        redis_url=options.redis_url,
        pool_max=pool_max,
        log=log,
    )


def responses_by_process(server):
    """HAProxy's count of the responses each web process sent (the load was spread, or not); None without it.

    Ask while the server runs: the count comes from HAProxy's stats socket.
    """
    return server.responses_by_process() if hasattr(server, "responses_by_process") else None


def take_cpu_snapshot(server, database_url):
    """A CpuSnapshot of server_running's uvicorn or of balanced_server_running's stack (every web process)."""
    return CpuSnapshot.take(
        server.pid,
        database_url,
        web_pids=getattr(server, "web_pids", None),
        balancer_pid=getattr(server, "balancer_pid", None),
    )


async def wait_until_answering(client, server, show_id):
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode} before answering")
        try:
            response = await client.get(f"/api/v1/shows/{show_id}")
            if response.status_code == 200:
                return
            raise RuntimeError(f"GET /api/v1/shows/{show_id} answered {response.status_code}: {response.text[:300]}")
        except httpx.TransportError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {SERVER_START_SECONDS} s")


class AiohttpResponse:
    """What the scenarios read of an answer, as httpx.Response names it."""

    def __init__(self, status_code, content, headers, url):
        self.status_code, self.content, self.headers, self.url = status_code, content, headers, url

    @property
    def text(self):
        return self.content.decode(errors="replace")

    def json(self):
        return json.loads(self.content)


class AiohttpClient:
    """The part of httpx.AsyncClient the scenarios use, on aiohttp, whose CPU per request is a fraction of
    httpx's: the load generator shares the server's cores, and the figures should measure the server. Its
    failures are raised as httpx.TransportError, which the scenarios already handle."""

    def __init__(self, base_url, *, api_key, connections, keep_cookies):
        self.session = aiohttp.ClientSession(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=5),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            cookie_jar=aiohttp.CookieJar(unsafe=True) if keep_cookies else aiohttp.DummyCookieJar(),
        )

    async def request(self, method, url, *, json=None, params=None, headers=None, content=None):
        try:
            async with self.session.request(
                method, url, json=json, params=params, headers=headers, data=content
            ) as response:
                return AiohttpResponse(
                    response.status, await response.read(), response.headers, httpx.URL(str(response.url))
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise httpx.TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, url, **options):
        return await self.request("GET", url, **options)

    async def post(self, url, **options):
        return await self.request("POST", url, **options)

    async def put(self, url, **options):
        return await self.request("PUT", url, **options)

    async def delete(self, url, **options):
        return await self.request("DELETE", url, **options)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()


@contextlib.asynccontextmanager
async def bench_clients(base_url, connections, *, api_key=BENCH_KEY, keep_cookies=True, http_client="httpx"):
    """A list of clients for `connections` connections at once, CONNECTIONS_PER_CLIENT (or fewer) each: httpx's,
    or with http_client="aiohttp" AiohttpClient.

    Several clients rather than one: httpcore's pool looks at every one of its connections for each request,
    so one client of 200 connections would spend more CPU than the server on the shared cores. Request number
    n goes through clients[n % len(clients)]. keep_cookies=False: clients that accept no cookie, for callers
    whose users share a client but must not share a session.
    """
    shares = -(-connections // CONNECTIONS_PER_CLIENT)
    per_client = -(-connections // shares)
    # Idle connections are dropped well before HAProxy's `timeout http-keep-alive` (15 s) closes them, so a
    # request is never sent on a connection the balancer is closing at that moment.
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client, keepalive_expiry=5)

    def client():
        if http_client == "aiohttp":
            return AiohttpClient(base_url, api_key=api_key, connections=per_client, keep_cookies=keep_cookies)
        return httpx.AsyncClient(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            limits=limits,
            timeout=REQUEST_TIMEOUT_SECONDS,
            cookies=None if keep_cookies else CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(client()) for _ in range(shares)]


async def wait_and_warm_up(clients, server, show_id, options):
    """wait_until_answering, then warm every web process's imports, connection pool and caches on reads.

    Each client reads the show 4 times per web process, all at once, so that every process (uvicorn's workers,
    or HAProxy's K processes: least connections spreads requests in flight) gets some before the clock starts.
    """
    await wait_until_answering(clients[0], server, show_id)
    show_url = f"/api/v1/shows/{show_id}"
    await asyncio.gather(*(client.get(show_url) for client in clients for _ in range(4 * web_processes(options))))


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


# --- CPU accounting (Linux /proc) ---------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def process_table():
    """{pid: (parent pid, command name, CPU seconds so far)} of every process we may read."""
    return {
        pid: (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS) for pid, name, fields in proc_stats()
    }


def server_workers(server_pid):
    """The processes that serve: uvicorn's workers (not multiprocessing's resource tracker, also a child).

    With --workers 1 uvicorn spawns none and serves from its own process (no supervisor): [server_pid].
    """
    workers = []
    for entry in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{entry}/cmdline").read_bytes():
                workers.append(int(entry))
        except OSError:
            continue
    return workers or [server_pid]


def machine_ticks():
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSnapshot:
    table: dict
    busy: int
    total: int
    client: float
    workers: list
    backends: set
    balancer: int | None = None  # HAProxy's pid, with --balanced

    @classmethod
    def take(cls, server_pid, database_url, *, web_pids=None, balancer_pid=None):
        """web_pids: the web processes when they are not uvicorn's workers of server_pid (--balanced)."""
        with psycopg.connect(database_url) as connection:
            backends = {
                pid
                for (pid,) in connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
        busy, total = machine_ticks()
        workers = list(web_pids) if web_pids is not None else server_workers(server_pid)
        return cls(process_table(), busy, total, time.process_time(), workers, backends, balancer_pid)


def cpu_report(before, after, server_pid, elapsed):
    """CPU seconds each part of the run used, and what everything else on the machine took meanwhile."""

    def spent(pid):
        return after.table[pid][2] - before.table.get(pid, (0, "", 0.0))[2]

    # Processes that exited during the run are not counted by name; their time lands in "everything else".
    workers = [spent(pid) for pid in after.workers if pid in after.table]
    backends = sum(spent(pid) for pid in after.backends if pid in after.table)
    postgres = sum(spent(pid) for pid, (_, name, _) in after.table.items() if name.startswith("postgres"))
    redis_server = sum(spent(pid) for pid, (_, name, _) in after.table.items() if name.startswith("redis"))
    balancer = spent(after.balancer) if after.balancer in after.table else 0.0
    client = after.client - before.client
    busy = (after.busy - before.busy) / TICKS
    cores = os.cpu_count()
    return {
        "note": (
            f"The load generator, the server, PostgreSQL and Redis all share this machine's {cores} cores. "
            "postgres_other is PostgreSQL's background processes and other databases' sessions; "
            "everything_else is whatever else ran meanwhile (e.g. someone's test run)."
        ),
        "cores": cores,
        "machine_busy_percent": round(100 * (after.busy - before.busy) / max(1, after.total - before.total), 1),
        "cpu_seconds": {
            "wall_clock": round(elapsed, 1),
            "machine_busy": round(busy, 1),
            "load_generator": round(client, 1),
            "server_workers": [round(seconds, 1) for seconds in sorted(workers, reverse=True)],
            "postgres_backends_of_this_run": round(backends, 1),
            "postgres_other": round(postgres - backends, 1),
            "redis": round(redis_server, 1),
            **({"load_balancer": round(balancer, 1)} if after.balancer is not None else {}),
            "everything_else": round(busy - client - sum(workers) - postgres - redis_server - balancer, 1),
        },
    }


# --- The buyers -------------------------------------------------------------------------------------------


@dataclass
class Sale:
    """What the clients know and counted, shared by every virtual buyer (one event loop: no locks needed)."""

    show_id: int
    movie_id: int
    hall: SeatingPlan
    options: argparse.Namespace
    run_tag: str
    deadline: float = 0.0
    held: set = field(default_factory=set)  # the live seat map as the clients know it: seats of their holds
    answered: dict = field(default_factory=dict)  # reservation id -> seat ids, from every 201
    kept: dict = field(default_factory=dict)  # reservation id -> seat ids, holds still held at the end
    kept_seats: int = 0
    given_up: set = field(default_factory=set)  # reservation ids deleted (200)
    latencies: dict = field(default_factory=dict)  # "POST 201" etc. -> [ms]
    statuses: Counter = field(default_factory=Counter)
    conflicts: Counter = field(default_factory=Counter)  # 409s by error code
    failures: list = field(default_factory=list)
    sold_out: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, method, status, milliseconds):
        self.statuses[f"{method} {status}"] += 1
        self.latencies.setdefault(f"{method} {status}", []).append(milliseconds)

    def fail(self, what):
        self.failures.append(what)
        self.stop.set()  # a broken server answers fast: don't spin on it, end the run and say why

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline


async def timed(request):
    started = time.perf_counter()
    response = await request
    return response, (time.perf_counter() - started) * 1000


async def minding_busy(send, on_busy, *, attempts=30):
    """`send()`'s response, sent again after the Retry-After of each 503 (a process shedding load: its queue
    was full or too slow), as a well-behaved client would; on_busy(response, ms) sees each 503 answered.
    Returns (response, milliseconds) of the last try."""
    for _ in range(attempts - 1):
        response, ms = await timed(send())
        if response.status_code != 503 or "Retry-After" not in response.headers:
            return response, ms
        on_busy(response, ms)
        await asyncio.sleep(float(response.headers["Retry-After"]))
    return await timed(send())


async def buyer(number, client, sale):
    options = sale.options
    rng = random.Random(options.seed * 1_000_003 + number)
    customer = 0
    while sale.running():
        customer += 1
        session_id = f"{sale.run_tag}-{number}-{customer}"  # a new buyer each time: no session nears the cap
        count = rng.randint(*options.seats)
        lost = set()  # seats this buyer just lost a race for: it picks others next
        while sale.running():
            seats = sale.hall.pick(rng, count, held=sale.held, avoid=lost, hot_share=options.hot_share)
            if seats is None:
                if len(sale.hall.seat_ids) - sale.kept_seats < count:
                    sale.sold_out = True
                    sale.stop.set()
                    return
                await asyncio.sleep(0.005)  # seats of holds being given up come back in a moment
                lost.clear()
                continue
            answered = await ask_to_hold(client, sale, session_id, seats)
            if answered is None:
                return
            if answered == 409:
                lost.update(seats)
                continue
            reservation_id, got = answered
            if rng.random() < options.release:
                await give_up(client, sale, reservation_id, session_id, got)
            else:
                sale.kept[reservation_id] = got
                sale.kept_seats += len(got)
            break


async def ask_to_hold(client, sale, session_id, seats):
    """POST one hold and count its answer: 409, `(reservation_id, seat ids)` for a 201, or None on a failure."""
    body = {"session_id": session_id, "show_id": sale.show_id, "movie_id": sale.movie_id, "seats_to_reserve": seats}
    try:
        response, ms = await minding_busy(
            lambda: client.post("/api/v1/reservations", json=body),
            lambda busy, ms: sale.record("POST", busy.status_code, ms),
        )
    except httpx.HTTPError as exc:
        sale.fail(f"POST /api/v1/reservations: {type(exc).__name__}: {exc}")
        return None
    sale.record("POST", response.status_code, ms)
    if response.status_code == 409:
        sale.conflicts[response.json().get("error", {}).get("code", "?")] += 1
        return 409
    if response.status_code != 201:
        sale.fail(f"POST /api/v1/reservations {seats} -> {response.status_code}: {response.text[:300]}")
        return None
    answer = response.json()
    reservation_id = answer["reservation_id"]
    got = sorted(seat["id"] for seat in answer["seats"])
    sale.answered[reservation_id] = got
    if got != sorted(seats):
        sale.fail(f"hold {reservation_id} asked for seats {sorted(seats)} and was answered {got}")
    sale.held.update(got)
    return reservation_id, got


async def pair_buyer(client, sale, requests):
    """--pairs: take the next request (a pair of neighbouring seats) off the shared list and ask once."""
    while requests and not sale.stop.is_set():
        number, seats = requests.pop()
        answered = await ask_to_hold(client, sale, f"{sale.run_tag}-pair-{number}", seats)
        if answered is None:
            return
        if answered != 409:
            reservation_id, got = answered
            sale.kept[reservation_id] = got
            sale.kept_seats += len(got)


def pair_requests(sale):
    """Every pair of neighbouring seats of the hall, each asked for by two buyers, in a random order."""
    pairs = [row[start : start + 2] for row in sale.hall.rows for start in range(0, len(row) - 1, 2)]
    requests = [(number, pair) for number, pair in enumerate(pairs + pairs)]
    random.Random(sale.options.seed).shuffle(requests)
    return requests


async def give_up(client, sale, reservation_id, session_id, seats):
    try:
        response, ms = await timed(
            client.delete(f"/api/v1/reservations/{reservation_id}", params={"session_id": session_id})
        )
    except httpx.HTTPError as exc:
        sale.fail(f"DELETE /api/v1/reservations/{reservation_id}: {type(exc).__name__}: {exc}")
        return
    sale.record("DELETE", response.status_code, ms)
    if response.status_code != 200 or response.json().get("status") != "Cancelled":
        sale.fail(f"DELETE {reservation_id} -> {response.status_code}: {response.text[:300]}")
        sale.kept[reservation_id] = seats  # its fate is unknown: the checks treat it as still held
        return
    sale.given_up.add(reservation_id)
    sale.held.difference_update(seats)


async def run_sale(sale, *, base_url, server):
    options = sale.options
    async with bench_clients(base_url, options.concurrency, http_client=options.http_client) as clients:
        shares = len(clients)
        await wait_and_warm_up(clients, server, sale.show_id, options)
        before = take_cpu_snapshot(server, options.database_url)
        started = time.monotonic()
        sale.deadline = started + options.duration
        if options.pairs:
            requests = pair_requests(sale)
            sale.deadline = float("inf")  # the run ends when every request has been answered
            await asyncio.gather(
                *(pair_buyer(clients[number % shares], sale, requests) for number in range(options.concurrency))
            )
        else:
            await asyncio.gather(
                *(buyer(number, clients[number % shares], sale) for number in range(options.concurrency))
            )
        elapsed = time.monotonic() - started
        after = take_cpu_snapshot(server, options.database_url)
        seat_map = await clients[0].get(f"/api/v1/shows/{sale.show_id}/seats")
    return elapsed, before, after, seat_map


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
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
        "ok": not sale.failures and not unexpected and not any(violations.values()),
    }


@dataclass
class Served:
    """What serve_sale brings back from a sale on the server."""

    elapsed: float
    cpu: dict  # cpu_report's
    seat_map: httpx.Response  # the show's seat map, read through the API at the end
    responses_by_process: dict | None  # HAProxy's, with --balanced
    log: object  # the server's log file (closed; its name stays)
    server_log: str  # its text, less Django's warning for each 409


def serve_sale(sale, run_sale, *, pool_max, log_prefix):
    """Start the server sale.options ask for, run `run_sale(sale, base_url=, server=)` against it, stop it.

    run_sale is a coroutine function returning (elapsed seconds, CpuSnapshot before, CpuSnapshot after, the
    seat map response); the server logs to a temporary file named with log_prefix, left for publish_report.
    """
    with tempfile.NamedTemporaryFile("w+", prefix=log_prefix, suffix=".log", delete=False) as log:
        with bench_server_running(sale.options, pool_max=pool_max, log=log) as (server, base_url):
            elapsed, before, after, seat_map = asyncio.run(run_sale(sale, base_url=base_url, server=server))
            spread = responses_by_process(server)
        log.seek(0)
        # Django logs every 409 as a warning; they would bury whatever explains a failure.
        server_log = "".join(line for line in log if not line.startswith("Conflict: "))
    cpu = cpu_report(before, after, server.pid, elapsed)
    return Served(elapsed, cpu, seat_map, spread, log, server_log)


def publish_report(report, options, *, log, server_log, summary=None):
    """Print the report (JSON, on stdout), then `summary` (stderr), and write the report to --json if given.

    When report["ok"] is false: the end of the server's log (whose file is kept) and exit status 1; else the
    log's file is removed.
    """
    print(json.dumps(report, indent=2))
    if summary:
        print(summary, file=sys.stderr)
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2))
    if not report["ok"]:
        print(f"\nFAILED. The server's log ({log.name}) ends with:\n{server_log[-3000:]}", file=sys.stderr)
        sys.exit(1)
    os.unlink(log.name)


def code_version():
    """The commit the server ran, marked when the working tree differs from it (figures belong to code)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT, capture_output=True)
    except OSError:
        return None
    return commit.stdout.strip() + ("+changes" if changed.returncode else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=100, help="virtual buyers at once (default 100)")
    add_server_options(parser)
    add_http_client_option(parser)
    parser.add_argument("--seats", type=seat_range, default=(2, 2), help="seats per hold: N or LOW-HIGH (default 2)")
    parser.add_argument("--duration", type=float, default=20, help="seconds, unless the show sells out first")
    parser.add_argument("--release", type=float, default=0.5, help="chance a buyer gives a hold up at once")
    parser.add_argument("--hot-share", type=float, default=0.7, help="share of picks in the middle third of rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
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
    sale = Sale(show_id=show_id, movie_id=movie_id, hall=hall, options=options, run_tag=secrets.token_hex(4))
    served = serve_sale(sale, run_sale, pool_max=pool_max, log_prefix="bench-holds-server-")
    server_settings["celery_wake_ups_queued"] = drop_queued_wake_ups(options.redis_url)
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

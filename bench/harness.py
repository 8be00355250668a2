"""What the benchmarks (bench/), the fault scenarios (chaos/) and the tests share to run the site for real.

    from bench.harness import bench_server_running, plan_server, unwind_on_sigterm

Processes: a free loopback port (free_port), the project's uvicorn on it with production settings
(server_environment, start_server, server_running), or with --balanced K, K processes behind HAProxy
(bench/stack.py, which builds on this module); waiting until a server answers (wait_until_answering for a
scenario's show, wait_until_url_answers for any URL); stopping what was started by its process id, SIGKILL after a
timeout (stop_process); `kill` unwinding a run like Ctrl-C so that it stops what it started (unwind_on_sigterm);
the processes below one (process_table, process_tree).

Setup: a scenario's own database (ensure_database), PostgreSQL's connections shared out between the web processes
(connection_budget), Django in the scenario's own process (setup_django), the planner's statistics refreshed
(refresh_planner_statistics), the server options every scenario takes (add_server_options, plan_server,
bench_server_running).

Figures: where the CPU went (CpuSnapshot, cpu_report), percentiles (percentile, summary_ms), the JSON report
(publish_report) and the commit the figures belong to (code_version). Clients: several httpx or aiohttp clients
sharing the connections (bench_clients), timed requests and 503s sent again after their Retry-After
(timed, minding_busy).

Nothing here knows a scenario's show, buyers or invariants: those are the scenario's (e.g. bench/hold_path.py).
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import aiohttp
import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ticketing.proxies import uvicorn_options

ROOT = Path(__file__).resolve().parent.parent  # the project: run the scenarios from here, `python -m bench.<name>`
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# Connections PostgreSQL keeps for everything else on the machine (psql, tests others run, this script).
CONNECTIONS_KEPT_FREE = 20
# The default connection pool per worker. Under load a worker runs many requests at once (a thread each);
# those beyond the pool wait for a connection, which is part of the latency measured. More connections
# would only add PostgreSQL backends competing for the same cores.
DEFAULT_POOL_MAX = 10
SERVER_START_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30
# Connections per client of the load generator (see bench_clients).
CONNECTIONS_PER_CLIENT = 25


# --- Figures and arguments -----------------------------------------------------------------------------------


def percentile(values, share):
    """The value `share` (0.95 for p95) of the way up `values`: the sorted values at index round(share * (n - 1))."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary_ms(values):
    """n, p50, p95, p99 and max of `values` (milliseconds), rounded to 0.1; {"n": 0} when there are none."""
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


# --- The database ------------------------------------------------------------------------------------------


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


# --- Processes ---------------------------------------------------------------------------------------------


def free_port():
    """A loopback TCP port nothing listens on now (the system's pick), for a server about to start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unwind_on_sigterm():
    """`kill` (SIGTERM) unwinds a bench like Ctrl-C, so its `finally` blocks stop the servers it started: they
    run in sessions of their own, and a bench killed outright leaves them serving (and, worse, a leftover
    Celery worker consuming the next run's tasks with the old code)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


# A seat push not read this long after its change counts as missing (delivery is at most once: the real page
# re-reads the map when it misses one).
PUSH_MISSING_AFTER_SECONDS = 5

# How long processes get to stop on their own (like scripts/run.sh's STOP_SECONDS).
STOP_SECONDS = 15


def stop_process(process, *, seconds=STOP_SECONDS):
    """stop_processes for one process."""
    stop_processes([process], seconds=seconds)


def _group_alive(pgid):
    """True while process group `pgid` has a process that has not exited (zombies excepted)."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, _, fields in proc_stats())


def stop_processes(processes, *, seconds=STOP_SECONDS):
    """SIGTERM each leader alone (uvicorn's supervisor and Celery's main process stop their children and wait for
    them, running tasks finish), wait up to `seconds`; then SIGTERM, and at last SIGKILL, what is left of their
    sessions; reap. `processes`: Popens, or anything with a `popen` (bench.stack.Process), each started in a
    session of its own."""
    processes = [getattr(process, "popen", process) for process in processes]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        left = [process for process in processes if _group_alive(process.pid)]
        if not left:
            break
        for process in left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace
        while any(_group_alive(process.pid) for process in left) and time.monotonic() < deadline:
            time.sleep(0.1)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def wait_until_url_answers(url, process, name, seconds=30):
    """Return once a GET of `url` gets any HTTP answer; RuntimeError if `process` (the server, a Popen) exits or
    `seconds` pass first. `name` says which server in the error."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.2)


def proc_stats():
    """(pid, command name, the fields after the name) of every process in /proc we may read (see proc(5)).

    fields[0] is the state, [1] the parent pid, [2] the process group, [11] and [12] the user and system CPU
    time in clock ticks.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        yield int(entry), stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


TICKS = os.sysconf("SC_CLK_TCK")


def process_table():
    """{pid: (parent pid, command name, CPU seconds so far)} of every process we may read."""
    return {
        pid: (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS) for pid, name, fields in proc_stats()
    }


def process_tree(pid, table=None):
    """`pid` and every process below it, from `table` (process_table's, read now when not given)."""
    table = process_table() if table is None else table
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(child for child, (parent, _, _) in table.items() if parent == current)
    return found


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


@contextlib.contextmanager
def balanced_server_running(*, processes, database_url, redis_url, pool_max, log):
    """--balanced: `processes` uvicorn processes (one worker each, each its own port) behind HAProxy.

    Yields bench/stack.py's Stack: its `url` is HAProxy's; `pid`, `poll()` and `returncode` stand in for the
    uvicorn Popen of server_running, and `web_pids` / `balancer_pid` are what the CPU report counts. Every
    web process has the environment and pool of start_server's workers; no Celery (as with --workers).
    """
    from bench.stack import stack_running  # bench.stack builds on this module: imported when it is needed

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


async def wait_and_warm_up(clients, server, show_id, options):
    """wait_until_answering, then warm every web process's imports, connection pool and caches on reads.

    Each client reads the show 4 times per web process, all at once, so that every process (uvicorn's workers,
    or HAProxy's K processes: least connections spreads requests in flight) gets some before the clock starts.
    """
    await wait_until_answering(clients[0], server, show_id)
    show_url = f"/api/v1/shows/{show_id}"
    await asyncio.gather(*(client.get(show_url) for client in clients for _ in range(4 * web_processes(options))))


# --- The clients -------------------------------------------------------------------------------------------


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
async def bench_clients(base_url, connections, *, api_key, keep_cookies=True, http_client="httpx"):
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


async def timed(request):
    """(the awaited `request`'s response, milliseconds it took)."""
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


# --- CPU accounting (Linux /proc) ---------------------------------------------------------------------------


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


# --- Running a sale and reporting it ---------------------------------------------------------------------


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

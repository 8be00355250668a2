"""The server a scenario asks for: its options (add_server_options: --workers, --balanced, --pool-max), the
connection budget and the report's server settings (plan_server), the server itself (bench_server_running:
uvicorn --workers N, or K uvicorn processes behind HAProxy), and a sale served on it (serve_sale).
"""

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass

import httpx

from bench.harness.balancer import stack_running
from bench.harness.database import connection_budget
from bench.harness.figures import code_version, cpu_report, responses_by_process
from bench.harness.processes import free_port
from bench.harness.site import server_environment, server_running

# The default connection pool per worker. Under load a worker runs many requests at once (a thread each);
# those beyond the pool wait for a connection, which is part of the latency measured. More connections
# would only add PostgreSQL backends competing for the same cores.
DEFAULT_POOL_MAX = 10
SERVER_START_SECONDS = 60


@contextlib.contextmanager
def web_server_running(*, workers, balanced, database_url, redis_url, pool_max, log):
    """uvicorn --workers `workers` (site.server_running), or with `balanced` K, K uvicorn processes of one worker
    each behind HAProxy (balancer.stack_running; no Celery, as with --workers). Every web process runs with
    production settings and a pool of `pool_max` connections.

    Yields (server, base URL): the one the clients use, HAProxy's when balanced. A balanced server is the
    balancer's Stack, whose `pid`, `poll()` and `returncode` stand in for the uvicorn Popen, and whose
    `web_pids` / `balancer_pid` are what the CPU report counts.
    """
    environment = server_environment(database_url=database_url, redis_url=redis_url, pool_max=pool_max)
    if balanced:
        with stack_running(
            web_processes=balanced, environment=environment, log=log, start_seconds=SERVER_START_SECONDS
        ) as stack:
            yield stack, stack.url
        return
    port = free_port()
    with server_running(workers=workers, port=port, environment=environment, log=log) as server:
        yield server, f"http://127.0.0.1:{port}"


def describe_server(*, workers, balanced):
    if balanced:
        return f"{balanced} uvicorn processes (1 worker each) behind HAProxy (leastconn), DJANGO_DEBUG=0"
    return f"uvicorn --workers {workers} (uvloop, httptools), DJANGO_DEBUG=0"


def add_balanced_option(parser, *, instead_of="uvicorn --workers"):
    """--balanced K: K uvicorn processes of one worker each behind HAProxy (harness.balancer)."""
    parser.add_argument(
        "--balanced",
        type=int,
        metavar="K",
        help=f"instead of {instead_of}: K uvicorn processes (1 worker each) behind HAProxy (harness.balancer)",
    )


def add_server_options(parser):
    """--workers, --balanced and --pool-max, as every scenario takes them."""
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    add_balanced_option(parser)
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

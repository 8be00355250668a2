"""A sale of the benchmarks' show as its clients see it, what the hot show (bench.hold_path) and the sell-out
(bench.sell_out) share: what every virtual buyer knows and counts, the buyers' moves (bench/moves.py) sent on
asyncio clients (a connection error fails the sale), the buyers' timed run against the served site, the report's
verdict and the run's options. The same buyers on Locust: bench/locust_run.py.

The show is bench/show.py's, the server, the clients and the CPU report bench/harness's; each scenario adds its
own buyers, invariants and report.
"""

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import httpx

from bench.harness.clients import bench_clients, timed
from bench.harness.figures import take_cpu_snapshot
from bench.harness.servers import wait_and_warm_up
from bench.moves import Pause, SaleBasics
from bench.show import BENCH_KEY


@dataclass(kw_only=True)
class Sale(SaleBasics):
    """A sale whose buyers run on this process's event loop (no locks needed); the scenario's counts add what
    the clients know and count, with record(call, response, milliseconds)."""

    options: argparse.Namespace
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def drive(moves, client, sale):
    """Send one buyer's moves (a generator of bench/moves.py's Request and Pause) on `client` until it is done."""
    try:
        move = next(moves)
        while True:
            move = moves.send(await perform(move, client, sale))
    except StopIteration:
        return


async def perform(move, client, sale):
    """A Pause waited, or a Request's `(response, ms)`; None after a connection error, which fails the sale."""
    if isinstance(move, Pause):
        await asyncio.sleep(move.seconds)
        return None
    request = client.request(move.method, move.path, json=move.json, params=move.params, headers=move.headers)
    try:
        return await timed(request)
    except httpx.HTTPError as exc:
        sale.fail(f"{move.label}: {type(exc).__name__}: {exc}")
        return None


async def run_buyers(sale, *, base_url, server, connections, buyers):
    """The buyers' run on asyncio clients, between two CPU snapshots, once the server answers and is warm.

    `buyers()` makes the buyers (generators of their moves) once the clock has started (sale.started,
    sale.deadline); buyer n sends its requests on clients[n % len(clients)].
    Returns what bench.harness.servers.serve_sale wants: (elapsed seconds, CpuSnapshot before, CpuSnapshot
    after, the seat map response read after the run).
    """
    options = sale.options
    async with bench_clients(base_url, connections, api_key=BENCH_KEY, http_client=options.http_client) as clients:
        await wait_and_warm_up(clients, server, sale.show_id, options)
        before = take_cpu_snapshot(server, options.database_url)
        sale.started = time.monotonic()
        sale.deadline = sale.started + options.duration
        moves = buyers()
        await asyncio.gather(*(drive(buyer, clients[n % len(clients)], sale) for n, buyer in enumerate(moves)))
        elapsed = time.monotonic() - sale.started
        after = take_cpu_snapshot(server, options.database_url)
        seat_map = await clients[0].get(f"/api/v1/shows/{sale.show_id}/seats")
    return elapsed, before, after, seat_map


def verdict(sale, unexpected, violations):
    """The report's last fields: each invariant's number of violations, a few examples, and whether all held."""
    return {
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
        "ok": not sale.failures and not unexpected and not any(violations.values()),
    }


def add_run_options(parser, *, database_url, redis_url):
    """--seed, and the run's own --database-url and --redis-url."""
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=database_url)
    parser.add_argument("--redis-url", default=redis_url)

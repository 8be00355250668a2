"""A sale of the benchmarks' show as its clients see it, what the hot show (bench.hold_path) and the sell-out
(bench.sell_out) share: what every virtual buyer knows and counts, a request that fails the sale on a connection
error, the buyers' timed run against the served site, the report's verdict and the run's options.

The show is bench/show.py's, the server, the clients and the CPU report bench/harness's; each scenario adds its
own buyers, invariants and report.
"""

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.harness.clients import bench_clients, minding_busy
from bench.harness.figures import take_cpu_snapshot
from bench.harness.servers import wait_and_warm_up
from bench.seating import SeatingPlan
from bench.show import BENCH_KEY


@dataclass(kw_only=True)
class Sale:
    """What the clients know and counted, shared by every virtual buyer (one event loop: no locks needed).

    A scenario's Sale adds what its buyers know, and record(call, response, milliseconds) to count an answer.
    """

    show_id: int
    movie_id: int
    hall: SeatingPlan
    options: argparse.Namespace
    run_tag: str
    started: float = 0.0
    deadline: float = 0.0
    answered: dict = field(default_factory=dict)  # reservation id -> what its 201 answered
    latencies: dict = field(default_factory=dict)  # "POST 201", "hold 409" etc. -> [ms]
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, what):
        self.failures.append(what)
        self.stop.set()  # a broken server answers fast: don't spin on it, end the run and say why

    def running(self):
        """Whether a buyer may still ask for a hold."""
        return not self.stop.is_set() and time.monotonic() < self.deadline


async def send(sale, call, label, request):
    """`request()` until it is not a 503 (each one counted as `call`): `(response, ms)`, or None after a
    connection error, which fails the sale."""
    try:
        return await minding_busy(request, lambda busy, ms: sale.record(call, busy, ms))
    except httpx.HTTPError as exc:
        sale.fail(f"{label}: {type(exc).__name__}: {exc}")
        return None


def seat_ids(answer):
    """The seat ids of a reservation as the API answered it, in order."""
    return sorted(seat["id"] for seat in answer["seats"])


def granted(sale, response, asked):
    """A hold's answer other than a 409: `(reservation id, seat ids, the answer)` for a 201; anything else fails
    the sale (None)."""
    if response.status_code != 201:
        sale.fail(f"POST /api/v1/reservations {asked} -> {response.status_code}: {response.text[:300]}")
        return None
    answer = response.json()
    return answer["reservation_id"], seat_ids(answer), answer


async def run_buyers(sale, *, base_url, server, connections, buyers):
    """The buyers' run, between two CPU snapshots, once the server answers and is warm.

    `buyers(clients)` makes the buyers' coroutines once the clock has started (sale.started, sale.deadline).
    Returns what bench.harness.servers.serve_sale wants: (elapsed seconds, CpuSnapshot before, CpuSnapshot
    after, the seat map response read after the run).
    """
    options = sale.options
    async with bench_clients(base_url, connections, api_key=BENCH_KEY, http_client=options.http_client) as clients:
        await wait_and_warm_up(clients, server, sale.show_id, options)
        before = take_cpu_snapshot(server, options.database_url)
        sale.started = time.monotonic()
        sale.deadline = sale.started + options.duration
        await asyncio.gather(*buyers(clients))
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

"""The hot show's buyers (bench.hold_path, bench/hold_path_moves.py) on the chosen load generator: asyncio
buyers on aiohttp or httpx clients sharing one HoldSale in this process, or the same buyers as the users of one
Locust process (bench/hold_path_locust.py), whose counts come back in a file and fill the HoldSale.
"""

import asyncio
import json
import os
import resource
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.harness.clients import CONNECTIONS_PER_CLIENT, bench_clients, timed
from bench.harness.figures import take_cpu_snapshot
from bench.harness.processes import ROOT
from bench.harness.servers import wait_and_warm_up
from bench.hold_path_moves import HoldCounts, Pause, pair_buyer, pair_requests, random_buyer
from bench.sale import Sale, run_buyers
from bench.show import BENCH_KEY

LOCUSTFILE = ROOT / "bench" / "hold_path_locust.py"
DEFAULT_LOCUST = ROOT / ".venv-locust" / "bin" / "locust"
# Locust's own limit on a run, past --duration (random buyers) or for all of --pairs: a safety net only.
LOCUST_GRACE_SECONDS = 60
PAIRS_LIMIT_SECONDS = 600


@dataclass(kw_only=True)
class HoldSale(HoldCounts, Sale):
    """The hot show's sale: what its clients know and count (HoldCounts) of a Sale of the benchmarks' show."""


async def drive(moves, client, sale):
    """Send one buyer's moves (hold_path_moves' generator) on `client` until the buyer is done."""
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
    try:
        return await timed(client.request(move.method, move.path, json=move.json, params=move.params))
    except httpx.HTTPError as exc:
        sale.fail(f"{move.label}: {type(exc).__name__}: {exc}")
        return None


def buyers(sale, clients):
    """The run's buyers, spread over the clients: --concurrency random buyers, or as many --pairs buyers."""
    options, shares = sale.options, len(clients)
    if options.pairs:
        requests = pair_requests(sale)
        sale.deadline = float("inf")  # the run ends when every request has been answered
        moves = [pair_buyer(sale, requests) for _ in range(options.concurrency)]
    else:
        moves = [random_buyer(number, sale) for number in range(options.concurrency)]
    return [drive(buyer, clients[number % shares], sale) for number, buyer in enumerate(moves)]


async def run_sale(sale, *, base_url, server):
    """serve_sale's run_sale: the buyers' run on --http-client's clients, or on Locust."""
    if sale.options.http_client == "locust":
        return await run_on_locust(sale, base_url=base_url, server=server)
    return await run_buyers(
        sale,
        base_url=base_url,
        server=server,
        connections=sale.options.concurrency,
        buyers=lambda clients: buyers(sale, clients),
    )


def locust_plan(sale):
    """What the Locust users need to know of the sale (bench/hold_path_locust.py reads it)."""
    wanted = ("concurrency", "seats", "release", "hot_share", "seed", "duration", "pairs")
    return {
        "show_id": sale.show_id,
        "movie_id": sale.movie_id,
        "rows": sale.hall.rows,
        "run_tag": sale.run_tag,
        "api_key": BENCH_KEY,
        "options": {name: getattr(sale.options, name) for name in wanted},
    }


ALL_AT_ONCE = 10_000  # users per second


def locust_command(options, base_url):
    users = str(options.concurrency)
    limit = PAIRS_LIMIT_SECONDS if options.pairs else options.duration + LOCUST_GRACE_SECONDS
    # Every user at once, as every asyncio buyer starts together (Locust's default ramp would start them over 1 s).
    spawn_rate = str(ALL_AT_ONCE)
    return [str(options.locust), "-f", str(LOCUSTFILE), "--headless", "--users", users, "--spawn-rate", spawn_rate] + [
        *("--run-time", f"{limit:.0f}s", "--host", base_url, "--only-summary"),
        *("--loglevel", "WARNING", "--exit-code-on-error", "0"),
    ]


def children_cpu():
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def run_on_locust(sale, *, base_url, server):
    """The buyers as the users of one Locust process, timed between the same CPU snapshots as run_buyers.

    The warm-up and the seat map at the end go through one aiohttp client (wait_and_warm_up wants async ones).
    Locust's CPU (its start included: it is this process's only child that ends meanwhile) is added to the
    load generator's. Returns what run_buyers does.
    """
    options = sale.options
    async with bench_clients(base_url, CONNECTIONS_PER_CLIENT, api_key=BENCH_KEY, http_client="aiohttp") as clients:
        await wait_and_warm_up(clients, server, sale.show_id, options)
        with tempfile.TemporaryDirectory(prefix="bench-holds-locust-") as folder:
            plan, counts = Path(folder) / "plan.json", Path(folder) / "counts.json"
            plan.write_text(json.dumps(locust_plan(sale)))
            environment = {**os.environ, "PYTHONPATH": str(ROOT), "HOLD_PATH_PLAN": str(plan)}
            environment["HOLD_PATH_COUNTS"] = str(counts)
            before, cpu_before = take_cpu_snapshot(server, options.database_url), children_cpu()
            locust = await asyncio.create_subprocess_exec(
                *locust_command(options, base_url),
                env=environment,
                cwd=ROOT,  # Locust puts its working directory first on sys.path: this checkout's bench/, not another's
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await locust.communicate()
            locust_cpu = children_cpu() - cpu_before
            after = take_cpu_snapshot(server, options.database_url)
            if locust.returncode != 0 or not counts.exists():
                raise RuntimeError(f"Locust exited with status {locust.returncode}:\n{output.decode()[-3000:]}")
            counted = json.loads(counts.read_text())
        seat_map = await clients[0].get(f"/api/v1/shows/{sale.show_id}/seats")
    sale.take_counts(counted)
    return counted["elapsed"], before, replace(after, client=after.client + locust_cpu), seat_map

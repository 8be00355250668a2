"""The hot show's buyers (bench.hold_path, bench/hold_path_moves.py) on the chosen load generator: asyncio
buyers on aiohttp or httpx clients sharing one HoldSale in this process (bench.sale.run_buyers), or the same
buyers as the users of one Locust process (bench/hold_path_locust.py, run by bench.locust_run.run_on_locust),
whose counts come back in a file and fill the HoldSale.
"""

from dataclasses import dataclass

from bench.harness.processes import ROOT
from bench.hold_path_moves import HoldCounts, pair_buyer, pair_requests, random_buyer
from bench.locust_run import run_on_locust, sale_plan
from bench.sale import Sale, run_buyers

LOCUSTFILE = ROOT / "bench" / "hold_path_locust.py"
# Locust's own limit on a run, past --duration (random buyers) or for all of --pairs: a safety net only.
LOCUST_GRACE_SECONDS = 60
PAIRS_LIMIT_SECONDS = 600
# The options the buyers read (bench/hold_path_moves.py), as the Locust users are given them.
BUYERS_READ = ("concurrency", "seats", "release", "hot_share", "seed", "duration", "pairs")


@dataclass(kw_only=True)
class HoldSale(HoldCounts, Sale):
    """The hot show's sale: what its clients know and count (HoldCounts) of a Sale of the benchmarks' show."""


def buyers(sale):
    """The run's buyers: --concurrency random buyers, or as many --pairs buyers."""
    options = sale.options
    if options.pairs:
        requests = pair_requests(sale)
        sale.deadline = float("inf")  # the run ends when every request has been answered
        return [pair_buyer(sale, requests) for _ in range(options.concurrency)]
    return [random_buyer(number, sale) for number in range(options.concurrency)]


async def run_sale(sale, *, base_url, server):
    """serve_sale's run_sale: the buyers' run on --http-client's clients, or on Locust."""
    options = sale.options
    if options.http_client == "locust":
        run_time = PAIRS_LIMIT_SECONDS if options.pairs else options.duration + LOCUST_GRACE_SECONDS
        plan = sale_plan(sale, users=options.concurrency, options=BUYERS_READ)
        return await run_on_locust(
            sale, plan, locustfile=LOCUSTFILE, run_time=run_time, base_url=base_url, server=server
        )
    return await run_buyers(
        sale, base_url=base_url, server=server, connections=options.concurrency, buyers=lambda: buyers(sale)
    )

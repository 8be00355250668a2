"""The sell-out's buyers (bench.sell_out, bench/sell_out_moves.py) on the chosen load generator: asyncio buyers
on aiohttp or httpx clients sharing one SellOutSale in this process (bench.sale.run_buyers), or the same buyers as
the users of one Locust process (bench/sell_out_locust.py, run by bench.locust_run.run_on_locust), whose counts
come back in a file and fill the SellOutSale.
"""

from dataclasses import dataclass

from bench.harness.processes import ROOT
from bench.locust_run import run_on_locust, sale_plan
from bench.sale import Sale, run_buyers
from bench.sell_out_moves import SellOutCounts, buyer

LOCUSTFILE = ROOT / "bench" / "sell_out_locust.py"
# Locust's own limit on a run, past --duration (a hold granted by then is still paid for): a safety net only.
LOCUST_GRACE_SECONDS = 60
# The options the buyers read (bench/sell_out_moves.py), as the Locust users are given them.
BUYERS_READ = ("buyers", "seed", "duration")


@dataclass(kw_only=True)
class SellOutSale(SellOutCounts, Sale):
    """The sell-out's sale: what its clients know and count (SellOutCounts) of a Sale of the benchmarks' show."""


async def run_sale(sale, *, base_url, server):
    """serve_sale's run_sale: the buyers' run on --http-client's clients (one connection per buyer), or on
    Locust (one user per buyer)."""
    options = sale.options
    if options.http_client == "locust":
        plan = sale_plan(sale, users=options.buyers, options=BUYERS_READ)
        plan["seat_types"] = list(sale.seat_types.items())  # JSON's keys are text: the ids go as pairs
        return await run_on_locust(
            sale,
            plan,
            locustfile=LOCUSTFILE,
            run_time=options.duration + LOCUST_GRACE_SECONDS,
            base_url=base_url,
            server=server,
        )
    return await run_buyers(
        sale,
        base_url=base_url,
        server=server,
        connections=options.buyers,
        buyers=lambda: [buyer(number, sale) for number in range(options.buyers)],
    )

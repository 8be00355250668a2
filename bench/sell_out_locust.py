"""Locust users for bench.sell_out --http-client locust: the sell-out's buyers (bench/sell_out_moves.py) as the
FastHttpUsers of one Locust process, sharing one sale the way the asyncio buyers share their SellOutSale
(bench/locust_users.py: the plan, the sale, the user that runs one buyer, the counts written at the end).

Runs under Locust's own interpreter (bench/requirements-locust.txt), started by bench.locust_run.run_on_locust.
"""

from dataclasses import dataclass

from bench.locust_users import PLAN, LocustSale, SaleUser, sale_from_plan
from bench.sell_out_moves import SellOutCounts, buyer


@dataclass(kw_only=True)
class SellOutLocustSale(SellOutCounts, LocustSale):
    """The sell-out's counts, with what the buyers read of the sale, for this process."""


SALE = sale_from_plan(SellOutLocustSale, seat_types=dict(PLAN["seat_types"]))


class Buyer(SaleUser):
    sale = SALE

    def moves(self, number):
        return buyer(number, SALE)

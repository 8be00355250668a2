"""Locust users for bench.hold_path --http-client locust: the hot show's buyers (bench/hold_path_moves.py) as the
FastHttpUsers of one Locust process, sharing one sale the way the asyncio buyers share their HoldSale
(bench/locust_users.py: the plan, the sale, the user that runs one buyer, the counts written at the end).

Runs under Locust's own interpreter (bench/requirements-locust.txt), started by bench.locust_run.run_on_locust.
"""

from dataclasses import dataclass

from bench.hold_path_moves import HoldCounts, pair_buyer, pair_requests, random_buyer
from bench.locust_users import LocustSale, SaleUser, sale_from_plan


@dataclass(kw_only=True)
class HoldLocustSale(HoldCounts, LocustSale):
    """The hot show's counts, with what the buyers read of the sale, for this process."""

    def open(self):
        super().open()
        if self.options.pairs:
            self.deadline = float("inf")  # --pairs ends when every request has been answered


SALE = sale_from_plan(HoldLocustSale)
REQUESTS = pair_requests(SALE) if SALE.options.pairs else None


class Buyer(SaleUser):
    sale = SALE

    def moves(self, number):
        return pair_buyer(SALE, REQUESTS) if SALE.options.pairs else random_buyer(number, SALE)

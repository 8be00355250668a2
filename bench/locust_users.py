"""The Locust users' side of a sale (bench/locust_run.py runs them), shared by the hot show's and the
sell-out's locustfiles (bench/hold_path_locust.py, bench/sell_out_locust.py): the plan the driver wrote (PLAN),
the sale the users of this process share as the asyncio buyers share theirs (LocustSale, made by
sale_from_plan), and SaleUser, a FastHttpUser that runs one buyer (a generator of bench/moves.py's moves) once.

gevent switches greenlets only while a request or a pause waits: no locks needed. User n is buyer n (its seed);
the clock starts with the first user; each latency is timed in the user around its request. SALE_PLAN names the
plan's JSON file (bench.locust_run.sale_plan); SALE_COUNTS the file the counts go to (the scenario's counted()
and the elapsed seconds) once the last buyer is done, when Locust is told to quit.

Runs under Locust's own interpreter (bench/requirements-locust.txt), with PYTHONPATH at the project's root.
"""

import json
import os
import time
import types
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import gevent
from gevent.event import Event
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

from bench.moves import Pause, SaleBasics
from bench.seating import SeatingPlan

PLAN = json.loads(Path(os.environ["SALE_PLAN"]).read_text())
COUNTS = Path(os.environ["SALE_COUNTS"])


@dataclass(kw_only=True)
class LocustSale(SaleBasics):
    """The sale as this process's users share it; the scenario's counts add what they know and count, with
    counted() (as JSON)."""

    buying: int  # buyers not done yet
    started: float | None = None  # set by the first user
    deadline: float = float("inf")
    stop: Event = field(default_factory=Event)
    written: bool = False

    def open(self):
        """The first user starts the clock, and --duration's deadline."""
        self.started = time.monotonic()
        self.deadline = self.started + self.options.duration

    def write_counts(self):
        self.written = True
        COUNTS.write_text(json.dumps({**self.counted(), "elapsed": time.monotonic() - self.started}))

    def stopped_early(self, **_):
        """Locust's --run-time (a safety net) or a signal ended the run before the buyers: say so in the counts."""
        if not self.written and self.started is not None:
            self.fail(f"Locust stopped the run with {self.buying} buyers still buying")
            self.write_counts()


def sale_from_plan(sale_class, **known):
    """The process's sale, of `sale_class` (a LocustSale with the scenario's counts), from PLAN and `known`."""
    sale = sale_class(
        show_id=PLAN["show_id"],
        movie_id=PLAN["movie_id"],
        hall=SeatingPlan(rows=PLAN["rows"]),
        options=types.SimpleNamespace(**PLAN["options"]),
        run_tag=PLAN["run_tag"],
        buying=PLAN["users"],
        **known,
    )
    events.test_stop.add_listener(sale.stopped_early)
    return sale


class SaleUser(FastHttpUser):
    """A user that is one buyer: the scenario's subclass names its `sale` and makes buyer n's moves."""

    abstract = True
    wait_time = constant(0)
    network_timeout = connection_timeout = 30.0  # bench.harness.clients.REQUEST_TIMEOUT_SECONDS
    default_headers = {"X-API-Key": PLAN["api_key"]}
    sale: LocustSale
    numbers = count()

    def moves(self, number):
        """Buyer `number`'s moves: a generator of bench/moves.py's Request and Pause."""
        raise NotImplementedError

    @task
    def buy(self):
        """The whole buyer, once; the last one to finish writes the counts and tells Locust to quit."""
        sale = self.sale
        if sale.started is None:
            sale.open()
        number = next(self.numbers)
        moves = self.moves(number)
        try:
            move = next(moves)
            while True:
                move = moves.send(self.perform(move))
        except StopIteration:
            pass
        except Exception as exc:  # a bug or an answer the buyer can't read: fail the run, as asyncio's would
            sale.fail(f"buyer {number}: {type(exc).__name__}: {exc}")
        sale.buying -= 1
        if sale.buying == 0:
            sale.write_counts()
            gevent.spawn(self.environment.runner.quit)
        raise StopUser()

    def perform(self, move):
        """A Pause waited, or a Request's `(response, ms)`; None after a connection error, which fails the sale."""
        if isinstance(move, Pause):
            gevent.sleep(move.seconds)
            return None
        started = time.perf_counter()
        response = self.client.request(
            move.method, move.path, name=move.group, json=move.json, params=move.params, headers=move.headers
        )
        milliseconds = (time.perf_counter() - started) * 1000
        if response.status_code == 0:  # FastHttpSession's stand-in response for a connection error
            self.sale.fail(f"{move.label}: {type(response.error).__name__}: {response.error}")
            return None
        return response, milliseconds

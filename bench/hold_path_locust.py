"""Locust users for bench.hold_path --http-client locust: the hot show's buyers (bench/hold_path_moves.py) as the
FastHttpUsers of one Locust process, sharing one sale the way the asyncio buyers share their HoldSale (gevent
switches greenlets only while a request or a pause waits: no locks needed). User n is buyer n (its seed); the
clock starts with the first user; each latency is timed in the user around its request.

Runs under Locust's own interpreter (bench/requirements-locust.txt), started by bench/hold_path_buyers.py with
PYTHONPATH at the project's root. HOLD_PATH_PLAN names the plan's JSON file (the show and its rows, the options,
the bench key, the run tag); HOLD_PATH_COUNTS the file the counts go to (HoldCounts.counted() and the elapsed
seconds) once the last buyer is done, when Locust is told to quit.
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

from bench.hold_path_moves import HoldCounts, Pause, pair_buyer, pair_requests, random_buyer
from bench.seating import SeatingPlan

PLAN = json.loads(Path(os.environ["HOLD_PATH_PLAN"]).read_text())
COUNTS = Path(os.environ["HOLD_PATH_COUNTS"])


@dataclass(kw_only=True)
class LocustSale(HoldCounts):
    """The counts, with what the buyers read of the sale (as bench.sale.Sale has them), for this process."""

    show_id: int
    movie_id: int
    hall: SeatingPlan
    options: types.SimpleNamespace
    run_tag: str
    started: float | None = None
    deadline: float = float("inf")  # --pairs ends when every request has been answered
    stop: Event = field(default_factory=Event)

    def fail(self, what):
        self.failures.append(what)
        self.stop.set()  # a broken server answers fast: end the run and say why

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline


SALE = LocustSale(
    show_id=PLAN["show_id"],
    movie_id=PLAN["movie_id"],
    hall=SeatingPlan(rows=PLAN["rows"]),
    options=types.SimpleNamespace(**PLAN["options"]),
    run_tag=PLAN["run_tag"],
)
REQUESTS = pair_requests(SALE) if SALE.options.pairs else None
NUMBERS = count()
RUN = {"buying": SALE.options.concurrency, "written": False}


def write_counts():
    RUN["written"] = True
    COUNTS.write_text(json.dumps({**SALE.counted(), "elapsed": time.monotonic() - SALE.started}))


@events.test_stop.add_listener
def stopped_early(**_):
    """Locust's --run-time (a safety net) or a signal ended the run before the buyers: say so in the counts."""
    if not RUN["written"] and SALE.started is not None:
        SALE.fail(f"Locust stopped the run with {RUN['buying']} buyers still buying")
        write_counts()


class Buyer(FastHttpUser):
    wait_time = constant(0)
    network_timeout = connection_timeout = 30.0  # bench.harness.clients.REQUEST_TIMEOUT_SECONDS
    default_headers = {"X-API-Key": PLAN["api_key"]}

    @task
    def buy(self):
        """The whole buyer, once; the last one to finish writes the counts and tells Locust to quit."""
        if SALE.started is None:
            SALE.started = time.monotonic()
            if not SALE.options.pairs:
                SALE.deadline = SALE.started + SALE.options.duration
        number = next(NUMBERS)
        moves = pair_buyer(SALE, REQUESTS) if SALE.options.pairs else random_buyer(number, SALE)
        try:
            move = next(moves)
            while True:
                move = moves.send(self.perform(move))
        except StopIteration:
            pass
        except Exception as exc:  # a bug or an answer the buyer can't read: fail the run, as asyncio's would
            SALE.fail(f"buyer {number}: {type(exc).__name__}: {exc}")
        RUN["buying"] -= 1
        if RUN["buying"] == 0:
            write_counts()
            gevent.spawn(self.environment.runner.quit)
        raise StopUser()

    def perform(self, move):
        """A Pause waited, or a Request's `(response, ms)`; None after a connection error, which fails the sale."""
        if isinstance(move, Pause):
            gevent.sleep(move.seconds)
            return None
        started = time.perf_counter()
        response = self.client.request(move.method, move.path, name=move.group, json=move.json, params=move.params)
        milliseconds = (time.perf_counter() - started) * 1000
        if response.status_code == 0:  # FastHttpSession's stand-in response for a connection error
            SALE.fail(f"{move.label}: {type(response.error).__name__}: {response.error}")
            return None
        return response, milliseconds

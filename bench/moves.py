"""A virtual buyer's moves, whichever load generator sends them: a Request to send or a Pause to wait, and
minding_busy, which sends a request again after each 503's Retry-After; the seat ids of a reservation; what
every buyer reads of the sale (SaleBasics). A buyer is a generator that yields its
moves and is sent back each answer, `(response, milliseconds)` or None after a connection error (the sender has
failed the sale); bench/sale.py sends them on asyncio clients, bench/locust_users.py from Locust users.

Locust's interpreter (a virtualenv of its own, bench/requirements-locust.txt) runs this module as well: it
imports nothing but the standard library. A response is anything with status_code, headers, json() and text.
"""

import time
from dataclasses import dataclass

# As bench.harness.clients.minding_busy: a request answered 503 with Retry-After is sent again, this often at most.
BUSY_ATTEMPTS = 30


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    group: str  # the path as Locust's statistics name it: one row for every reservation's DELETE
    json: dict | None = None
    params: dict | None = None
    headers: dict | None = None

    @property
    def label(self):
        """What the request is called in a failure."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Pause:
    seconds: float


def minding_busy(sale, request, call=None):
    """`yield from`: the request's answer, sent again after the Retry-After of each 503 (a process shedding load),
    each 503 counted by sale.record(call, ...) (the request's method unless `call` is given); None after a
    connection error."""
    for _ in range(BUSY_ATTEMPTS - 1):
        answer = yield request
        if answer is None or answer[0].status_code != 503 or "Retry-After" not in answer[0].headers:
            return answer
        sale.record(call or request.method, *answer)
        yield Pause(float(answer[0].headers["Retry-After"]))
    return (yield request)


def seat_ids(reservation):
    """The seat ids of a reservation as the API answered it, in order."""
    return sorted(seat["id"] for seat in reservation["seats"])


@dataclass(kw_only=True)
class SaleBasics:
    """What every buyer reads of the sale, in whichever process runs it, and how a failure ends it.

    The load generator's sale adds stop (an Event of its kind); the scenario's counts add failures.
    """

    show_id: int
    movie_id: int
    hall: object  # bench.seating.SeatingPlan
    options: object  # the run's options, or those the Locust users were given
    run_tag: str
    started: float = 0.0
    deadline: float = 0.0

    def fail(self, what):
        self.failures.append(what)
        self.stop.set()  # a broken server answers fast: don't spin on it, end the run and say why

    def running(self):
        """Whether a buyer may still ask for a hold."""
        return not self.stop.is_set() and time.monotonic() < self.deadline

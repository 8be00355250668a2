"""The hot show's buyers (bench.hold_path) as what they do, whichever load generator sends their requests: each
buyer is a generator that yields its next move (bench/moves.py's Request to send, or Pause) and is sent back the
answer, a `(response, milliseconds)` or None after a connection error (the sender has failed the sale). What the clients
know and count of the answers (HoldCounts) is counted here too, so that the asyncio buyers
(bench/hold_path_buyers.py) and the Locust users (bench/hold_path_locust.py) run the same buyers.

Locust's interpreter (a virtualenv of its own, bench/requirements-locust.txt) runs this module as well: it
imports nothing but the standard library. A response is anything with status_code, headers, json() and text.
"""

import random
from collections import Counter
from dataclasses import dataclass, field

from bench.moves import Pause, Request, minding_busy, seat_ids


@dataclass(kw_only=True)
class HoldCounts:
    """What the hot show's clients know and count, shared by every buyer of one load generator's process.

    The sale that holds them (bench.hold_path_buyers.HoldSale, or the Locust users' one) adds show_id, movie_id,
    hall, options, run_tag, stop (an Event), fail(what) and running().
    """

    answered: dict = field(default_factory=dict)  # reservation id -> seat ids its 201 answered
    latencies: dict = field(default_factory=dict)  # "POST 201", "DELETE 200" etc. -> [ms]
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    held: set = field(default_factory=set)  # the live seat map as the clients know it: seats of their holds
    kept: dict = field(default_factory=dict)  # reservation id -> seat ids, holds still held at the end
    kept_seats: int = 0
    given_up: set = field(default_factory=set)  # reservation ids deleted (200)
    conflicts: Counter = field(default_factory=Counter)  # 409s by error code
    sold_out: bool = False

    def record(self, method, response, milliseconds):
        self.statuses[f"{method} {response.status_code}"] += 1
        self.latencies.setdefault(f"{method} {response.status_code}", []).append(milliseconds)

    def keep(self, reservation_id, seats):
        self.kept[reservation_id] = seats
        self.kept_seats += len(seats)

    def counted(self):
        """What the checks and the report read of the counts, as JSON (the Locust users write it to a file)."""
        return {
            "answered": self.answered,
            "latencies": self.latencies,
            "statuses": self.statuses,
            "failures": self.failures,
            "kept": self.kept,
            "kept_seats": self.kept_seats,
            "given_up": sorted(self.given_up),
            "conflicts": self.conflicts,
            "sold_out": self.sold_out,
        }

    def take_counts(self, counted):
        """The counts `counted()` wrote in another process, in place of this sale's."""
        self.answered, self.latencies, self.failures = counted["answered"], counted["latencies"], counted["failures"]
        self.statuses, self.conflicts = Counter(counted["statuses"]), Counter(counted["conflicts"])
        self.kept, self.kept_seats = counted["kept"], counted["kept_seats"]
        self.given_up, self.sold_out = set(counted["given_up"]), counted["sold_out"]


def random_buyer(number, sale):
    """Buyer `number`: a new customer each time wants --seats neighbouring seats the live map shows free, picks
    others after a 409, and gives a granted hold up at once with probability --release, else keeps it."""
    options = sale.options
    rng = random.Random(options.seed * 1_000_003 + number)
    customer = 0
    while sale.running():
        customer += 1
        session_id = f"{sale.run_tag}-{number}-{customer}"  # a new buyer each time: no session nears the cap
        count = rng.randint(*options.seats)
        lost = set()  # seats this buyer just lost a race for: it picks others next
        while sale.running():
            seats = sale.hall.pick(rng, count, held=sale.held, avoid=lost, hot_share=options.hot_share)
            if seats is None:
                if len(sale.hall.seat_ids) - sale.kept_seats < count:
                    sale.sold_out = True
                    sale.stop.set()
                    return
                yield Pause(0.005)  # seats of holds being given up come back in a moment
                lost.clear()
                continue
            answered = yield from ask_to_hold(sale, session_id, seats)
            if answered is None:
                return
            if answered == 409:
                lost.update(seats)
                continue
            reservation_id, got = answered
            if rng.random() < options.release:
                yield from give_up(sale, reservation_id, session_id, got)
            else:
                sale.keep(reservation_id, got)
            break


def pair_buyer(sale, requests):
    """--pairs: take the next request (a pair of neighbouring seats) off the shared list and ask once."""
    while requests and not sale.stop.is_set():
        number, seats = requests.pop()
        answered = yield from ask_to_hold(sale, f"{sale.run_tag}-pair-{number}", seats)
        if answered is None:
            return
        if answered != 409:
            sale.keep(*answered)


def pair_requests(sale):
    """Every pair of neighbouring seats of the hall, each asked for by two buyers, in a random order."""
    pairs = [row[start : start + 2] for row in sale.hall.rows for start in range(0, len(row) - 1, 2)]
    requests = [(number, pair) for number, pair in enumerate(pairs + pairs)]
    random.Random(sale.options.seed).shuffle(requests)
    return requests


def ask_to_hold(sale, session_id, seats):
    """`yield from`: POST one hold and count its answer: 409, `(reservation_id, seat ids)` for a 201, or None
    after a failure."""
    body = {"session_id": session_id, "show_id": sale.show_id, "movie_id": sale.movie_id, "seats_to_reserve": seats}
    path = "/api/v1/reservations"
    answer = yield from minding_busy(sale, Request("POST", path, path, json=body))
    if answer is None:
        return None
    response, ms = answer
    sale.record("POST", response, ms)
    if response.status_code == 409:
        sale.conflicts[response.json().get("error", {}).get("code", "?")] += 1
        return 409
    if response.status_code != 201:
        sale.fail(f"POST /api/v1/reservations {seats} -> {response.status_code}: {response.text[:300]}")
        return None
    reservation = response.json()
    reservation_id, got = reservation["reservation_id"], seat_ids(reservation)
    sale.answered[reservation_id] = got
    if got != sorted(seats):
        sale.fail(f"hold {reservation_id} asked for seats {sorted(seats)} and was answered {got}")
    sale.held.update(got)
    return reservation_id, got


def give_up(sale, reservation_id, session_id, seats):
    """`yield from`: DELETE a granted hold; its seats are free again on the live map."""
    path = f"/api/v1/reservations/{reservation_id}"
    answer = yield Request("DELETE", path, "/api/v1/reservations/{id}", params={"session_id": session_id})
    if answer is None:
        return
    response, ms = answer
    sale.record("DELETE", response, ms)
    if response.status_code != 200 or response.json().get("status") != "Cancelled":
        sale.fail(f"DELETE {reservation_id} -> {response.status_code}: {response.text[:300]}")
        sale.kept[reservation_id] = seats  # its fate is unknown: the checks treat it as still held
        return
    sale.given_up.add(reservation_id)
    sale.held.difference_update(seats)

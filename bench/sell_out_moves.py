"""The sell-out's buyers (bench.sell_out) as what they do, whichever load generator sends their requests: parties
of 1-10 that look at the map, hold (chosen seats or best available), settle for fewer or give up as a person
would, and pay. Each buyer is a generator of its moves (bench/moves.py's Request and Pause), sent back each
answer; what the clients know and count of the answers (SellOutCounts) is here too, so that the asyncio buyers
(bench/sell_out_buyers.py) and the Locust users (bench/sell_out_locust.py) run the same buyers.

Locust's interpreter runs this module as well: it imports nothing but the standard library.
"""

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from bench.moves import Pause, Request, minding_busy, seat_ids

# The sandbox provider's card that succeeds (API.md, "Sandbox payment"); a card must not have expired.
CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": datetime.now(UTC).year + 3, "cvc": "123"}
MOST_SEATS = 10  # TICKETING_MAX_SEATS
BEST_AVAILABLE_SHARE = 0.5
# As in hold_path: a chooser looks at the middle third of the rows (the seats people want) 70 % of the time.
HOT_SHARE = 0.7
# Bounds each buyer's requests: a person who is refused this many times goes elsewhere.
MAX_HOLD_ATTEMPTS = 20
# Best available without a type gives only these (docs/bookings.md, "Best available").
BEST_AVAILABLE_TYPES = {"Premium", "Regular"}


@dataclass(kw_only=True)
class SellOutCounts:
    """What the sell-out's clients know and count: the seat map as they know it, the bookings, and what became
    of the buyers. The sale that holds them (bench.sell_out_buyers.SellOutSale, or the Locust users' one) adds
    what the buyers read of the sale (bench.moves.SaleBasics)."""

    seat_types: dict  # seat id -> seat type, as the seat map shows them
    answered: dict = field(default_factory=dict)  # reservation id -> (seat ids, amount) its 201 answered
    latencies: dict = field(default_factory=dict)  # "hold 201", "hold 201 best available" etc. -> [ms]
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    last_booking: float | None = None
    taken: set = field(default_factory=set)  # the seat map as the clients know it: seats of every 201
    free_for_best: int = 0  # seats best available could still give, as far as the clients know
    booked: dict = field(default_factory=dict)  # reservation id -> (seat ids, amount) from every pay 200
    error_codes: Counter = field(default_factory=Counter)  # "hold 409 show_full" etc.
    buyers: Counter = field(default_factory=Counter)  # what became of each buyer
    fewest_given_up: float = float("inf")  # the smallest party among the buyers who gave up
    demand: Counter = field(default_factory=Counter)  # what the buyers came for, summed

    def __post_init__(self):
        self.free_for_best = sum(kind in BEST_AVAILABLE_TYPES for kind in self.seat_types.values())

    def free(self):
        return len(self.seat_types) - len(self.taken)

    def took(self, seats):
        new = set(seats) - self.taken
        self.taken |= new
        self.free_for_best -= sum(self.seat_types[seat_id] in BEST_AVAILABLE_TYPES for seat_id in new)

    def record(self, call, response, milliseconds, *, mode=None):
        """Count an answer by status (and error code), and its latency by status (and the buyer's kind)."""
        status = f"{call} {response.status_code}"
        self.statuses[status] += 1
        self.latencies.setdefault(status, []).append(milliseconds)
        if mode:
            self.latencies.setdefault(f"{status} {mode}", []).append(milliseconds)
        if response.status_code >= 400:
            code = error_code(response)
            self.error_codes[f"{status} {code}"] += 1
            return code
        return None

    def give_up(self, wish, why):
        self.buyers[f"gave up: {why}"] += 1
        self.fewest_given_up = min(self.fewest_given_up, wish.fewest)

    def counted(self):
        """What the checks and the report read of the counts, as JSON (the Locust users write it to a file);
        the last booking in seconds from the start, since the clocks are not the same process's."""
        return {
            "answered": amounts_as_text(self.answered),
            "booked": amounts_as_text(self.booked),
            "latencies": self.latencies,
            "statuses": self.statuses,
            "error_codes": self.error_codes,
            "failures": self.failures,
            "buyers": self.buyers,
            "fewest_given_up": self.fewest_given_up,
            "demand": self.demand,
            "last_booking_s": None if self.last_booking is None else self.last_booking - self.started,
        }

    def take_counts(self, counted):
        """The counts `counted()` wrote in another process, in place of this sale's."""
        self.answered, self.booked = amounts_read(counted["answered"]), amounts_read(counted["booked"])
        self.latencies, self.failures = counted["latencies"], counted["failures"]
        self.statuses, self.error_codes = Counter(counted["statuses"]), Counter(counted["error_codes"])
        self.buyers, self.demand = Counter(counted["buyers"]), Counter(counted["demand"])
        self.fewest_given_up = counted["fewest_given_up"]
        if counted["last_booking_s"] is not None:
            self.last_booking = self.started + counted["last_booking_s"]


def amounts_as_text(reservations):
    """{reservation id: (seat ids, Decimal amount)} as JSON has it, the amount as text."""
    return {reservation_id: [seats, str(amount)] for reservation_id, (seats, amount) in reservations.items()}


def amounts_read(reservations):
    return {reservation_id: (seats, Decimal(amount)) for reservation_id, (seats, amount) in reservations.items()}


def error_code(response):
    try:
        return response.json().get("error", {}).get("code", "?")
    except ValueError:
        return "not JSON"


@dataclass
class Wish:
    """One buyer's party: how many seats it wants, the fewest it settles for, and how it asks."""

    wanted: int
    fewest: int
    best_available: bool

    @classmethod
    def draw(cls, rng):
        wanted = rng.randint(1, MOST_SEATS)
        return cls(wanted=wanted, fewest=rng.randint(1, wanted), best_available=rng.random() < BEST_AVAILABLE_SHARE)


def buyer(number, sale):
    """Buyer `number`: its party (Wish), what it asks for and pays, as the moves it makes."""
    rng = random.Random(sale.options.seed * 1_000_003 + number)
    wish = Wish.draw(rng)
    sale.demand.update(
        buyers=1, seats_wanted=wish.wanted, seats_at_least=wish.fewest, best_available=wish.best_available
    )
    session_id = f"{sale.run_tag}-{number}"
    count, best_available, lost = wish.wanted, wish.best_available, set()
    for _ in range(MAX_HOLD_ATTEMPTS):
        if not sale.running():
            sale.buyers["stopped by the time limit" if not sale.stop.is_set() else "stopped by a failure"] += 1
            return
        # Look at the map before asking: nobody asks for 8 seats when the map shows 3.
        if best_available and sale.free_for_best < count:
            if sale.free_for_best >= wish.fewest:
                count = sale.free_for_best
            else:
                best_available = False  # only places best available won't give may be left: look at the map
        if not best_available and sale.free() < count:
            if sale.free() < wish.fewest:
                sale.give_up(wish, "too few seats left on the map")
                return
            count = sale.free()
        if best_available:
            seats = None
        else:
            seats = sale.hall.pick(rng, count, held=sale.taken, avoid=lost, hot_share=HOT_SHARE)
            if seats is None:  # the map shows enough seats, but it just changed under the buyer's eyes
                yield Pause(0)
                continue
        answer = yield from hold(sale, session_id, count=count, seats=seats)
        if answer is None:
            sale.buyers["failed: an unexpected answer or a connection error"] += 1
            return
        if isinstance(answer, str):  # refused: what a person does next depends on why
            if answer == "seats_unavailable":
                if best_available:
                    best_available = False  # "choose again": the buyer picks from the map
                else:
                    lost.update(seats)  # taken meanwhile: pick others
                continue
            if answer == "show_full":  # not this many seats, whatever happens: the buyer goes elsewhere
                sale.give_up(wish, "Show Full")
                return
            # "Retry": too few seats are free, the rest are held by others. Here every hold is paid for, none
            # lapses, so waiting (Retry-After: 5) would not help; the buyer tries with one seat fewer.
            if count - 1 < wish.fewest:
                sale.give_up(wish, f"{answer} below its fewest")
                return
            count -= 1
            continue
        reservation_id, got, amount = answer
        if not (yield from pay(sale, session_id, reservation_id, got, amount, rng)):
            sale.buyers["failed: an unexpected answer or a connection error"] += 1
        elif len(got) == wish.wanted:
            sale.buyers["booked all it wanted"] += 1
        else:
            sale.buyers["booked fewer than it wanted"] += 1
        return
    sale.give_up(wish, f"{MAX_HOLD_ATTEMPTS} refusals")


def hold(sale, session_id, *, count, seats):
    """`yield from`: POST one hold: `(reservation id, seat ids, amount)` for a 201, the error code of a 409, None
    on a failure."""
    body = {"session_id": session_id, "show_id": sale.show_id, "movie_id": sale.movie_id}
    if seats is None:
        body["best_available"] = {"count": count}
        mode = "best available"
    else:
        body["seats_to_reserve"] = seats
        mode = "chosen seats"
    path = "/api/v1/reservations"
    sent = yield from minding_busy(sale, Request("POST", path, path, json=body), call="hold")
    if sent is None:
        return None
    response, ms = sent
    code = sale.record("hold", response, ms, mode=mode)
    if response.status_code == 409:
        return code
    if response.status_code != 201:
        sale.fail(f"POST /api/v1/reservations {body} -> {response.status_code}: {response.text[:300]}")
        return None
    answer = response.json()
    reservation_id, got = answer["reservation_id"], seat_ids(answer)
    amount = Decimal(answer["amount"])
    sale.answered[reservation_id] = (got, amount)
    sale.took(got)
    if (seats is not None and got != sorted(seats)) or len(got) != count:
        sale.fail(f"hold {reservation_id} asked for {seats or count} seats and was answered {got}")
    if amount != sum(Decimal(seat["price"]) for seat in answer["seats"]):
        sale.fail(f"hold {reservation_id}: amount {amount} is not the sum of its seats' prices")
    return reservation_id, got, amount


def pay(sale, session_id, reservation_id, seats, amount, rng):
    """`yield from`: pay for a hold once, with the buyer's own Idempotency-Key; True when booked as held."""
    key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    body = {"session_id": session_id, "payment": CARD}
    path, group = f"/api/v1/reservations/{reservation_id}/pay", "/api/v1/reservations/{id}/pay"
    request = Request("POST", path, group, json=body, headers={"Idempotency-Key": key})
    sent = yield from minding_busy(sale, request, call="pay")
    if sent is None:
        return False
    response, ms = sent
    sale.record("pay", response, ms)
    if response.status_code != 200:
        # With the succeeding card and a fresh hold, anything else (402, 410, a 504 timeout) is a finding.
        sale.fail(f"pay {reservation_id} -> {response.status_code}: {response.text[:300]}")
        return False
    sale.last_booking = time.monotonic()
    answer = response.json()
    got = seat_ids(answer)
    sale.booked[reservation_id] = (got, Decimal(answer["amount"]))
    if answer["status"] != "Booked" or not answer.get("booking_code"):
        sale.fail(f"pay {reservation_id} -> 200 but status {answer['status']}, code {answer.get('booking_code')}")
    if got != seats or Decimal(answer["amount"]) != amount:
        sale.fail(f"pay {reservation_id}: held {seats} for {amount}, booked {got} for {answer['amount']}")
    return True

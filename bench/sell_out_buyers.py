"""The sell-out's buyers (bench.sell_out): parties of 1-10 that look at the map, hold (chosen seats or best
available), settle for fewer or give up as a person would, and pay; what the clients count of their answers."""

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from bench.sale import Sale, granted, run_buyers, seat_ids, send

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
class SellOutSale(Sale):
    """The sell-out's sale: the seat map as the clients know it, the bookings, and what became of the buyers."""

    seat_types: dict  # seat id -> seat type, as the seat map shows them
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


async def buyer(number, client, sale):
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
                await asyncio.sleep(0)
                continue
        answer = await hold(client, sale, session_id, count=count, seats=seats)
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
        if not await pay(client, sale, session_id, reservation_id, got, amount, rng):
            sale.buyers["failed: an unexpected answer or a connection error"] += 1
        elif len(got) == wish.wanted:
            sale.buyers["booked all it wanted"] += 1
        else:
            sale.buyers["booked fewer than it wanted"] += 1
        return
    sale.give_up(wish, f"{MAX_HOLD_ATTEMPTS} refusals")


async def hold(client, sale, session_id, *, count, seats):
    """POST one hold: `(reservation id, seat ids, amount)` for a 201, the error code of a 409, None on a failure."""
    body = {"session_id": session_id, "show_id": sale.show_id, "movie_id": sale.movie_id}
    if seats is None:
        body["best_available"] = {"count": count}
        mode = "best available"
    else:
        body["seats_to_reserve"] = seats
        mode = "chosen seats"
    sent = await send(sale, "hold", "POST /api/v1/reservations", lambda: client.post("/api/v1/reservations", json=body))
    if sent is None:
        return None
    response, ms = sent
    code = sale.record("hold", response, ms, mode=mode)
    if response.status_code == 409:
        return code
    held = granted(sale, response, body)
    if held is None:
        return None
    reservation_id, got, answer = held
    amount = Decimal(answer["amount"])
    sale.answered[reservation_id] = (got, amount)
    sale.took(got)
    if (seats is not None and got != sorted(seats)) or len(got) != count:
        sale.fail(f"hold {reservation_id} asked for {seats or count} seats and was answered {got}")
    if amount != sum(Decimal(seat["price"]) for seat in answer["seats"]):
        sale.fail(f"hold {reservation_id}: amount {amount} is not the sum of its seats' prices")
    return reservation_id, got, amount


async def pay(client, sale, session_id, reservation_id, seats, amount, rng):
    """Pay for a hold once, with the buyer's own Idempotency-Key; True when booked as held."""
    key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    url = f"/api/v1/reservations/{reservation_id}/pay"
    sent = await send(
        sale,
        "pay",
        f"POST {url}",
        lambda: client.post(url, json={"session_id": session_id, "payment": CARD}, headers={"Idempotency-Key": key}),
    )
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


async def run_sale(sale, *, base_url, server):
    buyers = sale.options.buyers
    return await run_buyers(
        sale,
        base_url=base_url,
        server=server,
        connections=buyers,  # one connection per buyer
        buyers=lambda clients: [buyer(number, clients[number % len(clients)], sale) for number in range(buyers)],
    )

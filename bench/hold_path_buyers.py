"""The hot show's buyers (bench.hold_path): random buyers racing for neighbouring seats and giving holds up, or
--pairs' buyers asking once each for a pair of seats, and what the clients count of their answers."""

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.harness.clients import timed
from bench.sale import Sale, granted, run_buyers, send


@dataclass(kw_only=True)
class HoldSale(Sale):
    """The hot show's sale: the seat map as the clients know it, and the holds they kept or gave up."""

    held: set = field(default_factory=set)  # the live seat map as the clients know it: seats of their holds
    kept: dict = field(default_factory=dict)  # reservation id -> seat ids, holds still held at the end
    kept_seats: int = 0
    given_up: set = field(default_factory=set)  # reservation ids deleted (200)
    conflicts: Counter = field(default_factory=Counter)  # 409s by error code
    sold_out: bool = False

    def record(self, method, response, milliseconds):
        self.statuses[f"{method} {response.status_code}"] += 1
        self.latencies.setdefault(f"{method} {response.status_code}", []).append(milliseconds)


async def buyer(number, client, sale):
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
                await asyncio.sleep(0.005)  # seats of holds being given up come back in a moment
                lost.clear()
                continue
            answered = await ask_to_hold(client, sale, session_id, seats)
            if answered is None:
                return
            if answered == 409:
                lost.update(seats)
                continue
            reservation_id, got = answered
            if rng.random() < options.release:
                await give_up(client, sale, reservation_id, session_id, got)
            else:
                sale.kept[reservation_id] = got
                sale.kept_seats += len(got)
            break


async def ask_to_hold(client, sale, session_id, seats):
    """POST one hold and count its answer: 409, `(reservation_id, seat ids)` for a 201, or None on a failure."""
    body = {"session_id": session_id, "show_id": sale.show_id, "movie_id": sale.movie_id, "seats_to_reserve": seats}
    sent = await send(sale, "POST", "POST /api/v1/reservations", lambda: client.post("/api/v1/reservations", json=body))
    if sent is None:
        return None
    response, ms = sent
    sale.record("POST", response, ms)
    if response.status_code == 409:
        sale.conflicts[response.json().get("error", {}).get("code", "?")] += 1
        return 409
    held = granted(sale, response, seats)
    if held is None:
        return None
    reservation_id, got, _ = held
    sale.answered[reservation_id] = got
    if got != sorted(seats):
        sale.fail(f"hold {reservation_id} asked for seats {sorted(seats)} and was answered {got}")
    sale.held.update(got)
    return reservation_id, got


async def pair_buyer(client, sale, requests):
    """--pairs: take the next request (a pair of neighbouring seats) off the shared list and ask once."""
    while requests and not sale.stop.is_set():
        number, seats = requests.pop()
        answered = await ask_to_hold(client, sale, f"{sale.run_tag}-pair-{number}", seats)
        if answered is None:
            return
        if answered != 409:
            reservation_id, got = answered
            sale.kept[reservation_id] = got
            sale.kept_seats += len(got)


def pair_requests(sale):
    """Every pair of neighbouring seats of the hall, each asked for by two buyers, in a random order."""
    pairs = [row[start : start + 2] for row in sale.hall.rows for start in range(0, len(row) - 1, 2)]
    requests = [(number, pair) for number, pair in enumerate(pairs + pairs)]
    random.Random(sale.options.seed).shuffle(requests)
    return requests


async def give_up(client, sale, reservation_id, session_id, seats):
    try:
        response, ms = await timed(
            client.delete(f"/api/v1/reservations/{reservation_id}", params={"session_id": session_id})
        )
    except httpx.HTTPError as exc:
        sale.fail(f"DELETE /api/v1/reservations/{reservation_id}: {type(exc).__name__}: {exc}")
        return
    sale.record("DELETE", response, ms)
    if response.status_code != 200 or response.json().get("status") != "Cancelled":
        sale.fail(f"DELETE {reservation_id} -> {response.status_code}: {response.text[:300]}")
        sale.kept[reservation_id] = seats  # its fate is unknown: the checks treat it as still held
        return
    sale.given_up.add(reservation_id)
    sale.held.difference_update(seats)


def buyers(sale, clients):
    """The run's buyers, spread over the clients: --concurrency random buyers, or as many --pairs buyers."""
    options, shares = sale.options, len(clients)
    if options.pairs:
        requests = pair_requests(sale)
        sale.deadline = float("inf")  # the run ends when every request has been answered
        return [pair_buyer(clients[number % shares], sale, requests) for number in range(options.concurrency)]
    return [buyer(number, clients[number % shares], sale) for number in range(options.concurrency)]


async def run_sale(sale, *, base_url, server):
    return await run_buyers(
        sale,
        base_url=base_url,
        server=server,
        connections=sale.options.concurrency,
        buyers=lambda clients: buyers(sale, clients),
    )

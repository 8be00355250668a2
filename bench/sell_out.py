"""A show sells out: 1,000 buyers hold and pay for the 2,000 seats of one show through a real ASGI server.

Usage:
    python -m bench.sell_out [--buyers 1000] [--workers 2 | --balanced 2] [--pool-max 10] [--duration 60] [--seed 7]
                             [--json FILE]
    python -m bench.sell_out --buyers 200 --hall-seats 500 --workers 1 --pool-max 4   # a quick sell-out

The scenario of a ticket drop: the sale opens and every buyer arrives at once. Reuses bench/show.py's show
and bench/harness/ (database setup, server, CPU accounting and percentiles) and adds payment. All on this machine:
1. Its own database (postgres://postgres@127.0.0.1:5432/ticketing_bench_sell_out unless --database-url; created
   and migrated when missing) and its own Redis database (/3, which also keeps the sandbox payment provider's
   ledger). Rows and ledger entries of earlier runs are deleted, then one show is scheduled in a 2,000-seat hall
   (bench.show.prepare_show).
2. `uvicorn ticketing.asgi:application --workers N` on a free loopback port, production settings, the real
   sandbox payment provider (bookings.providers.sandbox.SandboxProvider, the default), each worker's connection pool
   sized so that all of them fit under PostgreSQL's max_connections. With --balanced K instead: K uvicorn
   processes of one worker each behind HAProxy (servers.web_server_running, bench/harness/balancer.py); the CPU report
   counts every web process and HAProxy, and the report says how many responses each process sent.
3. B virtual buyers (asyncio, httpx), all started together. Each wants 1-10 seats (random) and would settle
   for fewer, down to its own random minimum. About half ask for `best_available`, the rest choose neighbouring
   seats from what they believe is free: the seats of every hold the clients have been answered, as a seat map
   kept live over the WebSocket would show them (idealised: no delay). Each buyer:
   - holds (POST /api/v1/reservations). On 409 it does what a person would: "Seats Unavailable" means choose
     again (a chooser picks other seats; a best-available buyer turns to the map, since best available without
     a type never gives Wheelchair or Companion places); "Show Full" means it gives up; "Retry" (too few seats
     free, the rest held by others, who all pay here) means it asks for one seat fewer, or gives up below its
     minimum. Before each ask it looks at the map: it asks for no more than the map shows free, and gives up
     without asking when that is below its minimum. At most MAX_HOLD_ATTEMPTS holds a buyer.
   - pays (POST /api/v1/reservations/{id}/pay) with the sandbox's succeeding card and its own Idempotency-Key.
   The run ends when every buyer has booked or given up (the show is sold out for them), or at --duration (no
   new hold after it; a hold already granted is still paid for), or at the first failure.
4. Figures: the wall time from the first request to the last booking ("sold out in N s"; issue's target under
   10 s), bookings/s and seats booked/s over that time, latency percentiles per call and answer (hold 201, hold
   409, pay 200), answers by status and error code, what became of the buyers, and where the CPU went.
5. Invariants, read straight from PostgreSQL and the provider's ledger (not through the app): no seat with two
   live claims; held + booked + free seats = the hall's size; no partial hold (each reservation's claims are
   exactly the seats it was answered with); each booking has exactly one successful charge, of the sum of its
   seats' prices, which the provider's ledger also has; the booked seats are exactly the ones clients were
   answered; no more seats booked than the hall has. Then the API's seat map must agree. The exit status is 1
   on any violation, any 5xx or other unexpected answer, or any connection error.

The load generator shares the machine's cores with the server, PostgreSQL and Redis: the figures are what one
small machine does with everything on it (the report says how the CPU time was split).
"""

import argparse
import asyncio
import os
import random
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import redis

from bench.harness.clients import add_http_client_option, bench_clients, minding_busy
from bench.harness.database import ensure_database
from bench.harness.figures import publish_report, summary_ms, take_cpu_snapshot
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import add_server_options, plan_server, serve_sale, wait_and_warm_up
from bench.show import BENCH_KEY, HALL_SEATS, SeatingPlan, prepare_show

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_sell_out"
# Not 0 (make run), 1 (make test) or 2 (bench-holds): this run's ledger and any queued task stay its own.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
# The sandbox provider's card that succeeds (API.md, "Sandbox payment"); a card must not have expired.
CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": datetime.now(UTC).year + 3, "cvc": "123"}
SANDBOX_PROVIDER = "bookings.providers.sandbox.SandboxProvider"
MOST_SEATS = 10  # TICKETING_MAX_SEATS
BEST_AVAILABLE_SHARE = 0.5
# As in hold_path: a chooser looks at the middle third of the rows (the seats people want) 70 % of the time.
HOT_SHARE = 0.7
# Bounds each buyer's requests: a person who is refused this many times goes elsewhere.
MAX_HOLD_ATTEMPTS = 20
# Best available without a type gives only these (docs/bookings.md, "Best available").
BEST_AVAILABLE_TYPES = {"Premium", "Regular"}
# 503s are expected too: a process whose admission queue is full or too slow sheds the request with a
# Retry-After, and the buyer sends it again then (harness.minding_busy); the report counts them.
EXPECTED = {"hold 201", "hold 409", "pay 200", "hold 503", "pay 503"}
# The last line of a traceback in the server's log, e.g. "django.db.utils.OperationalError: couldn't get a ...".
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b.*")


def percent(part, whole):
    return round(100 * part / max(1, whole), 1)


# --- The database, the ledger and the hall -------------------------------------------------------------------


def forget_earlier_runs(redis_url):
    """Delete the sandbox ledger and any queued Celery task that earlier runs left in the bench's own Redis db.

    Only with the default URL: another Redis database may be someone else's. Returns how many keys went.
    """
    if redis_url != DEFAULT_REDIS_URL:
        return 0
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match="*sandbox-payments:*", count=1000)) + [b"celery"]
    deleted = store.delete(*keys)
    store.close()
    return deleted


def queued_tasks(redis_url):
    """Celery tasks the run queued (no worker runs here; none are expected: nobody waits in line, no mail)."""
    broker = redis.Redis.from_url(redis_url)
    queued = broker.llen("celery")
    broker.close()
    return queued


def seat_types_of_show(database_url, show_id):
    """{seat id: seat type} of the show's hall: the seat map shows each seat's type."""
    with psycopg.connect(database_url) as connection:
        return dict(
            connection.execute(
                "SELECT s.id, s.seat_type FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id "
                "WHERE sh.id = %s",
                [show_id],
            ).fetchall()
        )


# --- The buyers -------------------------------------------------------------------------------------------------


@dataclass
class Sale:
    """What the clients know and counted, shared by every virtual buyer (one event loop: no locks needed)."""

    show_id: int
    movie_id: int
    hall: SeatingPlan
    seat_types: dict
    options: argparse.Namespace
    run_tag: str
    started: float = 0.0
    deadline: float = 0.0
    last_booking: float | None = None
    taken: set = field(default_factory=set)  # the seat map as the clients know it: seats of every 201
    free_for_best: int = 0  # seats best available could still give, as far as the clients know
    answered: dict = field(default_factory=dict)  # reservation id -> (seat ids, amount) from every 201
    booked: dict = field(default_factory=dict)  # reservation id -> (seat ids, amount) from every pay 200
    latencies: dict = field(default_factory=dict)  # "hold 201", "hold 201 best available" etc. -> [ms]
    statuses: Counter = field(default_factory=Counter)  # "hold 409" etc.
    error_codes: Counter = field(default_factory=Counter)  # "hold 409 show_full" etc.
    buyers: Counter = field(default_factory=Counter)  # what became of each buyer
    fewest_given_up: float = float("inf")  # the smallest party among the buyers who gave up
    demand: Counter = field(default_factory=Counter)  # what the buyers came for, summed
    failures: list = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

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

    def fail(self, what):
        self.failures.append(what)
        self.stop.set()  # a broken server answers fast: don't spin on it, end the run and say why

    def open(self):
        """Whether a buyer may still ask for a hold."""
        return not self.stop.is_set() and time.monotonic() < self.deadline


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
        if not sale.open():
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
    try:
        response, ms = await minding_busy(
            lambda: client.post("/api/v1/reservations", json=body), lambda busy, ms: sale.record("hold", busy, ms)
        )
    except httpx.HTTPError as exc:
        sale.fail(f"POST /api/v1/reservations: {type(exc).__name__}: {exc}")
        return None
    code = sale.record("hold", response, ms, mode=mode)
    if response.status_code == 409:
        return code
    if response.status_code != 201:
        sale.fail(f"POST /api/v1/reservations {body} -> {response.status_code}: {response.text[:300]}")
        return None
    answer = response.json()
    reservation_id = answer["reservation_id"]
    got = sorted(seat["id"] for seat in answer["seats"])
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
    try:
        response, ms = await minding_busy(
            lambda: client.post(
                f"/api/v1/reservations/{reservation_id}/pay",
                json={"session_id": session_id, "payment": CARD},
                headers={"Idempotency-Key": key},
            ),
            lambda busy, ms: sale.record("pay", busy, ms),
        )
    except httpx.HTTPError as exc:
        sale.fail(f"POST /api/v1/reservations/{reservation_id}/pay: {type(exc).__name__}: {exc}")
        return False
    sale.record("pay", response, ms)
    if response.status_code != 200:
        # With the succeeding card and a fresh hold, anything else (402, 410, a 504 timeout) is a finding.
        sale.fail(f"pay {reservation_id} -> {response.status_code}: {response.text[:300]}")
        return False
    sale.last_booking = time.monotonic()
    answer = response.json()
    got = sorted(seat["id"] for seat in answer["seats"])
    sale.booked[reservation_id] = (got, Decimal(answer["amount"]))
    if answer["status"] != "Booked" or not answer.get("booking_code"):
        sale.fail(f"pay {reservation_id} -> 200 but status {answer['status']}, code {answer.get('booking_code')}")
    if got != seats or Decimal(answer["amount"]) != amount:
        sale.fail(f"pay {reservation_id}: held {seats} for {amount}, booked {got} for {answer['amount']}")
    return True


async def run_sale(sale, *, base_url, server):
    options = sale.options
    # one connection per buyer
    async with bench_clients(base_url, options.buyers, api_key=BENCH_KEY, http_client=options.http_client) as clients:
        await wait_and_warm_up(clients, server, sale.show_id, options)
        before = take_cpu_snapshot(server, options.database_url)
        sale.started = time.monotonic()
        sale.deadline = sale.started + options.duration
        await asyncio.gather(*(buyer(number, clients[number % len(clients)], sale) for number in range(options.buyers)))
        elapsed = time.monotonic() - sale.started
        after = take_cpu_snapshot(server, options.database_url)
        seat_map = await clients[0].get(f"/api/v1/shows/{sale.show_id}/seats")
    return elapsed, before, after, seat_map


# --- Invariants -----------------------------------------------------------------------------------------------


def check_invariants(database_url, sale, seat_map):
    """Each check's list of violations (empty when it holds), read from PostgreSQL, the ledger and the seat map."""
    with psycopg.connect(database_url) as connection:
        hall_size = connection.execute(
            "SELECT count(*) FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id WHERE sh.id = %s",
            [sale.show_id],
        ).fetchone()[0]
        doubled = connection.execute(
            "SELECT seat_id, count(*) FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL "
            "GROUP BY 1 HAVING count(*) > 1",
            [sale.show_id],
        ).fetchall()
        # Seats, not claims: a seat claimed twice would count once here and twice in held + booked.
        live_by_status = dict(
            connection.execute(
                "SELECT r.status, count(*) FROM bookings_seatclaim c JOIN bookings_reservation r "
                "ON r.id = c.reservation_id WHERE c.show_id = %s AND c.released_at IS NULL GROUP BY 1",
                [sale.show_id],
            ).fetchall()
        )
        free = connection.execute(
            "SELECT count(*) FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id WHERE sh.id = %s "
            "AND NOT EXISTS (SELECT 1 FROM bookings_seatclaim c WHERE c.show_id = sh.id AND c.seat_id = s.id "
            "AND c.released_at IS NULL)",
            [sale.show_id],
        ).fetchone()[0]
        # Each reservation: its status and amount, its live claims, all its claims, and what its live seats
        # cost at the show's prices (from the catalog, not from the claims' own copy of the price).
        reservations = connection.execute(
            "SELECT r.id::text, r.status, r.amount, "
            "       coalesce(array_agg(c.seat_id ORDER BY c.seat_id) FILTER (WHERE c.released_at IS NULL), '{}'), "
            "       count(c.id), coalesce(sum(p.price) FILTER (WHERE c.released_at IS NULL), 0) "
            "FROM bookings_reservation r "
            "LEFT JOIN bookings_seatclaim c ON c.reservation_id = r.id "
            "LEFT JOIN cinemas_seat s ON s.id = c.seat_id "
            "LEFT JOIN cinemas_showprice p ON p.show_id = r.show_id AND p.seat_type = s.seat_type "
            "WHERE r.show_id = %s GROUP BY r.id",
            [sale.show_id],
        ).fetchall()
        payments = connection.execute(
            "SELECT p.id::text, p.reservation_id::text, p.kind, p.status, p.amount, p.provider_reference "
            "FROM bookings_payment p JOIN bookings_reservation r ON r.id = p.reservation_id WHERE r.show_id = %s",
            [sale.show_id],
        ).fetchall()
        booked_over_capacity = connection.execute(
            "SELECT s.seat_type, count(*), max(h.capacity ->> s.seat_type)::int "
            "FROM bookings_seatclaim c JOIN bookings_reservation r ON r.id = c.reservation_id "
            "JOIN cinemas_seat s ON s.id = c.seat_id JOIN cinemas_hall h ON h.id = s.hall_id "
            "WHERE c.show_id = %s AND c.released_at IS NULL AND r.status = 'Booked' GROUP BY 1 "
            "HAVING count(*) > max(h.capacity ->> s.seat_type)::int",
            [sale.show_id],
        ).fetchall()

    violations = {"seats_with_two_live_claims": [f"seat {seat}: {n} live claims" for seat, n in doubled]}
    held, booked = live_by_status.get("Reserved", 0), live_by_status.get("Booked", 0)
    ended = {status: n for status, n in live_by_status.items() if status not in {"Reserved", "Booked"}}
    violations["held_plus_booked_plus_free_is_hall_size"] = [
        f"held {held} + booked {booked} + free {free} != {hall_size} seats"
    ] * (held + booked + free != hall_size) + [f"live claims of ended reservations: {ended}"] * bool(ended)

    in_database = {row[0]: row[1:] for row in reservations}
    partial = [
        f"reservation without a 201: {reservation_id}" for reservation_id in set(in_database) - set(sale.answered)
    ]
    partial += [
        f"201 without a reservation: {reservation_id}" for reservation_id in set(sale.answered) - set(in_database)
    ]
    charges = {}
    for payment_id, reservation_id, kind, status, amount, reference in payments:
        charges.setdefault(reservation_id, []).append((payment_id, kind, status, amount, reference))
    wrong_charges, booked_in_database = [], {}
    for reservation_id, (status, amount, live, claims, seats_price) in in_database.items():
        answered_seats, answered_amount = sale.answered.get(reservation_id, (None, None))
        if answered_seats is not None and (list(live) != answered_seats or claims != len(answered_seats)):
            partial.append(
                f"{reservation_id} ({status}): answered {answered_seats}, live {list(live)}, {claims} claims"
            )
        succeeded = [c for c in charges.get(reservation_id, []) if c[1] == "charge" and c[2] == "succeeded"]
        refunded = sum(c[3] for c in charges.get(reservation_id, []) if c[1] == "refund" and c[2] == "succeeded")
        unsettled = [c for c in charges.get(reservation_id, []) if c[2] in {"pending", "unknown"}]
        if status == "Booked":
            booked_in_database[reservation_id] = list(live)
            if len(succeeded) != 1:
                wrong_charges.append(f"{reservation_id} (Booked): {len(succeeded)} successful charges")
            elif not succeeded[0][3] == amount == seats_price == answered_amount:
                wrong_charges.append(
                    f"{reservation_id}: charged {succeeded[0][3]}, amount {amount}, its seats cost {seats_price}, "
                    f"answered {answered_amount}"
                )
        elif sum(c[3] for c in succeeded) != refunded:
            wrong_charges.append(f"{reservation_id} ({status}): charged {succeeded} but refunded {refunded}")
        if unsettled:
            wrong_charges.append(f"{reservation_id}: payments left unsettled {unsettled}")
    violations["partial_holds"] = partial
    violations["booking_charged_once_at_its_price"] = wrong_charges
    violations["charges_in_the_provider_ledger"] = check_ledger(
        [c for found in charges.values() for c in found if c[1] == "charge" and c[2] == "succeeded"]
    )
    answered_booked = {reservation_id: seats for reservation_id, (seats, _) in sale.booked.items()}
    violations["seats_booked_are_what_clients_were_answered"] = (
        [f"booked, not answered: {sorted(set(booked_in_database) - set(answered_booked))}"]
        * bool(set(booked_in_database) - set(answered_booked))
        + [f"answered, not booked: {sorted(set(answered_booked) - set(booked_in_database))}"]
        * bool(set(answered_booked) - set(booked_in_database))
        + [
            f"{reservation_id}: answered {seats}, booked {booked_in_database[reservation_id]}"
            for reservation_id, seats in answered_booked.items()
            if reservation_id in booked_in_database and booked_in_database[reservation_id] != seats
        ]
    )
    seats_answered = [seat_id for seats in answered_booked.values() for seat_id in seats]
    violations["no_oversell"] = (
        [f"{booked} seats booked in a {hall_size}-seat hall"] * (booked > hall_size)
        + [f"clients were sold {len(seats_answered)} seats, {len(set(seats_answered))} different"]
        * (len(seats_answered) != len(set(seats_answered)))
        + [f"{kind}: {n} booked of {capacity}" for kind, n, capacity in booked_over_capacity]
    )
    violations["seat_map_agrees"] = check_seat_map(
        seat_map, held=held, booked=booked, free=free, booked_seats=seats_answered
    )
    counts = {"hall": hall_size, "held": held, "booked": booked, "free": free}
    return counts, violations


def check_ledger(succeeded_charges):
    """Each successful charge as the sandbox provider's own ledger (in Redis) has it: same charge id and amount."""
    from bookings.providers import get_provider  # Django was set up by prepare_show, with the run's Redis

    provider, wrong = get_provider(), []
    for payment_id, _, _, amount, reference in succeeded_charges:
        charge = provider.find_charge(idempotency_key=payment_id)
        if charge is None or charge.charge_id != reference or charge.amount != amount or charge.refunded:
            wrong.append(f"payment {payment_id} ({reference}, {amount}): the ledger has {charge}")
    return wrong


def check_seat_map(seat_map, *, held, booked, free, booked_seats):
    if seat_map.status_code != 200:
        return [f"GET seats answered {seat_map.status_code}"]
    listed = seat_map.json()["seats"]
    by_status = Counter(seat["status"] for seat in listed)
    on_map = {seat["id"] for seat in listed if seat["status"] == "booked"}
    wrong = []
    if (by_status["held"], by_status["booked"], by_status["available"]) != (held, booked, free):
        wrong.append(f"the map's held/booked/available {dict(by_status)} != the database's {held}/{booked}/{free}")
    if on_map != set(booked_seats):
        wrong.append(f"booked on the map {len(on_map)}, answered to clients {len(set(booked_seats))}")
    return wrong


# --- The report -----------------------------------------------------------------------------------------------


def build_report(sale, *, elapsed, cpu, server_settings, counts, violations):
    options = sale.options
    bookings = len(sale.booked)
    seats_booked = sum(len(seats) for seats, _ in sale.booked.values())
    to_last_booking_s = (sale.last_booking - sale.started) if sale.last_booking else None
    unexpected = {status: n for status, n in sale.statuses.items() if status not in EXPECTED}
    buyers_done = sum(sale.buyers.values())
    if sale.failures:
        ended_by = "failure"
    elif counts["free"] == 0:
        ended_by = "sold out"
    elif any(reason.startswith("stopped") for reason in sale.buyers):
        ended_by = "time limit"
    elif counts["free"] < sale.fewest_given_up:
        ended_by = f"sold out for the buyers left: {counts['free']} seats free, too few for any who gave up"
    elif any(reason.startswith("gave up") for reason in sale.buyers):
        ended_by = f"every buyer booked or gave up, {counts['free']} seats free that some could have used"
    else:
        ended_by = f"every buyer booked: {counts['free']} seats free (too few buyers to sell out)"
    requests = sum(sale.statuses.values())
    return {
        "setup": {
            **server_settings,
            "buyers": options.buyers,
            "seats_wanted": f"1-{MOST_SEATS}, each buyer settling for fewer down to its own random minimum",
            "best_available_share": BEST_AVAILABLE_SHARE,
            "hot_share_of_choosers": HOT_SHARE,
            "max_hold_attempts_per_buyer": MAX_HOLD_ATTEMPTS,
            "payment": f"the sandbox provider ({SANDBOX_PROVIDER}), card 4242424242424242",
            "hall_seats": len(sale.seat_types),
            "show_id": sale.show_id,
            "duration_limit_s": options.duration,
            "seed": options.seed,
        },
        "ended_by": ended_by,
        "sold_out_in_s": round(to_last_booking_s, 2) if ended_by.startswith("sold out") else None,
        "target_s": 10,
        "first_request_to_last_booking_s": round(to_last_booking_s, 2) if to_last_booking_s else None,
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": {
            "bookings": round(bookings / to_last_booking_s, 1) if to_last_booking_s else 0,
            "seats_booked": round(seats_booked / to_last_booking_s, 1) if to_last_booking_s else 0,
            "requests": round(requests / elapsed, 1),
        },
        "demand": dict(sale.demand),
        "bookings": bookings,
        "seats_booked": seats_booked,
        "seats_at_end": counts,
        "latency_ms": {status: summary_ms(values) for status, values in sorted(sale.latencies.items())},
        "status_counts": dict(sorted(sale.statuses.items())),
        "error_codes": dict(sorted(sale.error_codes.items())),
        "hold_409_percent_of_holds": percent(
            sale.statuses["hold 409"], sale.statuses["hold 201"] + sale.statuses["hold 409"]
        ),
        "buyers_outcome": dict(sorted(sale.buyers.items())),
        "buyers_unaccounted": options.buyers - buyers_done,
        "unexpected_statuses": unexpected,
        "failures": sale.failures[:20],
        "cpu": cpu,
        "invariants": {name: len(found) for name, found in violations.items()},
        "invariant_examples": {name: found[:5] for name, found in violations.items() if found},
        "ok": not sale.failures and not unexpected and not any(violations.values()),
    }


def server_exceptions(server_log):
    """The server log's exception lines ("psycopg_pool.PoolTimeout: ...") counted: why the 5xx came, at a glance."""
    found = Counter(
        line.strip()
        for line in server_log.splitlines()
        if EXCEPTION_LINE.match(line) and not line.startswith(("Traceback", "During handling"))
    )
    return dict(found.most_common(10))


def bookings_and_seats(report):
    rates = report["throughput_per_s"]
    return (
        f"{report['bookings']} bookings ({rates['bookings']}/s), {report['seats_booked']} seats "
        f"({rates['seats_booked']}/s)"
    )


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.sell_out", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buyers", type=int, default=1000, help="virtual buyers, all arriving at once (default 1000)")
    add_server_options(parser)
    add_http_client_option(parser)
    parser.add_argument("--duration", type=float, default=60, help="seconds before no new hold is asked (default 60)")
    parser.add_argument(
        "--hall-seats",
        type=int,
        default=HALL_SEATS,
        help=f"seats of the hall (default {HALL_SEATS}); fewer for a quick sell-out with fewer buyers",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    # The run pays through the real sandbox provider, whose ledger the checks read: no stand-in may replace it.
    if os.environ.get("TICKETING_PAYMENT_PROVIDER", SANDBOX_PROVIDER) != SANDBOX_PROVIDER:
        sys.exit(f"Unset TICKETING_PAYMENT_PROVIDER: this benchmark pays through {SANDBOX_PROVIDER}.")
    ensure_database(options.database_url)
    forget_earlier_runs(options.redis_url)
    pool_max, server_settings = plan_server(options)
    show_id, movie_id, hall = prepare_show(options.database_url, options.redis_url, hall_seats=options.hall_seats)
    sale = Sale(
        show_id=show_id,
        movie_id=movie_id,
        hall=hall,
        seat_types=seat_types_of_show(options.database_url, show_id),
        options=options,
        run_tag=secrets.token_hex(4),
    )
    server_settings["hold_seconds"] = int(os.environ.get("TICKETING_HOLD_SECONDS", 300))
    served = serve_sale(sale, run_sale, pool_max=pool_max, log_prefix="bench-sell-out-server-")
    server_settings["celery_tasks_queued"] = queued_tasks(options.redis_url)
    counts, violations = check_invariants(options.database_url, sale, served.seat_map)
    report = build_report(
        sale,
        elapsed=served.elapsed,
        cpu=served.cpu,
        server_settings=server_settings,
        counts=counts,
        violations=violations,
    )
    if options.balanced:
        report["responses_by_process"] = served.responses_by_process
    report["server_exceptions"] = server_exceptions(served.server_log)
    summary = (
        f"{report['ended_by']}; first request to last booking {report['first_request_to_last_booking_s']} s, "
        f"{bookings_and_seats(report)}; invariants {'hold' if not any(violations.values()) else 'VIOLATED'}"
    )
    publish_report(report, options, log=served.log, server_log=served.server_log, summary=summary)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()

"""Holds: claiming seats all or nothing, swapping them, giving them up, more time once, and the sweep of
lapsed holds.

Every decision is one call of a SQL function kept in bookings migrations 0009-0014, 0016 and 0020 (bookings_hold_seats,
bookings_change_seats, bookings_cancel_hold, bookings_extend_hold, bookings_release_lapsed, bookings_release):
the waiting-line check, the session and client caps, taking over lapsed claims, the claims themselves, the
one extension and the choice of refusal live there once, for the API, the website, the waiting line and staff.
This module passes the settings in, turns a refusal into BookingError and announces what changed, for after
commit (bookings.notices).
"""

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone

from bookings.availability import ataken_seats, live_claims, taken_seats
from bookings.models import Reservation
from bookings.notices import announce_freed_seats, announce_seat_changes
from bookings.seat_maps import seat_spots, show_seat_spots, show_seat_spots_on_the_loop
from bookings.seat_picking import pick_best_seats, single_gaps_left
from bookings.services.errors import BookingError
from cinemas.models import OPEN_SEAT_TYPES, Show
from cinemas.on_sales import agate_for, gate_for, pass_admits
from ticketing import shards
from ticketing.lean import pooled_call
from ticketing.shards import connection

logger = logging.getLogger(__name__)

# Best available looks at the map, picks, and claims; the claim can lose to a buyer who took one of the seats
# meanwhile. A few looks settle every such race.
PICK_ATTEMPTS = 3

# SQLSTATE of the hold functions' refusals (bookings_refuse): the message is the BookingError code.
REFUSAL_SQLSTATE = "TKR01"
# How often a call that is its own transaction is made when it keeps losing deadlocks (PostgreSQL ends one of
# two calls that wait on each other; migration 0014 says when a client's cap stripes can).
CALL_ATTEMPTS = 3
JSONB_TYPE_OID = 3802


@dataclass(frozen=True)
class BestAvailable:
    count: int
    seat_type: str | None = None


@dataclass(frozen=True)
class HeldSeat:
    """One seat of a hold as the hold functions return it, at the price it was held for."""

    pk: int
    row_label: str
    number: int
    seat_type: str
    price: Decimal


# --- Reading helpers ---------------------------------------------------------------------------------


@shards.in_its_reservations_database
def find_reservation(*, buyer, reservation_id, lock=False):
    """The buyer's reservation, or BookingError("not_found"): another session's is never revealed."""
    reservations = Reservation.objects.select_related("show__hall")
    if lock:
        reservations = reservations.select_for_update(of=("self",))
    reservation = reservations.filter(
        pk=reservation_id, api_key_id=buyer.api_key_id, session_id=buyer.session_id
    ).first()
    if reservation is None:
        raise BookingError("not_found")
    return reservation


# --- Calling the hold functions ---------------------------------------------------------------------------


def call_function(function, *arguments, own_transaction=True, refusal_of=None):
    """`SELECT * FROM function(arguments)` on Django's connection: its one row, or the BookingError it refused
    with (`refusal_of(error)`, when given, says what another function's errors mean: the exception to raise, or
    None for an error that is none of its words).

    With `own_transaction` (every service but the waiting line's, which calls inside its own), the call is
    a transaction of its own: in autocommit (the API's hot path) the statement alone, one round trip; inside
    a caller's transaction it refuses to run, as Django's durable atomic blocks do. Otherwise it runs in a
    savepoint of the caller's transaction. Either way a refusal rolls back the call and nothing else. A call
    that is its own transaction and loses a deadlock is made again (CALL_ATTEMPTS): PostgreSQL rolled all of
    it back. Inside a caller's transaction the error goes up: the caller's locks are still held.
    """
    refusal_of = refusal_of or _refusal_of
    for attempt in range(1, CALL_ATTEMPTS + 1):
        try:
            if connection.in_atomic_block:
                with shards.atomic(durable=own_transaction):
                    return _call_now(function, arguments, refusal_of)
            return _call_now(function, arguments, refusal_of)
        except DatabaseError as error:
            if not (own_transaction and attempt < CALL_ATTEMPTS and _lost_a_deadlock(error.__cause__)):
                raise
            logger.info("%s lost a deadlock; calling it again", function)


def _call_now(function, arguments, refusal_of):
    placeholders = ", ".join(["%s"] * len(arguments))
    with connection.cursor() as cursor:
        try:
            cursor.execute(f"SELECT * FROM {function}({placeholders})", arguments)
        except DatabaseError as error:
            refusal = refusal_of(error.__cause__)
            if refusal is None:
                raise
            raise refusal from None
        # Django's psycopg setup hands jsonb back as text, for JSONField to decode: decode it here.
        types = [column.type_code for column in cursor.description]
        return [
            json.loads(value) if kind == JSONB_TYPE_OID and value is not None else value
            for kind, value in zip(types, cursor.fetchone(), strict=True)
        ]


async def acall_function(function, *arguments, refusal_of=None):
    """What call_function does, on the lean path's async pool (ticketing.lean): the call is its own transaction,
    made again if it loses a deadlock."""
    refusal_of = refusal_of or _refusal_of
    for attempt in range(1, CALL_ATTEMPTS + 1):
        try:
            return await pooled_call(function, arguments)
        except psycopg.Error as error:
            refusal = refusal_of(error)
            if refusal is not None:
                raise refusal from None
            if not (attempt < CALL_ATTEMPTS and _lost_a_deadlock(error)):
                raise
            logger.info("%s lost a deadlock; calling it again", function)


@dataclass(frozen=True)
class FunctionCall:
    """One call of a SQL function as a step (ticketing.steps), its answer the function's row: made through
    Django's connection (`run`; `run_here` in the caller's transaction) or on the async pool (`arun`), on the
    scope's database or on `database` when named (gift cards' money moving between shards)."""

    function: str
    arguments: tuple
    database: str | None = None

    def run(self):
        with self._scope():
            return call_function(self.function, *self.arguments)

    def run_here(self):
        """In the caller's transaction (in a savepoint), for payments taken in person (pay_in_person)."""
        return call_function(self.function, *self.arguments, own_transaction=False)

    async def arun(self):
        with self._scope():
            return await acall_function(self.function, *self.arguments)

    def _scope(self):
        return shards.in_database(self.database) if self.database else contextlib.nullcontext()


def _lost_a_deadlock(error):
    return isinstance(error, psycopg.errors.DeadlockDetected)


def _refusal_of(error):
    """The BookingError a hold function refused with (SQLSTATE TKR01), or None for any other error."""
    if getattr(error, "sqlstate", None) != REFUSAL_SQLSTATE:
        return None
    code, extras = error.diag.message_primary, json.loads(error.diag.message_detail or "{}")
    if code == "seat_not_in_hall":
        return BookingError(code, fields={"seats_to_reserve": [f"Not in this hall: {extras['outside']}"]})
    return BookingError(code, **extras)


def _held_seats(rows):
    return [
        HeldSeat(pk, row_label, number, seat_type, Decimal(price)) for pk, row_label, number, seat_type, price in rows
    ]


def _reservation(
    buyer, show_id, *, pk, status, amount, currency, created_at, expires_at, seats, breakdown, ended_at=None
):
    """The Reservation a hold function described, as the answer shows it, without reading it back."""
    reservation = Reservation(
        pk=pk,
        show_id=show_id,
        api_key_id=buyer.api_key_id,
        session_id=buyer.session_id,
        client_address=buyer.client_address,
        status=status,
        amount=amount,
        currency=currency,
        price_breakdown=breakdown,
        created_at=created_at,
        expires_at=expires_at,
        held_until=expires_at + timedelta(seconds=settings.TICKETING_HOLD_GRACE_SECONDS),
        ended_at=ended_at,
    )
    reservation._state.adding, reservation._state.db = False, connection.alias
    reservation.seats_held = _held_seats(seats)
    return reservation


def _refuse_single_gaps(show, *, chosen, others_of, at):
    """BookingError("single_seat_gap") if `chosen` would strand a free seat (seats of `others_of` count free)."""
    claims = live_claims(at).filter(show=show)
    if others_of is not None:
        claims = claims.exclude(reservation=others_of)
    taken = set(claims.values_list("seat_id", flat=True))
    spots = seat_spots(show)
    stranded = single_gaps_left(spots, taken, chosen)
    if stranded:
        labels = {spot.id: f"{spot.row_label}{spot.number}" for spot in spots}
        raise BookingError("single_seat_gap", seats=", ".join(labels[seat_id] for seat_id in stranded))


# --- The waiting room in front of an on-sale (cinemas.on_sales) -------------------------------------------------

# What the staff's counter passes for `admission_pass`: people at the cinema's counter are served there, not online.
AT_THE_COUNTER = object()


def refuse_unadmitted(gate, *, buyer, admission_pass, at):
    """Raise BookingError when the show is behind a room (`gate`, cinemas.on_sales.Gate, or None) and this hold
    may not pass it: `sale_not_open` (425) before the sale opens, `admission_required` (409) after, unless
    `admission_pass` is a pass of that room for this buyer that has not expired. Both carry the room's link (its
    API path, and its id) for the client to go to. Reads nothing from the database."""
    if gate is None or admission_pass is AT_THE_COUNTER:
        return
    opening = not gate.is_open(at)
    if not opening and pass_admits(admission_pass, on_sale_id=gate.on_sale_id, buyer=buyer, at=at):
        return
    room = reverse("api-room", kwargs={"on_sale_id": gate.on_sale_id})
    extra = {"room": {"on_sale_id": gate.on_sale_id, "url": room, "opens_at": gate.opens_at}}
    raise BookingError("sale_not_open" if opening else "admission_required", room=room, extra=extra)


# --- Holds ---------------------------------------------------------------------------------------------------


@shards.in_its_shows_database
def hold_seats(
    *,
    buyer,
    show=None,
    show_id=None,
    seat_ids=None,
    best_available=None,
    movie_id=None,
    no_single_gaps=False,
    accessible_confirmed=False,
    at=None,
    and_then=None,
    idempotent_request=None,
    admission_pass=None,
):
    """Hold seats of a show (`show`, or its `show_id`) for the buyer, all or nothing; return the new Reservation.

    Give `seat_ids`, or `best_available` to let the server pick seats together (bookings.seat_picking).
    With `no_single_gaps` (the website's rule), chosen seats that would leave a free seat alone between them
    and a taken seat, an aisle or the wall are refused with `single_seat_gap` (best available never does).
    The returned reservation's `seats_held` lists its seats (with `price`) in seat-map order, so callers
    needn't read them back. Wheelchair spaces and companion seats (chosen, or best available of their type)
    need `accessible_confirmed`, the buyer's word that they need them (bookings_refuse_reserved_seats, in the call).
    One call of bookings_hold_seats, which locks this buyer's advisory lock for the show (the session cap),
    the rows of any lapsed hold it takes seats from, and one stripe of the client's count until commit (the
    client cap: a stripe no other call holds, so the client's holds don't wait on each other, or one commit
    when every stripe with room is held; all of the client's stripes when none has room, see
    bookings_take_client_seats in migrations 0012 and 0014). Best available
    first reads the show's seats (show_seat_spots, kept per catalog generation) and the seats taken now
    (taken_seats, locking nothing), picks, and calls with the pick; when a seat of the pick was taken
    meanwhile it looks again, PICK_ATTEMPTS looks in all (_BestAvailableLooks). Raises BookingError: the 400
    kinds for bad requests (`no_such_show` among them); `waiting_line` while anyone waits in the show's line
    and the seats asked for are of the types the line is served (freed seats are theirs first; wheelchair
    spaces and companion seats never are); `session_seat_cap`; `client_hold_cap` (429, with the seconds until
    the client's soonest hold lapses as `retry_after`) when the buyer's API key or address holds its cap of
    the show unpaid; `accessible_seat_needs_confirmation` or `companion_seat_needs_wheelchair`
    (bookings_refuse_reserved_seats, migration 0025); or `seats_unavailable`, `retry` or `show_full` when the
    seats can't be had. The statuses are ticketing.error_codes'. Nothing is written then. On commit: pushes the seats as
    held (and those freed from lapsed holds as available).

    `and_then(reservation)`, when given, runs in the hold's own transaction before it commits and returns the
    reservation to answer with (the staff's sales mark their channel and seller there, and book house seats): what
    it raises rolls the hold back with it.

    `idempotent_request`: the id of the partner's Idempotency-Key row (begin_idempotent_request) this hold
    answers; the hold's reservation is written on it in the hold's own call (bookings_hold_seats_once).

    `admission_pass`: the buyer's pass from the waiting room in front of the show, if it is behind one (refused
    without one: refuse_unadmitted); AT_THE_COUNTER for the staff's sales at the cinema.
    """
    at = at or timezone.now()
    show_id = show.pk if show is not None else show_id
    refuse_unadmitted(gate_for(show_id, at), buyer=buyer, admission_pass=admission_pass, at=at)
    check_gaps = no_single_gaps and not best_available

    def hold(own_transaction):
        if best_available:
            return _hold_best_available(
                buyer,
                show_id,
                best_available,
                show=show,
                movie_id=movie_id,
                confirmed=accessible_confirmed,
                at=at,
                own_transaction=own_transaction,
                idempotent_request=idempotent_request,
            )
        call = _hold_call(
            buyer,
            show_id,
            seat_ids,
            movie_id=movie_id,
            confirmed=accessible_confirmed,
            at=at,
            idempotent_request=idempotent_request,
        )
        return _held(buyer, show_id, at, call_function(*call, own_transaction=own_transaction))

    if not (check_gaps or and_then):
        return hold(own_transaction=True)
    with shards.atomic(durable=True):
        reservation = hold(own_transaction=False)
        if check_gaps:
            _refuse_single_gaps(show, chosen=set(seat_ids), others_of=reservation, at=at)
        if and_then is not None:
            reservation = and_then(reservation)
    return reservation


@shards.in_its_shows_database
async def ahold_seats(
    *,
    buyer,
    show_id,
    seat_ids=None,
    best_available=None,
    movie_id=None,
    accessible_confirmed=False,
    at=None,
    idempotent_request=None,
    admission_pass=None,
):
    """hold_seats (without `no_single_gaps`) on the lean path's async pool: the same function call, the same
    answer; it locks, raises and pushes as hold_seats does. Best available reads the show's seats from this
    process's copy (on a thread only to build it, once per catalog generation) and the taken seats in one
    round trip: no thread once the copy is there."""
    at = at or timezone.now()
    refuse_unadmitted(await agate_for(show_id, at), buyer=buyer, admission_pass=admission_pass, at=at)
    if best_available:
        return await _ahold_best_available(
            buyer,
            show_id,
            best_available,
            movie_id=movie_id,
            confirmed=accessible_confirmed,
            at=at,
            idempotent_request=idempotent_request,
        )
    call = _hold_call(
        buyer,
        show_id,
        seat_ids,
        movie_id=movie_id,
        confirmed=accessible_confirmed,
        at=at,
        idempotent_request=idempotent_request,
    )
    return _held(buyer, show_id, at, await acall_function(*call))


@shards.in_its_shows_database
def hold_seats_for_waiter(*, buyer, show, count, at, seat_type=None, seats=None):
    """Hold the best `count` seats for the head of the show's waiting line; returns the Reservation.

    `seat_type`: the category the waiter asked for (an open seat type), or None for the cheapest that fits.

    For waiting.services only, inside its transaction (which holds the show's line lock). Works in a
    savepoint: when the seats can't be had it raises BookingError and leaves the caller's transaction as it
    was. Locks, raises and pushes as hold_seats does, without the line check (this buyer is the line).
    `seats`: the show's seats as bookings.seat_maps.show_seat_spots read them before the transaction (inside
    one the cache is not read, and building them for every waiter served was a 2,000-seat hall's rows each).
    """
    return _hold_best_available(
        buyer,
        show.pk,
        BestAvailable(count, seat_type),
        show=show,
        seats=seats,
        check_line=False,
        at=at,
        own_transaction=False,
    )


def _hold_best_available(
    buyer,
    show_id,
    best_available,
    *,
    at,
    show=None,
    seats=None,
    check_line=True,
    movie_id=None,
    own_transaction=True,
    confirmed=False,
    idempotent_request=None,
):
    """Best available on Django's connection: the looks of _BestAvailableLooks, each read and call in turn."""
    seats = seats or show_seat_spots(show_id, show=show)
    looks = _BestAvailableLooks(
        buyer,
        show_id,
        seats,
        best_available,
        check_line=check_line,
        movie_id=movie_id,
        confirmed=confirmed,
        at=at,
        idempotent_request=idempotent_request,
    )
    with looks:
        while True:
            taken = taken_seats(show_id, at) if looks.picking else None
            try:
                return _held(buyer, show_id, at, call_function(*looks.call(taken), own_transaction=own_transaction))
            except BookingError as refusal:
                if not looks.again_after(refusal):
                    raise


async def _ahold_best_available(
    buyer, show_id, best_available, *, at, movie_id=None, confirmed=False, idempotent_request=None
):
    """_hold_best_available on the event loop: the seats from show_seat_spots_on_the_loop, the taken seats and
    the calls on the async pool."""
    seats = await show_seat_spots_on_the_loop(show_id)
    looks = _BestAvailableLooks(
        buyer,
        show_id,
        seats,
        best_available,
        movie_id=movie_id,
        confirmed=confirmed,
        at=at,
        idempotent_request=idempotent_request,
    )
    with looks:
        while True:
            taken = await ataken_seats(show_id, at) if looks.picking else None
            try:
                return _held(buyer, show_id, at, await acall_function(*looks.call(taken)))
            except BookingError as refusal:
                if not looks.again_after(refusal):
                    raise


class _PicksInFlight:
    """The seats this process's best-available holds have picked and not yet heard about, per show: a pick looks
    past them, so that the holds one process answers at once don't all pick the same best block and all but one
    look again. On the event loop nothing bounds how many pick at once (a sell-out's 500 best-available buyers
    picked the same seats and spent PostgreSQL's CPU re-reading the show). Other processes' picks still meet at
    the claim, which decides."""

    def __init__(self):
        self.lock = threading.Lock()  # the sync path picks on threads
        self.by_show = {}

    def of(self, show_id):
        with self.lock:
            return frozenset().union(*self.by_show.get(show_id, {}).values())

    def keep(self, show_id, owner, seat_ids):
        with self.lock:
            self.by_show.setdefault(show_id, {})[owner] = frozenset(seat_ids)

    def drop(self, show_id, owner):
        with self.lock:
            picks = self.by_show.get(show_id, {})
            picks.pop(owner, None)
            if not picks:
                self.by_show.pop(show_id, None)


PICKS_IN_FLIGHT = _PicksInFlight()


class _BestAvailableLooks:
    """The looks of one best-available hold, the same on Django's connection and on the async pool: each picks
    the best seats from the show's seats and those taken now (pick_best_seats), and makes the call of
    bookings_hold_seats that claims them. The claim can lose to a buyer who took one of them meanwhile: then
    another look, PICK_ATTEMPTS in all. A pick looks past the seats other holds of this process have picked
    and not yet claimed (PICKS_IN_FLIGHT), unless that leaves none to pick; used as a context manager, so that
    its own pick stops counting once it is answered. A show that started, or a count no hold can have, is not
    picked for: the call alone answers with the refusal, as it does when no pick is possible. `seats` None (no
    such show) raises BookingError("no_such_show") before any call; a type kept for wheelchair users is the
    call's to refuse without `confirmed` (bookings_refuse_reserved_seats)."""

    def __init__(
        self,
        buyer,
        show_id,
        seats,
        best_available,
        *,
        at,
        check_line=True,
        movie_id=None,
        confirmed=False,
        idempotent_request=None,
    ):
        if seats is None:
            raise BookingError("no_such_show")
        self.buyer, self.show_id, self.seats, self.best = buyer, show_id, seats, best_available
        self.check_line, self.movie_id, self.at, self.confirmed = check_line, movie_id, at, confirmed
        self.idempotent_request = idempotent_request
        self.picking = seats.starts_at > at and 1 <= best_available.count <= settings.TICKETING_MAX_SEATS
        self.pick, self.looks = None, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        PICKS_IN_FLIGHT.drop(self.show_id, self)

    def call(self, taken):
        """`(function, *arguments)` of this look's call; `taken` the ids of the seats taken now (when picking)."""
        self.looks += 1
        PICKS_IN_FLIGHT.drop(self.show_id, self)  # its last pick, taken by someone else meanwhile
        self.pick = None
        if self.picking:
            others = PICKS_IN_FLIGHT.of(self.show_id)
            self.pick = (others and self._best(taken | others)) or self._best(taken)
        if self.pick:
            PICKS_IN_FLIGHT.keep(self.show_id, self, self.pick.seat_ids)
        return _hold_call(
            self.buyer,
            self.show_id,
            sorted(self.pick.seat_ids) if self.pick else None,
            count=self.best.count,
            best=self.best,
            check_line=self.check_line,
            movie_id=self.movie_id,
            confirmed=self.confirmed,
            at=self.at,
            idempotent_request=self.idempotent_request,
        )

    def _best(self, taken):
        best = self.best
        return pick_best_seats(seats=self.seats.spots, taken=taken, count=best.count, seat_type=best.seat_type)

    def again_after(self, refusal):
        """Whether to look again after the call's refusal: the pick was taken meanwhile while others are free,
        and looks are left. With no pick, the refusal stands."""
        return refusal.code == "seats_unavailable" and self.pick is not None and self.looks < PICK_ATTEMPTS


def _hold_call(
    buyer,
    show_id,
    seat_ids,
    *,
    at,
    count=None,
    best=None,
    check_line=True,
    movie_id=None,
    confirmed=False,
    idempotent_request=None,
):
    """The call of bookings_hold_seats that makes this hold: `(function, *arguments)`; for a partner's
    Idempotency-Key, bookings_hold_seats_once, which also writes the hold on the key's row `idempotent_request`."""
    once = () if idempotent_request is None else ("bookings_hold_seats_once", idempotent_request)
    return (
        *(once or ("bookings_hold_seats",)),
        show_id,
        movie_id,
        buyer.api_key_id,
        buyer.session_id,
        buyer.client_address,
        buyer.seat_cap,
        len(seat_ids or []) if count is None else count,
        None if seat_ids is None else list(seat_ids),
        best is not None,
        best.seat_type if best else None,
        check_line,
        list(OPEN_SEAT_TYPES),
        settings.TICKETING_MAX_SEATS,
        timedelta(seconds=settings.TICKETING_HOLD_SECONDS),
        timedelta(seconds=settings.TICKETING_HOLD_GRACE_SECONDS),
        at,
        confirmed,
    )


def _held(buyer, show_id, at, row):
    """The new hold from bookings_hold_seats' row: a change of seats (_changed) from none to all of them held,
    in its price breakdown's currency (the show's cinema's), its clock starting `at`."""
    reservation_id, version, amount, seats, freed, breakdown = row
    changes = [(seat_id, "held") for seat_id, *_ in seats]
    expires_at = at + timedelta(seconds=settings.TICKETING_HOLD_SECONDS)
    currency = breakdown["currency"]
    change = (show_id, version, amount, seats, changes, freed, currency, at, expires_at, breakdown)
    return _changed(buyer, reservation_id, change)


@shards.in_its_reservations_database
def change_seats(*, buyer, reservation_id, seat_ids, no_single_gaps=False, accessible_confirmed=False, at=None):
    """Swap a hold's seats for others in one step, keeping its clock; the old seats stay held on failure.

    `no_single_gaps` as for hold_seats (the hold's own current seats count as free), and
    `accessible_confirmed` (for the hold's new seats as a whole). The returned reservation's `seats_held`
    lists its seats, as hold_seats' does.
    One call of bookings_change_seats, which locks the buyer's advisory lock for the show, then the
    reservation row (and the hold's stripe of its client's count until commit, as hold_seats does). Raises
    BookingError: not_found, hold_expired (410), already_booked/hold_cancelled, the 400 kinds,
    session_seat_cap, client_hold_cap (429) when the hold grows past its client's cap (a swap of as many
    seats never does), or the three unavailable statuses. On commit: pushes newly held and released seats.
    """
    at = at or timezone.now()
    call = _change_call(buyer, reservation_id, seat_ids, confirmed=accessible_confirmed, at=at)
    if not no_single_gaps:
        return _changed(buyer, reservation_id, call_function(*call))
    with shards.atomic(durable=True):
        reservation = _changed(buyer, reservation_id, call_function(*call, own_transaction=False))
        show = Show.objects.get(pk=reservation.show_id)
        _refuse_single_gaps(show, chosen=set(seat_ids), others_of=reservation, at=at)
    return reservation


async def achange_seats(*, buyer, reservation_id, seat_ids, accessible_confirmed=False, at=None):
    """change_seats on the lean path's async pool: the same function call, the same answer."""
    at = at or timezone.now()
    call = _change_call(buyer, reservation_id, seat_ids, confirmed=accessible_confirmed, at=at)
    return _changed(buyer, reservation_id, await acall_function(*call))


def _change_call(buyer, reservation_id, seat_ids, *, at, confirmed=False):
    return (
        "bookings_change_seats",
        reservation_id,
        buyer.api_key_id,
        buyer.session_id,
        buyer.seat_cap,
        list(seat_ids),
        list(OPEN_SEAT_TYPES),
        settings.TICKETING_MAX_SEATS,
        at,
        confirmed,
    )


def _changed(buyer, reservation_id, row):
    """The hold from bookings_change_seats' row; pushes its seats' changes (and any freed by takeovers) after
    commit."""
    show_id, version, amount, seats, changes, freed, currency, created_at, expires_at, breakdown = row
    reservation = _reservation(
        buyer,
        show_id,
        pk=reservation_id,
        status=Reservation.Status.RESERVED,
        amount=amount,
        currency=currency,
        created_at=created_at,
        expires_at=expires_at,
        seats=seats,
        breakdown=breakdown,
    )
    announce_freed_seats(freed)
    announce_seat_changes(show_id, version, [tuple(change) for change in changes])
    return reservation


@shards.in_its_reservations_database
def cancel_hold(*, buyer, reservation_id, at=None):
    """The buyer gives a hold up: its seats are free at once. Returns the reservation.

    One call of bookings_cancel_hold, which locks the reservation row. A hold that already lapsed, expired or
    was cancelled is returned as it is (cancelling twice is harmless). Raises BookingError("not_found"), or
    ("booked_not_cancellable") for a booking. On commit: pushes the freed seats and tells the line (bookings.notices).
    """
    at = at or timezone.now()
    return _cancelled(buyer, reservation_id, call_function(*_cancel_call(buyer, reservation_id, at=at)))


async def acancel_hold(*, buyer, reservation_id, at=None):
    """cancel_hold on the lean path's async pool: the same function call, the same answer."""
    at = at or timezone.now()
    return _cancelled(buyer, reservation_id, await acall_function(*_cancel_call(buyer, reservation_id, at=at)))


def _cancel_call(buyer, reservation_id, *, at):
    return ("bookings_cancel_hold", reservation_id, buyer.api_key_id, buyer.session_id, at)


def _cancelled(buyer, reservation_id, row):
    status, ended_at, freed, *described = row
    announce_freed_seats(freed)
    return _described(buyer, reservation_id, described, status=status, ended_at=ended_at)


def _described(buyer, reservation_id, described, *, status, ended_at=None):
    """The reservation from what bookings_cancel_hold and bookings_extend_hold return of it: its show, amount,
    currency, clock, seats and price breakdown."""
    show_id, amount, currency, created_at, expires_at, seats, breakdown = described
    return _reservation(
        buyer,
        show_id,
        pk=reservation_id,
        status=status,
        amount=amount,
        currency=currency,
        created_at=created_at,
        expires_at=expires_at,
        seats=seats,
        breakdown=breakdown,
        ended_at=ended_at,
    )


@shards.in_its_reservations_database
def extend_hold(*, buyer, reservation_id, at=None):
    """The buyer asks for more time: a live hold's countdown (`expires_at`) is made
    TICKETING_HOLD_EXTENSION_SECONDS longer, once, before the hold lapses. Returns the reservation with its new
    `expires_at`.

    One call of bookings_extend_hold (bookings migration 0020), which locks the reservation row: of two
    requests at once the second finds the hold extended. `held_until` moves with `expires_at` and never back, so
    a payment in flight keeps the longer of its own extension and the new time, and a declined card gives the
    hold its extended clock back. Raises BookingError: not_found, hold_expired (410), hold_cancelled,
    already_booked, hold_already_extended (409), show_started, or payment_in_progress when the hold's own time
    is up and only a payment in flight keeps it. No seat changes: nothing is pushed.
    """
    at = at or timezone.now()
    return _extended(buyer, reservation_id, call_function(*_extend_call(buyer, reservation_id, at=at)))


async def aextend_hold(*, buyer, reservation_id, at=None):
    """extend_hold on the lean path's async pool: the same function call, the same answer."""
    at = at or timezone.now()
    return _extended(buyer, reservation_id, await acall_function(*_extend_call(buyer, reservation_id, at=at)))


def _extend_call(buyer, reservation_id, *, at):
    return (
        "bookings_extend_hold",
        reservation_id,
        buyer.api_key_id,
        buyer.session_id,
        timedelta(seconds=settings.TICKETING_HOLD_EXTENSION_SECONDS),
        timedelta(seconds=settings.TICKETING_HOLD_GRACE_SECONDS),
        at,
    )


def _extended(buyer, reservation_id, row):
    reservation = _described(buyer, reservation_id, row, status=Reservation.Status.RESERVED)
    reservation.extensions = 1
    return reservation


def release_lapsed_holds(*, at=None, batch_size=500):
    """The sweep: mark every hold past its `held_until` Expired and free its seats. Returns how many.

    Idempotent and safe on several workers at once: each batch (one call of bookings_release_lapsed, its own
    transaction) locks its holds FOR UPDATE SKIP LOCKED, so two sweeps share the work instead of doing it
    twice. On commit of each batch: pushes the freed seats and tells each show's waiting line (bookings.notices).
    """
    at = at or timezone.now()
    released = 0
    while True:
        batch, freed = call_function("bookings_release_lapsed", at, batch_size)
        announce_freed_seats(freed)
        released += batch
        if batch < batch_size:
            return released

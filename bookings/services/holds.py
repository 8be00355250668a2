"""Holds: claiming seats all or nothing, swapping them, giving them up, and the sweep of lapsed holds."""

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings.availability import live_claims, live_reservations, next_seat_version, seats_to_be_had
from bookings.models import Reservation, SeatClaim
from bookings.seat_maps import seat_maps_changed
from bookings.seat_picking import SeatSpot, pick_best_seats, single_gaps_left
from bookings.services.errors import BookingError
from cinemas.models import OPEN_SEAT_TYPES, Seat
from ticketing.db import lock_until_commit

# A claim can lose to a lapsed hold and then to a live one; a few attempts settle every such race.
CLAIM_ATTEMPTS = 3

# Whether anyone waits in a show's line comes from the waiting app, which registers its check at start
# (waiting.apps); bookings never imports waiting, so the apps depend one way. Until then, nobody waits.
_waiting_line_check = None


def register_waiting_line_check(check):
    """`check(show_id) -> bool`: True while anyone waits for the show. Called once by the waiting app."""
    global _waiting_line_check
    _waiting_line_check = check


@dataclass(frozen=True)
class Buyer:
    """Who acts: a partner's API key (None for the website) and the end user's session within it.

    The client behind the sessions, for the caps on what one client may hold of a show at once: a partner's
    key (`key_seat_cap`: its ApiKey.held_seats_per_show, None for no cap) or, on the website, the visitor's
    network address (`client_address`, capped by TICKETING_MAX_HELD_SEATS_PER_ADDRESS).
    """

    api_key_id: int | None
    session_id: str
    client_address: str | None = None
    key_seat_cap: int | None = None


@dataclass(frozen=True)
class BestAvailable:
    count: int
    seat_type: str | None = None


# --- Reading helpers ---------------------------------------------------------------------------------


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


def _lock_buyer_of_show(buyer, show_id):
    """Serialize one buyer's holds of one show, so the per-session seat cap can't be raced past.

    Only this buyer's own requests for this show wait on it; other buyers never do.
    """
    lock_until_commit(f"buyer:{buyer.api_key_id}:{buyer.session_id}:{show_id}")


def _seats_held_by_buyer(buyer, show, at, *, excluding=None):
    # The buyer's own reservations of the show first (the (show, session_id) index), then their claims, in two
    # queries: as one, PostgreSQL planned it by its statistics, and on a hot show's claims (hundreds more a
    # second, faster than ANALYZE follows) it chose a nested loop that took a second. A new buyer, the usual
    # case in a rush, has no reservation: one query.
    reservations = Reservation.objects.filter(
        live_reservations(at), show=show, session_id=buyer.session_id, api_key_id=buyer.api_key_id
    )
    if excluding is not None:
        reservations = reservations.exclude(pk=excluding.pk)
    return _seats_claimed_by(list(reservations.values_list("pk", flat=True)))


def _seats_claimed_by(reservation_ids):
    """The live claims of these reservations, counted in a query of its own (see _seats_held_by_buyer)."""
    if not reservation_ids:
        return 0
    return SeatClaim.objects.filter(reservation_id__in=reservation_ids, released_at__isnull=True).count()


def _check_client_cap(buyer, show, wanted, at, *, excluding=None):
    """Refuse a hold that would take the client's held seats of the show past its cap (OWASP's "denial of
    inventory": one client holding everything through many sessions).

    Counts seats held and not yet paid by every session of the buyer's client: its API key, or the website's
    visitors from its address. Locks the client's advisory lock for the show (after the buyer's), so the cap
    can't be raced past; only that client's own holds of that show ever wait on it, and uncapped keys take
    no lock at all. Raises BookingError("client_hold_cap") with `retry_after`, the seconds until the client's
    soonest hold lapses.
    """
    if buyer.api_key_id is not None:
        cap, field, value = buyer.key_seat_cap, "api_key_id", buyer.api_key_id
    else:
        cap, field, value = settings.TICKETING_MAX_HELD_SEATS_PER_ADDRESS, "client_address", buyer.client_address
    if cap is None or value is None:
        return
    lock_until_commit(f"client:{field}:{value}:{show.pk}")
    holds = Reservation.objects.filter(
        show=show, status=Reservation.Status.RESERVED, held_until__gt=at, **{field: value}
    )
    if excluding is not None:
        holds = holds.exclude(pk=excluding.pk)
    lapsing = dict(holds.values_list("pk", "held_until"))
    if _seats_claimed_by(list(lapsing)) + wanted > cap:
        soonest = min(lapsing.values(), default=at)
        raise BookingError("client_hold_cap", retry_after=max(1, math.ceil((soonest - at).total_seconds())))


def _seats_of_hall(show, seat_ids):
    """The chosen seats, each with this show's `price` for its type, in seat-id order; or a 400-kind BookingError."""
    if not seat_ids:
        raise BookingError("no_seats")
    if len(seat_ids) > settings.TICKETING_MAX_SEATS:
        raise BookingError("too_many_seats")
    if len(set(seat_ids)) != len(seat_ids):
        raise BookingError("duplicate_seats")
    seats = _priced_seats(show, seat_ids)
    if len(seats) != len(seat_ids):
        outside = sorted(set(seat_ids) - {seat.pk for seat in seats})
        raise BookingError("seat_not_in_hall", fields={"seats_to_reserve": [f"Not in this hall: {outside}"]})
    return seats


def _priced_seats(show, seat_ids):
    """These seats of the show's hall with their price for this show, in seat-id order, in one query.

    Written as SQL because it runs on every hold: the ORM's compilation of the same join cost more than the
    query itself. Every seat type of a show's hall has a price (cinemas.services checks it), so the inner
    join leaves out only seats that are not in the hall.
    """
    placeholders = ", ".join(["%s"] * len(seat_ids))
    seats = list(
        Seat.objects.raw(
            "SELECT seat.id, seat.hall_id, seat.row_label, seat.number, seat.seat_type, seat.x, seat.y, price.price"
            " FROM cinemas_seat seat JOIN cinemas_showprice price"
            " ON price.show_id = %s AND price.seat_type = seat.seat_type"
            f" WHERE seat.hall_id = %s AND seat.id IN ({placeholders}) ORDER BY seat.id",
            [show.pk, show.hall_id, *seat_ids],
        )
    )
    for seat in seats:
        if not isinstance(seat.price, Decimal):  # SQLite (the single-process demo) hands back a float
            seat.price = Decimal(str(seat.price)).quantize(Decimal("0.01"))
    return seats


def _prices_of(show):
    return dict(show.prices.values_list("seat_type", "price"))


def _check_on_sale(show, at):
    if show.starts_at <= at:
        raise BookingError("show_started")


def _why_unavailable(show, *, count, at, seat_type=None, chosen=()):
    """Which refusal fits when `count` seats can't be held now (API.md's three 409 statuses).

    Counted over the seats the buyer could be given instead, the same for the API and the website: those of
    the type asked for, else the open seat types (all that best available and the waiting line give) and the
    types of the `chosen` seats, if any (who lost a wheelchair space may choose another). So free wheelchair
    spaces never turn a best available that can't be served into "choose again", and Retry (the line) comes
    when seats that best available gives are held.
    """
    types = {seat_type} if seat_type else {*OPEN_SEAT_TYPES, *_types_of(chosen)}
    free_now, not_booked = seats_to_be_had(show, at, seat_types=types)
    if free_now >= count:
        return BookingError("seats_unavailable")
    if not_booked >= count:
        return BookingError("retry")
    return BookingError("show_full")


def _owed_to_line(show, seat_types):
    """Whether seats of these types would be taken from people waiting in the show's line.

    The line is served open seat types only, so wheelchair spaces and companion seats stay free to choose.
    """
    if _waiting_line_check is None or not set(seat_types) & set(OPEN_SEAT_TYPES):
        return False
    return _waiting_line_check(show.pk)


# --- Claiming and releasing seats -------------------------------------------------------------------------


class _SeatsTaken(Exception):
    pass


def _expire_lapsed_holders(show, seat_ids, at):
    """Expire the holds past their time that still claim any of these seats; True if there were any.

    A lapsed hold locked by someone else (the sweep, another claimer, a late payment) is skipped rather
    than waited for, so claimers never wait on each other in a cycle; the caller's next insert then
    waits only for that one row's fate.
    """
    lapsed = set(
        SeatClaim.objects.filter(
            show=show,
            seat_id__in=seat_ids,
            released_at__isnull=True,
            reservation__status=Reservation.Status.RESERVED,
            reservation__held_until__lte=at,
        ).values_list("reservation_id", flat=True)
    )
    if not lapsed:
        return False
    # Re-checked under the row locks: the sweep or another claimer may have expired them meanwhile.
    locked = list(
        Reservation.objects.select_for_update(skip_locked=True)
        .filter(pk__in=lapsed, status=Reservation.Status.RESERVED, held_until__lte=at)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _release(locked, status=Reservation.Status.EXPIRED, at=at)
    return True


def _claim(reservation, seats, *, version, at):
    """Insert one claim per seat at the seat's `price`, all or none; raise _SeatsTaken if live claims hold any.

    Claims are inserted in seat-id order, so two holds of overlapping seats wait on each other's first
    shared seat instead of deadlocking.
    """
    claims = [
        SeatClaim(
            reservation=reservation,
            show_id=reservation.show_id,
            seat_id=seat.pk,
            seat_type=seat.seat_type,
            price=seat.price,
            version=version,
        )
        for seat in sorted(seats, key=lambda seat: seat.pk)
    ]
    for _ in range(CLAIM_ATTEMPTS):
        try:
            with transaction.atomic():
                SeatClaim.objects.bulk_create(claims)
            return
        except IntegrityError as exc:
            if "bookings_seatclaim" not in str(exc) and "one_live_claim_per_seat" not in str(exc):
                raise
        if not _expire_lapsed_holders(reservation.show, [seat.pk for seat in seats], at):
            break
    raise _SeatsTaken


def _release(reservation_ids, *, status, at):
    """Release every live claim of these (already locked) reservations and give them `status`."""
    if not reservation_ids:
        return
    version = next_seat_version()
    claims = SeatClaim.objects.filter(reservation_id__in=reservation_ids, released_at__isnull=True)
    freed = list(claims.values_list("show_id", "seat_id"))
    claims.update(released_at=at, version=version)
    Reservation.objects.filter(pk__in=reservation_ids).update(status=status, ended_at=at)
    by_show = {}
    for show_id, seat_id in freed:
        by_show.setdefault(show_id, []).append((seat_id, "available"))
    for show_id, changes in by_show.items():
        _announce(show_id, version, changes, line_may_move=True)


def _announce(show_id, version, changes, *, line_may_move=False):
    """After commit: push the seat changes to the show's live map; wake its waiting line if it may move.

    The line may move when seats were freed (the head may be served) or booked (some may be Show Full now).
    Inside seat_changes_pushed_together, the changes wait for the block's end instead.
    """
    if not changes and not line_may_move:
        return  # e.g. a hold changed to the seats it already has: nothing to tell anyone
    changes = [(seat_id, status, version) for seat_id, status in changes]
    gathered = getattr(_pushed_together, "changes", None)
    if gathered is not None:
        gathered.setdefault(show_id, []).extend(changes)
        if line_may_move:
            _pushed_together.wakes.add(show_id)
        return
    _push_after_commit({show_id: changes}, {show_id} if line_may_move else set())


def _push_after_commit(changes_by_show, wakes):
    from bookings import consumers, tasks  # both import this module's callers; imported late to stay acyclic

    # First, so that a client told of a change and re-reading the map never gets the cached one from before.
    seat_maps_changed([show_id for show_id, changes in changes_by_show.items() if changes])

    def push():
        for show_id, changes in changes_by_show.items():
            if changes:
                consumers.push_seat_changes(show_id, changes)
        for show_id in wakes:
            tasks.wake_waiting_line(show_id)

    # robust: the change has committed; a failing push is logged, never made the buyer's 500.
    transaction.on_commit(push, robust=True)


_pushed_together = threading.local()


@contextmanager
def seat_changes_pushed_together():
    """Gather the seat changes announced in the block and push them after commit as one message per show.

    For a transaction that holds seats many times over (a serving batch of the waiting line: up to 25 holds,
    which were 25 pushes to each of a thousand seat maps). Only what commits with the block's transaction may
    be announced in it: hold_seats_for_waiter announces last in its savepoint, once nothing can fail. If the
    block raises, nothing is pushed.
    """
    _pushed_together.changes, _pushed_together.wakes = {}, set()
    try:
        yield
        changes_by_show, wakes = _pushed_together.changes, _pushed_together.wakes
    finally:
        _pushed_together.changes = _pushed_together.wakes = None
    if changes_by_show or wakes:
        _push_after_commit(changes_by_show, wakes)


def _seat_spots(show, prices):
    return [
        SeatSpot(seat.pk, seat.row_label, seat.number, seat.seat_type, seat.x, seat.y, prices.get(seat.seat_type))
        for seat in Seat.objects.filter(hall_id=show.hall_id)
        if seat.seat_type in prices
    ]


# --- Holds ---------------------------------------------------------------------------------------------------


def hold_seats(*, buyer, show, seat_ids=None, best_available=None, movie_id=None, no_single_gaps=False, at=None):
    """Hold seats of a show for the buyer, all or nothing; return the new Reservation (status Reserved).

    Give `seat_ids`, or `best_available` to let the server pick seats together (bookings.seat_picking).
    With `no_single_gaps` (the website's rule), chosen seats that would leave a free seat alone between them
    and a taken seat, an aisle or the wall are refused with `single_seat_gap` (best available never does).
    The returned reservation's `seats_held` lists its seats (with `price`) in seat-map order, so callers
    needn't read them back.
    Locks: this buyer's advisory lock for the show (for the seat cap), and the rows of any lapsed hold it
    takes seats from. Raises BookingError: the 400 kinds for bad requests; `waiting_line` while anyone waits
    in the show's line and the seats asked for are of the types the line is served (freed seats are theirs
    first; wheelchair spaces and companion seats never are); or `seats_unavailable`, `retry` or `show_full`
    when the seats can't be had (see _why_unavailable). Nothing is written then. On commit: pushes the seats
    as held.
    """
    at = at or timezone.now()
    if movie_id is not None and show.movie_id != movie_id:
        raise BookingError("movie_mismatch")
    _check_on_sale(show, at)
    if best_available:
        wanted = best_available.count
        if not 1 <= wanted <= settings.TICKETING_MAX_SEATS:
            raise BookingError("too_many_seats" if wanted else "no_seats")
        seats = None
    else:
        seats = _seats_of_hall(show, seat_ids or [])
    with transaction.atomic(durable=True):
        if _owed_to_line(show, _types_of(seats) if seats else _types_given(best_available)):
            raise BookingError("waiting_line")
        if no_single_gaps and not best_available:
            _refuse_single_gaps(show, chosen={seat.pk for seat in seats}, others_of=None, at=at)
        return _hold(buyer, show, seats=seats, best_available=best_available, at=at)


def _refuse_single_gaps(show, *, chosen, others_of, at):
    """BookingError("single_seat_gap") if `chosen` would strand a free seat (seats of `others_of` count free)."""
    claims = live_claims(at).filter(show=show)
    if others_of is not None:
        claims = claims.exclude(reservation=others_of)
    taken = set(claims.values_list("seat_id", flat=True))
    spots = _seat_spots(show, _prices_of(show))
    stranded = single_gaps_left(spots, taken, chosen)
    if stranded:
        labels = {spot.id: f"{spot.row_label}{spot.number}" for spot in spots}
        raise BookingError("single_seat_gap", seats=", ".join(labels[seat_id] for seat_id in stranded))


def hold_seats_for_waiter(*, buyer, show, count, at):
    """Hold the best `count` seats for the head of the show's waiting line; returns the Reservation.

    For waiting.services only, inside its transaction (which holds the show's line lock). Works in a
    savepoint: when the seats can't be had it raises BookingError and leaves the caller's transaction as it
    was. Locks, raises and pushes as hold_seats does, without the line check (this buyer is the line).
    """
    _check_on_sale(show, at)
    with transaction.atomic():
        return _hold(buyer, show, seats=None, best_available=BestAvailable(count), at=at)


def _hold(buyer, show, *, seats, best_available, at):
    wanted = best_available.count if best_available else len(seats)
    _lock_buyer_of_show(buyer, show.pk)
    if _seats_held_by_buyer(buyer, show, at) + wanted > settings.TICKETING_MAX_SEATS:
        raise BookingError("session_seat_cap")
    _check_client_cap(buyer, show, wanted, at)
    reservation = Reservation.objects.create(
        show=show,
        api_key_id=buyer.api_key_id,
        session_id=buyer.session_id,
        client_address=buyer.client_address,
        amount=Decimal("0") if best_available else _amount_of(seats),
        currency=settings.TICKETING_CURRENCY,
        created_at=at,
        expires_at=at + timedelta(seconds=settings.TICKETING_HOLD_SECONDS),
        held_until=at + timedelta(seconds=settings.TICKETING_HOLD_SECONDS + settings.TICKETING_HOLD_GRACE_SECONDS),
    )
    version = next_seat_version()
    if best_available:
        seats = _claim_best_available(reservation, best_available, version=version, at=at)
        reservation.amount = _amount_of(seats)
        reservation.save(update_fields=["amount"])
    else:
        try:
            _claim(reservation, seats, version=version, at=at)
        except _SeatsTaken:
            raise _why_unavailable(show, count=len(seats), at=at, chosen=seats) from None
    reservation.seats_held = _in_map_order(seats)
    _announce(show.pk, version, [(seat.pk, "held") for seat in seats])
    return reservation


def _types_of(seats):
    return {seat.seat_type for seat in seats}


def _types_given(best_available):
    """The seat types best available may give: the one asked for, else the open types."""
    return {best_available.seat_type} if best_available.seat_type else set(OPEN_SEAT_TYPES)


def _amount_of(seats):
    return sum((seat.price for seat in seats), Decimal("0"))


def _in_map_order(seats):
    return sorted(seats, key=lambda seat: (seat.y, seat.x))


def _claim_best_available(reservation, best_available, *, version, at):
    show = reservation.show
    spots = _seat_spots(show, _prices_of(show))
    for _ in range(CLAIM_ATTEMPTS):
        taken = set(live_claims(at).filter(show=show).values_list("seat_id", flat=True))
        pick = pick_best_seats(seats=spots, taken=taken, count=best_available.count, seat_type=best_available.seat_type)
        if pick is None:
            break
        seats = _priced_seats(show, sorted(pick.seat_ids))
        try:
            _claim(reservation, seats, version=version, at=at)
            return seats
        except _SeatsTaken:
            continue  # someone took one of them between the look and the claim: look again
    raise _why_unavailable(show, count=best_available.count, seat_type=best_available.seat_type, at=at)


def change_seats(*, buyer, reservation_id, seat_ids, no_single_gaps=False, at=None):
    """Swap a hold's seats for others in one step, keeping its clock; the old seats stay held on failure.

    `no_single_gaps` as for hold_seats (the hold's own current seats count as free). The returned
    reservation's `seats_held` lists its seats, as hold_seats' does.
    Locks the buyer's advisory lock for the show, then the reservation row. Raises BookingError: not_found,
    hold_expired (410), already_booked/hold_cancelled, the 400 kinds, or the three unavailable statuses.
    On commit: pushes newly held and released seats.
    """
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        show_id = find_reservation(buyer=buyer, reservation_id=reservation_id).show_id
        _lock_buyer_of_show(buyer, show_id)
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        _check_still_held(reservation, at)
        show = reservation.show
        _check_on_sale(show, at)
        seats = _seats_of_hall(show, seat_ids)
        if _seats_held_by_buyer(buyer, show, at, excluding=reservation) + len(seats) > settings.TICKETING_MAX_SEATS:
            raise BookingError("session_seat_cap")
        _check_client_cap(buyer, show, len(seats), at, excluding=reservation)
        current = set(reservation.claims.filter(released_at__isnull=True).values_list("seat_id", flat=True))
        wanted = {seat.pk for seat in seats}
        new_types = _types_of(seat for seat in seats if seat.pk not in current)
        if len(wanted) > len(current) and _owed_to_line(show, new_types):
            raise BookingError("waiting_line")  # a swap is fine; growing would take seats owed to the line
        if no_single_gaps:
            _refuse_single_gaps(show, chosen=wanted, others_of=reservation, at=at)
        version = next_seat_version()
        try:
            _claim(reservation, [seat for seat in seats if seat.pk not in current], version=version, at=at)
        except _SeatsTaken:
            raise _why_unavailable(show, count=len(seats), at=at, chosen=seats) from None
        dropped = current - wanted
        reservation.claims.filter(released_at__isnull=True, seat_id__in=dropped).update(released_at=at, version=version)
        reservation.amount = _amount_of(seats)
        reservation.save(update_fields=["amount"])
        reservation.seats_held = _in_map_order(seats)
        changes = [(seat_id, "held") for seat_id in wanted - current] + [(seat_id, "available") for seat_id in dropped]
        _announce(show.pk, version, changes, line_may_move=bool(dropped))
    return reservation


def _check_still_held(reservation, at):
    status = reservation.status_at(at)
    if status == Reservation.Status.BOOKED:
        raise BookingError("already_booked")
    if status == Reservation.Status.EXPIRED:
        raise BookingError("hold_expired")
    if status == Reservation.Status.CANCELLED:
        raise BookingError("hold_cancelled")


def cancel_hold(*, buyer, reservation_id, at=None):
    """The buyer gives a hold up: its seats are free at once. Returns the reservation.

    Locks the reservation row. A hold that already lapsed, expired or was cancelled is returned as it is
    (cancelling twice is harmless). Raises BookingError("booked_not_cancellable") for a booking.
    On commit: pushes the freed seats and wakes the show's waiting line.
    """
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        if reservation.status == Reservation.Status.BOOKED:
            raise BookingError("booked_not_cancellable")
        if reservation.status == Reservation.Status.RESERVED:
            lapsed = reservation.held_until <= at
            status = Reservation.Status.EXPIRED if lapsed else Reservation.Status.CANCELLED
            _release([reservation.pk], status=status, at=at)
            reservation.status, reservation.ended_at = status, at
    return reservation


def release_lapsed_holds(*, at=None, batch_size=500):
    """The sweep: mark every hold past its `held_until` Expired and free its seats. Returns how many.

    Idempotent and safe on several workers at once: each batch locks its holds FOR UPDATE SKIP LOCKED, so
    two sweeps share the work instead of doing it twice. On commit of each batch: pushes the freed seats
    and wakes the waiting line of each show.
    """
    at = at or timezone.now()
    released = 0
    while True:
        with transaction.atomic(durable=True):
            lapsed = list(
                Reservation.objects.select_for_update(skip_locked=True)
                .filter(status=Reservation.Status.RESERVED, held_until__lte=at)
                .order_by("held_until")
                .values_list("pk", flat=True)[:batch_size]
            )
            _release(lapsed, status=Reservation.Status.EXPIRED, at=at)
        released += len(lapsed)
        if len(lapsed) < batch_size:
            return released

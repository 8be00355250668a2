"""Every change to holds, bookings and payments.

The rules that keep a sale correct live here, each in one transaction:
- a seat of a show has at most one live claim: the partial unique index on SeatClaim decides every race,
  so holds of different seats never wait on each other and no lock covers a whole show;
- a hold takes all its seats or none (one transaction; a conflict rolls it back);
- a hold past its `held_until` is free for every new claim at once: a claimer that meets one expires it
  on the spot, so no seat waits for the sweep;
- seat-map pushes, waiting-line wake-ups and provider refunds are sent after commit, never from inside a
  transaction that may roll back; the provider is never called while a row is locked.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bookings import tickets
from bookings.availability import live_claims, next_seat_version, taken_by_type
from bookings.models import IdempotentRequest, Payment, Reservation, SeatClaim
from bookings.payments import CardDeclined, InvalidCard, PaymentError, ProviderTimeout, get_provider
from bookings.seat_picking import SeatSpot, pick_best_seats
from cinemas.models import Seat

logger = logging.getLogger(__name__)

# While a charge is at the provider, the seats stay held this much longer, so a buyer who pressed "pay" at
# 4:59 is not refunded because the card network took a few seconds.
PAYMENT_HOLD_EXTENSION = timedelta(seconds=30)
# An Idempotency-Key whose first call never finished (its process died) may be taken over after this long.
IDEMPOTENCY_TAKEOVER_AFTER = timedelta(seconds=60)
# A claim can lose to a lapsed hold and then to a live one; a few attempts settle every such race.
CLAIM_ATTEMPTS = 3

ERROR_MESSAGES = {
    "show_full": "The show can't give this many seats, even if every hold lapses.",
    "retry": "These seats can't be had now, but seats held by others may come free: retry or join the waiting line.",
    "seats_unavailable": "These seats are gone, but enough other seats are free: choose again.",
    "no_seats": "Choose at least one seat.",
    "too_many_seats": "A hold takes at most {max_seats} seats.",
    "duplicate_seats": "Each seat can be chosen once.",
    "seat_not_in_hall": "Some seats are not in this show's hall.",
    "show_started": "This show has started; its seats are no longer on sale.",
    "movie_mismatch": "This show is not of that movie.",
    "session_seat_cap": "A session can hold at most {max_seats} seats of one show.",
    "not_found": "There is no such reservation for this session.",
    "hold_expired": "This hold has expired; its seats were released.",
    "hold_cancelled": "This hold was cancelled.",
    "already_booked": "This reservation is already booked.",
    "booked_not_cancellable": "A booked reservation can't be cancelled here.",
    "not_booked": "Only a booked reservation can be cancelled by staff.",
    "payment_in_progress": "A payment for this reservation is in progress; wait for its answer.",
    "card_declined": "The card was declined. The seats stay held until the hold expires.",
    "invalid_card": "The card was refused by the payment provider.",
    "payment_timeout": "The payment provider did not answer in time; we'll settle it, so retry with the same key.",
    "payment_failed": "The payment provider could not take this payment.",
    "idempotency_mismatch": "This Idempotency-Key was used for a different request.",
    "idempotency_in_flight": "A request with this Idempotency-Key is still running.",
    "ticket_invalid": "This is not a valid ticket.",
    "ticket_used": "This ticket was already used at {checked_in_at}.",
    "ticket_not_valid": "This ticket is not valid: its booking is {status}.",
    "ticket_show_ended": "This ticket is for a show that ended at {ended_at}.",
}


class BookingError(Exception):
    """A booking rule said no. `code` is the machine word; the API maps it to a status code in one place."""

    def __init__(self, code, *, fields=None, **details):
        self.code = code
        self.message = ERROR_MESSAGES[code].format(max_seats=settings.TICKETING_MAX_SEATS, **details)
        self.fields = fields or {}
        super().__init__(self.message)


@dataclass(frozen=True)
class Buyer:
    """Who acts: a partner's API key (None for the website) and the end user's session within it."""

    api_key_id: int | None
    session_id: str


@dataclass(frozen=True)
class BestAvailable:
    count: int
    seat_type: str | None = None


# --- Reading helpers ---------------------------------------------------------------------------------


def find_reservation(*, buyer, reservation_id, lock=False):
    """The buyer's reservation, or BookingError("not_found"): another session's is never revealed."""
    reservations = Reservation.objects.select_related("show__hall__cinema", "show__movie")
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
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"buyer:{buyer.api_key_id}:{buyer.session_id}:{show_id}"],
            )


def _seats_held_by_buyer(buyer, show, at, *, excluding=None):
    claims = live_claims(at).filter(
        show=show, reservation__api_key_id=buyer.api_key_id, reservation__session_id=buyer.session_id
    )
    if excluding is not None:
        claims = claims.exclude(reservation=excluding)
    return claims.count()


def _seats_of_hall(show, seat_ids):
    """The chosen seats with their types and prices, or a 400-kind BookingError."""
    if not seat_ids:
        raise BookingError("no_seats")
    if len(seat_ids) > settings.TICKETING_MAX_SEATS:
        raise BookingError("too_many_seats")
    if len(set(seat_ids)) != len(seat_ids):
        raise BookingError("duplicate_seats")
    seats = list(Seat.objects.filter(hall_id=show.hall_id, pk__in=seat_ids).order_by("pk"))
    if len(seats) != len(seat_ids):
        outside = sorted(set(seat_ids) - {seat.pk for seat in seats})
        raise BookingError("seat_not_in_hall", fields={"seats_to_reserve": [f"Not in this hall: {outside}"]})
    return seats


def _prices_of(show):
    return dict(show.prices.values_list("seat_type", "price"))


def _check_on_sale(show, at):
    if show.starts_at <= at:
        raise BookingError("show_started")


def _why_unavailable(show, *, count, seat_type, at):
    """Which refusal fits when `count` seats can't be held now (API.md's three 409 statuses)."""
    capacity = show.hall.capacity
    types = [seat_type] if seat_type else list(capacity)
    taken = taken_by_type([show.pk], at).get(show.pk, {})
    total = sum(capacity.get(t, 0) for t in types)
    taken_now = sum(taken.get(t, (0, 0))[0] for t in types)
    booked = sum(taken.get(t, (0, 0))[1] for t in types)
    if total - taken_now >= count:
        return BookingError("seats_unavailable")
    if total - booked >= count:
        return BookingError("retry")
    return BookingError("show_full")


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


def _claim(reservation, seats, prices, *, version, at):
    """Insert one claim per seat, all or none; raise _SeatsTaken if live claims hold any of them.

    Claims are inserted in seat-id order, so two holds of overlapping seats wait on each other's first
    shared seat instead of deadlocking.
    """
    claims = [
        SeatClaim(
            reservation=reservation,
            show_id=reservation.show_id,
            seat_id=seat.pk,
            seat_type=seat.seat_type,
            price=prices[seat.seat_type],
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
        _announce(show_id, version, changes, seats_came_free=True)


def _announce(show_id, version, changes, *, seats_came_free=False):
    """After commit: push the seat changes to the show's live map; wake its waiting line if seats came free."""
    from bookings import consumers, tasks  # both import this module's callers; imported late to stay acyclic

    transaction.on_commit(lambda: consumers.push_seat_changes(show_id, version, changes))
    if seats_came_free:
        transaction.on_commit(lambda: tasks.wake_waiting_line(show_id))


def _seat_spots(show, prices):
    return [
        SeatSpot(seat.pk, seat.row_label, seat.number, seat.seat_type, seat.x, seat.y, prices.get(seat.seat_type))
        for seat in Seat.objects.filter(hall_id=show.hall_id)
        if seat.seat_type in prices
    ]


# --- Holds ---------------------------------------------------------------------------------------------------


def hold_seats(*, buyer, show, seat_ids=None, best_available=None, movie_id=None, at=None):
    """Hold seats of a show for the buyer, all or nothing; return the new Reservation (status Reserved).

    Give `seat_ids`, or `best_available` to let the server pick seats together (bookings.seat_picking).
    Locks: this buyer's advisory lock for the show (for the seat cap), and the rows of any lapsed hold it
    takes seats from. Raises BookingError: the 400 kinds for bad requests, or `seats_unavailable`, `retry`
    or `show_full` when the seats can't be had (nothing is written). On commit: pushes the seats as held.
    """
    at = at or timezone.now()
    if movie_id is not None and show.movie_id != movie_id:
        raise BookingError("movie_mismatch")
    _check_on_sale(show, at)
    prices = _prices_of(show)
    if best_available:
        wanted = best_available.count
        if not 1 <= wanted <= settings.TICKETING_MAX_SEATS:
            raise BookingError("too_many_seats" if wanted else "no_seats")
    else:
        seats = _seats_of_hall(show, seat_ids or [])
        wanted = len(seats)
    with transaction.atomic(durable=True):
        _lock_buyer_of_show(buyer, show.pk)
        if _seats_held_by_buyer(buyer, show, at) + wanted > settings.TICKETING_MAX_SEATS:
            raise BookingError("session_seat_cap")
        reservation = Reservation.objects.create(
            show=show,
            api_key_id=buyer.api_key_id,
            session_id=buyer.session_id,
            amount=Decimal("0"),
            currency=settings.TICKETING_CURRENCY,
            created_at=at,
            expires_at=at + timedelta(seconds=settings.TICKETING_HOLD_SECONDS),
            held_until=at + timedelta(seconds=settings.TICKETING_HOLD_SECONDS + settings.TICKETING_HOLD_GRACE_SECONDS),
        )
        version = next_seat_version()
        if best_available:
            seats = _claim_best_available(reservation, best_available, prices, version=version, at=at)
        else:
            try:
                _claim(reservation, seats, prices, version=version, at=at)
            except _SeatsTaken:
                raise _why_unavailable(show, count=len(seats), seat_type=None, at=at) from None
        reservation.amount = sum(prices[seat.seat_type] for seat in seats)
        reservation.save(update_fields=["amount"])
        _announce(show.pk, version, [(seat.pk, "held") for seat in seats])
    return reservation


def _claim_best_available(reservation, best_available, prices, *, version, at):
    show = reservation.show
    spots = _seat_spots(show, prices)
    for _ in range(CLAIM_ATTEMPTS):
        taken = set(live_claims(at).filter(show=show).values_list("seat_id", flat=True))
        pick = pick_best_seats(seats=spots, taken=taken, count=best_available.count, seat_type=best_available.seat_type)
        if pick is None:
            break
        seats = list(Seat.objects.filter(pk__in=pick.seat_ids).order_by("pk"))
        try:
            _claim(reservation, seats, prices, version=version, at=at)
            return seats
        except _SeatsTaken:
            continue  # someone took one of them between the look and the claim: look again
    raise _why_unavailable(show, count=best_available.count, seat_type=best_available.seat_type, at=at)


def change_seats(*, buyer, reservation_id, seat_ids, at=None):
    """Swap a hold's seats for others in one step, keeping its clock; the old seats stay held on failure.

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
        prices = _prices_of(show)
        current = set(reservation.claims.filter(released_at__isnull=True).values_list("seat_id", flat=True))
        wanted = {seat.pk for seat in seats}
        version = next_seat_version()
        try:
            _claim(reservation, [seat for seat in seats if seat.pk not in current], prices, version=version, at=at)
        except _SeatsTaken:
            raise _why_unavailable(show, count=len(seats), seat_type=None, at=at) from None
        dropped = current - wanted
        reservation.claims.filter(released_at__isnull=True, seat_id__in=dropped).update(released_at=at, version=version)
        reservation.amount = sum(prices[seat.seat_type] for seat in seats)
        reservation.save(update_fields=["amount"])
        changes = [(seat_id, "held") for seat_id in wanted - current] + [(seat_id, "available") for seat_id in dropped]
        _announce(show.pk, version, changes, seats_came_free=bool(dropped))
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
            reservation.refresh_from_db()
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


# --- Payments ---------------------------------------------------------------------------------------------------


def pay_for_reservation(*, buyer, reservation_id, card, at=None):
    """Charge the hold's amount through the payment provider and book it. Returns the booked Reservation.

    Three steps, none holding a lock while the provider works: (1) lock the hold, check it is live, record
    a pending Payment (whose id is the provider's idempotency key) and keep the seats a little longer;
    (2) charge; (3) lock again and book, or, if the hold was lost meanwhile, refund. Raises BookingError:
    not_found, hold_expired (410; refunded if the provider charged), already_booked, payment_in_progress,
    card_declined (402, the hold stands), invalid_card, payment_timeout (the reconciler settles it).
    """
    at = at or timezone.now()
    payment, provider_reference = _start_charge(buyer, reservation_id, card, at)
    if provider_reference is None:
        provider_reference = _charge(payment, card)
    reservation = fulfil_charge(payment_id=payment.pk, provider_reference=provider_reference)
    if reservation.status != Reservation.Status.BOOKED:
        raise BookingError("hold_expired")
    return reservation


def _charge(payment, card):
    """Step 2 of paying: the provider's charge id, or BookingError after recording why there is none."""
    try:
        charge = get_provider().charge(
            amount=payment.amount, currency=payment.currency, card=card, idempotency_key=str(payment.pk)
        )
    except ProviderTimeout:
        _settle_failed_charge(payment, Payment.Status.UNKNOWN, "payment_timeout")
        raise BookingError("payment_timeout") from None
    except CardDeclined:
        _settle_failed_charge(payment, Payment.Status.DECLINED, "card_declined")
        raise BookingError("card_declined") from None
    except InvalidCard as exc:
        _settle_failed_charge(payment, Payment.Status.FAILED, "invalid_card")
        raise BookingError("invalid_card", fields=getattr(exc, "fields", None)) from None
    except PaymentError as exc:
        _settle_failed_charge(payment, Payment.Status.FAILED, exc.code)
        raise BookingError("payment_failed") from None
    return charge.charge_id


def _start_charge(buyer, reservation_id, card, at):
    """Step 1 of paying: returns `(payment, None)` to charge, or `(payment, provider_reference)` when an earlier
    attempt that timed out turns out to have been charged after all."""
    provider = get_provider()
    reservation = find_reservation(buyer=buyer, reservation_id=reservation_id)
    # Asked before any lock is taken: the provider is never called while a row is locked.
    for unsettled in reservation.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.UNKNOWN):
        charge = provider.find_charge(idempotency_key=str(unsettled.pk))
        if charge is not None:
            return unsettled, charge.charge_id
        Payment.objects.filter(pk=unsettled.pk, status=Payment.Status.UNKNOWN).update(
            status=Payment.Status.FAILED, error_code="not_charged", updated_at=at
        )
    with transaction.atomic(durable=True):
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        _check_still_held(reservation, at)
        if reservation.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.PENDING).exists():
            raise BookingError("payment_in_progress")
        reservation.held_until = max(reservation.held_until, at + PAYMENT_HOLD_EXTENSION)
        reservation.save(update_fields=["held_until"])
        payment = Payment.objects.create(
            reservation=reservation,
            kind=Payment.Kind.CHARGE,
            amount=reservation.amount,
            currency=reservation.currency,
            provider=provider.name,
            card_last4=card.last4,
            created_at=at,
            updated_at=at,
        )
    return payment, None


def _settle_failed_charge(payment, status, error_code):
    """Record that a charge did not (or may not have) gone through; a declined hold gets its own clock back."""
    at = timezone.now()
    with transaction.atomic(durable=True):
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(
            status=status, error_code=error_code, updated_at=at
        )
        if status != Payment.Status.UNKNOWN:
            reservation = Reservation.objects.select_for_update().get(pk=payment.reservation_id)
            normal_end = reservation.expires_at + timedelta(seconds=settings.TICKETING_HOLD_GRACE_SECONDS)
            if reservation.status == Reservation.Status.RESERVED and reservation.held_until > normal_end:
                reservation.held_until = normal_end
                reservation.save(update_fields=["held_until"])


def fulfil_charge(*, payment_id, provider_reference, at=None):
    """The provider took the money: book the reservation, or refund if its hold was lost. Idempotent.

    Locks the reservation, then the payment. Books only a reservation still Reserved (its claims intact);
    otherwise records a pending refund and, on commit, refunds through the provider. Returns the reservation.
    """
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        payment = Payment.objects.get(pk=payment_id)
        reservation = Reservation.objects.select_for_update().get(pk=payment.reservation_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status == Payment.Status.SUCCEEDED:
            return reservation
        payment.status, payment.provider_reference, payment.updated_at = (
            Payment.Status.SUCCEEDED,
            provider_reference,
            at,
        )
        if reservation.status == Reservation.Status.RESERVED:
            payment.save(update_fields=["status", "provider_reference", "updated_at"])
            _book(reservation, at)
        else:
            payment.save(update_fields=["status", "provider_reference", "updated_at"])
            refund = _record_refund(payment, at)
            transaction.on_commit(lambda: settle_refund(payment_id=refund.pk))
    return reservation


def _book(reservation, at):
    for _ in range(5):
        try:
            with transaction.atomic():
                reservation.booking_code = tickets.generate_booking_code()
                reservation.status = Reservation.Status.BOOKED
                reservation.booked_at = at
                reservation.save(update_fields=["booking_code", "status", "booked_at"])
            break
        except IntegrityError:
            continue  # a code collision, one in a trillion: draw again
    version = next_seat_version()
    claims = reservation.claims.filter(released_at__isnull=True)
    seat_ids = list(claims.values_list("seat_id", flat=True))
    claims.update(version=version)
    _announce(reservation.show_id, version, [(seat_id, "booked") for seat_id in seat_ids])


def _record_refund(charge, at):
    return Payment.objects.create(
        reservation_id=charge.reservation_id,
        kind=Payment.Kind.REFUND,
        amount=charge.amount,
        currency=charge.currency,
        provider=charge.provider,
        refund_of=charge,
        card_last4=charge.card_last4,
        created_at=at,
        updated_at=at,
    )


def settle_refund(*, payment_id):
    """Send a pending refund to the provider and record the answer. Idempotent (the refund's id is the key).

    Called after commit; if the provider fails, the refund stays pending and the reconciler retries it.
    """
    refund = Payment.objects.select_related("refund_of").get(pk=payment_id)
    if refund.status != Payment.Status.PENDING:
        return refund
    try:
        result = get_provider().refund(
            charge_id=refund.refund_of.provider_reference, amount=refund.amount, idempotency_key=str(refund.pk)
        )
    except PaymentError:
        logger.warning("Refund %s failed at the provider; the reconciler will retry it", refund.pk)
        return refund
    Payment.objects.filter(pk=refund.pk, status=Payment.Status.PENDING).update(
        status=Payment.Status.SUCCEEDED, provider_reference=result.refund_id, updated_at=timezone.now()
    )
    refund.refresh_from_db()
    return refund


def reconcile_payments(*, at=None, settle_after=timedelta(seconds=30)):
    """Settle every payment left unsettled by a timeout or a crash. Returns how many it settled.

    A charge the provider has is fulfilled (booked, or refunded if the hold was lost); one it doesn't have
    failed. Pending refunds are sent again. Safe on several workers: each payment is claimed with a
    conditional update before its outcome is recorded.
    """
    at = at or timezone.now()
    provider = get_provider()
    settled = 0
    stale = Payment.objects.filter(
        status__in=[Payment.Status.PENDING, Payment.Status.UNKNOWN], updated_at__lte=at - settle_after
    ).order_by("updated_at")
    for payment in stale[:200]:
        if payment.kind == Payment.Kind.REFUND:
            settled += settle_refund(payment_id=payment.pk).status == Payment.Status.SUCCEEDED
            continue
        try:
            charge = provider.find_charge(idempotency_key=str(payment.pk))
        except PaymentError:
            continue
        if charge is not None:
            fulfil_charge(payment_id=payment.pk, provider_reference=charge.charge_id, at=at)
            settled += 1
        else:
            settled += Payment.objects.filter(pk=payment.pk, status=payment.status).update(
                status=Payment.Status.FAILED, error_code="not_charged", updated_at=at
            )
    return settled


def cancel_booking(*, reservation_id, at=None):
    """Staff cancel a booking: its seats are freed and its charge refunded through the provider.

    Locks the reservation. Raises BookingError("not_booked") unless it is Booked. On commit: pushes the
    freed seats, wakes the waiting line, and sends the refund (the reconciler retries a failed one).
    """
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        reservation = Reservation.objects.select_for_update().get(pk=reservation_id)
        if reservation.status != Reservation.Status.BOOKED:
            raise BookingError("not_booked")
        _release([reservation.pk], status=Reservation.Status.CANCELLED, at=at)
        charge = reservation.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED).first()
        if charge is not None:
            refund = _record_refund(charge, at)
            transaction.on_commit(lambda: settle_refund(payment_id=refund.pk))
        reservation.refresh_from_db()
    return reservation


# --- Idempotency keys ------------------------------------------------------------------------------------------


def begin_idempotent_request(*, buyer, key, fingerprint, at=None):
    """Claim an Idempotency-Key for a call. Returns `(record, None)` to go ahead, or `(record, answer)`
    with the first call's `(status, body)` for a replay.

    Raises BookingError: idempotency_mismatch (the key was used for a different request) or
    idempotency_in_flight (its first call is still running; one whose process died is taken over after
    IDEMPOTENCY_TAKEOVER_AFTER).
    """
    at = at or timezone.now()
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(
                api_key_id=buyer.api_key_id,
                session_id=buyer.session_id,
                key=key,
                fingerprint=fingerprint,
                started_at=at,
            )
            return record, None
    except IntegrityError:
        record = IdempotentRequest.objects.get(api_key_id=buyer.api_key_id, session_id=buyer.session_id, key=key)
    if record.fingerprint != fingerprint:
        raise BookingError("idempotency_mismatch")
    if record.finished_at is not None:
        return record, (record.response_status, record.response_body)
    took_over = IdempotentRequest.objects.filter(
        pk=record.pk, finished_at__isnull=True, started_at__lte=at - IDEMPOTENCY_TAKEOVER_AFTER
    ).update(started_at=at)
    if not took_over:
        raise BookingError("idempotency_in_flight")
    return record, None


def finish_idempotent_request(*, record, status, body, at=None):
    """Store the answer a replay of this key will get."""
    IdempotentRequest.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body, finished_at=at or timezone.now()
    )


def abandon_idempotent_request(*, record):
    """Forget a key whose call ended without a final answer (e.g. a provider timeout), so a retry runs again."""
    IdempotentRequest.objects.filter(pk=record.pk, finished_at__isnull=True).delete()


# --- Tickets ---------------------------------------------------------------------------------------------------


def check_in_ticket(*, code, at=None):
    """Staff scan or type a ticket: mark it used, once. Returns the reservation.

    `code` is the QR payload (its signature is checked) or the booking code. Locks the reservation.
    Raises BookingError: ticket_invalid (forged, malformed, unknown), ticket_used (second scan),
    ticket_not_valid (the booking was cancelled), ticket_show_ended (an old ticket).
    """
    at = at or timezone.now()
    try:
        if code.strip().startswith("T1."):
            booking_code = tickets.verify_ticket(code.strip())["code"]
        else:
            booking_code = tickets.normalize_booking_code(code)
    except tickets.InvalidTicket:
        raise BookingError("ticket_invalid") from None
    with transaction.atomic(durable=True):
        reservation = (
            Reservation.objects.select_for_update(of=("self",))
            .select_related("show__movie", "show__hall__cinema")
            .filter(booking_code=booking_code)
            .first()
        )
        if reservation is None:
            raise BookingError("ticket_invalid")
        if reservation.status != Reservation.Status.BOOKED:
            raise BookingError("ticket_not_valid", status=reservation.status.lower())
        if reservation.show.ends_at <= at:
            ended = reservation.show.ends_at.astimezone(reservation.show.hall.cinema.zone)
            raise BookingError("ticket_show_ended", ended_at=f"{ended:%H:%M} on {ended:%d %b}")
        if reservation.checked_in_at is not None:
            local = reservation.checked_in_at.astimezone(reservation.show.hall.cinema.zone)
            raise BookingError("ticket_used", checked_in_at=f"{local:%H:%M:%S} on {local:%d %b}")
        reservation.checked_in_at = at
        reservation.save(update_fields=["checked_in_at"])
    return reservation


def ticket_token(reservation):
    """The signed QR payload of a booked reservation (deterministic for the same booking)."""
    return tickets.sign_ticket(
        reservation_id=str(reservation.pk),
        booking_code=reservation.booking_code,
        show_id=reservation.show_id,
        seats=reservation.seat_labels(),
        starts_at=reservation.show.starts_at,
    )

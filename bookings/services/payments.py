"""Paying for holds, refunds, the reconciler and Idempotency-Keys (cancelling a booking: cancellations.py).

Each database step of paying is one call of a SQL function kept in migration bookings 0010 (whether a hold
may be charged and for how long it is kept meanwhile, booking or refunding when the charge lands, a declined
hold's clock, an Idempotency-Key's answer): those rules live there once. The order of the steps and the
provider calls between them live once too, as generators of steps (`_paying` and the rest) that yield each
call and are sent its answer: `_run` makes the calls on Django's connection and the provider's sync methods
(the website, the reconciler, staff, Celery, the API through Django), `_arun` on the lean path's async pool
and the provider's async methods (the API on the lean front, no thread per request).

None of these holds a row lock while the payment provider works.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext

from bookings import ticket_codes
from bookings.models import IdempotentRequest, Payment, Reservation
from bookings.notices import announce_seat_changes
from bookings.providers import CardDeclined, InvalidCard, PaymentError, ProviderTimeout, get_provider
from bookings.services.errors import BookingError
from bookings.services.gift_cards import redeeming
from bookings.services.holds import FunctionCall, HeldSeat, acall_function, call_function, find_reservation
from ticketing import shards
from ticketing.faults import crash_if_asked
from ticketing.shards import connection
from ticketing.steps import arun_steps, run_steps

logger = logging.getLogger(__name__)

# While a charge is at the provider, the seats stay held this much longer, so a buyer who pressed "pay" at
# 4:59 is not refunded because the card network took a few seconds.
PAYMENT_HOLD_EXTENSION = timedelta(seconds=30)
# A booking code is drawn again when it collides (one in a trillion); five collisions in a row mean a bug.
BOOKING_CODE_DRAWS = 5
# The "provider's reference" of a charge of nothing, for a hold its gift cards paid in full: never sent.
PAID_BY_GIFT_CARDS = "paid-by-gift-cards"


# --- The two ways of making the steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Provider:
    """A call of the payment provider (`method`, or its async twin `a<method>`); its answer is the provider's."""

    method: str
    arguments: dict

    def run(self):
        return getattr(get_provider(), self.method)(**self.arguments)

    run_here = run

    async def arun(self):
        return await getattr(get_provider(), f"a{self.method}")(**self.arguments)


@dataclass(frozen=True)
class _RefundAfterCommit:
    """A refund recorded by the step before, to send once that step's transaction has committed."""

    refund: dict

    def run(self):
        # Through Django the call may sit in a caller's (or a test's) transaction: send it when that commits.
        shards.on_commit(lambda: settle_refund(payment_id=uuid.UUID(self.refund["id"])))

    run_here = run

    async def arun(self):
        refund = self.refund
        await _arun(_refunding(uuid.UUID(refund["id"]), refund["charge"], Decimal(refund["amount"])))


# Payments taken in person, not through the payment provider (Payment.provider): cash in a box office's till, and
# house seats, which cost nothing. The provider never hears of them, nor of their refunds.
CASH = "cash"
HOUSE = "house"
IN_PERSON = frozenset({CASH, HOUSE})


def _run(steps):
    """The generator's result, making each step it yields with Django's connection and the sync provider."""
    return run_steps(steps)


async def _arun(steps):
    """The generator's result, making each step on the async pool and with the async provider."""
    return await arun_steps(steps, lambda step: step.arun())


# --- Payments ---------------------------------------------------------------------------------------------------


@shards.in_its_reservations_database
def pay_for_reservation(*, buyer, reservation_id, card, resuming=False, gift_card=None, at=None):
    """Charge the hold's amount through the payment provider and book it. Returns the booked Reservation.

    With `gift_card` (a code as typed), that card first pays what it can (bookings.services.gift_cards); so do
    cards redeemed for the hold before. The provider is charged only the rest; when the cards paid it all it is
    not called, and `card` may be None.

    Three steps, none holding a lock while the provider works: (1) bookings_start_charge locks the hold,
    checks it is live, records a pending Payment (whose id is the provider's idempotency key) and keeps the
    seats a little longer; (2) charge; (3) bookings_fulfil_charge locks it again and books, or, if the hold
    was lost meanwhile, records a refund, sent to the provider on commit. Before step 1, a charge of this hold
    left unsettled (a timeout, or a process that died mid-payment) is looked up at the provider and settled
    first, so a retry never charges twice. Raises BookingError: not_found, hold_expired (410; refunded if the
    provider charged), already_booked, hold_cancelled, payment_in_progress, card_declined (402, the hold
    stands), invalid_card, payment_failed, payment_timeout (the reconciler settles it). On commit of step 3:
    pushes the booked seats and tells the waiting line (bookings.notices).

    `resuming`: this call repeats, with the same Idempotency-Key, one whose process died before answering;
    if the hold is booked by now (that call, or the reconciler after it, got that far), it is the answer.
    """
    return _run(_paying(buyer, reservation_id, card, resuming, gift_card, at or timezone.now()))


async def apay_for_reservation(*, buyer, reservation_id, card, resuming=False, gift_card=None, at=None):
    """pay_for_reservation on the lean path: the same steps, on the async pool and the provider's async calls."""
    return await _arun(_paying(buyer, reservation_id, card, resuming, gift_card, at or timezone.now()))


def _paying(buyer, reservation_id, card, resuming, gift_card, at):
    if gift_card is not None:
        try:
            yield from redeeming(buyer, reservation_id, gift_card, at)
        except BookingError as refusal:
            if not (resuming and refusal.code == "already_booked"):
                raise  # a resumed call whose hold got booked: _starting answers with the booking
    payment, provider_reference = yield from _starting(buyer, reservation_id, card, at, resuming)
    if payment is None:
        return provider_reference  # the booked reservation a resumed call finds
    if provider_reference is None and payment.amount == 0:
        provider_reference = PAID_BY_GIFT_CARDS
    elif provider_reference is None:
        if card is None:  # the gift cards don't pay it all: nothing to charge the rest to
            yield _settle_failed_call(payment.pk, Payment.Status.PENDING, Payment.Status.FAILED, "no_card")
            raise BookingError("invalid_card", fields={"card_number": [gettext("Enter a card to pay the rest.")]})
        crash_if_asked("before_charge")
        provider_reference = yield from _charging(payment, card)
        crash_if_asked("after_charge")
    reservation = yield from _fulfilling(payment.pk, provider_reference, timezone.now())
    crash_if_asked("after_commit")
    if reservation.status != Reservation.Status.BOOKED:
        raise BookingError("hold_expired")
    return reservation


@shards.in_its_reservations_database
def pay_in_person(*, buyer, reservation_id, means, at=None):
    """Book a hold paid in person: `means` CASH (the till took the amount) or HOUSE (house seats: the hold's amount
    is 0). Returns the booked Reservation. Runs in the caller's transaction (bookings.services.box_office's), which
    it requires, so that the sale's other writes commit with the booking or not at all.

    The same two database steps as paying by card, without the provider between them: bookings_start_charge locks
    the hold, checks it is live and records the Payment (provider `means`), then bookings_fulfil_charge books it
    and marks its claims booked. Raises BookingError as pay_for_reservation does before a charge (not_found,
    hold_expired, already_booked, hold_cancelled, payment_in_progress; the last also when an earlier card attempt
    of this hold turns out to have been charged: the reconciler books it by that card). On commit: pushes the
    booked seats and tells the waiting line (bookings.notices).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("pay_in_person runs in its caller's transaction")
    at = at or timezone.now()
    payment, charged = run_steps(
        _starting(buyer, reservation_id, None, at, False, provider=means), lambda step: step.run_here()
    )
    if payment is None or charged is not None:
        raise BookingError("already_booked" if payment is None else "payment_in_progress")
    return run_steps(_fulfilling(payment.pk, f"{means}:{payment.pk}", at), lambda step: step.run_here())


def _start_charge(buyer, reservation_id, card, at, resuming=False):
    """Step 1 of paying: returns `(payment, None)` to charge, `(payment, provider_reference)` when an earlier
    attempt that timed out or died turns out to have been charged after all, or `(None, reservation)` when
    a resumed call finds the hold booked."""
    return _run(_starting(buyer, reservation_id, card, at, resuming))


def _starting(buyer, reservation_id, card, at, resuming, provider=None):
    settle_after = timedelta(seconds=settings.TICKETING_PAYMENT_SETTLE_SECONDS)
    look_up = True
    while True:
        payment_id, amount, currency, unsettled, booked = yield FunctionCall(
            "bookings_start_charge",
            (
                reservation_id,
                buyer.api_key_id,
                buyer.session_id,
                resuming,
                look_up,
                settle_after,
                PAYMENT_HOLD_EXTENSION,
                provider or get_provider().name,
                card.last4 if card is not None else "",
                at,
            ),
        )
        if booked is not None:
            return None, reservation_of(booked)
        if unsettled is None:
            return _payment(payment_id, reservation_id, amount=amount, currency=currency), None
        # Asked with no lock taken: the provider is never called while a row is locked.
        for unsettled_id, status in ((uuid.UUID(pk), status) for pk, status in unsettled):
            try:
                charge = yield _Provider("find_charge", {"idempotency_key": str(unsettled_id)})
            except PaymentError:
                raise BookingError("payment_timeout") from None
            if charge is not None:
                return _payment(unsettled_id, reservation_id), charge.charge_id
            yield _settle_failed_call(unsettled_id, status, Payment.Status.FAILED, "not_charged", at)
        look_up = False


def _payment(pk, reservation_id, **fields):
    payment = Payment(pk=pk, reservation_id=reservation_id, kind=Payment.Kind.CHARGE, **fields)
    payment._state.adding, payment._state.db = False, connection.alias
    return payment


def _charging(payment, card):
    """Step 2 of paying: the provider's charge id, or BookingError after recording why there is none."""
    try:
        charge = yield _Provider(
            "charge",
            {"amount": payment.amount, "currency": payment.currency, "card": card, "idempotency_key": str(payment.pk)},
        )
    except ProviderTimeout:
        yield _settle_failed_call(payment.pk, Payment.Status.PENDING, Payment.Status.UNKNOWN, "payment_timeout")
        raise BookingError("payment_timeout") from None
    except CardDeclined:
        yield _settle_failed_call(payment.pk, Payment.Status.PENDING, Payment.Status.DECLINED, "card_declined")
        raise BookingError("card_declined") from None
    except InvalidCard as exc:
        yield _settle_failed_call(payment.pk, Payment.Status.PENDING, Payment.Status.FAILED, "invalid_card")
        raise BookingError("invalid_card", fields=getattr(exc, "fields", None)) from None
    except PaymentError as exc:
        yield _settle_failed_call(payment.pk, Payment.Status.PENDING, Payment.Status.FAILED, exc.code)
        raise BookingError("payment_failed") from None
    return charge.charge_id


def _settle_failed_call(payment_id, was, status, error_code, at=None):
    """Record that a charge did not (or may not have) gone through; a declined hold gets its own clock back."""
    return FunctionCall(
        "bookings_settle_failed_charge",
        (
            payment_id,
            was,
            status,
            error_code,
            timedelta(seconds=settings.TICKETING_HOLD_GRACE_SECONDS),
            at or timezone.now(),
        ),
    )


def fulfil_charge(*, payment_id, provider_reference, at=None):
    """The provider took the money: book the reservation, or refund if its hold was lost. Idempotent.

    One call of bookings_fulfil_charge, which locks the reservation, then the payment. Books only a
    reservation still Reserved (its claims intact); otherwise records a pending refund. On commit: pushes the
    booked seats and tells the waiting line (bookings.notices), or refunds through the provider. Returns the
    reservation.
    """
    return _run(_fulfilling(payment_id, provider_reference, at or timezone.now()))


def _fulfilling(payment_id, provider_reference, at):
    for draw in range(1, BOOKING_CODE_DRAWS + 1):
        try:
            described, version, booked, refund = yield FunctionCall(
                "bookings_fulfil_charge", (payment_id, provider_reference, ticket_codes.generate_booking_code(), at)
            )
            break
        except BookingError as refusal:
            if refusal.code != "booking_code_taken" or draw == BOOKING_CODE_DRAWS:
                raise
    reservation = reservation_of(described)
    if booked:
        announce_seat_changes(reservation.show_id, version, [(seat_id, "booked") for seat_id in booked])
    if refund is not None:
        yield _RefundAfterCommit(refund)
    return reservation


def reservation_of(described):
    """The Reservation bookings_describe_reservation described, as an answer shows it, without reading it back."""

    def moment(text):
        return None if text is None else datetime.fromisoformat(text).astimezone(UTC)

    reservation = Reservation(
        pk=uuid.UUID(described["id"]),
        status=described["status"],
        amount=Decimal(described["amount"]),
        currency=described["currency"],
        price_breakdown=described.get("price_breakdown"),
        created_at=moment(described["created_at"]),
        expires_at=moment(described["expires_at"]),
        held_until=moment(described["held_until"]),
        ended_at=moment(described["ended_at"]),
        booking_code=described["booking_code"],
        booked_at=moment(described["booked_at"]),
        email=described["email"],
        show_id=described["show"],
    )
    reservation.show_starts_at = moment(described["show_starts_at"])  # for the ticket, without reading the show
    reservation._state.adding, reservation._state.db = False, connection.alias
    reservation.seats_held = [
        HeldSeat(pk, row_label, number, seat_type, Decimal(price))
        for pk, row_label, number, seat_type, price in described["seats"]
    ]
    return reservation


def settle_refund(*, payment_id):
    """Send a pending refund to the provider and record the answer. Idempotent (the refund's id is the key).

    Called after commit; if the provider fails, the refund stays pending and the reconciler retries it. A refund of
    a payment taken in person (IN_PERSON: cash) never goes to the provider: the cinema hands the cash back at its
    box office, and the refund is recorded as made there.
    """
    refund = Payment.objects.select_related("refund_of").get(pk=payment_id)
    if refund.status != Payment.Status.PENDING:
        return refund
    if refund.provider in IN_PERSON:
        call_function("bookings_settle_refund", refund.pk, f"{refund.provider}:{refund.pk}", timezone.now())
        refund.refresh_from_db()
        return refund
    _run(_refunding(refund.pk, refund.refund_of.provider_reference, refund.amount))
    refund.refresh_from_db()
    return refund


def _refunding(refund_id, charge_id, amount):
    try:
        result = yield _Provider(
            "refund", {"charge_id": charge_id, "amount": amount, "idempotency_key": str(refund_id)}
        )
    except PaymentError:
        logger.warning("Refund %s failed at the provider; the reconciler will retry it", refund_id)
        return
    yield FunctionCall("bookings_settle_refund", (refund_id, result.refund_id, timezone.now()))


def reconcile_payments(*, at=None):
    """Settle every payment left unsettled by a timeout or a crash. Returns how many it settled.

    Takes payments unsettled for TICKETING_PAYMENT_SETTLE_SECONDS. A charge the provider has is fulfilled
    (booked, or refunded if the hold was lost); one it doesn't have failed. Pending refunds are sent again.
    Safe on several workers: each payment's outcome is recorded by a function that locks it and changes it
    only from the status it was read with. Beat runs it every TICKETING_RECONCILE_SECONDS.
    """
    at = at or timezone.now()
    provider = get_provider()
    settled = 0
    settle_after = timedelta(seconds=settings.TICKETING_PAYMENT_SETTLE_SECONDS)
    stale = Payment.objects.filter(
        status__in=[Payment.Status.PENDING, Payment.Status.UNKNOWN], updated_at__lte=at - settle_after
    ).order_by("updated_at")
    for payment in stale[:200]:
        if payment.kind == Payment.Kind.REFUND:
            settled += settle_refund(payment_id=payment.pk).status == Payment.Status.SUCCEEDED
            continue
        if payment.amount == 0:  # paid by gift cards: the provider never heard of it
            fulfil_charge(payment_id=payment.pk, provider_reference=PAID_BY_GIFT_CARDS, at=at)
            settled += 1
            continue
        try:
            charge = provider.find_charge(idempotency_key=str(payment.pk))
        except PaymentError:
            continue
        if charge is not None:
            fulfil_charge(payment_id=payment.pk, provider_reference=charge.charge_id, at=at)
            settled += 1
        else:
            (not_charged,) = _settle_failed_call(
                payment.pk, payment.status, Payment.Status.FAILED, "not_charged", at
            ).run()
            settled += not_charged
    return settled


# --- Idempotency keys ------------------------------------------------------------------------------------------


def begin_idempotent_request(*, buyer, key, fingerprint, reservation_id=None, at=None):
    """Claim an Idempotency-Key for a call. Returns `(record, None)` to go ahead, or `(record, answer)`
    with the first call's `(status, body)` for a replay.

    One call of bookings_begin_idempotent_request, which locks the key's row (if it exists). Raises
    BookingError: not_found (`reservation_id` is not the buyer's; the key is not spent then),
    idempotency_mismatch (the key was used for a different request) or idempotency_in_flight (its first call
    is still running; one whose process died is taken over after TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS, and
    the record then reads `resumed`).
    """
    return _begun(key, call_function(*_begin_call(buyer, key, fingerprint, reservation_id, at)))


async def abegin_idempotent_request(*, buyer, key, fingerprint, reservation_id=None, at=None):
    """begin_idempotent_request on the lean path's async pool: the same function call, the same answer."""
    return _begun(key, await acall_function(*_begin_call(buyer, key, fingerprint, reservation_id, at)))


def _begin_call(buyer, key, fingerprint, reservation_id, at):
    return (
        "bookings_begin_idempotent_request",
        buyer.api_key_id,
        buyer.session_id,
        key,
        fingerprint,
        _takeover_after(),
        at or timezone.now(),
        reservation_id,
    )


def _takeover_after():
    return timedelta(seconds=settings.TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS)


def _begun(key, row):
    request_id, resumed, response_status, response_body = row
    record = IdempotentRequest(pk=request_id, key=key)
    record._state.adding, record._state.db = False, connection.alias
    record.resumed = resumed
    return record, (None if response_status is None else (response_status, response_body))


def hold_made_for(*, buyer, record):
    """The hold an Idempotency-Key's first ReserveSeats made (bookings_hold_seats_once wrote it on the key's row in
    the hold's own transaction), or None: for a retry that took the key over after that call died unanswered."""
    reservation_id = IdempotentRequest.objects.filter(pk=record.pk).values_list("reservation_id", flat=True).first()
    return None if reservation_id is None else find_reservation(buyer=buyer, reservation_id=reservation_id)


def finish_idempotent_request(*, record, status, body, at=None):
    """Store the answer a replay of this key will get."""
    call_function("bookings_finish_idempotent_request", record.pk, status, body, at or timezone.now())


async def afinish_idempotent_request(*, record, status, body, at=None):
    """finish_idempotent_request on the lean path's async pool."""
    await acall_function("bookings_finish_idempotent_request", record.pk, status, body, at or timezone.now())


def abandon_idempotent_request(*, record, at=None):
    """A key's call ended without a final answer (e.g. a provider timeout): a retry may take it over at once.

    The retry then runs as a resumed call (see begin_idempotent_request), so if the hold got booked meanwhile
    (the reconciler found the charge) the retry's answer is the booking, not "already booked".
    """
    call_function("bookings_abandon_idempotent_request", record.pk, _takeover_after(), at or timezone.now())


async def aabandon_idempotent_request(*, record, at=None):
    """abandon_idempotent_request on the lean path's async pool."""
    await acall_function("bookings_abandon_idempotent_request", record.pk, _takeover_after(), at or timezone.now())

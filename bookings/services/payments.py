"""Paying for holds, refunds, the reconciler, staff cancellations and Idempotency-Keys.

None of these holds a row lock while the payment provider works.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from bookings import tickets
from bookings.availability import next_seat_version
from bookings.models import IdempotentRequest, OutgoingMail, Payment, Reservation
from bookings.payments import CardDeclined, InvalidCard, PaymentError, ProviderTimeout, get_provider
from bookings.services.errors import BookingError
from bookings.services.holds import _announce, _check_still_held, _release, find_reservation
from bookings.services.mail import queue_mail
from ticketing.faults import crash_if_asked

logger = logging.getLogger(__name__)

# While a charge is at the provider, the seats stay held this much longer, so a buyer who pressed "pay" at
# 4:59 is not refunded because the card network took a few seconds.
PAYMENT_HOLD_EXTENSION = timedelta(seconds=30)


# --- Payments ---------------------------------------------------------------------------------------------------


def pay_for_reservation(*, buyer, reservation_id, card, resuming=False, at=None):
    """Charge the hold's amount through the payment provider and book it. Returns the booked Reservation.

    Three steps, none holding a lock while the provider works: (1) lock the hold, check it is live, record
    a pending Payment (whose id is the provider's idempotency key) and keep the seats a little longer;
    (2) charge; (3) lock again and book, or, if the hold was lost meanwhile, refund. Before step 1, a charge
    of this hold left unsettled (a timeout, or a process that died mid-payment) is looked up at the provider
    and settled first, so a retry never charges twice. Raises BookingError: not_found, hold_expired (410;
    refunded if the provider charged), already_booked, payment_in_progress, card_declined (402, the hold
    stands), invalid_card, payment_timeout (the reconciler settles it).

    `resuming`: this call repeats, with the same Idempotency-Key, one whose process died before answering;
    if the hold is booked by now (that call, or the reconciler after it, got that far), it is the answer.
    """
    at = at or timezone.now()
    payment, provider_reference = _start_charge(buyer, reservation_id, card, at, resuming)
    if payment is None:
        return provider_reference  # the booked reservation a resumed call finds
    if provider_reference is None:
        crash_if_asked("before_charge")
        provider_reference = _charge(payment, card)
        crash_if_asked("after_charge")
    reservation = fulfil_charge(payment_id=payment.pk, provider_reference=provider_reference)
    crash_if_asked("after_commit")
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


def _start_charge(buyer, reservation_id, card, at, resuming=False):
    """Step 1 of paying: returns `(payment, None)` to charge, `(payment, provider_reference)` when an earlier
    attempt that timed out or died turns out to have been charged after all, or `(None, reservation)` when
    a resumed call finds the hold booked."""
    reservation = find_reservation(buyer=buyer, reservation_id=reservation_id)
    if resuming and reservation.status == Reservation.Status.BOOKED:
        return None, reservation
    # Asked before any lock is taken: the provider is never called while a row is locked.
    for unsettled in _unsettled_charges(reservation.payments.all(), at):
        try:
            charge = get_provider().find_charge(idempotency_key=str(unsettled.pk))
        except PaymentError:
            raise BookingError("payment_timeout") from None
        if charge is not None:
            return unsettled, charge.charge_id
        Payment.objects.filter(pk=unsettled.pk, status=unsettled.status).update(
            status=Payment.Status.FAILED, error_code="not_charged", updated_at=at
        )
    with transaction.atomic(durable=True):
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        if resuming and reservation.status == Reservation.Status.BOOKED:
            return None, reservation
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
            provider=get_provider().name,
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
    claims.update(version=version, booked=True)
    # A booking can leave waiters wanting more seats than remain unbooked: the line decides (Show Full).
    _announce(reservation.show_id, version, [(seat_id, "booked") for seat_id in seat_ids], line_may_move=True)


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


def _unsettled_charges(payments, at):
    """Charges whose outcome nobody is waiting for: a provider timeout (unknown), or a call still pending
    after TICKETING_PAYMENT_SETTLE_SECONDS, far past the provider's timeout, so its process must have died."""
    settle_after = timedelta(seconds=settings.TICKETING_PAYMENT_SETTLE_SECONDS)
    return payments.filter(kind=Payment.Kind.CHARGE).filter(
        Q(status=Payment.Status.UNKNOWN) | Q(status=Payment.Status.PENDING, updated_at__lte=at - settle_after)
    )


def reconcile_payments(*, at=None):
    """Settle every payment left unsettled by a timeout or a crash. Returns how many it settled.

    Takes payments unsettled for TICKETING_PAYMENT_SETTLE_SECONDS. A charge the provider has is fulfilled
    (booked, or refunded if the hold was lost); one it doesn't have failed. Pending refunds are sent again.
    Safe on several workers: each payment is claimed with a conditional update before its outcome is
    recorded. Beat runs it every TICKETING_RECONCILE_SECONDS.
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

    Locks the reservation. Raises BookingError("not_booked") unless it is Booked. Owes the buyer a mail
    saying so (an OutgoingMail, if they gave an address). On commit: pushes the freed seats, wakes the
    waiting line, sends the refund (the reconciler retries a failed one), then queues the mail, which tells
    how the refund stands when it is sent.
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
        if reservation.email:
            queue_mail(reservation=reservation, kind=OutgoingMail.Kind.CANCELLED, at=at)
        reservation.refresh_from_db()
    return reservation


# --- Idempotency keys ------------------------------------------------------------------------------------------


def begin_idempotent_request(*, buyer, key, fingerprint, at=None):
    """Claim an Idempotency-Key for a call. Returns `(record, None)` to go ahead, or `(record, answer)`
    with the first call's `(status, body)` for a replay.

    Raises BookingError: idempotency_mismatch (the key was used for a different request) or
    idempotency_in_flight (its first call is still running; one whose process died is taken over after
    TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS, and the record then reads `resumed`).
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
            record.resumed = False
            return record, None
    except IntegrityError:
        record = IdempotentRequest.objects.get(api_key_id=buyer.api_key_id, session_id=buyer.session_id, key=key)
    if record.fingerprint != fingerprint:
        raise BookingError("idempotency_mismatch")
    if record.finished_at is not None:
        return record, (record.response_status, record.response_body)
    takeover_after = timedelta(seconds=settings.TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS)
    took_over = IdempotentRequest.objects.filter(
        pk=record.pk, finished_at__isnull=True, started_at__lte=at - takeover_after
    ).update(started_at=at)
    if not took_over:
        raise BookingError("idempotency_in_flight")
    record.resumed = True
    return record, None


def finish_idempotent_request(*, record, status, body, at=None):
    """Store the answer a replay of this key will get."""
    IdempotentRequest.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body, finished_at=at or timezone.now()
    )


def abandon_idempotent_request(*, record, at=None):
    """A key's call ended without a final answer (e.g. a provider timeout): a retry may take it over at once.

    The retry then runs as a resumed call (see begin_idempotent_request), so if the hold got booked meanwhile
    (the reconciler found the charge) the retry's answer is the booking, not "already booked".
    """
    takeover_after = timedelta(seconds=settings.TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS)
    IdempotentRequest.objects.filter(pk=record.pk, finished_at__isnull=True).update(
        started_at=(at or timezone.now()) - takeover_after
    )

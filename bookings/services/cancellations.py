"""Cancelling a booking: by the cinema's staff (a full refund), or by its buyer before the cinema's cutoff under its
refund policy.

Both go one way (_cancel_booked): the seats are freed and the waiting line told, the refund recorded by the SQL
function bookings_record_refund (migration bookings 0022: it refuses a refund past the charge) and sent to the
provider after commit, and the buyer owed a mail saying so. What a buyer may do and gets back is decided in one
place, cancellation_terms, which the ticket page shows and cancel_own_booking enforces under the row's lock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import dateformat, timezone
from django.utils.translation import gettext

from bookings.models import OutgoingMail, Payment, Reservation
from bookings.notices import announce_freed_seats
from bookings.services.errors import BookingError
from bookings.services.holds import call_function
from bookings.services.mail import queue_mail
from bookings.services.payments import settle_refund
from bookings.services.prices import price_breakdown
from cinemas.models import RefundPolicy
from ticketing import shards

# A partial refund is rounded half up to the currency's own decimals (its price breakdown's terms), 2 unless said.
CENT_EXPONENT = 2


@dataclass(frozen=True)
class CancellationTerms:
    """What the buyer of a booking would get by cancelling it now, and whether they may.

    `refusal` is the BookingError code that says no (None: they may), `closes_at` the last moment they may (the
    show's start less the cinema's cutoff), `paid` what they were charged and `refund` what they would get back.
    """

    refusal: str | None
    closes_at: datetime
    policy: str
    refund_percent: int
    paid: Decimal
    refund: Decimal
    currency: str

    @property
    def allowed(self):
        return self.refusal is None

    @property
    def kept(self):
        return self.paid - self.refund


def refund_due(*, cinema, paid, fees, exponent=CENT_EXPONENT):
    """The refund of a booking that cost `paid` (by card and gift cards), `fees` of it convenience fees (its price
    breakdown's fee lines), under `cinema`'s refund policy.

    The one place the policy becomes an amount: full gives back everything paid; partial gives refund_percent of
    the rest (the convenience fees are kept), rounded half up to the currency's `exponent` decimals; fee_kept
    gives back everything but the convenience fees; none gives nothing. Never below 0 or above `paid`.
    """
    fees = min(paid, fees)
    if cinema.refund_policy == RefundPolicy.FULL:
        refund = paid
    elif cinema.refund_policy == RefundPolicy.PARTIAL:
        step = Decimal(1).scaleb(-exponent)
        refund = ((paid - fees) * cinema.refund_percent / 100).quantize(step, rounding=ROUND_HALF_UP)
    elif cinema.refund_policy == RefundPolicy.FEE_KEPT:
        refund = paid - fees
    else:
        refund = Decimal(0)
    return max(Decimal(0), min(paid, refund))


def _charge_of(reservation):
    return reservation.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED).first()


def cancellation_terms(*, reservation, at=None):
    """The CancellationTerms of the reservation (with its show, hall and cinema) for its buyer at `at` (now)."""
    at = at or timezone.now()
    show = reservation.show
    cinema = show.hall.cinema
    closes_at = show.starts_at - timedelta(minutes=cinema.cancellation_cutoff_minutes)
    charge = _charge_of(reservation)
    # What the booking cost, paid by card and gift cards alike (its amount, the breakdown's total).
    paid = reservation.amount if charge is not None else Decimal(0)
    breakdown = price_breakdown(reservation)
    fees = sum((fee.amount for fee in breakdown.fees), Decimal(0)) if breakdown else Decimal(0)
    exponent = breakdown.stored["terms"]["exponent"] if breakdown else CENT_EXPONENT
    refusal = None
    if reservation.status == Reservation.Status.CANCELLED:
        refusal = "booking_cancelled"
    elif reservation.status != Reservation.Status.BOOKED:
        refusal = "not_a_booking"
    elif reservation.channel != Reservation.Channel.ONLINE:
        # Bought (or given) at the box office: its money went into a till, so it comes back over the counter.
        refusal = "cancel_at_box_office"
    elif cinema.refund_policy == RefundPolicy.NONE:
        refusal = "cancellation_not_allowed"
    elif reservation.checked_in_at is not None:
        refusal = "ticket_used"
    elif at >= closes_at:
        refusal = "cancellation_closed"
    return CancellationTerms(
        refusal=refusal,
        closes_at=closes_at,
        policy=cinema.refund_policy,
        refund_percent=cinema.refund_percent,
        paid=paid,
        refund=refund_due(cinema=cinema, paid=paid, fees=fees, exponent=exponent),
        currency=charge.currency if charge is not None else reservation.currency,
    )


def cancellation_refusal(terms, *, reservation):
    """The BookingError of terms that say no (for a page to show, or to raise), the times it names in the cinema's
    own zone."""
    zone = reservation.show.hall.cinema.zone
    if terms.refusal == "cancellation_closed":
        closed_at = dateformat.format(terms.closes_at.astimezone(zone), gettext("D j M, H:i"))
        return BookingError("cancellation_closed", closed_at=closed_at)
    if terms.refusal == "ticket_used":
        used_at = dateformat.format(reservation.checked_in_at.astimezone(zone), gettext(r"H:i:s \o\n j M"))
        return BookingError("ticket_used", checked_in_at=used_at)
    return BookingError(terms.refusal)


@shards.in_its_reservations_database
def cancel_own_booking(*, reservation_id, at=None):
    """The buyer cancels their booking, before the cinema's cutoff: the seats are freed and the refund its policy
    gives (cancellation_terms) goes back to the card. Returns the cancelled reservation.

    The caller has checked the buyer's right to the booking (their session, the signed ticket link, their mailbox).
    Locks the reservation. Raises BookingError: booking_cancelled (already), not_a_booking (a hold),
    cancel_at_box_office (sold at the box office: cancelled and refunded there), cancellation_not_allowed
    (the cinema's policy is none), ticket_used (checked in at the door), cancellation_closed (past the cutoff),
    refund_exceeds_charge (the database refused the refund). Owes the buyer a mail confirming it, with the refund.
    On commit: as cancel_booking.
    """
    at = at or timezone.now()
    with shards.atomic(durable=True):
        reservation = _locked(reservation_id)
        terms = cancellation_terms(reservation=reservation, at=at)
        if not terms.allowed:
            raise cancellation_refusal(terms, reservation=reservation)
        _cancel_booked(
            reservation,
            at=at,
            refund=terms.refund,
            cancelled_by=Reservation.CancelledBy.BUYER,
            mail_kind=OutgoingMail.Kind.BUYER_CANCELLED,
        )
    return reservation


@shards.in_its_reservations_database
def cancel_booking(*, reservation_id, reason="", at=None):
    """Staff cancel a booking: its seats are freed and its charge refunded in full through the provider. `reason`
    (the staff's words, at most 300 characters) is kept with it and told to the buyer, in the mail and on the
    ticket page. The caller has checked the staff member's role at the booking's cinema (cinemas.roles).

    Locks the reservation. Raises BookingError("not_booked") unless it is Booked. Owes the buyer a mail
    saying so (an OutgoingMail, if they gave an address). On commit: pushes the freed seats, tells the
    waiting line (bookings.notices), sends the refund (the reconciler retries a failed one), then queues the
    mail, which tells how the refund stands when it is sent.
    """
    at = at or timezone.now()
    with shards.atomic(durable=True):
        reservation = _locked(reservation_id)
        if reservation.status != Reservation.Status.BOOKED:
            raise BookingError("not_booked")
        _cancel_booked(
            reservation,
            at=at,
            refund=None,
            cancelled_by=Reservation.CancelledBy.CINEMA,
            mail_kind=OutgoingMail.Kind.CANCELLED,
            reason=reason,
        )
    return reservation


def _locked(reservation_id):
    return (
        Reservation.objects.select_for_update(of=("self",)).select_related("show__hall__cinema").get(pk=reservation_id)
    )


def _cancel_booked(reservation, *, at, refund, cancelled_by, mail_kind, reason=""):
    """Cancel the locked, Booked reservation in the caller's transaction: free its seats (the waiting line is told
    on commit), give back `refund` (everything paid when None; nothing when 0) the way it was paid, the card first
    (a refund recorded, sent to the provider on commit) and the rest to the gift cards that paid (at once), and owe
    its buyer a mail of `mail_kind`, which says `reason`. Reloads the reservation."""
    (freed,) = call_function(
        "bookings_release", [str(reservation.pk)], Reservation.Status.CANCELLED, at, own_transaction=False
    )
    announce_freed_seats(freed)
    Reservation.objects.filter(pk=reservation.pk).update(cancelled_by=cancelled_by, cancellation_reason=reason)
    charge = _charge_of(reservation)
    charged = charge.amount if charge is not None else Decimal(0)
    to_card = charged if refund is None else min(refund, charged)
    to_gift_cards = None if refund is None else refund - to_card
    if to_gift_cards != 0:
        call_function("bookings_return_gift_cards", reservation.pk, to_gift_cards, at, own_transaction=False)
    if to_card > 0:
        (refund_id,) = call_function("bookings_record_refund", charge.pk, at, to_card, own_transaction=False)
        shards.on_commit(lambda: settle_refund(payment_id=refund_id))
    if reservation.email:
        queue_mail(reservation=reservation, kind=mail_kind, at=at)
    reservation.refresh_from_db()

"""The box office: staff selling seats at a cinema's counter, for cash or a card tapped on the counter's terminal,
and holding seats for the house (press, guests).

Counter sales take the website's and the API's path: the hold is bookings_hold_seats (the waiting line's rule, the
claims, the pushes to every seat map), the card goes through the payments service and the provider with its
idempotency key, and cash is recorded as a Payment of its own (provider "cash"). Each sale is a buyer of its own
(counter_buyer: no API key, a session id per sale, no network address, so the per-address cap on unpaid holds never
throttles a busy counter, and a counter's sales never mix with a moviegoer's). The staff's rights are asked of
cinemas.roles here too, whatever page or admin calls: the services refuse a show of a cinema the user's role does
not reach with BookingError("staff_not_allowed"), and change nothing.

A house hold is a booking at 0 (Booked, channel house): it counts as taken everywhere a booking does (maps, the
waiting line's "show full", reports), never lapses, and is freed by release_house_seats through the cancellation's
path.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from bookings.models import Reservation
from bookings.providers import Card
from bookings.providers.sandbox import SANDBOX_SUCCEEDS
from bookings.services.cancellations import cancel_booking
from bookings.services.errors import BookingError
from bookings.services.holds import AT_THE_COUNTER, cancel_hold, hold_seats
from bookings.services.mail import email_ticket
from bookings.services.payments import CASH, HOUSE, pay_for_reservation, pay_in_person
from cinemas.roles import StaffAction, may
from ticketing import shards
from ticketing.buyers import Buyer

# A counter sale's session id: no website buyer's has a colon (ticketing.buyers draws URL-safe letters).
COUNTER_SESSION_PREFIX = "box-office:"

# The card the counter's terminal reads when the buyer taps: the sandbox's test card that succeeds. A real
# terminal hands its provider the card it read; the sandbox has no terminal, so the counter taps this one.
TERMINAL_CARD = Card(number=SANDBOX_SUCCEEDS, exp_month=12, exp_year=2099, cvc="123")


class PaidBy:
    CASH = CASH
    CARD = "card"


@dataclass(frozen=True)
class CounterSale:
    """A sale made: the booked reservation and, for cash, what was tendered and the change due."""

    reservation: Reservation
    tendered: Decimal | None = None
    change: Decimal | None = None


def counter_buyer(reservation=None):
    """The buyer a counter sale holds and pays as: a new session for a new sale, or the sale `reservation`'s."""
    session_id = reservation.session_id if reservation is not None else COUNTER_SESSION_PREFIX + secrets.token_hex(12)
    return Buyer(api_key_id=None, session_id=session_id)


def _refuse_unless_allowed(user, action, show):
    if not may(user, action, show.hall.cinema_id):
        raise BookingError("staff_not_allowed")


def _marked(channel, user, *, then=None):
    """The hold's and_then: mark the new reservation as sold by `user` on `channel`, in the hold's transaction."""

    def mark(reservation):
        Reservation.objects.filter(pk=reservation.pk).update(channel=channel, sold_by=user)
        reservation.channel, reservation.sold_by = channel, user
        return then(reservation) if then is not None else reservation

    return mark


@shards.in_its_shows_database
def hold_at_box_office(*, user, show, seat_ids=None, best_available=None, accessible_confirmed=False, at=None):
    """Hold seats of `show` (a Show with its hall) for a counter sale: the chosen `seat_ids`, or `best_available`
    (bookings.services.BestAvailable). Returns the Reservation, Reserved on channel box_office, sold by `user`.

    One transaction: hold_seats' call of bookings_hold_seats (it locks as hold_seats says) and the channel and
    seller marked on the reservation. Raises BookingError: staff_not_allowed (not at this show's cinema, nothing
    written), and every refusal hold_seats raises, `waiting_line` among them while people wait in the show's line
    (the counter serves the line's way, as the website does). The website's single-seat rule is not applied: the
    counter's staff judge. On commit: pushes the seats as held to every seat map.
    """
    _refuse_unless_allowed(user, StaffAction.SELL_AT_BOX_OFFICE, show)
    return hold_seats(
        buyer=counter_buyer(),
        show=show,
        seat_ids=seat_ids,
        best_available=best_available,
        accessible_confirmed=accessible_confirmed,
        at=at,
        and_then=_marked(Reservation.Channel.BOX_OFFICE, user),
        admission_pass=AT_THE_COUNTER,
    )


@shards.in_its_reservations_database
def find_counter_sale(*, user, reservation_id, channel=Reservation.Channel.BOX_OFFICE):
    """The box office reservation (or house hold, with `channel`) with its show, hall and cinema, if `user` may act
    on it; else BookingError("not_found"), as for no such reservation."""
    reservation = (
        Reservation.objects.select_related("show__movie", "show__hall__cinema")
        .filter(pk=reservation_id, channel=channel)
        .first()
    )
    action = (
        StaffAction.SELL_AT_BOX_OFFICE if channel == Reservation.Channel.BOX_OFFICE else StaffAction.HOLD_HOUSE_SEATS
    )
    if reservation is None or not may(user, action, reservation.show.hall.cinema_id):
        raise BookingError("not_found")
    return reservation


@shards.in_its_reservations_database
def sell_at_box_office(*, user, reservation_id, paid_by, tendered=None, email="", at=None):
    """Take the payment for a counter hold and book it. Returns a CounterSale.

    `paid_by` PaidBy.CASH: `tendered` (Decimal) must cover the amount; one transaction locks the hold, records a
    Payment of provider "cash" (bookings.services.payments.pay_in_person), books it and records `user` as its seller.
    PaidBy.CARD: the card tapped on the counter's terminal (TERMINAL_CARD) is charged through the payments service
    (pay_for_reservation: its three steps, the provider's idempotency key, no lock held while it works); the seller
    was recorded with the hold. With `email`, the e-ticket is mailed there (an OutgoingMail, sent after commit).
    Raises BookingError: not_found (no counter hold of the user's cinemas), cash_short, and what paying raises
    (hold_expired, already_booked, hold_cancelled, payment_in_progress, card_declined, payment_timeout, ...); nothing
    is booked then. On commit: pushes the booked seats to every seat map and tells the waiting line.
    """
    at = at or timezone.now()
    reservation = find_counter_sale(user=user, reservation_id=reservation_id)
    buyer = counter_buyer(reservation)
    change = None
    if paid_by == PaidBy.CASH:
        due = reservation.amount_due
        if tendered is None or tendered < due:
            raise BookingError("cash_short", due=f"{due} {reservation.currency}")
        with shards.atomic(durable=True):
            booked = pay_in_person(buyer=buyer, reservation_id=reservation.pk, means=CASH, at=at)
            Reservation.objects.filter(pk=reservation.pk).update(sold_by=user)
        change = tendered - due
    else:
        booked = pay_for_reservation(buyer=buyer, reservation_id=reservation.pk, card=TERMINAL_CARD, at=at)
    if email:
        email_ticket(buyer=buyer, reservation_id=reservation.pk, address=email)
    return CounterSale(reservation=booked, tendered=tendered if change is not None else None, change=change)


@shards.in_its_reservations_database
def give_up_counter_hold(*, user, reservation_id, at=None):
    """The buyer at the counter changed their mind: the sale's hold is cancelled and its seats are free at once.
    As cancel_hold (which locks the reservation); raises BookingError not_found, booked_not_cancellable."""
    reservation = find_counter_sale(user=user, reservation_id=reservation_id)
    return cancel_hold(buyer=counter_buyer(reservation), reservation_id=reservation.pk, at=at)


@shards.in_its_shows_database
def hold_house_seats(*, user, show, seat_ids, note, at=None):
    """Hold seats of `show` for the house (press, guests), for whom `note` says. Returns the Reservation: Booked at
    0, channel house, sold by `user`, out of sale until released, never lapsing.

    One transaction: the hold (bookings_hold_seats, as a counter sale's: the waiting line's rule applies), the
    channel, seller and note marked, the amount and price breakdown emptied, and the booking (a Payment of provider
    "house" and 0, pay_in_person). Raises BookingError: staff_not_allowed, and every refusal hold_seats raises;
    nothing is written then. On commit: pushes the seats (held, then booked) to every seat map.
    """
    _refuse_unless_allowed(user, StaffAction.HOLD_HOUSE_SEATS, show)
    buyer = counter_buyer()
    at = at or timezone.now()

    def book_free(reservation):
        Reservation.objects.filter(pk=reservation.pk).update(note=note, amount=0, price_breakdown=None)
        booked = pay_in_person(buyer=buyer, reservation_id=reservation.pk, means=HOUSE, at=at)
        booked.channel, booked.sold_by, booked.note = Reservation.Channel.HOUSE, user, note
        return booked

    return hold_seats(
        buyer=buyer,
        show=show,
        seat_ids=seat_ids,
        accessible_confirmed=True,  # the staff know who the house seats are for
        at=at,
        and_then=_marked(Reservation.Channel.HOUSE, user, then=book_free),
        admission_pass=AT_THE_COUNTER,
    )


@shards.in_its_reservations_database
def release_house_seats(*, user, reservation_id, at=None):
    """Put house seats back on sale. Returns the reservation, Cancelled by the cinema.

    The staff's cancellation (bookings.services.cancellations.cancel_booking; its charge of 0 refunds nothing):
    locks the reservation, frees its seats. Raises BookingError: not_found (no house hold of the user's cinemas),
    not_booked (released already). On commit: pushes the freed seats to every seat map and tells the waiting line,
    which serves its head first.
    """
    reservation = find_counter_sale(user=user, reservation_id=reservation_id, channel=Reservation.Channel.HOUSE)
    return cancel_booking(reservation_id=reservation.pk, at=at)


def house_holds_of(show):
    """The show's house seats still held, the newest first, with who held them."""
    return (
        Reservation.objects.filter(show=show, channel=Reservation.Channel.HOUSE, status=Reservation.Status.BOOKED)
        .select_related("sold_by")
        .order_by("-created_at")
    )

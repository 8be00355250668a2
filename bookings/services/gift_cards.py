"""Gift cards: issuing them, and redeeming one for a hold, so that the card pays only the rest (or nothing).

What a card may pay lives once, in bookings_redeem_gift_card (migration 0019): the hold live and its buyer's,
the card's currency and expiry, and a balance kept exact by its CHECK however many holds spend it at once. Paying
(bookings.services.payments) charges the hold's amount less what its gift cards paid; a hold that ends unpaid
gives them back (a trigger), and a cancelled booking through its refund.
"""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings import ticket_codes
from bookings.models import GiftCard
from bookings.services.errors import BookingError
from bookings.services.holds import call_function
from ticketing import shards

GIFT_CARD_CODE_LENGTH = 16
CODE_DRAWS = 5


def issue_gift_card(*, currency, value, expires_at=None, at=None):
    """A new gift card worth `value` (Decimal, more than 0) in `currency`, with a code drawn at random.

    Draws the code again on the (one in 2**80) collision with another card's. Raises ValueError for a value of
    0 or less."""
    if value <= 0:
        raise ValueError("a gift card is worth more than nothing")
    at = at or timezone.now()
    for draw in range(1, CODE_DRAWS + 1):
        try:
            with transaction.atomic():
                return GiftCard.objects.create(
                    code=ticket_codes.generate_booking_code(GIFT_CARD_CODE_LENGTH),
                    currency=currency,
                    initial_value=value,
                    balance=value,
                    expires_at=expires_at,
                    created_at=at,
                )
        except IntegrityError:
            if draw == CODE_DRAWS:
                raise
    raise AssertionError("unreachable")


def gift_card_code(text):
    """The canonical code for what a buyer typed ("abcd-efgh-…" in any case), or BookingError gift_card_invalid."""
    try:
        return ticket_codes.normalize_booking_code(text, GIFT_CARD_CODE_LENGTH)
    except ticket_codes.InvalidTicket:
        raise BookingError("gift_card_invalid") from None


def redeem_call(buyer, reservation_id, code, at):
    """The step that redeems gift card `code` (as typed) for the hold: the call of bookings_redeem_gift_card. In a
    hold's scope off the home shard, BookingError gift_card_not_for_this_show (the cards' balances are at home)."""
    if not shards.at_home():
        raise BookingError("gift_card_not_for_this_show")
    return ("bookings_redeem_gift_card", reservation_id, buyer.api_key_id, buyer.session_id, gift_card_code(code), at)


@shards.in_its_reservations_database
def redeem_gift_card(*, buyer, reservation_id, code, at=None):
    """Let gift card `code` pay what it can of the buyer's hold. Returns `(taken, due)`: what the card paid now,
    and what the hold still owes (to pay by card; 0 when the cards paid it all).

    One call of bookings_redeem_gift_card, its own transaction, which locks the reservation, then the card.
    Raises BookingError: gift_card_invalid, gift_card_expired, gift_card_other_currency, gift_card_empty,
    gift_card_not_for_this_show (a show sold on a shard other than the home, which keeps the cards' balances),
    not_found, already_booked, hold_expired, hold_cancelled, payment_in_progress. Nothing on commit.
    """
    taken, due = call_function(*redeem_call(buyer, reservation_id, code, at or timezone.now()))
    return Decimal(taken), Decimal(due)


def gift_card_lines(reservation):
    """What each gift card pays of the reservation now: [(last four of its code, amount)] (their sum is the
    reservation's gift_cards_paid)."""
    return [
        (used.gift_card.code[-4:], used.amount)
        for used in reservation.gift_card_redemptions.filter(returned_at__isnull=True).select_related("gift_card")
    ]

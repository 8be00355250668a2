"""Gift cards: issuing them, redeeming one for a hold, so that the card pays only the rest (or nothing), and
moving a card's money to the shard of the show it pays for, and back.

What a card may pay lives once, in bookings_redeem_gift_card (migration 0019): the hold live and its buyer's,
the card's currency and expiry, and a balance kept exact by its CHECK however many holds spend it at once. Paying
(bookings.services.payments) charges the hold's amount less what its gift cards paid; a hold that ends unpaid
gives them back (a trigger), and a cancelled booking through its refund.

Split by show id (ticketing.shards), a card's balance is the home's, and a hold of a show sold on another shard is
paid from that shard's copy of the card (its code and terms), by the same function. Redeeming there first moves to
the copy what the hold wants; beat sends home what a copy has kept unmoved for a minute (what a lapsed hold or a
refund gave back, or a refused redemption left). A move is a GiftCardTransfer (migration 0035): taken from
the sender's card in one transaction, added to the receiver's in another, exactly once by its id; beat delivers
again a move whose sender died between the two. Money in flight is never lost, and never counted twice.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.utils import timezone

from bookings import ticket_codes
from bookings.models import GiftCard, GiftCardTransfer
from bookings.services.errors import BookingError
from bookings.services.holds import FunctionCall
from ticketing import shards
from ticketing.steps import run_steps

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


@shards.in_its_reservations_database
def redeem_gift_card(*, buyer, reservation_id, code, at=None):
    """Let gift card `code` pay what it can of the buyer's hold. Returns `(taken, due)`: what the card paid now,
    and what the hold still owes (to pay by card; 0 when the cards paid it all).

    The steps of `redeeming`, each its own transaction: bookings_redeem_gift_card locks the reservation, then the
    card. Raises BookingError: gift_card_invalid, gift_card_expired, gift_card_other_currency, gift_card_empty,
    not_found, already_booked, hold_expired, hold_cancelled, payment_in_progress. Nothing on commit.
    """
    return run_steps(redeeming(buyer, reservation_id, code, at or timezone.now()))


def redeeming(buyer, reservation_id, code, at):
    """The steps (ticketing.steps) that redeem gift card `code` (as typed) for the buyer's hold, in the hold's
    scope; their result is redeem_gift_card's. Off the home they first move to the hold's shard what it wants of
    the card (bookings_gift_card_wanted: nothing for a hold that is not live, or when the copy there has it)."""
    code = gift_card_code(code)
    here = shards.current()
    if here != DEFAULT_DB_ALIAS:
        (wanted,) = yield FunctionCall("bookings_gift_card_wanted", (reservation_id, code))
        yield from _moving(code, wanted, DEFAULT_DB_ALIAS, here, at)
    taken, due = yield FunctionCall(
        "bookings_redeem_gift_card", (reservation_id, buyer.api_key_id, buyer.session_id, code, at)
    )
    return Decimal(taken), Decimal(due)


def move_gift_card_money(*, at=None):
    """Beat's tending of gift cards' money across shards, in this scope's database. First delivers again each move
    it sent that has not landed TICKETING_SHARD_MOVES_SECONDS later (its sender died between the two
    transactions; receiving is once by id). Then, off the home, sends home the balance of each card's copy here
    unmoved for twice that.
    Returns the sum moved. Each move locks the card's row on one side, then on the other, never both at once.
    Nothing on commit."""
    at = at or timezone.now()
    grace = timedelta(seconds=settings.TICKETING_SHARD_MOVES_SECONDS)
    here = shards.current()
    moved = Decimal(0)
    for transfer in GiftCardTransfer.objects.using(here).overdue(at - grace):
        card = GiftCard.objects.using(here).get(code=transfer.code)
        terms = (card.currency, card.initial_value, card.expires_at, card.created_at)
        run_steps(_landing(transfer.pk, transfer.code, transfer.amount, terms, here, transfer.destination, at))
        moved += transfer.amount
    if here != DEFAULT_DB_ALIAS:
        unmoved_since = at - 2 * grace  # longer than a payment takes from moving money to redeeming it
        idle = GiftCard.objects.using(here).filter(balance__gt=0, moved_at__lte=unmoved_since)
        for code, balance in idle.values_list("code", "balance"):
            moved += run_steps(_moving(code, balance, here, DEFAULT_DB_ALIAS, at, unmoved_since))
    return moved


def _moving(code, amount, source, destination, at, unmoved_since=None):
    """Move up to `amount` of card `code` from database `source` to `destination` (bookings_send_gift_card, then
    _landing); the result is the sum sent. A shard always gets a copy of the card, though nothing is sent, so that
    its redemption refuses as the home's would."""
    transfer, sent, *terms = yield FunctionCall(
        "bookings_send_gift_card", (code, amount, source, destination, unmoved_since, at), database=source
    )
    if transfer is not None or destination != DEFAULT_DB_ALIAS:
        yield from _landing(transfer, code, sent, terms, source, destination, at)
    return sent


def _landing(transfer, code, amount, terms, source, destination, at):
    copy = destination != DEFAULT_DB_ALIAS  # a shard keeps a copy of the home's card
    arguments = (transfer, code, amount, *terms, source, destination, copy, at)
    yield FunctionCall("bookings_receive_gift_card", arguments, database=destination)
    if transfer is not None:
        yield FunctionCall("bookings_land_gift_card_transfer", (transfer, at), database=source)


def gift_card_lines(reservation):
    """What each gift card pays of the reservation now: [(last four of its code, amount)] (their sum is the
    reservation's gift_cards_paid)."""
    return [
        (used.gift_card.code[-4:], used.amount)
        for used in reservation.gift_card_redemptions.filter(returned_at__isnull=True).select_related("gift_card")
    ]

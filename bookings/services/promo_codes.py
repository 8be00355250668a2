"""Promo codes on a hold: applying one and taking it off, and moving their uses to the shard of the show.

Each is one call of a SQL function of bookings migration 0017 (bookings_apply_promo_code,
bookings_remove_promo_code), which decides, counts the use against the code's limits (exact under
concurrency: a conditional update of the code's count and of the buyer's) and prices the hold again with the
one price rule (bookings_price_breakdown). The buyer is the hold's API key and session_id (the website's:
its session), the identity every hold is the buyer's by. A use counts while the hold is live and once it is
booked; a hold that lapses or is cancelled gives it back (a trigger on its status).

Split by show id (ticketing.shards), a code's counts are the home's, and a hold of a show sold on another shard
takes the code from that shard's copy (its terms without limits), by the same function: the use is counted at
home first (bookings_send_promo_use) and moved to the copy in the transaction that applies it there
(migration 0036). A use the copy no longer needs (its hold took the code off, lapsed or was cancelled, or it
was refused) goes home, where it is counted no more: at once when the buyer's request freed it, and by beat
otherwise. A move is a PromoUseTransfer, once by its id; beat delivers again a move whose sender died.
"""

from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from psycopg.types.json import Jsonb

from bookings.models import PromoCode, PromoUseTransfer
from bookings.services.errors import BookingError
from bookings.services.holds import FunctionCall, call_function, find_reservation
from ticketing import shards


@shards.in_its_reservations_database
def apply_promo_code(*, buyer, reservation_id, code, at=None):
    """Apply promo code `code` (any case) to the buyer's live hold; return the hold, priced again.

    One call of bookings_apply_promo_code, which locks the hold, then the code's row and the buyer's count of
    it until commit. A code the hold already has changes nothing. Off the home: the use is first counted at home
    (locking the code's row and the buyer's there, in a transaction of its own), then moved and applied in one
    transaction on the hold's shard; one refused there goes back home at once. Raises BookingError: not_found,
    already_booked, hold_expired, hold_cancelled, payment_in_progress (a charge is out: its amount must not
    change), promo_code_invalid, promo_code_expired, promo_code_not_applicable (another movie, cinema, show
    or currency), promo_code_not_stackable, promo_code_used_up, promo_code_buyer_limit. Nothing is written then.
    Sends nothing on commit (the seats don't change).
    """
    at = at or timezone.now()
    here = shards.current()
    hold = (reservation_id, buyer.api_key_id, buyer.session_id, code, at)
    if here == DEFAULT_DB_ALIAS:
        call_function("bookings_apply_promo_code", *hold)
    elif call_function("bookings_promo_code_new_to_hold", *hold)[0]:  # else the hold has it: nothing changes
        _apply_moved_use(buyer, reservation_id, code, here, at)
    return find_reservation(buyer=buyer, reservation_id=reservation_id)


def _apply_moved_use(buyer, reservation_id, code, here, at):
    transfer, counted_buyer, terms = FunctionCall(
        "bookings_send_promo_use",
        (code, buyer.api_key_id, buyer.session_id, DEFAULT_DB_ALIAS, here, at),
        database=DEFAULT_DB_ALIAS,
    ).run()
    try:
        call_function(
            "bookings_apply_moved_promo_code",
            transfer,
            Jsonb(terms),
            DEFAULT_DB_ALIAS,
            here,
            reservation_id,
            buyer.api_key_id,
            buyer.session_id,
            at,
        )
    except BookingError:
        # The use was counted at home: receive it here unused, and send it straight back.
        call_function("bookings_receive_promo_use", transfer, Jsonb(terms), counted_buyer, DEFAULT_DB_ALIAS, here, at)
        _land(transfer, DEFAULT_DB_ALIAS, at)
        _send_uses_home(terms["code"], here, at)
        raise
    _land(transfer, DEFAULT_DB_ALIAS, at)


@shards.in_its_reservations_database
def remove_promo_code(*, buyer, reservation_id, code, at=None):
    """Take promo code `code` off the buyer's live hold, giving its use back; return the hold, priced again.

    One call of bookings_remove_promo_code; locks and raises as apply_promo_code does (but for the code's own
    refusals: a code the hold doesn't have changes nothing). Off the home, the use then goes home, where it is
    counted no more.
    """
    at = at or timezone.now()
    call_function("bookings_remove_promo_code", reservation_id, buyer.api_key_id, buyer.session_id, code, at)
    if shards.current() != DEFAULT_DB_ALIAS:
        _send_uses_home(code, shards.current(), at)
    return find_reservation(buyer=buyer, reservation_id=reservation_id)


def move_promo_code_uses(*, at=None):
    """Beat's tending of promo codes' uses across shards, in this scope's database. First delivers again each
    move it sent that has not landed TICKETING_SHARD_MOVES_SECONDS later (its sender died between the two
    transactions; receiving is once by id). Then, off the home, sends home every use its copies were given and no
    longer use (their holds lapsed or were cancelled). Returns the number of uses moved. Each move locks the
    rows of one side, then of the other, never both at once. Nothing on commit."""
    at = at or timezone.now()
    here = shards.current()
    grace = timedelta(seconds=settings.TICKETING_SHARD_MOVES_SECONDS)
    moved = 0
    for transfer in PromoUseTransfer.objects.using(here).overdue(at - grace):
        _deliver(transfer, here, at)
        moved += transfer.uses
    if here != DEFAULT_DB_ALIAS:
        moved += _send_uses_home(None, here, at)
    return moved


def _deliver(transfer, here, at):
    """Deliver `transfer`, sent from `here`, to its destination (again: receiving it is once), then land it."""
    if transfer.destination == DEFAULT_DB_ALIAS:
        function, what = "bookings_receive_promo_uses", (transfer.code, transfer.buyer, transfer.uses)
    else:  # a use counted at home for a hold on the destination, whose process died before it arrived
        promo = PromoCode.objects.using(here).get(code__iexact=transfer.code)
        (terms,) = call_function("bookings_promo_code_terms", promo.pk)
        function, what = "bookings_receive_promo_use", (Jsonb(terms), transfer.buyer)
    arguments = (transfer.pk, *what, here, transfer.destination, at)
    FunctionCall(function, arguments, database=transfer.destination).run()
    _land(transfer.pk, here, at)


def _send_uses_home(code, here, at):
    """Send home the uses of `code` (None: every code's) that the copies on shard `here` were given and no longer
    use; returns how many."""
    (transfers,) = call_function("bookings_send_promo_uses_back", code, here, DEFAULT_DB_ALIAS, at)
    for sent in transfers:
        receiving = (sent["transfer"], sent["code"], sent["buyer"], sent["uses"], here, DEFAULT_DB_ALIAS, at)
        FunctionCall("bookings_receive_promo_uses", receiving, database=DEFAULT_DB_ALIAS).run()
        _land(sent["transfer"], here, at)
    return sum(sent["uses"] for sent in transfers)


def _land(transfer, sender, at):
    FunctionCall("bookings_land_promo_use_transfer", (transfer, at), database=sender).run()

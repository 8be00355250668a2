"""Promo codes on a hold: applying one and taking it off.

Each is one call of a SQL function of bookings migration 0017 (bookings_apply_promo_code,
bookings_remove_promo_code), which decides, counts the use against the code's limits (exact under
concurrency: a conditional update of the code's count and of the buyer's) and prices the hold again with the
one price rule (bookings_price_breakdown). The buyer is the hold's API key and session_id (the website's:
its session), the identity every hold is the buyer's by. A use counts while the hold is live and once it is
booked; a hold that lapses or is cancelled gives it back (a trigger on its status).
"""

from django.utils import timezone

from bookings.services.errors import BookingError
from bookings.services.holds import call_function, find_reservation
from ticketing import shards


@shards.in_its_reservations_database
def apply_promo_code(*, buyer, reservation_id, code, at=None):
    """Apply promo code `code` (any case) to the buyer's live hold; return the hold, priced again.

    One call of bookings_apply_promo_code, which locks the hold, then the code's row and the buyer's count of
    it until commit. A code the hold already has changes nothing. Raises BookingError: not_found,
    already_booked, hold_expired, hold_cancelled, payment_in_progress (a charge is out: its amount must not
    change), promo_code_invalid, promo_code_expired, promo_code_not_applicable (another movie, cinema, show
    or currency; or a show sold on a shard other than the home, which keeps the codes' counts),
    promo_code_not_stackable, promo_code_used_up, promo_code_buyer_limit. Nothing is written then. Sends nothing
    on commit (the seats don't change).
    """
    at = at or timezone.now()
    if not shards.at_home():  # the codes' counts are kept at home (docs/scaling.md)
        raise BookingError("promo_code_not_applicable")
    call_function("bookings_apply_promo_code", reservation_id, buyer.api_key_id, buyer.session_id, code, at)
    return find_reservation(buyer=buyer, reservation_id=reservation_id)


@shards.in_its_reservations_database
def remove_promo_code(*, buyer, reservation_id, code, at=None):
    """Take promo code `code` off the buyer's live hold, giving its use back; return the hold, priced again.

    One call of bookings_remove_promo_code; locks and raises as apply_promo_code does (but for the code's own
    refusals: a code the hold doesn't have changes nothing).
    """
    at = at or timezone.now()
    call_function("bookings_remove_promo_code", reservation_id, buyer.api_key_id, buyer.session_id, code, at)
    return find_reservation(buyer=buyer, reservation_id=reservation_id)

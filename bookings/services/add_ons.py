"""Food and drink added to a hold at checkout, taken from its cinema's menu and stock.

The stock is exact under concurrency because the database says so: the stock's CHECK (cinemas.models.STOCK_CHECK)
refuses a take that would leave less than none, whoever raced it, and a trigger (bookings migration 0018) gives
the stock back when a reservation ends unpaid or a booking is cancelled.
"""

from django.utils import timezone
from django.utils.crypto import salted_hmac

from bookings import ticket_codes
from bookings.models import ReservationAddOn
from bookings.services.errors import BookingError
from bookings.services.holds import call_function, find_reservation
from cinemas.models import MenuItem
from cinemas.services import OutOfStock, add_to_stock
from ticketing import shards

# How many of one item a hold may carry: a counter's order for a party of ten.
MAX_PER_ITEM = 10


@shards.in_its_reservations_database
def choose_add_ons(*, buyer, reservation_id, quantities, at=None):
    """Set the hold's food and drink to `quantities` ({menu item id: how many}; 0 takes an item off). Returns the
    reservation with its add-ons.

    Locks the buyer's reservation (bookings_lock_hold_for_pricing: a live hold, no charge in flight), then each
    item whose quantity changes, in id order (two buyers never wait on each other in a cycle). Takes each
    difference from the item's stock, or gives it back; the stock's CHECK decides every race, and a refusal
    rolls all of it back. Then prices the hold again with the one breakdown rule (bookings_price_add_ons), whose
    total becomes its amount; gift cards that paid more than that get the rest back. Raises BookingError:
    not_found, hold_expired, already_booked, hold_cancelled, payment_in_progress, add_on_unknown (not on the
    show's cinema's menu, or no longer on sale, for an item being added), too_many_add_ons (more than
    MAX_PER_ITEM of one), add_on_sold_out (with the item's name and how many are left). Nothing happens on
    commit: nobody else sees a hold's add-ons.
    """
    at = at or timezone.now()
    if any(quantity < 0 or quantity > MAX_PER_ITEM for quantity in quantities.values()):
        raise BookingError("too_many_add_ons", per_item=MAX_PER_ITEM)
    with shards.atomic(durable=True):
        call_function(
            "bookings_lock_hold_for_pricing",
            reservation_id,
            buyer.api_key_id,
            buyer.session_id,
            at,
            own_transaction=False,
        )
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id)
        lines = {line.menu_item_id: line for line in reservation.add_ons.select_related("menu_item")}
        items = MenuItem.objects.in_bulk(quantities.keys())
        for item_id in sorted(quantities):
            line, quantity = lines.get(item_id), quantities[item_id]
            change = quantity - (line.quantity if line else 0)
            if change == 0:
                continue
            item = items.get(item_id)
            selling = item is not None and item.on_sale and item.cinema_id == reservation.show.hall.cinema_id
            if change > 0 and not selling:
                raise BookingError("add_on_unknown")
            _take_stock(item, change)
            if quantity == 0:
                line.delete()
            elif line is None:
                ReservationAddOn.objects.create(
                    reservation=reservation, menu_item=item, quantity=quantity, unit_price=item.price
                )
            else:
                ReservationAddOn.objects.filter(pk=line.pk).update(quantity=quantity)
        call_function("bookings_price_add_ons", reservation.pk, own_transaction=False)
        reservation.refresh_from_db(fields=["amount", "price_breakdown"])
    return reservation


def _take_stock(item, count):
    """Take `count` of the item from its stock (a negative count gives it back), or add_on_sold_out."""
    try:
        add_to_stock(item=item, count=-count)
    except OutOfStock as refusal:
        raise BookingError("add_on_sold_out", item=item.name, left=refusal.left) from None


def pickup_code(reservation):
    """The 6-character code the counter asks for, derived from the booking code with the site's secret: the
    same on the ticket page and in the mail, and not to be worked out from the booking code alone."""
    digest = salted_hmac("bookings.add_ons.pickup", reservation.booking_code).digest()
    return "".join(ticket_codes.CODE_ALPHABET[byte % len(ticket_codes.CODE_ALPHABET)] for byte in digest[:6])


def pickup(reservation):
    """What a booking's ticket says of its food and drink: `(pickup code, pickup_lines)`, or None without any."""
    lines = pickup_lines(reservation)
    return (pickup_code(reservation), lines) if lines and reservation.booking_code else None


def pickup_lines(reservation):
    """A booking's add-ons as its ticket lists them: (quantity, name, unit price) in the menu's order."""
    return [
        (line.quantity, line.menu_item.name, line.unit_price)
        for line in reservation.add_ons.select_related("menu_item").order_by("menu_item__name")
    ]


def order_form_lines(reservation):
    """What the checkout's food and drink form lists: each item of the show's cinema on sale, and any the hold
    already has, with how many it has (0 for the rest), in the menu's order."""
    ordered = {line.menu_item_id: line.quantity for line in reservation.add_ons.all()}
    items = MenuItem.objects.filter(cinema_id=reservation.show.hall.cinema_id).order_by("name")
    return [(item, ordered.get(item.pk, 0)) for item in items if item.on_sale or item.pk in ordered]

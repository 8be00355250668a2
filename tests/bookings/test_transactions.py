"""Each change to holds, bookings and tickets is a transaction of its own, committed before it returns.

Its locks (the buyer's, the rows') last only that long, and what it sends after commit (seat-map pushes,
waiting-line wake-ups, refunds, mail) goes out once the change is really there; the sweep commits batch by
batch. So none may run inside a caller's transaction: each refuses at once (a durable atomic block).
"""

import pytest
from django.db import transaction

from bookings.providers import get_provider, parse_card
from bookings.services import (
    cancel_booking,
    cancel_hold,
    change_seats,
    check_in_ticket,
    email_ticket,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from tests.bookings.helpers import GOOD_CARD, seat_ids
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db

ALICE, BOB, CAROL = Buyer(None, "alice"), Buyer(None, "bob"), Buyer(None, "carol")

CHANGES = {
    "hold_seats": lambda show, hold, booking: hold_seats(buyer=CAROL, show=show, seat_ids=seat_ids(show)[5:6]),
    "change_seats": lambda show, hold, booking: change_seats(
        buyer=ALICE, reservation_id=hold.pk, seat_ids=seat_ids(show)[6:7]
    ),
    "cancel_hold": lambda show, hold, booking: cancel_hold(buyer=ALICE, reservation_id=hold.pk),
    "release_lapsed_holds": lambda show, hold, booking: release_lapsed_holds(at=show.starts_at),
    "pay_for_reservation": lambda show, hold, booking: pay_for_reservation(
        buyer=ALICE, reservation_id=hold.pk, card=parse_card(GOOD_CARD)
    ),
    "cancel_booking": lambda show, hold, booking: cancel_booking(reservation_id=booking.pk),
    "check_in_ticket": lambda show, hold, booking: check_in_ticket(
        code=booking.booking_code, cinema_id=show.hall.cinema_id
    ),
    "email_ticket": lambda show, hold, booking: email_ticket(
        buyer=BOB, reservation_id=booking.pk, address="bob@example.com"
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_each_change_refuses_to_run_inside_a_callers_transaction(show, change):
    hold = hold_seats(buyer=ALICE, show=show, seat_ids=seat_ids(show)[:1])
    booked = hold_seats(buyer=BOB, show=show, seat_ids=seat_ids(show)[1:2])
    booking = pay_for_reservation(buyer=BOB, reservation_id=booked.pk, card=parse_card(GOOD_CARD))
    charges = len(get_provider().charges())
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable atomic block cannot be nested"):
        CHANGES[change](show, hold, booking)
    assert len(get_provider().charges()) == charges

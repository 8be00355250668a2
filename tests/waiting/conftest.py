import pytest

from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer
from waiting.services import join_waiting_line


def held_out_show(seats=12):
    """A show whose every seat is held, one hold per seat; returns (show, holds in seat order)."""
    show = make_show(hall=make_hall(plan="R" * seats))
    holds = [
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat])
        for number, seat in enumerate(seat_ids(show))
    ]
    return show, holds


def join(show, session, seats_wanted=1, **kwargs):
    waiter, created = join_waiting_line(buyer=Buyer(None, session), show=show, seats_wanted=seats_wanted, **kwargs)
    assert created
    return waiter


@pytest.fixture
def full_show(db):
    return held_out_show()

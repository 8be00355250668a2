"""After commit, bookings tells the one listener registered with on_seats_freed_or_booked which shows' seats came
free or were booked (in the running site that listener is the waiting line's wake-up, tests/waiting/test_wake_up.py).

Never before commit, and never for seats that were only newly held: those move no line.
"""

import pytest

from bookings.notices import on_seats_freed_or_booked
from bookings.services import cancel_hold, change_seats, hold_seats, release_lapsed_holds
from tests.bookings.helpers import pay, reserve, seat_ids
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db

alice = Buyer(None, "alice")


@pytest.fixture
def told():
    """What the listener hears: one list of show ids per call. The waiting line's listener is put back after."""
    heard = []
    replaced = on_seats_freed_or_booked(heard.append)
    yield heard
    on_seats_freed_or_booked(replaced)


@pytest.fixture
def held(show):
    return hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show)[:2])


def test_a_cancelled_hold_is_told_once_its_transaction_commits(show, held, told, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        cancel_hold(buyer=alice, reservation_id=held.pk)
    assert told == []
    for callback in after_commit:
        callback()
    assert told == [[show.pk]]


def test_the_sweep_tells_of_every_show_it_freed_seats_of(show, held, told, django_capture_on_commit_callbacks):
    other = make_show(hall=make_hall(), starts_at=show.starts_at)
    hold_seats(buyer=alice, show=other, seat_ids=seat_ids(other)[:1])
    with django_capture_on_commit_callbacks(execute=True):
        assert release_lapsed_holds(at=show.starts_at) == 2
    assert sorted(show_id for shows in told for show_id in shows) == sorted([show.pk, other.pk])


def test_a_change_that_gives_seats_up_is_told_and_one_that_only_adds_seats_is_not(
    show, held, told, django_capture_on_commit_callbacks
):
    first, second, third = seat_ids(show)[:3]
    with django_capture_on_commit_callbacks(execute=True):
        change_seats(buyer=alice, reservation_id=held.pk, seat_ids=[first, second, third])
    assert told == []
    with django_capture_on_commit_callbacks(execute=True):
        change_seats(buyer=alice, reservation_id=held.pk, seat_ids=[third])
    assert told == [[show.pk]]


def test_a_new_hold_is_not_told(show, told, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show)[:2])
    assert after_commit and told == []  # the seat map's push did go out


def test_a_booking_is_told(api, show, told, django_capture_on_commit_callbacks):
    reservation_id = reserve(api, show, seat_ids(show)[:2]).json()["reservation_id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert pay(api, reservation_id).status_code == 200
    assert told == [[show.pk]]

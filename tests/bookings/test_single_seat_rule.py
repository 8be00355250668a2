"""The website's rule: chosen seats may not leave one free seat alone in a row (the API leaves it to partners)."""

import pytest

from bookings.services import BookingError, change_seats, hold_seats
from tests.bookings.helpers import labelled
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db

ALICE = Buyer(None, "alice")


def test_a_hold_that_strands_a_seat_against_the_wall_is_refused_naming_it(show):
    with pytest.raises(BookingError) as refused:
        hold_seats(buyer=ALICE, show=show, seat_ids=labelled(show, "B2"), no_single_gaps=True)
    assert refused.value.code == "single_seat_gap" and "B1" in refused.value.message


def test_a_hold_that_strands_a_seat_next_to_a_taken_one_is_refused(show):
    hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=labelled(show, "A1"))
    with pytest.raises(BookingError, match="A2"):
        hold_seats(buyer=ALICE, show=show, seat_ids=labelled(show, "A3", "A4"), no_single_gaps=True)


def test_a_seat_that_was_alone_already_is_not_this_choices_fault(show):
    hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=labelled(show, "B2"))
    reservation = hold_seats(buyer=ALICE, show=show, seat_ids=labelled(show, "B3", "B4"), no_single_gaps=True)
    assert reservation.seat_labels() == ["B3", "B4"]


def test_without_the_rule_the_same_choice_is_held(show):
    assert hold_seats(buyer=ALICE, show=show, seat_ids=labelled(show, "B2")).seat_labels() == ["B2"]


def test_changing_seats_counts_the_holds_own_seats_as_free(show):
    reservation = hold_seats(buyer=ALICE, show=show, seat_ids=labelled(show, "B1", "B2"), no_single_gaps=True)
    with pytest.raises(BookingError, match="B1"):
        change_seats(
            buyer=ALICE, reservation_id=reservation.pk, seat_ids=labelled(show, "B2", "B3"), no_single_gaps=True
        )
    moved = change_seats(
        buyer=ALICE, reservation_id=reservation.pk, seat_ids=labelled(show, "B3", "B4"), no_single_gaps=True
    )
    assert moved.seat_labels() == ["B3", "B4"]

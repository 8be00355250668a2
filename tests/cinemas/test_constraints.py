from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from cinemas.models import Seat, Show
from cinemas.services import reschedule_show, schedule_show
from tests.factories import make_hall, make_movie, make_show, prices_for

pytestmark = pytest.mark.django_db


def test_a_seat_is_unique_in_its_hall():
    hall = make_hall()
    seat = hall.seats.first()
    with pytest.raises(IntegrityError, match="cinemas_seat_unique_in_hall"):
        Seat.objects.create(hall=hall, row_label=seat.row_label, number=seat.number, x=90, y=90)


def test_two_seats_cannot_stand_in_one_place():
    hall = make_hall()
    seat = hall.seats.first()
    with pytest.raises(IntegrityError, match="cinemas_seat_unique_position_in_hall"):
        Seat.objects.create(hall=hall, row_label="Z", number=99, x=seat.x, y=seat.y)


def test_the_same_seat_label_is_fine_in_another_hall():
    first, second = make_hall(), make_hall()
    assert set(first.seats.values_list("row_label", "number")) == set(second.seats.values_list("row_label", "number"))


def test_the_database_refuses_overlapping_shows_in_one_hall():
    show = make_show()
    with pytest.raises(IntegrityError, match="cinemas_show_no_overlap_in_hall"):
        Show.objects.create(
            movie=show.movie, hall=show.hall, starts_at=show.starts_at + timedelta(minutes=30), ends_at=show.ends_at
        )


def test_the_database_refuses_a_show_that_ends_before_it_starts():
    show = make_show()
    with pytest.raises(IntegrityError, match="cinemas_show_ends_after_start"):
        Show.objects.filter(pk=show.pk).update(ends_at=show.starts_at - timedelta(minutes=1))


def test_back_to_back_shows_in_one_hall_are_fine():
    first = make_show()
    second = make_show(hall=first.hall, starts_at=first.ends_at)
    assert second.starts_at == first.ends_at


def test_shows_at_the_same_time_in_different_halls_are_fine():
    first = make_show()
    second = make_show(starts_at=first.starts_at)
    assert second.starts_at == first.starts_at


def test_scheduling_an_overlapping_show_names_the_show_in_the_way():
    first = make_show(movie=make_movie(title="Cars 2"))
    with pytest.raises(ValidationError) as caught:
        make_show(hall=first.hall, starts_at=first.starts_at + timedelta(minutes=15))
    assert "already has Cars 2" in str(caught.value)
    assert Show.objects.count() == 1


def test_a_show_ends_after_the_film_and_turnaround_unless_staff_say_otherwise():
    movie = make_movie(duration=101)
    show = make_show(movie=movie)
    assert show.ends_at - show.starts_at == timedelta(minutes=125)  # 101 + 20, rounded up to 5


def test_every_seat_type_of_the_hall_needs_a_price():
    hall = make_hall(plan="RRPP")
    with pytest.raises(ValidationError, match="Premium seats"):
        schedule_show(movie=make_movie(), hall=hall, starts_at=make_show().starts_at, prices={"Regular": 9})


def test_rescheduling_onto_another_show_is_refused_and_changes_nothing():
    first = make_show()
    second = make_show(hall=first.hall, starts_at=first.ends_at + timedelta(hours=1))
    with pytest.raises(ValidationError, match="can't overlap"):
        reschedule_show(
            show=second, movie=second.movie, hall=second.hall, starts_at=first.starts_at, prices=prices_for(second.hall)
        )
    second.refresh_from_db()
    assert second.starts_at == first.ends_at + timedelta(hours=1)

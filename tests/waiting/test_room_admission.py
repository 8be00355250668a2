"""The room admits at its rate with passes that run out, passes over visitors gone longer than the grace, and the
hold path of a show behind it takes nobody without a pass."""

from datetime import timedelta

import psycopg
import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from bookings.services import AT_THE_COUNTER, BestAvailable, BookingError, hold_seats
from tests.bookings.helpers import finished_in_thread
from tests.waiting.rooms import join, on_sale_of, visitor
from waiting.models import Room, RoomVisitor
from waiting.rooms import BURST_SECONDS, admit_from_room, join_room, note_seen, read_standing


def seen_all(on_sale):
    for pk in RoomVisitor.objects.filter(room_id=on_sale.pk).values_list("pk", flat=True):
        note_seen(RoomVisitor(pk=pk))


def statuses(on_sale):
    return list(RoomVisitor.objects.filter(room_id=on_sale.pk).order_by("place").values_list("status", flat=True))


def admitted_count(on_sale):
    return RoomVisitor.objects.filter(room_id=on_sale.pk, admitted_at__isnull=False).count()


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.mark.django_db
def test_the_room_admits_at_its_rate_and_saves_up_at_most_a_few_seconds_of_it(clock):
    on_sale = on_sale_of(opens_in=60, admissions_per_minute=120)  # 2 a second
    for number in range(60):
        join(on_sale, f"early-{number}")
    clock.move_to(on_sale.opens_at)
    assert admit_from_room(on_sale_id=on_sale.pk) == 0  # nothing earned yet at the very opening
    for second in range(1, 11):
        clock.shift(1)
        seen_all(on_sale)
        admit_from_room(on_sale_id=on_sale.pk)
        assert admitted_count(on_sale) == 2 * second
    # The clock stops for a minute (a worker restarting): the room then admits a few seconds' worth, not 120.
    clock.shift(60)
    seen_all(on_sale)
    assert admit_from_room(on_sale_id=on_sale.pk) == 2 * BURST_SECONDS


@pytest.mark.django_db
def test_nobody_is_admitted_before_the_opening(clock):
    on_sale = on_sale_of(opens_in=60)
    join(on_sale, "early")
    clock.shift(59)
    assert admit_from_room(on_sale_id=on_sale.pk) == 0
    assert statuses(on_sale) == ["Waiting"]
    assert Room.objects.get(pk=on_sale.pk).drawn_at is None


@pytest.mark.django_db
def test_a_pass_that_runs_out_unused_lets_the_next_in_line_in_and_a_used_one_does_not(clock):
    on_sale = on_sale_of(opens_in=10, admissions_per_minute=60, pass_seconds=30)
    clock.move_to(on_sale.opens_at + timedelta(seconds=1))
    sessions = [f"late-{number}" for number in range(40)]
    for session in sessions:
        join(on_sale, session)
    seen_all(on_sale)
    assert admit_from_room(on_sale_id=on_sale.pk) == 1  # one a second
    # late-0 holds seats with its pass; the rate then admits one a second.
    standing = read_standing(buyer=visitor("late-0"), visitor_id=RoomVisitor.objects.get(session_id="late-0").pk)
    token = standing.admission_pass
    hold_seats(buyer=visitor("late-0"), show=on_sale.show, best_available=BestAvailable(2), admission_pass=token)
    clock.shift(1)
    seen_all(on_sale)
    assert admit_from_room(on_sale_id=on_sale.pk) == 1  # late-1, unused
    # 30 s later both passes run out: late-1's unused one gives its admission to the next in line.
    for _ in range(30):
        clock.shift(1)
        seen_all(on_sale)
        admit_from_room(on_sale_id=on_sale.pk)
    ended = dict(RoomVisitor.objects.filter(room_id=on_sale.pk).values_list("session_id", "status"))
    assert ended["late-0"] == ended["late-1"] == "Pass Expired"
    # 32 admitted by the rate over 32 s, plus the one late-1 gave back (late-0 used its pass).
    assert admitted_count(on_sale) == 33


@pytest.mark.django_db
def test_a_visitor_away_longer_than_the_grace_is_passed_over_and_one_back_in_time_keeps_the_place(clock, settings):
    settings.TICKETING_ROOM_GRACE_SECONDS = 60
    on_sale = on_sale_of(opens_in=120, admissions_per_minute=60)
    gone, back, stays = join(on_sale, "gone"), join(on_sale, "back"), join(on_sale, "stays")
    clock.shift(100)  # "gone" closed its page 100 s ago; "back" closed it too but comes back now
    assert join_room(buyer=visitor("back"), on_sale=on_sale)[0].pk == back.pk  # the same place
    note_seen(stays)
    clock.move_to(on_sale.opens_at + timedelta(seconds=3))
    assert admit_from_room(on_sale_id=on_sale.pk) == 2  # 3 s earned: "gone" is passed over for free
    ended = dict(RoomVisitor.objects.filter(room_id=on_sale.pk).values_list("session_id", "status"))
    assert ended == {"gone": "Left", "back": "Admitted", "stays": "Admitted"}
    # Coming back after being passed over: a new place, at the back.
    again, created = join_room(buyer=visitor("gone"), on_sale=on_sale)
    stays.refresh_from_db()
    assert created and again.pk != gone.pk and again.place > stays.place and not again.early


@pytest.mark.django_db
def test_a_show_behind_a_room_is_held_only_with_a_pass_of_its_own_buyer(clock):
    on_sale = on_sale_of(opens_in=60, admissions_per_minute=60, pass_seconds=60)
    show = on_sale.show
    ask = BestAvailable(1)
    with pytest.raises(BookingError) as early:
        hold_seats(buyer=visitor("someone"), show=show, best_available=ask)
    assert early.value.code == "sale_not_open"
    assert early.value.extra["room"]["on_sale_id"] == on_sale.pk
    first = join(on_sale, "first")
    clock.move_to(on_sale.opens_at + timedelta(seconds=1))
    with pytest.raises(BookingError) as unadmitted:
        hold_seats(buyer=visitor("someone"), show=show, best_available=ask)
    assert unadmitted.value.code == "admission_required"
    note_seen(first)
    admit_from_room(on_sale_id=on_sale.pk)
    token = read_standing(buyer=visitor("first"), visitor_id=first.pk).admission_pass
    for refused_buyer, refused_pass in [
        (visitor("someone"), token),  # a pass copied to another session
        (visitor("first"), token[:-2] + "xx"),  # tampered with
        (visitor("first"), "garbage"),
    ]:
        with pytest.raises(BookingError) as refused:
            hold_seats(buyer=refused_buyer, show=show, best_available=ask, admission_pass=refused_pass)
        assert refused.value.code == "admission_required"
    held = hold_seats(buyer=visitor("first"), show=show, best_available=ask, admission_pass=token)
    assert held.status == "Reserved"
    clock.shift(61)  # the pass has run out
    with pytest.raises(BookingError) as late:
        hold_seats(buyer=visitor("first"), show=show, best_available=BestAvailable(1), admission_pass=token)
    assert late.value.code == "admission_required"
    # The cinema's counter sells to people standing at it, room or not.
    assert hold_seats(buyer=visitor("counter"), show=show, best_available=ask, admission_pass=AT_THE_COUNTER).pk


@pytest.mark.django_db
def test_a_room_closes_and_its_shows_sell_without_it(clock):
    on_sale = on_sale_of(opens_in=60, closes_at=timezone.now() + timedelta(minutes=11))
    clock.move_to(on_sale.closes_at)
    assert hold_seats(buyer=visitor("anyone"), show=on_sale.show, best_available=BestAvailable(1)).pk


@pytest.mark.django_db(transaction=True)
def test_a_tick_finding_the_room_held_by_another_admits_nobody_and_does_not_wait():
    """A draw of 100,000 places holds the room's row for seconds: beat's next tick skips it rather than waiting
    past the database's lock timeout; the tick after carries on."""
    on_sale = on_sale_of(queue_opens_in=-120, opens_in=-60, admissions_per_minute=600)
    first = join(on_sale, "first")
    note_seen(first)
    database = connection.settings_dict
    other = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    )
    try:
        other.execute("SELECT 1 FROM waiting_room WHERE on_sale_id = %s FOR NO KEY UPDATE", [on_sale.pk])
        outcome = finished_in_thread(lambda: admit_from_room(on_sale_id=on_sale.pk), wait=10)
        assert outcome == ("returned", 0)
        other.rollback()
    finally:
        other.close()
    assert admit_from_room(on_sale_id=on_sale.pk) == 1

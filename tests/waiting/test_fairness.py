"""Strict first come, first served: the line is served in the order it joined, whatever order seats come free."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import BookingError, cancel_hold, hold_seats, release_lapsed_holds
from tests.bookings.helpers import row_locked_elsewhere, seat_ids
from tests.factories import make_hall, make_show
from tests.waiting.conftest import held_out_show, join
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import SERVE_BATCH, serve_waiting_line


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(8))
def test_waiters_are_served_in_the_order_they_joined_whatever_order_holds_are_freed(
    seed, django_capture_on_commit_callbacks
):
    rng = random.Random(seed)
    show, holds = held_out_show(seats=30)  # room for every waiter: 10 of them want 1-3 seats
    counts = [rng.randint(1, 3) for _ in range(10)]
    waiters = [join(show, f"waiter-{number}", count) for number, count in enumerate(counts)]
    free_seats = lambda: [s for s in show.hall.seats.values_list("pk", flat=True) if s not in taken()]  # noqa: E731
    taken = lambda: set(  # noqa: E731
        Reservation.objects.filter(status__in=["Reserved", "Booked"]).values_list("claims__seat_id", flat=True)
    )

    serving_order = []
    for hold in rng.sample(holds, len(holds)):
        with django_capture_on_commit_callbacks(execute=True):
            cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
        for waiter in waiters:
            waiter.refresh_from_db()
            if waiter.status == "Seats Available" and waiter.pk not in serving_order:
                serving_order.append(waiter.pk)
        still_waiting = [waiter for waiter in waiters if waiter.status == "Waiting"]
        if still_waiting and free_seats():
            # Fresh buyers never get seats while the line is non-empty, even seats that look free.
            with pytest.raises(BookingError) as refused:
                hold_seats(buyer=Buyer(None, "fresh"), show=show, seat_ids=free_seats()[:1])
            assert refused.value.code == "waiting_line"

    assert serving_order == [waiter.pk for waiter in waiters]  # the join order, every time
    for waiter, count in zip(waiters, counts, strict=True):
        waiter.refresh_from_db()
        assert waiter.reservation.claims.filter(released_at__isnull=True).count() == count


@pytest.mark.django_db
def test_a_head_that_needs_more_seats_than_are_free_blocks_everyone_behind_it(django_capture_on_commit_callbacks):
    show, holds = held_out_show(seats=6)
    head = join(show, "head", 3)
    behind = join(show, "behind", 1)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_hold(buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk)
    head.refresh_from_db()
    behind.refresh_from_db()
    assert head.status == behind.status == "Waiting"  # one seat is free, but the head wants three
    for hold in holds[1:3]:
        with django_capture_on_commit_callbacks(execute=True):
            cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
    head.refresh_from_db()
    behind.refresh_from_db()
    assert head.status == "Seats Available" and behind.status == "Waiting"


@pytest.mark.django_db(transaction=True)
def test_a_head_whose_seats_cant_be_held_for_it_yet_blocks_everyone_behind_it_though_they_would_fit():
    """The head's count fits the free seats, but holding them for it fails: nobody behind goes first."""
    show = make_show(hall=make_hall(plan="RRR"))
    left, middle, right = seat_ids(show)
    start = timezone.now()
    lapsing = hold_seats(buyer=Buyer(None, "lapsing"), show=show, seat_ids=[left], at=start)
    hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=[right], at=start + timedelta(minutes=1))
    head = join(show, "head", 2, at=start + timedelta(minutes=1))  # only the middle seat is free
    behind = join(show, "behind", 1, at=start + timedelta(minutes=1))
    moment = lapsing.held_until  # left and middle count as free now: the head's two fit
    # The lapsed hold's row is locked (a late payment of it, mid-way), so its seat can't be taken from it yet:
    # holding two seats for the head is refused, though the middle seat alone could be held for the one behind.
    with row_locked_elsewhere(lapsing):
        assert serve_waiting_line(show_id=show.pk, at=moment) == 0
        head.refresh_from_db()
        behind.refresh_from_db()
        assert head.status == behind.status == "Waiting"
        assert set(Reservation.objects.values_list("session_id", flat=True)) == {"lapsing", "holder"}
    # Once the lapsed hold is free to expire, the head is served first; the one behind still waits.
    assert serve_waiting_line(show_id=show.pk, at=moment) == 1
    head.refresh_from_db()
    behind.refresh_from_db()
    assert (head.status, behind.status) == ("Seats Available", "Waiting")
    assert set(head.reservation.claims.values_list("seat_id", flat=True)) == {left, middle}


@pytest.mark.django_db
def test_a_wave_longer_than_a_batch_is_served_in_order_in_batches_each_starting_its_holds_when_it_runs(
    django_capture_on_commit_callbacks,
):
    size = SERVE_BATCH * 2 + 5
    show, holds = held_out_show(seats=size)
    waiters = [join(show, f"waiter-{number}") for number in range(size)]
    with django_capture_on_commit_callbacks(execute=True):  # every hold lapses at once: one wave of seats
        release_lapsed_holds(at=max(hold.held_until for hold in holds))

    served = Waiter.objects.filter(pk__in=[waiter.pk for waiter in waiters]).select_related("reservation")
    assert {waiter.status for waiter in served} == {"Seats Available"}
    by_hold_start = sorted(served, key=lambda waiter: (waiter.reservation.created_at, waiter.place))
    assert [waiter.pk for waiter in by_hold_start] == [waiter.pk for waiter in waiters]
    batch_starts = sorted({waiter.reservation.created_at for waiter in served})
    assert len(batch_starts) == 3  # 25 + 25 + 5, each batch's holds dated when that batch ran

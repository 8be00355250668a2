"""Serving and joining from several workers and web processes at once, on PostgreSQL."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from bookings.models import Reservation, SeatClaim
from tests.helpers import run_at_once
from tests.waiting.conftest import held_out_show, join
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import join_waiting_line, serve_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)


def test_serving_one_line_from_several_workers_at_once_serves_nobody_twice():
    show, holds = held_out_show(seats=20)
    waiters = [join(show, f"waiter-{number}", 2) for number in range(8)]  # 16 seats wanted
    # Every hold lapses at once, and nobody has swept or served yet.
    later = holds[0].held_until + timedelta(seconds=1)
    served = run_at_once([lambda: serve_waiting_line(show_id=show.pk, at=later)] * 4)

    assert sum(served) == 8
    statuses = Counter(Waiter.objects.filter(show=show).values_list("status", flat=True))
    assert statuses == {"Seats Available": 8}
    # Exactly one hold per waiter, each of exactly the seats it wanted, and no seat held twice.
    for waiter in Waiter.objects.filter(show=show):
        assert waiter.reservation.session_id == waiter.session_id
        assert waiter.reservation.claims.filter(released_at__isnull=True).count() == 2
    assert Reservation.objects.filter(show=show, session_id__startswith="waiter-").count() == 8
    live = SeatClaim.objects.filter(show=show, released_at__isnull=True).values("seat").annotate(n=Count("pk"))
    assert all(row["n"] == 1 for row in live)
    assert [w.pk for w in Waiter.objects.filter(show=show).order_by("ended_at", "place")] == [w.pk for w in waiters]


def test_buyers_joining_at_once_get_distinct_places_without_gaps():
    show, _ = held_out_show(seats=4)
    results = run_at_once(
        [
            (lambda number=number: join_waiting_line(buyer=Buyer(None, f"joiner-{number}"), show=show, seats_wanted=1))
            for number in range(20)
        ]
    )
    assert all(created for _, created in results)
    # Places are handed out under the show's line lock, one after another as the joins take it.
    places = sorted(Waiter.objects.filter(show=show).values_list("place", flat=True))
    assert places == list(range(1, 21))


def test_one_buyer_joining_twice_at_once_gets_one_place():
    show, _ = held_out_show(seats=4)
    results = run_at_once(
        [lambda: join_waiting_line(buyer=Buyer(None, "eager"), show=show, seats_wanted=1, at=timezone.now())] * 5
    )
    assert len({waiter.pk for waiter, _ in results}) == 1
    assert sum(created for _, created in results) == 1

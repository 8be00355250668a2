"""Freed seats reach the head of the line through the after-commit wake-up, not a beat tick.

Bookings tells the line, after commit, which shows' seats came free or were booked (tests/bookings/test_notices.py);
the line wakes itself from there (waiting.wake_ups): only while someone waits, one wake-up per show in the broker.
How fast is measured in bench/waiting_line.py (a timing asserted here would only measure the machine's noise);
this proves the path: with no beat running at all, only the wake-up can serve the line.
"""

import time
from datetime import timedelta

import httpx
import pytest
import redis
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import cancel_hold, hold_seats, release_lapsed_holds
from tests.bookings.helpers import seat_ids
from tests.conftest import celery_worker, redis_keys_of_its_own, serving
from tests.factories import make_api_key, make_hall, make_show
from tests.waiting.conftest import join
from ticketing.buyers import Buyer
from ticketing.celery import app as celery_app
from waiting.models import Waiter
from waiting.wake_ups import take_wake_up, wake_waiting_line


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_hold_serves_the_waiting_head_through_the_wake_up_with_no_beat_running(settings):
    show = make_show(hall=make_hall(plan="RR"))
    headers = {"X-API-Key": make_api_key()}
    extra = {**redis_keys_of_its_own(), "CELERY_TASK_ALWAYS_EAGER": "0"}

    with (
        serving(settings, environment=extra) as (url, _),
        celery_worker(settings, beat=False, environment=extra),
        httpx.Client(base_url=url, headers=headers, timeout=10) as client,
    ):
        held = client.post(
            "/api/v1/reservations",
            json={
                "session_id": "holder",
                "movie_id": show.movie_id,
                "show_id": show.pk,
                "seats_to_reserve": seat_ids(show),
            },
        ).json()
        waiter = client.post(f"/api/v1/shows/{show.pk}/waitlist", json={"session_id": "waiter", "seats_wanted": 2})
        assert waiter.status_code == 201
        time.sleep(3)  # the worker is up and idle; nothing serves the line on its own (no beat)
        assert Waiter.objects.get().status == "Waiting"

        freed_at = time.monotonic()  # the bound below is only a deadline for a broken wake-up path
        client.delete(f"/api/v1/reservations/{held['reservation_id']}", params={"session_id": "holder"})
        while Waiter.objects.get().status != "Seats Available" and time.monotonic() - freed_at < 30:
            time.sleep(0.02)

    waiter = Waiter.objects.get()
    assert waiter.status == "Seats Available"
    assert waiter.reservation.session_id == "waiter" and waiter.reservation.claims.count() == 2


@pytest.mark.django_db
def test_one_wake_up_per_show_waits_in_the_broker_however_many_changes_ask_for_it(settings, full_show):
    """The task drops its mark as it starts, so a change after that queues the next wake-up."""
    show, _ = full_show
    join(show, "alice")
    eager = celery_app.conf.task_always_eager  # read before the setting changes: Celery reads it lazily
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = False  # sent to the broker
    broker = redis.Redis.from_url(celery_app.conf.broker_url)
    queue = settings.REDIS_KEY_PREFIX + "celery"  # Celery's default queue, under the run's key prefix
    queued_before = broker.llen(queue)
    try:
        for _ in range(10):
            wake_waiting_line(show.pk)
        assert broker.llen(queue) - queued_before == 1
        take_wake_up(show.pk)  # what the task does first
        wake_waiting_line(show.pk)
        assert broker.llen(queue) - queued_before == 2
    finally:
        celery_app.conf.task_always_eager = eager
        if (ours := broker.llen(queue) - queued_before) > 0:
            broker.lpop(queue, ours)  # ours are the newest, at the left
        take_wake_up(show.pk)


@pytest.mark.django_db
def test_only_the_first_to_join_a_line_wakes_it_as_nothing_behind_a_head_changes_what_the_head_waits_for(
    full_show, django_capture_on_commit_callbacks
):
    show, _ = full_show
    with django_capture_on_commit_callbacks() as first_joined:
        join(show, "alice")
    with django_capture_on_commit_callbacks() as second_joined:
        join(show, "bob")
    assert (len(first_joined), len(second_joined)) == (1, 0)


def open_line(show):
    """Someone starts waiting for the show (written directly: joining needs the show to look full)."""
    now = timezone.now()
    Waiter.objects.create(
        show=show, session_id="carol", seats_wanted=1, place=1, joined_at=now, expires_at=now + timedelta(hours=1)
    )


@pytest.mark.django_db
class TestSeatsComingFreeWakeTheLine:
    """Seats of a show that come free serve its line after commit (the Celery task, run eagerly in tests), whenever
    someone waits for the show."""

    @pytest.fixture
    def woken(self, monkeypatch):
        shows = []
        monkeypatch.setattr("waiting.tasks.serve_waiting_line", lambda *, show_id: shows.append(show_id) or 0)
        return shows

    @pytest.fixture
    def reservation(self, show):
        held = hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=seat_ids(show)[:1])
        open_line(show)
        return held

    def test_when_a_hold_is_cancelled(self, show, woken, reservation, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            cancel_hold(buyer=Buyer(None, "alice"), reservation_id=reservation.pk)
        assert woken == [show.pk]

    def test_when_the_sweep_expires_holds(self, show, woken, reservation, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            release_lapsed_holds(at=show.starts_at)
        assert woken == [show.pk]

    def test_not_before_the_transaction_commits(self, show, woken, reservation, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            cancel_hold(buyer=Buyer(None, "alice"), reservation_id=reservation.pk)
        assert woken == [] and callbacks
        assert Reservation.objects.get(pk=reservation.pk).status == "Cancelled"

    def test_nobody_is_woken_when_nobody_waits(self, show, woken, django_capture_on_commit_callbacks):
        held = hold_seats(buyer=Buyer(None, "alice"), show=show, seat_ids=seat_ids(show)[:1])
        with django_capture_on_commit_callbacks(execute=True):
            cancel_hold(buyer=Buyer(None, "alice"), reservation_id=held.pk)
        assert woken == []

"""Freed seats reach the head of the line through the after-commit wake-up, not a beat tick.

How fast is measured in bench/waiting_line.py (a timing asserted here would only measure the machine's noise);
this proves the path: with no beat running at all, only the wake-up can serve the line.
"""

import time

import httpx
import pytest
import redis

from bookings.tasks import take_wake_up, wake_waiting_line
from tests.bookings.helpers import seat_ids
from tests.conftest import celery_worker, redis_keys_of_its_own, serving
from tests.factories import make_api_key, make_hall, make_show
from tests.waiting.conftest import join
from ticketing.celery import app as celery_app
from waiting.models import Waiter


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

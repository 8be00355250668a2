"""Freed seats reach the head of the line through the after-commit wake-up, not a beat tick.

How fast is measured in bench/waiting_line.py (a timing asserted here would only measure the machine's noise);
this proves the path: with no beat running at all, only the wake-up can serve the line.
"""

import time

import httpx
import pytest
import redis

from tests.bookings.helpers import seat_ids
from tests.conftest import celery_worker, serving
from tests.factories import make_api_key, make_hall, make_show
from waiting.models import Waiter


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_hold_serves_the_waiting_head_through_the_wake_up_with_no_beat_running(settings):
    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/6"
    redis.Redis.from_url(redis_url).flushdb()
    show = make_show(hall=make_hall(plan="RR"))
    headers = {"X-API-Key": make_api_key()}
    extra = {"REDIS_URL": redis_url, "CELERY_TASK_ALWAYS_EAGER": "0"}

    with (
        serving(settings, environment=extra) as (url, _),
        celery_worker(settings, redis_url=redis_url, beat=False),
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

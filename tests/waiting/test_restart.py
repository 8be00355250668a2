"""Nobody is lost or served twice when the web server and the Celery worker die and come back."""

import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from bench.harness.processes import kill_now
from bookings.models import Reservation
from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.conftest import celery_worker, redis_keys_of_its_own, serving
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import wait_until
from ticketing.buyers import Buyer
from waiting.models import Waiter


@pytest.mark.django_db(transaction=True)
def test_waiters_and_served_holds_survive_kill_9_of_the_web_server_and_the_worker(settings):
    # Redis keys of its own: the worker must see exactly the messages this test's processes send.
    extra = {**redis_keys_of_its_own(), "CELERY_TASK_ALWAYS_EAGER": "0"}
    show = make_show(hall=make_hall(plan="RRRR"))
    # Holds of every seat that lapse about 20 s from now (hold time 300 s + 5 s grace).
    taken_at = timezone.now() - timedelta(seconds=285)
    for number, seat in enumerate(seat_ids(show)):
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=[seat], at=taken_at)
    api_key = make_api_key()
    headers = {"X-API-Key": api_key}

    with (
        serving(settings, environment=extra) as (url, web),
        celery_worker(settings, environment=extra) as worker,
    ):
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            joined = [
                client.post(f"/api/v1/shows/{show.pk}/waitlist", json={"session_id": session, "seats_wanted": 2})
                for session in ("first", "second", "third")
            ]
        assert [response.status_code for response in joined] == [201, 201, 201]
        waiter_ids = [response.json()["waiter_id"] for response in joined]
        kill_now(web)
        kill_now(worker)

    assert list(Waiter.objects.order_by("place").values_list("status", flat=True)) == ["Waiting"] * 3

    # Both come back; when the holds lapse, beat's sweep frees the seats and the line is served in order.
    with (
        serving(settings, environment=extra) as (url, web),
        celery_worker(settings, environment=extra) as worker,
    ):
        served = wait_until(lambda: Waiter.objects.filter(status="Seats Available").count() == 2, seconds=60)
        assert served, list(Waiter.objects.values_list("session_id", "status"))
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            bodies = [
                client.get(f"/api/v1/waitlist/{waiter_id}", params={"session_id": session}).json()
                for waiter_id, session in zip(waiter_ids, ("first", "second", "third"), strict=True)
            ]
        kill_now(worker)
        kill_now(web)

    assert [body["status"] for body in bodies] == ["Seats Available", "Seats Available", "Waiting"]
    assert bodies[2]["position"] == 1
    # Once more, a new worker with nothing new to do serves nobody again.
    with celery_worker(settings, environment=extra):
        time.sleep(5)  # beat tends open lines every 2 s
    for session in ("first", "second"):
        assert Reservation.objects.filter(show=show, session_id=session).count() == 1
        assert Waiter.objects.get(session_id=session).reservation.claims.filter(released_at__isnull=True).count() == 2
    assert Waiter.objects.get(session_id="third").status == "Waiting"

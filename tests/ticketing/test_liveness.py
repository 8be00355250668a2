"""The balancer's health check is answered by the event loop, ahead of requests queued for Django.

A web process lets WEB_CONCURRENT_REQUESTS requests into Django at once (ticketing.asgi.handler). Here that is
one, and the one is stuck: a join of a show's waiting line waits on the line's lock, which this test holds.
(Not a hold: holds are answered on the lean path, ahead of Django's queue, ticketing.lean.) Anything else that needs
Django (a static file, say) queues behind it, but /health/live still answers at once: a busy process is not
a dead one.
"""

import threading
import time

import httpx
import pytest
from django.db import connection, transaction

from tests.conftest import serving
from tests.factories import make_api_key, make_hall, make_show

pytestmark = pytest.mark.django_db(transaction=True)


def someone_waits_for_an_advisory_lock():
    with connection.cursor() as cursor:
        # Of this database: pg_locks lists the whole server's, where other runs' holds take buyer locks too.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0] > 0


def test_liveness_is_answered_while_the_only_request_slot_is_stuck_and_a_static_file_waits(settings):
    show = make_show(hall=make_hall())
    raw_key = make_api_key()
    with serving(settings, workers=1, environment={"WEB_CONCURRENT_REQUESTS": "1"}) as (url, _):
        with transaction.atomic():
            with connection.cursor() as cursor:  # the line's lock, as waiting.services takes it
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"waiting-line:{show.pk}"])
            stuck = threading.Thread(
                target=lambda: httpx.post(
                    f"{url}/api/v1/shows/{show.pk}/waitlist",
                    json={"session_id": "stuck", "seats_wanted": 2},
                    headers={"X-API-Key": raw_key},
                    timeout=30,
                )
            )
            stuck.start()
            deadline = time.monotonic() + 10
            while not someone_waits_for_an_advisory_lock():  # the stuck join has the slot, not just a socket
                assert time.monotonic() < deadline, "the join never reached the line's lock"
                time.sleep(0.05)
            with pytest.raises(httpx.TimeoutException):  # queued behind the stuck hold
                httpx.get(f"{url}/static/css/site.css", timeout=2)
            live = httpx.get(f"{url}/health/live", timeout=2)
            assert (live.status_code, live.text) == (200, "ok\n")
        stuck.join()  # the lock went with the transaction: the join goes through
        assert httpx.head(f"{url}/health/live").status_code == 200

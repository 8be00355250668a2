"""A burst of requests larger than the database pool waits its turn instead of failing.

Each web process lets WEB_CONCURRENT_REQUESTS requests into Django at once (ticketing.asgi.handler); the others
wait on the event loop. Without that limit, every request takes a thread that queues for one of the pool's
connections, and those still queued after the pool's timeout fail (503 with Retry-After, ticketing.errors): the
control shows it.
"""

import asyncio
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bookings.seat_maps import seats_generation
from cinemas.demo import hall_plan
from tests.conftest import serving
from tests.factories import make_api_key, make_hall, make_show
from ticketing.cached_reads import mark_changed

BURST = 300
# A small pool with a short timeout, so that the control's queue outlasts the timeout on any machine.
TIGHT_POOL = {"DATABASE_POOL_MIN": "1", "DATABASE_POOL_MAX": "2", "DATABASE_POOL_TIMEOUT": "1"}
# The server's threads while the burst is answered: its own few, plus one per request let into Django (2 with
# the tight pool). A thread per queued request would be hundreds.
QUEUED_THREADS_BOUND = 50


def statuses_of_a_burst(url, path, headers, server, shed=None):
    """The burst's answers by status, and the most threads the server process had while answering it.

    The 503 answers are added to `shed`, if given."""
    shed = [] if shed is None else shed
    most_threads = 0
    done = threading.Event()

    def count_threads():
        nonlocal most_threads
        while not done.wait(0.02):
            most_threads = max(most_threads, len(list(Path(f"/proc/{server.pid}/task").iterdir())))

    async def burst():
        limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:
            answers = await asyncio.gather(*(client.get(path) for _ in range(BURST)))
        shed.extend(answer for answer in answers if answer.status_code == 503)
        return Counter(answer.status_code for answer in answers)

    counter = threading.Thread(target=count_threads)
    counter.start()
    try:
        return asyncio.run(burst()), most_threads
    finally:
        done.set()
        counter.join()


@pytest.fixture
def big_show(transactional_db):
    """A 2,000-seat show whose seats change all the time, as in an on-sale: every read of its details (seat
    counts, through Django: the seat map itself is read on the lean path) builds them again, which takes the
    database a few milliseconds. Served from the cache, a read is too quick for a burst of them to make a queue."""
    show = make_show(hall=make_hall(plan=hall_plan(2000)))
    stop = threading.Event()

    def change_seats():
        while not stop.wait(0.001):
            mark_changed(seats_generation(show.pk))

    changing = threading.Thread(target=change_seats)
    changing.start()
    yield show
    stop.set()
    changing.join()


def test_a_burst_far_beyond_the_pool_is_answered_in_full_by_one_process(settings, big_show):
    headers = {"X-API-Key": make_api_key(rate_per_minute=100_000)}
    with serving(settings, workers=1, environment=TIGHT_POOL) as (url, server):
        statuses, most_threads = statuses_of_a_burst(url, f"/api/v1/shows/{big_show.pk}", headers, server)
    assert statuses == {200: BURST}
    # Those waiting their turn hold no thread: a few per request let in, not one per request queued.
    assert most_threads < QUEUED_THREADS_BOUND, most_threads


def test_the_control_without_the_limit_fails_part_of_the_same_burst_with_503s(settings, big_show):
    headers = {"X-API-Key": make_api_key(rate_per_minute=100_000)}
    unlimited = {**TIGHT_POOL, "WEB_CONCURRENT_REQUESTS": str(BURST)}
    with serving(settings, workers=1, environment=unlimited) as (url, server):
        statuses, most_threads = statuses_of_a_burst(url, f"/api/v1/shows/{big_show.pk}", headers, server)
    assert statuses[503] > 0 and statuses[200] + statuses[503] == BURST  # the pool's timeout: never a 500
    assert most_threads >= QUEUED_THREADS_BOUND  # and a thread for each request let in


@pytest.mark.parametrize(
    "bound",
    [{"WEB_ADMISSION_QUEUE": "50"}, {"WEB_ADMISSION_WAIT_SECONDS": "1", "WEB_CONCURRENT_REQUESTS": "1"}],
    ids=["queue_length", "queue_wait"],
)
def test_past_the_queues_bound_the_rest_of_a_burst_is_told_503_retry_after_at_once(settings, big_show, bound):
    headers = {"X-API-Key": make_api_key(rate_per_minute=100_000)}
    shed = []
    with serving(settings, workers=1, environment={**TIGHT_POOL, **bound}) as (url, server):
        path = f"/api/v1/shows/{big_show.pk}"
        statuses, _ = statuses_of_a_burst(url, path, headers, server, shed)
        after = httpx.get(f"{url}{path}", headers=headers)
    assert statuses[200] > 0 and statuses[503] > 0 and statuses[200] + statuses[503] == BURST
    assert {answer.headers["Retry-After"] for answer in shed} == {"2"}
    assert {answer.json()["error"]["code"] for answer in shed} == {"service_unavailable"}
    assert after.status_code == 200  # shedding is per request: the next one is served

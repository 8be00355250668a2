"""A burst of requests larger than the database pool waits its turn instead of failing.

Each web process lets WEB_CONCURRENT_REQUESTS requests into Django at once (ticketing.asgi_handler); the others
wait on the event loop. Without that limit, every request takes a thread that queues for one of the pool's
connections, and those still queued after the pool's timeout fail (503 with Retry-After, ticketing.errors): the
control shows it.
"""

import asyncio
from collections import Counter

import httpx
import pytest

from cinemas.demo import hall_plan
from tests.conftest import serving
from tests.factories import make_api_key, make_hall, make_show

BURST = 300
# A small pool with a short timeout, so that the control's queue outlasts the timeout on any machine.
TIGHT_POOL = {"DATABASE_POOL_MIN": "1", "DATABASE_POOL_MAX": "2", "DATABASE_POOL_TIMEOUT": "1"}


def statuses_of_a_burst(url, path, headers):
    async def burst():
        limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:
            answers = await asyncio.gather(*(client.get(path) for _ in range(BURST)))
        return Counter(answer.status_code for answer in answers)

    return asyncio.run(burst())


@pytest.fixture
def big_show(transactional_db):
    return make_show(hall=make_hall(plan=hall_plan(2000)))


def test_a_burst_far_beyond_the_pool_is_answered_in_full_by_one_process(settings, big_show):
    headers = {"X-API-Key": make_api_key(rate_per_minute=100_000)}
    with serving(settings, workers=1, environment=TIGHT_POOL) as (url, _):
        statuses = statuses_of_a_burst(url, f"/api/v1/shows/{big_show.pk}/seats", headers)
    assert statuses == {200: BURST}


def test_the_control_without_the_limit_fails_part_of_the_same_burst_with_503s(settings, big_show):
    headers = {"X-API-Key": make_api_key(rate_per_minute=100_000)}
    unlimited = {**TIGHT_POOL, "WEB_CONCURRENT_REQUESTS": str(BURST)}
    with serving(settings, workers=1, environment=unlimited) as (url, _):
        statuses = statuses_of_a_burst(url, f"/api/v1/shows/{big_show.pk}/seats", headers)
    assert statuses[503] > 0 and statuses[200] + statuses[503] == BURST  # the pool's timeout: never a 500

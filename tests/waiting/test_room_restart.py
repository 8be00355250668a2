"""A waiting room loses nobody's place and admits nobody twice or out of order when the web server and the Celery
worker die (kill -9) and come back, and when Redis loses everything it held for them."""

import httpx
import pytest
import redis

from bench.harness.processes import kill_now
from tests.conftest import celery_worker, redis_keys_of_its_own, serving
from tests.factories import make_api_key
from tests.helpers import wait_until
from tests.waiting.rooms import on_sale_of
from waiting.models import Room, RoomVisitor
from waiting.rooms import draw_order


def forget_everything_in_redis(settings, prefix):
    """What a Redis restart does to these processes (this machine's Redis keeps nothing on disk): every key of
    theirs is gone: the cache (the room's presence marks), the channel layer, Celery's queues."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def admitted(on_sale):
    return RoomVisitor.objects.filter(room_id=on_sale.pk, admitted_at__isnull=False).count()


@pytest.mark.django_db(transaction=True)
def test_places_and_admissions_survive_kill_9_of_the_web_server_and_the_worker_and_redis_forgetting(settings):
    own_keys = redis_keys_of_its_own()
    extra = {**own_keys, "CELERY_TASK_ALWAYS_EAGER": "0"}
    on_sale = on_sale_of(opens_in=25, admissions_per_minute=60, pass_seconds=300)  # one a second
    headers = {"X-API-Key": make_api_key()}
    sessions = [f"early-{number}" for number in range(8)]

    with serving(settings, environment=extra) as (url, web):
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            joined = [client.post(f"/api/v1/on-sales/{on_sale.pk}/room", json={"session_id": s}) for s in sessions]
        kill_now(web)
    assert [response.status_code for response in joined] == [201] * 8
    visitor_ids = [response.json()["visitor_id"] for response in joined]
    assert forget_everything_in_redis(settings, own_keys["TICKETING_REDIS_PREFIX"]) > 0
    assert RoomVisitor.objects.filter(room_id=on_sale.pk, status="Waiting", place__isnull=True).count() == 8

    # The sale opens; a worker (with beat) admits one a second and is killed part way.
    with celery_worker(settings, environment=extra) as worker:
        assert wait_until(lambda: admitted(on_sale) >= 3, seconds=60), admitted(on_sale)
        kill_now(worker)
    forget_everything_in_redis(settings, own_keys["TICKETING_REDIS_PREFIX"])
    part_way = admitted(on_sale)

    # A new worker and web server carry on from PostgreSQL: the rest are admitted, and a pass works.
    with (
        celery_worker(settings, environment=extra) as worker,
        serving(settings, environment=extra) as (url, web),
    ):
        assert wait_until(lambda: admitted(on_sale) == 8, seconds=60), admitted(on_sale)
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            standing = client.get(f"/api/v1/room/{visitor_ids[0]}", params={"session_id": sessions[0]}).json()
            hold = client.post(
                "/api/v1/reservations",
                json={
                    "session_id": sessions[0],
                    "movie_id": on_sale.movie_id,
                    "show_id": on_sale.show_id,
                    "best_available": {"count": 2},
                },
                headers={"Admission-Pass": standing["admission_pass"]},
            )
        kill_now(worker)
        kill_now(web)

    assert 3 <= part_way < 8
    assert standing["status"] == "Admitted"
    assert hold.status_code == 201, hold.text
    room = Room.objects.get(pk=on_sale.pk)
    in_order = RoomVisitor.objects.filter(room_id=on_sale.pk).order_by("admitted_at", "place")
    assert [str(pk) for pk in in_order.values_list("pk", flat=True)] == draw_order(room.secret, visitor_ids)
    assert sorted(in_order.values_list("place", flat=True)) == list(range(1, 9))  # each place once
    assert room.admitted == 8  # the room's own count: nobody admitted twice across the restarts

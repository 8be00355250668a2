"""A place in an on-sale's waiting room, live: the room page's socket ws/room/{visitor_id}/?session_id=, the API's
long poll GET /api/v1/room/{visitor_id}?session_id=&version=&wait= and the page's GET /room/{visitor_id}/poll.

Sockets through the real ASGI application and the Redis channel layer, in process (as test_waitlist_socket);
long polls against a real uvicorn with one worker process (as test_lean_poll), the room moved by
waiting.rooms.admit_from_room called here, whose notice crosses to the server through Redis. Transactional, so
that the after-commit notices really go out.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import serving
from tests.helpers import assert_api_error, on_the_front
from tests.ticketing.test_lean_path import DjangoRequests
from tests.waiting.rooms import join, on_sale_of, visitor
from ticketing.asgi import application
from ticketing.buyers import BUYER_SESSION_KEY
from ticketing.services import create_api_key
from waiting import room_live, rooms
from waiting.models import Room
from waiting.rooms import admit_from_room, join_room, last_seen, read_standing
from waiting.serializers import standing_body

pytestmark = pytest.mark.django_db(transaction=True)

PUSH_WAIT = 5  # a receive returns as soon as the push arrives; only a missing push waits this long
# Far below the polls' 30 s waits: tells a poll woken by the change from one that ran out its wait.
WAKE_WITHIN = 10.0
PARKING = 0.5  # how long a poll is given to park before the room moves
PER_MINUTE = 60  # one admission a second of the room's clock


def open_room(*sessions, api_key_id=None):
    """An on-sale whose sale opened a minute ago, these sessions in its room at places 1, 2, ... in order."""
    on_sale = on_sale_of(queue_opens_in=-120, opens_in=-60, admissions_per_minute=PER_MINUTE)
    visitors = [join_room(buyer=visitor(session, api_key_id=api_key_id), on_sale=on_sale)[0] for session in sessions]
    assert [each.place for each in visitors] == list(range(1, len(sessions) + 1))
    return on_sale, visitors


def admit(on_sale, second):
    """The room's clock at `second` seconds past the opening (one more admission for each second since the last)."""
    return admit_from_room(on_sale_id=on_sale.pk, at=on_sale.opens_at + timedelta(seconds=second))


def standing(place):
    """The visitor's body as the API reads it (which notes it as seen)."""
    buyer = visitor(place.session_id, api_key_id=place.api_key_id)
    return standing_body(read_standing(buyer=buyer, visitor_id=place.pk))


# --- The room page's socket -------------------------------------------------------------------------------------


def watch(place, *, session_id=None):
    session_id = place.session_id if session_id is None else session_id
    return WebsocketCommunicator(
        application,
        f"/ws/room/{place.pk}/?session_id={session_id}",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")],
    )


async def connected(place):
    """A socket on the visitor, and the body it was sent on connecting."""
    socket = watch(place)
    accepted, _ = await socket.connect(timeout=3)
    assert accepted
    return socket, await socket.receive_json_from(timeout=PUSH_WAIT)


def run(scenario):
    async_to_sync(scenario)()


def on_socket(place, steps):
    """`await steps(socket, hello)` with a socket connected to the visitor (`hello`: the body it was sent on
    connecting), disconnected after."""

    async def scenario():
        socket, hello = await connected(place)
        try:
            await steps(socket, hello)
        finally:
            await socket.disconnect()

    run(scenario)


async def pushed_after_admitting(socket, on_sale, second):
    """What the socket is pushed once the room's clock has ticked at `second` (admit)."""
    await database_sync_to_async(admit)(on_sale, second)
    return await socket.receive_json_from(timeout=PUSH_WAIT)


def test_on_connect_the_socket_sends_the_visitors_standing():
    _, (_, second) = open_room("ann", "ben")

    async def steps(socket, hello):
        assert hello == await database_sync_to_async(standing)(second)
        assert (hello["status"], hello["place"], hello["position"]) == ("Waiting", 2, 2)
        assert hello["estimated_wait_seconds"] == 2 * 60 // PER_MINUTE
        assert await socket.receive_nothing(timeout=0.1)

    on_socket(second, steps)


def test_the_room_admitting_ahead_pushes_the_new_position_and_wait_and_a_tick_that_admits_nobody_pushes_nothing():
    on_sale, (_, _, third) = open_room("ann", "ben", "cat")

    async def steps(socket, hello):
        pushed = await pushed_after_admitting(socket, on_sale, 1)
        assert (pushed["status"], pushed["position"], pushed["estimated_wait_seconds"]) == ("Waiting", 2, 2)
        assert pushed["version"] > hello["version"]
        assert pushed == await database_sync_to_async(standing)(third)
        # The same second again: the rate earned nothing more; the room's notice changes nothing here.
        assert await database_sync_to_async(admit)(on_sale, 1) == 0
        assert await socket.receive_nothing(timeout=0.5)

    on_socket(third, steps)


def test_its_admission_pushes_admitted_with_its_pass():
    on_sale, (first, _) = open_room("ann", "ben")

    async def steps(socket, hello):
        pushed = await pushed_after_admitting(socket, on_sale, 1)
        assert pushed["status"] == "Admitted" and pushed["position"] is None
        assert pushed["admission_pass"] and pushed["pass_expires_at"]
        assert pushed == await database_sync_to_async(standing)(first)

    on_socket(first, steps)


def test_who_came_before_the_opening_is_pushed_its_place_at_the_draw():
    on_sale = on_sale_of(opens_in=30, admissions_per_minute=PER_MINUTE)
    early = [join(on_sale, session) for session in ("ann", "ben", "cat", "dan")]

    async def steps(socket, hello):
        assert (hello["place"], hello["position"]) == (None, None)
        pushed = await pushed_after_admitting(socket, on_sale, 1)  # draws, then admits the first drawn
        assert pushed["place"] in {1, 2, 3, 4}
        assert pushed == await database_sync_to_async(standing)(early[0])

    on_socket(early[0], steps)


@pytest.mark.parametrize("session_id", ["ben", "", "ann%00"])
def test_another_session_is_refused_with_4404(session_id):
    _, (place,) = open_room("ann")

    async def scenario():
        accepted, code = await watch(place, session_id=session_id).connect(timeout=3)
        assert (accepted, code) == (False, 4404)

    run(scenario)


def test_a_partners_visitor_is_refused_even_with_its_session_id():
    """The socket is the website's: a partner's end user follows its place through the API."""
    api_key, _ = create_api_key(name="partner")
    _, (place,) = open_room("ann", api_key_id=api_key.pk)

    async def scenario():
        accepted, code = await watch(place).connect(timeout=3)
        assert (accepted, code) == (False, 4404)

    run(scenario)


class VisitorReads:
    """Counts the queries that read room visitors again for the sockets (rooms.read_visitors, which
    waiting.room_live calls for them), each still made by the real function."""

    def __init__(self, read):
        self.read = read
        self.queries = 0

    def __call__(self, visitor_ids):
        self.queries += 1
        return self.read(visitor_ids)


def test_one_processs_many_sockets_follow_the_room_without_reading_the_database_unless_named(monkeypatch):
    sockets_count, ahead = 30, 5
    on_sale, places = open_room(*[f"visitor-{number}" for number in range(ahead + sockets_count)])
    watched = places[ahead:]
    reads = VisitorReads(rooms.read_visitors)
    monkeypatch.setattr(rooms, "read_visitors", reads)

    async def scenario():
        sockets = [(await connected(place))[0] for place in watched]
        try:
            connecting = reads.queries
            for second in range(1, ahead + 1):  # admits the five ahead, one a second
                await database_sync_to_async(admit)(on_sale, second)
                pushes = await asyncio.gather(*(s.receive_json_from(timeout=PUSH_WAIT) for s in sockets))
                assert [push["position"] for push in pushes] == [place.place - second for place in watched], second
            unnamed = reads.queries - connecting
            # A control: the next second admits the first watched visitor, whose socket reads it again.
            await database_sync_to_async(admit)(on_sale, ahead + 1)
            pushes = await asyncio.gather(*(s.receive_json_from(timeout=PUSH_WAIT) for s in sockets))
            return connecting, unnamed, reads.queries - connecting - unnamed, pushes
        finally:
            for socket in sockets:
                await socket.disconnect()

    connecting, unnamed, named, pushes = async_to_sync(scenario)()

    assert 1 <= connecting <= sockets_count  # each socket's read on connecting (gathered when they come together)
    assert unnamed == 0  # 5 moves of the room pushed to 30 sockets: 150 pushes, no read
    assert named == 1  # the one the room named: one read
    assert pushes[0]["status"] == "Admitted" and pushes[0]["admission_pass"]
    assert [push["position"] for push in pushes[1:]] == list(range(1, sockets_count))


def test_presence_is_noted_on_connect_and_again_while_connected(monkeypatch):
    monkeypatch.setattr(room_live, "PRESENCE_SECONDS", 0.2)  # a shortened clock: a minute in production
    _, (place,) = open_room("ann")
    joined_seen = last_seen(place.pk)
    later = timezone.now() + timedelta(hours=1)

    async def seen_since(moment):
        deadline = time.monotonic() + PUSH_WAIT
        while (last_seen(place.pk) or 0) < moment.timestamp() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return last_seen(place.pk) >= moment.timestamp()

    async def scenario():
        with time_machine.travel(later, tick=True) as clock:
            socket, _ = await connected(place)
            try:
                assert await seen_since(later)
                clock.shift(timedelta(minutes=2))
                assert await seen_since(later + timedelta(minutes=2))
            finally:
                await socket.disconnect()

    run(scenario)
    assert joined_seen < later.timestamp()


# --- The long polls, as uvicorn serves them ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One uvicorn with one worker process for the module; each test commits its own data (transactional)."""
    with serving(django_settings, workers=1) as (url, _):
        yield url


@pytest.fixture
def partner(transactional_db):
    return create_api_key(name="partner", rate_per_minute=100_000)


@pytest.fixture
def background():
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def api_poll(server, raw_key, place, **parameters):
    """The API's poll; returns (response, seconds it took)."""
    started = time.monotonic()
    response = httpx.get(
        f"{server}/api/v1/room/{place.pk}",
        params={"session_id": place.session_id, **parameters},
        headers={"X-API-Key": raw_key},
        timeout=70,
    )
    return response, time.monotonic() - started


def parked(background, poll, *arguments, **parameters):
    """A poll sent from another thread; returns its future once it has had time to park."""
    future = background.submit(poll, *arguments, **parameters)
    time.sleep(PARKING)
    assert not future.done(), "the poll answered before anything changed"
    return future


def test_the_api_poll_answers_at_once_without_a_version_or_with_an_old_one(server, partner):
    api_key, raw_key = partner
    _, (_, place) = open_room("ann", "ben", api_key_id=api_key.pk)
    current = standing(place)
    for version in ({}, {"version": current["version"] - 1}):
        response, took = api_poll(server, raw_key, place, wait=30, **version)
        assert response.status_code == 200 and took < WAKE_WITHIN
        assert response.json() == current


def test_the_api_poll_with_the_current_version_is_held_and_ends_early_when_admitted(server, partner, background):
    api_key, raw_key = partner
    on_sale, (place,) = open_room("ann", api_key_id=api_key.pk)
    version = standing(place)["version"]
    poll = parked(background, api_poll, server, raw_key, place, wait=30, version=version)

    assert admit_from_room(on_sale_id=on_sale.pk) == 1
    changed_at = time.monotonic()
    response, _ = poll.result(timeout=40)

    body = response.json()
    assert body["status"] == "Admitted" and body["admission_pass"] and body["version"] > version
    assert body == standing(place)
    assert time.monotonic() - changed_at < WAKE_WITHIN


def test_moving_up_does_not_end_the_api_poll_early_but_its_answer_has_the_new_position(server, partner, background):
    """Only a change of the visitor's status (or, at the draw, its place) ends a wait early: a room that admits
    every second would otherwise have every poll re-sent every second."""
    api_key, raw_key = partner
    on_sale, (_, place) = open_room("ann", "ben", api_key_id=api_key.pk)
    version = standing(place)["version"]
    poll = parked(background, api_poll, server, raw_key, place, wait=3, version=version)

    assert admit(on_sale, 1) == 1
    time.sleep(1)
    assert not poll.done(), "moving up answered before the wait ended"

    response, took = poll.result(timeout=40)
    body = response.json()
    assert (body["status"], body["position"], body["estimated_wait_seconds"]) == ("Waiting", 1, 1)
    assert body["version"] > version and took >= 3


def test_each_api_poll_notes_the_visitor_as_seen(partner):
    """On the front, in process: the cache a server started here keeps is another namespace than the test's."""
    api_key, raw_key = partner
    _, (place,) = open_room("ann", api_key_id=api_key.pk)
    joined_seen = last_seen(place.pk)
    time.sleep(0.05)
    call = ("GET", f"/api/v1/room/{place.pk}", {"params": {"session_id": "ann"}, "headers": {"X-API-Key": raw_key}})
    (answer,) = on_the_front(call)
    assert answer.status_code == 200
    assert last_seen(place.pk) > joined_seen


def test_the_api_poll_refuses_another_session_and_bad_parameters(server, partner):
    api_key, raw_key = partner
    _, (place,) = open_room("ann", api_key_id=api_key.pk)
    assert_api_error(api_poll(server, raw_key, place, session_id="ben")[0], 404, "not_found")
    assert_api_error(api_poll(server, raw_key, place, wait=61)[0], 400, "invalid_request", "wait")
    assert_api_error(api_poll(server, raw_key, place, version="x")[0], 400, "invalid_request", "version")
    _, other_key = create_api_key(name="another partner")
    assert_api_error(api_poll(server, other_key, place)[0], 404, "not_found")


def test_the_api_poll_is_answered_without_django_with_the_bytes_django_answers(partner):
    api_key, raw_key = partner
    _, (_, place) = open_room("ann", "ben", api_key_id=api_key.pk)
    call = ("GET", f"/api/v1/room/{place.pk}", {"params": {"session_id": "ben"}, "headers": {"X-API-Key": raw_key}})
    with DjangoRequests() as django:
        (on_front,) = on_the_front(call)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    through_django = client.get(f"/api/v1/room/{place.pk}", {"session_id": "ben", "version": 0, "wait": 30})
    assert django.count == 0
    assert on_front.status_code == through_django.status_code == 200
    assert on_front.json() == through_django.json() == standing(place)


def test_leaving_through_the_api_still_works_at_the_same_address(partner):
    api_key, raw_key = partner
    _, (place,) = open_room("ann", api_key_id=api_key.pk)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    left = client.delete(f"/api/v1/room/{place.pk}?session_id=ann")
    assert left.status_code == 200 and left.json()["status"] == "Left"


# --- The room page's poll -----------------------------------------------------------------------------------------


def browser_in_room(*ahead):
    """A browser's session (its buyer id in its Django session, as the website keeps it) with a place in a room
    behind `ahead`; returns (on_sale, the browser's place, its session cookie)."""
    session = SessionStore()
    session[BUYER_SESSION_KEY] = "browser-buyer-id-0123456789ab"
    session.create()
    on_sale, _ = open_room(*ahead)
    place = join(on_sale, session[BUYER_SESSION_KEY])
    return on_sale, place, {django_settings.SESSION_COOKIE_NAME: session.session_key}


def page_poll(server, cookies, place, **parameters):
    started = time.monotonic()
    response = httpx.get(f"{server}/room/{place.pk}/poll", params=parameters, cookies=cookies, timeout=70)
    return response, time.monotonic() - started


def test_the_page_poll_answers_at_once_with_an_old_version_and_refuses_another_browser(server):
    _, place, cookies = browser_in_room("ann")
    response, took = page_poll(server, cookies, place, version=0, wait=30)
    assert response.status_code == 200 and took < WAKE_WITHIN
    assert response.json() == standing(place) and response.json()["position"] == 2
    assert "no-store" in response.headers["cache-control"]
    assert page_poll(server, {}, place)[0].status_code == 404


def test_the_page_poll_with_the_current_version_is_held_and_ends_early_when_admitted(server, background):
    on_sale, place, cookies = browser_in_room()
    version = standing(place)["version"]
    poll = parked(background, page_poll, server, cookies, place, version=version, wait=30)

    assert admit_from_room(on_sale_id=on_sale.pk) == 1
    changed_at = time.monotonic()
    response, _ = poll.result(timeout=40)

    assert response.status_code == 200
    assert response.json()["status"] == "Admitted" and response.json()["admission_pass"]
    assert time.monotonic() - changed_at < WAKE_WITHIN


def test_the_page_poll_with_the_current_version_answers_when_its_wait_ends(server):
    _, place, cookies = browser_in_room("ann")
    before = standing(place)
    response, took = page_poll(server, cookies, place, version=before["version"], wait=1)
    assert response.status_code == 200 and 1 <= took < 1 + WAKE_WITHIN
    assert response.json() == before


def test_through_djangos_test_client_the_page_poll_answers_at_once_and_notes_the_visitor_seen():
    _, place, cookies = browser_in_room("ann")
    client = Client()
    client.cookies.load(cookies)
    version = standing(place)["version"]
    noted = last_seen(place.pk)
    time.sleep(0.05)
    response = client.get(f"/room/{place.pk}/poll", {"version": version, "wait": 30})
    assert response.status_code == 200 and response.json()["position"] == 2
    assert last_seen(place.pk) > noted
    assert Client().get(f"/room/{place.pk}/poll").status_code == 404
    assert Room.objects.get(pk=place.room_id).called_through == 0

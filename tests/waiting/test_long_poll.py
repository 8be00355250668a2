"""GET /api/v1/waitlist/{id}?wait=&version= as a long poll, against a real uvicorn with two worker processes.

A parked poll is woken across processes: the change is made by another request (which may land on the other
worker) or by a service called in this test process, and reaches the poll through the Redis channel layer.
Times are measured around the HTTP calls; the bounds are generous for a shared two-core machine, but far below
the `wait` the polls ask for, so a poll that was not woken can't pass.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
import time_machine
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import F
from django.test import AsyncClient
from rest_framework.test import APIClient

from bookings.services import cancel_hold, hold_seats
from tests.bookings.helpers import seat_ids
from tests.conftest import serving
from tests.factories import make_hall, make_show
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer
from ticketing.services import create_api_key, revoke_api_key
from waiting.models import Waiter
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)

# Far below the polls' 30 s waits: it tells a poll woken by the change from one that ran out its wait, without
# timing the machine (how fast is measured, not asserted: bench/results/long_poll.json).
WAKE_WITHIN = 10.0
# How long a poll is given to park before the change is made.
PARKING = 0.5


KEY_MEMORY_SECONDS = 1


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One uvicorn (two worker processes) for the module; each test commits its own data (transactional).

    Its processes remember an API key for a second (not the default five), so that a revocation made here
    reaches them within a test's patience.
    """
    with serving(django_settings, environment={"TICKETING_API_KEY_CACHE_SECONDS": str(KEY_MEMORY_SECONDS)}) as (
        url,
        _,
    ):
        yield url


@pytest.fixture
def partner(transactional_db):
    api_key, raw_key = create_api_key(name="partner", rate_per_minute=100_000)
    return api_key, raw_key


@pytest.fixture
def client(server, partner):
    with httpx.Client(base_url=server, headers={"X-API-Key": partner[1]}, timeout=70) as client:
        yield client


@pytest.fixture
def background():
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def full_line(partner, *sessions, seats=2):
    """A show whose every seat is held by "holder", with these sessions waiting for a seat each, in order.

    Returns the holder's hold and the waiters.
    """
    api_key, _ = partner
    show = make_show(hall=make_hall(plan="R" * seats))
    hold = hold_seats(buyer=Buyer(api_key.pk, "holder"), show=show, seat_ids=seat_ids(show))
    waiters = [
        join_waiting_line(buyer=Buyer(api_key.pk, session), show=show, seats_wanted=1)[0] for session in sessions
    ]
    return hold, waiters


def url_of(waiter):
    return f"/api/v1/waitlist/{waiter.pk}"


def timed_get(client, waiter, **parameters):
    started = time.monotonic()
    response = client.get(url_of(waiter), params={"session_id": waiter.session_id, **parameters})
    return response, started, time.monotonic()


def park(background, server, raw_key, waiter, **parameters):
    """Send a long poll from another thread (its own connection); returns its future (response, sent, answered)."""

    def poll():
        with httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as own:
            return timed_get(own, waiter, **parameters)

    future = background.submit(poll)
    time.sleep(PARKING)
    assert not future.done(), "the poll answered before anything changed"
    return future


def test_without_a_version_it_answers_at_once_with_the_waiters_state(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    response, started, answered = timed_get(client, waiter, wait=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["waiter_id"] == str(waiter.pk)
    assert (body["status"], body["position"], body["version"]) == ("Waiting", 1, waiter.version)
    assert "reservation_id" not in body
    assert answered - started < WAKE_WITHIN


def test_with_an_old_version_it_answers_at_once(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    response, started, answered = timed_get(client, waiter, wait=30, version=waiter.version - 1)
    assert response.status_code == 200
    assert response.json()["version"] == waiter.version
    assert answered - started < WAKE_WITHIN


def test_with_the_current_version_and_no_wait_it_answers_at_once(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    response, started, answered = timed_get(client, waiter, version=waiter.version)
    assert response.status_code == 200
    assert answered - started < WAKE_WITHIN


def test_when_nothing_changes_it_answers_the_same_state_when_the_wait_ends(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    before = client.get(url_of(waiter), params={"session_id": "ann"}).json()
    response, started, answered = timed_get(client, waiter, wait=1, version=waiter.version)
    assert response.status_code == 200
    assert response.json() == before
    assert 1 <= answered - started < 1 + WAKE_WITHIN


def test_a_change_whose_nudge_was_lost_is_answered_when_the_wait_ends(server, client, partner, background):
    """The channel layer delivers at most once: a poll that heard nothing still reads the waiter at the end."""
    _, (waiter,) = full_line(partner, "ann")
    parked = park(background, server, partner[1], waiter, wait=3, version=waiter.version)
    # A committed change whose notice never went out (made behind the services' back, as a lost message).
    Waiter.objects.filter(pk=waiter.pk).update(version=F("version") + 1)

    response, started, answered = parked.result(timeout=35)

    assert response.status_code == 200
    assert response.json()["version"] == waiter.version + 1
    assert answered - started >= 3


def test_leaving_in_another_request_answers_the_parked_poll_at_once(server, client, partner, background):
    _, (waiter,) = full_line(partner, "ann")
    parked = park(background, server, partner[1], waiter, wait=30, version=waiter.version)

    left = client.delete(url_of(waiter), params={"session_id": "ann"})
    changed_at = time.monotonic()
    assert left.status_code == 200 and left.json()["status"] == "Cancelled"

    response, _, answered = parked.result(timeout=35)
    assert response.status_code == 200
    assert response.json() == left.json()
    assert response.json()["version"] > waiter.version
    assert answered - changed_at < WAKE_WITHIN


def test_seats_coming_free_answer_the_head_with_the_hold_made_for_it(server, partner, background):
    hold, (head, second) = full_line(partner, "ann", "ben")
    parked = park(background, server, partner[1], head, wait=30, version=head.version)

    # The holder cancels in this process; the line is served after commit and the nudge crosses to uvicorn.
    cancel_hold(buyer=Buyer(partner[0].pk, "holder"), reservation_id=hold.pk)
    changed_at = time.monotonic()

    response, _, answered = parked.result(timeout=35)
    body = response.json()
    assert body["status"] == "Seats Available" and body["reservation_id"]
    assert body["position"] is None and body["version"] > head.version
    assert answered - changed_at < WAKE_WITHIN
    head.refresh_from_db()
    assert str(head.reservation_id) == body["reservation_id"]


def test_moving_up_does_not_end_the_wait_but_its_answer_has_the_new_position(server, client, partner, background):
    """Only a change of status ends a wait early: a long line moving every second would have every waiter
    re-poll every second. A poll sent with the version from before the move answers at once."""
    _, (first, second) = full_line(partner, "ann", "ben")
    assert client.get(url_of(second), params={"session_id": "ben"}).json()["position"] == 2
    parked = park(background, server, partner[1], second, wait=3, version=second.version)

    client.delete(url_of(first), params={"session_id": "ann"})
    time.sleep(1)
    assert not parked.done(), "moving up answered before the wait ended"

    response, sent, answered = parked.result(timeout=35)
    body = response.json()
    assert (body["status"], body["position"]) == ("Waiting", 1)
    assert body["version"] > second.version
    assert answered - sent >= 3
    again, sent, answered = timed_get(client, second, wait=30, version=second.version)
    assert again.json()["version"] == body["version"] and answered - sent < WAKE_WITHIN


def test_someone_behind_leaving_does_not_answer_it_early(server, client, partner, background):
    """The line moved (a nudge reaches the head's poll too), but the head's status did not: it keeps waiting."""
    _, (first, second) = full_line(partner, "ann", "ben")
    parked = park(background, server, partner[1], first, wait=2, version=first.version)

    client.delete(url_of(second), params={"session_id": "ben"})

    response, sent, answered = parked.result(timeout=10)
    assert response.json()["version"] == first.version
    assert response.json()["position"] == 1
    assert answered - sent >= 2


def test_two_polls_on_one_waiter_both_answer_and_an_abandoned_one_stops_nobody(server, client, partner, background):
    """Polls share their process's groups: one that goes (a client giving up) must not leave the others deaf."""
    _, (first, second) = full_line(partner, "ann", "ben")
    with pytest.raises(httpx.ReadTimeout):
        client.get(url_of(second), params={"session_id": "ben", "wait": 30, "version": second.version}, timeout=0.5)
    one = park(background, server, partner[1], second, wait=30, version=second.version)
    other = park(background, server, partner[1], second, wait=30, version=second.version)

    client.delete(url_of(second), params={"session_id": "ben"})
    changed_at = time.monotonic()

    for parked in (one, other):
        response, _, answered = parked.result(timeout=35)
        assert response.json()["status"] == "Cancelled"
        assert answered - changed_at < WAKE_WITHIN


def test_a_poll_whose_client_goes_away_stops_waiting_and_its_process_leaves_the_line_group(server, client, partner):
    """The server notices the closed connection while the poll is parked, not when its wait would end."""
    _, (waiter,) = full_line(partner, "ann")
    groups = redis.Redis.from_url(django_settings.REDIS_URL)
    membership = f"{django_settings.REDIS_KEY_PREFIX}asgi:group:waiting-line-{waiter.show_id}"
    with pytest.raises(httpx.ReadTimeout):
        client.get(url_of(waiter), params={"session_id": "ann", "wait": 60, "version": waiter.version}, timeout=1)
    # The client has closed its connection; its process had joined the show's line group for it alone.
    deadline = time.monotonic() + WAKE_WITHIN
    while groups.exists(membership) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not groups.exists(membership), "the abandoned poll still listens"


def test_another_sessions_waiter_is_not_found(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    response = client.get(url_of(waiter), params={"session_id": "ben", "wait": 5, "version": waiter.version})
    assert_api_error(response, 404, "not_found")
    response = client.delete(url_of(waiter), params={"session_id": "ben"})
    assert_api_error(response, 404, "not_found")


def test_another_partners_waiter_is_not_found(server, partner):
    _, (waiter,) = full_line(partner, "ann")
    _, other_key = create_api_key(name="other partner")
    response = httpx.get(f"{server}{url_of(waiter)}", params={"session_id": "ann"}, headers={"X-API-Key": other_key})
    assert_api_error(response, 404, "not_found")


def test_an_unknown_waiter_is_not_found(client, partner):
    full_line(partner, "ann")
    response = client.get("/api/v1/waitlist/00000000-0000-4000-8000-000000000000", params={"session_id": "ann"})
    assert_api_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "parameters, field",
    [
        ({"wait": 61}, "wait"),
        ({"wait": -1}, "wait"),
        ({"wait": "abc"}, "wait"),
        ({"version": "abc"}, "version"),
        ({"timeout": 5}, "timeout"),
    ],
)
def test_bad_parameters_get_400_with_the_error_body(client, partner, parameters, field):
    _, (waiter,) = full_line(partner, "ann")
    response = client.get(url_of(waiter), params={"session_id": "ann", **parameters})
    assert_api_error(response, 400, "invalid_request", field=field)


def test_a_bad_session_id_gets_400(client, partner):
    _, (waiter,) = full_line(partner, "ann")
    assert_api_error(client.get(url_of(waiter), params={"session_id": "not ok!"}), 400, "invalid_request", "session_id")


def test_without_a_key_it_gets_401_and_with_an_unknown_key_401(server, partner):
    _, (waiter,) = full_line(partner, "ann")
    url = f"{server}{url_of(waiter)}"
    assert_api_error(httpx.get(url, params={"session_id": "ann"}), 401, "missing_api_key")
    unknown = httpx.get(url, params={"session_id": "ann"}, headers={"X-API-Key": "tk_nobody"})
    assert_api_error(unknown, 401, "invalid_api_key")


def test_a_revoked_key_gets_403_and_the_key_may_come_as_a_parameter(server, partner):
    _, (waiter,) = full_line(partner, "ann")
    url = f"{server}{url_of(waiter)}"
    assert httpx.get(url, params={"session_id": "ann", "api_dev_key": partner[1]}).status_code == 200
    revoke_api_key(api_key=partner[0])  # in this process: the server's processes learn of it within a second
    time.sleep(KEY_MEMORY_SECONDS)
    assert_api_error(httpx.get(url, params={"session_id": "ann", "api_dev_key": partner[1]}), 403, "revoked_api_key")


def test_past_its_quota_a_key_gets_429_with_retry_after(transactional_db):
    """In process (Django's async test client), so the clock can be frozen inside the quota's minute."""
    frugal = create_api_key(name="frugal", rate_per_minute=2)
    _, (waiter,) = full_line(frugal, "ann")

    async def three_calls():
        client = AsyncClient()
        return [
            await client.get(url_of(waiter), {"session_id": "ann"}, headers={"X-API-Key": frugal[1]}) for _ in range(3)
        ]

    with time_machine.travel("2026-11-24 12:00:15+00:00", tick=False):
        first, second, refused = async_to_sync(three_calls)()
    assert [first.status_code, second.status_code] == [200, 200]
    assert_api_error(refused, 429, "quota_exceeded")
    assert int(refused["Retry-After"]) == 45


@pytest.mark.django_db
def test_served_without_the_asgi_middleware_a_poll_answers_at_once_from_the_requests_own_transaction():
    """Django's test client has no HoldLongPolls in front: nothing holds the answer. It is read where any sync
    view reads, so it sees what the request's transaction sees (here a TestCase's)."""
    assert connection.in_atomic_block  # the rows below are never committed
    key = create_api_key(name="in a transaction")
    _, (waiter,) = full_line(key, "ann")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key[1])
    response = client.get(url_of(waiter), {"session_id": "ann", "wait": 30, "version": waiter.version})
    assert response.status_code == 200 and response.json()["position"] == 1


def test_delete_still_leaves_the_line_through_the_same_address(client, partner):
    _, (first, second) = full_line(partner, "ann", "ben")
    left = client.delete(url_of(first), params={"session_id": "ann"})
    assert left.status_code == 200
    assert (left.json()["status"], left.json()["position"]) == ("Cancelled", None)
    assert client.get(url_of(second), params={"session_id": "ben"}).json()["position"] == 1
    assert_api_error(client.post(url_of(second), params={"session_id": "ben"}), 405, "method_not_allowed")


def test_the_schema_documents_the_long_poll_and_leaving(transactional_db):
    schema = APIClient().get("/api/v1/schema/", {"format": "json"}).json()
    operations = schema["paths"]["/api/v1/waitlist/{waiter_id}"]
    assert set(operations) >= {"get", "delete"}
    assert {"session_id", "wait", "version"} <= {parameter["name"] for parameter in operations["get"]["parameters"]}

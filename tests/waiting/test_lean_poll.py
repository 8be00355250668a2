"""The waiting line's poll on the lean path (issue 16, points 4 and 7): GET /api/v1/waitlist/{id} answered and
held on the event loop, without Django, its waiter read in one round trip on the async pool.

In-process (the ASGI application, as test_lean_path does) where Django's request signal can be counted; against
a real uvicorn (one worker process) for the held answer as a client sees it: the status line at once, the body
when the waiter is served.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from bookings.services import cancel_hold, hold_seats
from tests.bookings.helpers import seat_ids
from tests.conftest import serving
from tests.factories import make_hall, make_show
from tests.helpers import assert_api_error, clear_of_a_quota_windows_end, on_the_front
from tests.ticketing.test_lean_path import DjangoRequests, comparable
from ticketing.asgi import django_asgi_app
from ticketing.buyers import Buyer
from ticketing.lean import close_connections
from ticketing.services import create_api_key, revoke_api_key
from waiting.services import aread_waiters, join_waiting_line, read_waiters

pytestmark = pytest.mark.django_db(transaction=True)

# Far below the polls' waits: tells a poll woken by the change from one that ran out its wait.
WAKE_WITHIN = 10.0


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One uvicorn with ONE worker process for the module: a parked poll and the change share nothing but the
    database and the channel layer. Each test commits its own data (transactional)."""
    with serving(django_settings, workers=1) as (url, _):
        yield url


@pytest.fixture
def partner(transactional_db):
    return create_api_key(name="partner", rate_per_minute=100_000)


def full_line(api_key, *sessions):
    """A one-seat show held by "holder", with these sessions waiting in order; returns (hold, waiters)."""
    show = make_show(hall=make_hall(plan="R"))
    hold = hold_seats(buyer=Buyer(api_key.pk, "holder"), show=show, seat_ids=seat_ids(show))
    joins = [join_waiting_line(buyer=Buyer(api_key.pk, session), show=show, seats_wanted=1) for session in sessions]
    return hold, [waiter for waiter, _ in joins]


def poll(waiter, raw_key, **parameters):
    """(method, url, options) of a poll, for on_the_front."""
    return (
        "GET",
        f"/api/v1/waitlist/{waiter.pk}",
        {"params": {"session_id": waiter.session_id, **parameters}, "headers": {"X-API-Key": raw_key}},
    )


# --- In-process: no Django, the same bytes as through Django ----------------------------------------------------


def test_a_poll_is_answered_without_django_with_the_bytes_django_answers(partner):
    api_key, raw_key = partner
    _, (first, second) = full_line(api_key, "ann", "ben")
    calls = [poll(second, raw_key), poll(second, raw_key, version=second.version - 1, wait=30)]

    with DjangoRequests() as django:
        front = on_the_front(*calls)
    through_django = on_the_front(*calls, app=django_asgi_app)

    assert django.count == 0
    for on_front, in_django in zip(front, through_django, strict=True):
        assert on_front.status_code == 200 and on_front.content == in_django.content
        assert on_front.headers["cache-control"] == in_django.headers["cache-control"]
    body = front[0].json()
    assert (body["waiter_id"], body["status"], body["position"], body["version"]) == (
        str(second.pk),
        "Waiting",
        2,
        second.version,
    )
    assert set(body) == {"waiter_id", "status", "position", "version", "show_id", "seats_wanted", "expires_at"}


def test_the_refusals_read_the_same_on_the_front_as_through_django(partner):
    api_key, raw_key = partner
    _, (waiter,) = full_line(api_key, "ann")
    revoked_key = create_api_key(name="gone")
    revoke_api_key(api_key=revoked_key[0])
    path = f"/api/v1/waitlist/{waiter.pk}"
    good = {"X-API-Key": raw_key}
    requests = {
        "no key": ("GET", path, {"params": {"session_id": "ann"}}),
        "unknown key": ("GET", path, {"params": {"session_id": "ann"}, "headers": {"X-API-Key": "nope"}}),
        "revoked key": ("GET", path, {"params": {"session_id": "ann"}, "headers": {"X-API-Key": revoked_key[1]}}),
        "no session": ("GET", path, {"headers": good}),
        "wait past 60": ("GET", path, {"params": {"session_id": "ann", "wait": 61}, "headers": good}),
        "negative version": ("GET", path, {"params": {"session_id": "ann", "version": -1}, "headers": good}),
        "wait not a number": ("GET", path, {"params": {"session_id": "ann", "wait": "soon"}, "headers": good}),
        "unknown parameter": ("GET", path, {"params": {"session_id": "ann", "wiat": 5}, "headers": good}),
        "another session": ("GET", path, {"params": {"session_id": "ben"}, "headers": good}),
        "no such waiter": (
            "GET",
            "/api/v1/waitlist/00000000-0000-0000-0000-000000000000",
            {"params": {"session_id": "ann"}, "headers": good},
        ),
    }

    front = on_the_front(*requests.values())
    through_django = on_the_front(*requests.values(), app=django_asgi_app)

    for name, on_front, in_django in zip(requests, front, through_django, strict=True):
        assert 400 <= on_front.status_code < 500, (name, on_front.json())
        assert comparable(on_front) == comparable(in_django), name
    codes = {name: answer.json()["error"]["code"] for name, answer in zip(requests, front, strict=True)}
    assert codes == {
        "no key": "missing_api_key",
        "unknown key": "invalid_api_key",
        "revoked key": "revoked_api_key",
        "no session": "invalid_request",
        "wait past 60": "invalid_request",
        "negative version": "invalid_request",
        "wait not a number": "invalid_request",
        "unknown parameter": "invalid_request",
        "another session": "not_found",
        "no such waiter": "not_found",
    }


def test_through_djangos_test_client_a_poll_with_the_current_version_answers_at_once(partner):
    api_key, raw_key = partner
    _, (waiter,) = full_line(api_key, "ann")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    started = time.monotonic()
    response = client.get(f"/api/v1/waitlist/{waiter.pk}", {"session_id": "ann", "version": waiter.version, "wait": 30})
    assert response.status_code == 200 and response.json()["version"] == waiter.version
    assert time.monotonic() - started < WAKE_WITHIN


def test_the_async_read_answers_what_the_sync_read_does(partner):
    api_key, _ = partner
    _, waiters = full_line(api_key, "ann", "ben")
    wanted = [(waiters[0].pk, None), (waiters[1].pk, None), (waiters[1].pk, "Waiting")]

    async def read():
        try:
            return await aread_waiters(wanted)
        finally:
            await close_connections()

    rows = async_to_sync(read)()
    assert rows == read_waiters(wanted)
    assert [rows[str(waiter.pk), None].position for waiter in waiters] == [1, 2]


# --- As uvicorn serves it --------------------------------------------------------------------------------------


def test_with_an_old_version_it_answers_at_once_with_a_length(server, partner):
    api_key, raw_key = partner
    _, (waiter,) = full_line(api_key, "ann")
    with httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as client:
        started = time.monotonic()
        response = client.get(f"/api/v1/waitlist/{waiter.pk}", params={"session_id": "ann", "version": 0, "wait": 30})
    assert response.status_code == 200 and time.monotonic() - started < WAKE_WITHIN
    assert response.json()["version"] == waiter.version and response.json()["position"] == 1
    assert int(response.headers["content-length"]) == len(response.content)


def test_with_the_current_version_it_parks_then_answers_the_served_waiter_with_its_hold(server, partner):
    api_key, raw_key = partner
    hold, (waiter,) = full_line(api_key, "ann")
    parameters = {"session_id": "ann", "version": waiter.version, "wait": 30}
    heard = {}

    def parked_poll():
        with (
            httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as client,
            client.stream("GET", f"/api/v1/waitlist/{waiter.pk}", params=parameters) as response,
        ):
            heard["status line"] = (response.status_code, dict(response.headers), time.monotonic())
            response.read()
            return response, time.monotonic()

    with ThreadPoolExecutor(max_workers=1) as background:
        future = background.submit(parked_poll)
        deadline = time.monotonic() + WAKE_WITHIN
        while "status line" not in heard and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "status line" in heard, "the status line did not come at once"
        time.sleep(0.3)
        assert not future.done(), "the poll answered before anything changed"

        cancel_hold(buyer=Buyer(api_key.pk, "holder"), reservation_id=hold.pk)  # the line is served on commit
        changed_at = time.monotonic()
        response, answered = future.result(timeout=40)

    status, headers, _ = heard["status line"]
    assert status == 200 and "content-length" not in headers  # the body came later, chunked
    assert headers["cache-control"].startswith("max-age=0, no-cache, no-store")
    body = response.json()
    waiter.refresh_from_db()
    assert body["status"] == "Seats Available" and body["reservation_id"] == str(waiter.reservation_id)
    assert body["position"] is None and body["version"] == waiter.version
    assert answered - changed_at < WAKE_WITHIN


def test_when_nothing_changes_the_held_poll_answers_when_its_wait_ends(server, partner):
    api_key, raw_key = partner
    _, (waiter,) = full_line(api_key, "ann")
    with httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as client:
        started = time.monotonic()
        response = client.get(
            f"/api/v1/waitlist/{waiter.pk}", params={"session_id": "ann", "version": waiter.version, "wait": 1}
        )
    assert response.status_code == 200 and 1 <= time.monotonic() - started < 1 + WAKE_WITHIN
    assert response.json()["status"] == "Waiting" and response.json()["position"] == 1


def test_bad_input_and_another_session_are_refused_as_served(server, partner):
    api_key, raw_key = partner
    _, (waiter,) = full_line(api_key, "ann")
    path = f"/api/v1/waitlist/{waiter.pk}"
    with httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as client:
        assert_api_error(client.get(path, params={"session_id": "ann", "wait": 61}), 400, "invalid_request", "wait")
        assert_api_error(client.get(path, params={"wait": 1}), 400, "invalid_request", "session_id")
        assert_api_error(client.get(path, params={"session_id": "ben", "wait": 1}), 404, "not_found")
        keyless = client.get(path, params={"session_id": "ann"}, headers={"X-API-Key": ""})
        assert_api_error(keyless, 401, "missing_api_key")


def test_a_key_over_its_quota_is_refused_429_with_retry_after_as_served(server):
    api_key, raw_key = create_api_key(name="small", rate_per_minute=2)
    _, (waiter,) = full_line(api_key, "ann")
    clear_of_a_quota_windows_end()  # the three calls in one window
    with httpx.Client(base_url=server, headers={"X-API-Key": raw_key}, timeout=70) as client:
        answers = [client.get(f"/api/v1/waitlist/{waiter.pk}", params={"session_id": "ann"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert_api_error(answers[2], 429, "quota_exceeded")
    assert int(answers[2].headers["retry-after"]) >= 1

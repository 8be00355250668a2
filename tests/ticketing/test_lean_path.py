"""The lean path (ticketing.lean): holds, changes and cancels answered on the event loop, outside Django.

Through the ASGI application as uvicorn serves it, these calls never start Django's request cycle, and their
answers are the ones the same endpoints give through Django (where the API tests run them): same statuses,
bodies and headers, refusals included.
"""

import asyncio
import json

import httpx
import psycopg
import pytest
from django.core.signals import request_started
from rest_framework.test import APIClient

from tests.bookings.helpers import GOOD_CARD
from tests.factories import make_api_key, make_hall, make_show
from ticketing.asgi import application, django_asgi_app
from ticketing.lean import Answer, LeanFront, close_connections, on_django_connection
from ticketing.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR"] * 3)))


@pytest.fixture
def key():
    return make_api_key(rate_per_minute=1000)


def seats_of(show):
    return list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))


def on_the_front(*calls, app=application):
    """Send each (method, url, options) to the ASGI application in turn; returns the httpx responses."""

    async def send_all():
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return [await client.request(method, url, **options) for method, url, options in calls]
        finally:
            await close_connections()

    return asyncio.run(send_all())


def hold_body(show, seats, session="alice"):
    return {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": seats}


class DjangoRequests:
    """Counts Django's request_started signals: a call on the lean path must not send one."""

    def __init__(self):
        self.count = 0

    def __call__(self, **kwargs):
        self.count += 1

    def __enter__(self):
        request_started.connect(self)
        return self

    def __exit__(self, *exc):
        request_started.disconnect(self)


def test_a_hold_its_change_and_its_cancel_are_answered_without_django(show, key):
    seats = seats_of(show)
    headers = {"X-API-Key": key}
    with DjangoRequests() as django:
        (held,) = on_the_front(
            ("POST", "/api/v1/reservations", {"json": hold_body(show, seats[:2]), "headers": headers})
        )
        reservation = held.json()["reservation_id"]
        changed, cancelled = on_the_front(
            (
                "PUT",
                f"/api/v1/reservations/{reservation}",
                {"json": {"session_id": "alice", "seats_to_reserve": seats[3:5]}, "headers": headers},
            ),
            ("DELETE", f"/api/v1/reservations/{reservation}", {"params": {"session_id": "alice"}, "headers": headers}),
        )

    assert django.count == 0
    assert held.status_code == 201 and held.json()["status"] == "Reservation Successful"
    assert [seat["id"] for seat in held.json()["seats"]] == seats[:2]
    assert changed.status_code == 200 and [seat["id"] for seat in changed.json()["seats"]] == seats[3:5]
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled"
    assert [seat["id"] for seat in cancelled.json()["seats"]] == seats[3:5]
    assert held.headers["cache-control"].startswith("max-age=0, no-cache, no-store")


def test_a_payment_and_its_replay_are_answered_without_django_and_the_replay_is_byte_identical(show, key):
    headers = {"X-API-Key": key}
    (held,) = on_the_front(
        ("POST", "/api/v1/reservations", {"json": hold_body(show, seats_of(show)[:2]), "headers": headers})
    )
    payment = {"json": {"session_id": "alice", "payment": GOOD_CARD}, "headers": {**headers, "Idempotency-Key": "k-1"}}
    url = f"/api/v1/reservations/{held.json()['reservation_id']}/pay"
    with DjangoRequests() as django:
        first, replay = on_the_front(("POST", url, payment), ("POST", url, payment))

    assert django.count == 0
    assert first.status_code == 200 and first.json()["status"] == "Booked" and first.json()["booking_code"]
    assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"


def test_the_seat_map_read_right_after_a_hold_on_the_front_shows_it_held(show, key):
    headers = {"X-API-Key": key}
    seats = seats_of(show)
    url = f"/api/v1/shows/{show.pk}/seats"
    before, _, after = on_the_front(
        ("GET", url, {"headers": headers}),
        ("POST", "/api/v1/reservations", {"json": hold_body(show, seats[:2]), "headers": headers}),
        ("GET", url, {"headers": headers}),
    )
    status_of = {seat["id"]: seat["status"] for seat in after.json()["seats"]}

    assert {seat["status"] for seat in before.json()["seats"]} == {"available"}
    assert [status_of[seat] for seat in seats[:2]] == ["held", "held"]


def test_other_methods_and_paths_still_go_to_django(show, key):
    with DjangoRequests() as django:
        (detail,) = on_the_front(("GET", f"/api/v1/shows/{show.pk}", {"headers": {"X-API-Key": key}}))
    assert detail.status_code == 200 and django.count == 1


def test_the_seat_map_is_read_on_the_front_as_through_django_with_its_etag_and_304(show, key):
    good = {"X-API-Key": key}
    url = f"/api/v1/shows/{show.pk}/seats"
    with DjangoRequests() as django:
        first, again = on_the_front(("GET", url, {"headers": good}), ("GET", url, {"headers": good}))
        (unchanged,) = on_the_front(("GET", url, {"headers": {**good, "If-None-Match": first.headers["etag"]}}))
        (missing,) = on_the_front(("GET", "/api/v1/shows/999999999/seats", {"headers": good}))
        (no_key,) = on_the_front(("GET", url, {}))
    assert django.count == 0
    through_django = on_the_front(
        ("GET", url, {"headers": good}),
        ("GET", "/api/v1/shows/999999999/seats", {"headers": good}),
        ("GET", url, {}),
        app=django_asgi_app,
    )

    assert first.status_code == 200 and first.content == again.content == through_django[0].content
    assert first.headers["etag"] == through_django[0].headers["etag"]
    assert (
        unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == first.headers["etag"]
    )
    assert comparable(missing) == comparable(through_django[1]) and missing.status_code == 404
    assert comparable(no_key) == comparable(through_django[2]) and no_key.status_code == 401


def refusals(show, key, revoked_key):
    """Requests the lean path refuses, each with what makes it wrong."""
    seats = seats_of(show)
    good = {"X-API-Key": key}
    return {
        "no key": ("POST", "/api/v1/reservations", {"json": hold_body(show, seats[:1])}),
        "unknown key": (
            "POST",
            "/api/v1/reservations",
            {"json": hold_body(show, seats[:1]), "headers": {"X-API-Key": "nope"}},
        ),
        "revoked key": (
            "POST",
            "/api/v1/reservations",
            {"json": hold_body(show, seats[:1]), "headers": {"X-API-Key": revoked_key}},
        ),
        "not JSON": (
            "POST",
            "/api/v1/reservations",
            {"content": b"{oops", "headers": {**good, "Content-Type": "application/json"}},
        ),
        "plain text": (
            "POST",
            "/api/v1/reservations",
            {"content": b"seats please", "headers": {**good, "Content-Type": "text/plain"}},
        ),
        "a list": ("POST", "/api/v1/reservations", {"json": [1], "headers": good}),
        "missing fields": ("POST", "/api/v1/reservations", {"json": {"session_id": "alice"}, "headers": good}),
        "no such show": (
            "POST",
            "/api/v1/reservations",
            {"json": {**hold_body(show, seats[:1]), "show_id": 10**9}, "headers": good},
        ),
        "another movie": (
            "POST",
            "/api/v1/reservations",
            {"json": {**hold_body(show, seats[:1]), "movie_id": 10**9}, "headers": good},
        ),
        "seat twice": (
            "POST",
            "/api/v1/reservations",
            {"json": hold_body(show, [seats[0], seats[0]]), "headers": good},
        ),
        "not in hall": ("POST", "/api/v1/reservations", {"json": hold_body(show, [seats[0], 10**9]), "headers": good}),
        "eleven seats": ("POST", "/api/v1/reservations", {"json": hold_body(show, seats[:11]), "headers": good}),
        "unknown hold": (
            "PUT",
            "/api/v1/reservations/00000000-0000-0000-0000-000000000000",
            {"json": {"session_id": "alice", "seats_to_reserve": seats[:1]}, "headers": good},
        ),
        "cancel without session": (
            "DELETE",
            "/api/v1/reservations/00000000-0000-0000-0000-000000000000",
            {"headers": good},
        ),
    }


def comparable(response):
    return (
        response.status_code,
        response.json(),
        response.headers.get("www-authenticate"),
        response.headers.get("retry-after"),
        response.headers.get("cache-control"),
    )


def test_every_refusal_reads_the_same_on_the_front_as_through_django(show, key):
    revoked_key = make_api_key()
    ApiKey.objects.filter(key_hash=hash_api_key(revoked_key)).update(is_revoked=True)
    requests = refusals(show, key, revoked_key)

    front = on_the_front(*requests.values())
    through_django = on_the_front(*requests.values(), app=django_asgi_app)

    for name, on_front, in_django in zip(requests, front, through_django, strict=True):
        assert 400 <= on_front.status_code < 500, (name, on_front.json())
        assert comparable(on_front) == comparable(in_django), name


def test_a_key_over_its_quota_is_refused_429_with_retry_after_on_the_front(show):
    key = make_api_key(rate_per_minute=2)
    seats = seats_of(show)
    answers = on_the_front(
        *[
            (
                "POST",
                "/api/v1/reservations",
                {"json": hold_body(show, [seat], f"s{seat}"), "headers": {"X-API-Key": key}},
            )
            for seat in seats[:3]
        ]
    )
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert answers[2].json()["error"]["code"] == "quota_exceeded" and int(answers[2].headers["retry-after"]) >= 1


def test_a_body_past_the_upload_limit_is_refused_413_before_it_is_read_whole(show, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    (answer,) = on_the_front(
        ("POST", "/api/v1/reservations", {"content": b"[" + b"1," * 2000 + b"1]", "headers": {"X-API-Key": key}})
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"


def test_a_call_through_django_leaves_no_mark_on_its_caller_so_the_next_on_the_front_skips_django(show, key):
    """async_to_sync copies the endpoint's context back to a sync caller: the "through Django" mark must not
    come with it, or the caller's next front requests would run on Django's connection and keep it open."""
    client = APIClient()
    through_django = client.post(
        "/api/v1/reservations", hold_body(show, seats_of(show)[:1]), format="json", HTTP_X_API_KEY=key
    )
    assert through_django.status_code == 201 and not on_django_connection()

    with DjangoRequests() as requests:
        (on_front,) = on_the_front(
            (
                "POST",
                "/api/v1/reservations",
                {"json": hold_body(show, [seats_of(show)[1]], "bob"), "headers": {"X-API-Key": key}},
            )
        )
    assert on_front.status_code == 201 and requests.count == 0


def test_a_held_answer_whose_read_fails_still_ends_with_what_it_held():
    """The status line of a held poll goes at once; if its later read fails (the pool had no connection for it),
    the answer must still end, with the body it held, not be cut mid-way (a client can't read a cut answer)."""
    held = {"waiter_id": "w", "status": "Waiting", "version": 3}

    async def failing_read():
        raise psycopg.OperationalError("no connection available")

    async def endpoint(request):
        return Answer(200, held, later=failing_read())

    sent = []

    async def serve_once():
        requests = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive():
            message = next(requests, None)
            if message is None:
                await asyncio.sleep(3600)  # the client stays until the answer ends
            return message

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/api/v1/waitlist/w", "headers": [], "query_string": b""}
        await LeanFront(app=None)._serve(endpoint, {}, scope, receive, send)

    asyncio.run(serve_once())

    assert sent[0]["status"] == 200 and b"content-length" not in dict(sent[0]["headers"])
    assert json.loads(sent[-1]["body"]) == held and not sent[-1].get("more_body", False)

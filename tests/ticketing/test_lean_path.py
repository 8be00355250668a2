"""The lean path (ticketing.lean): holds, changes and cancels answered on the event loop, outside Django.

Through the ASGI application as uvicorn serves it, these calls never start Django's request cycle, and their
answers are the ones the same endpoints give through Django (where the API tests run them): same statuses,
bodies and headers, refusals included.
"""

import asyncio
import json
from datetime import datetime, timedelta

import httpx
import psycopg
import pytest
import time_machine
from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.core.signals import request_started
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.availability import ataken_seats, live_claims, taken_seats
from bookings.models import Reservation
from bookings.seat_maps import seat_spots
from bookings.seat_picking import pick_best_seats
from bookings.serializers import ReserveSeatsInput
from bookings.services import ahold_seats, cancel_hold, change_seats, hold_seats, holds
from cinemas.models import Show
from cinemas.services import catalog_changed
from tests.bookings.helpers import GOOD_CARD, labelled
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import on_the_front
from ticketing import lean
from ticketing.asgi import application, django_asgi_app
from ticketing.buyers import Buyer
from ticketing.errors import field_messages
from ticketing.lean import (
    Answer,
    LeanError,
    LeanFront,
    close_connections,
    on_a_thread,
    on_django_connection,
    redis_client,
    validated,
)
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


def hold_body(show, seats, session="alice"):
    return {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": seats}


def best_body(show, count, session="alice", **best):
    return {
        "session_id": session,
        "movie_id": show.movie_id,
        "show_id": show.pk,
        "best_available": {"count": count, **best},
    }


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


def test_a_hold_its_change_its_extension_and_its_cancel_are_answered_without_django(show, key, settings):
    seats = seats_of(show)
    headers = {"X-API-Key": key}
    with DjangoRequests() as django:
        (held,) = on_the_front(
            ("POST", "/api/v1/reservations", {"json": hold_body(show, seats[:2]), "headers": headers})
        )
        reservation = held.json()["reservation_id"]
        changed, extended, cancelled = on_the_front(
            (
                "PUT",
                f"/api/v1/reservations/{reservation}",
                {"json": {"session_id": "alice", "seats_to_reserve": seats[3:5]}, "headers": headers},
            ),
            (
                "POST",
                f"/api/v1/reservations/{reservation}/extend",
                {"json": {"session_id": "alice"}, "headers": headers},
            ),
            ("DELETE", f"/api/v1/reservations/{reservation}", {"params": {"session_id": "alice"}, "headers": headers}),
        )

    assert django.count == 0
    assert held.status_code == 201 and held.json()["status"] == "Reservation Successful"
    assert [seat["id"] for seat in held.json()["seats"]] == seats[:2]
    assert changed.status_code == 200 and [seat["id"] for seat in changed.json()["seats"]] == seats[3:5]
    assert extended.status_code == 200 and [seat["id"] for seat in extended.json()["seats"]] == seats[3:5]
    longer = datetime.fromisoformat(extended.json()["expires_at"]) - datetime.fromisoformat(held.json()["expires_at"])
    assert longer == timedelta(seconds=settings.TICKETING_HOLD_EXTENSION_SECONDS)
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
        "no such show, best available": (
            "POST",
            "/api/v1/reservations",
            {"json": {**best_body(show, 2), "show_id": 10**9}, "headers": good},
        ),
        "another movie, best available": (
            "POST",
            "/api/v1/reservations",
            {"json": {**best_body(show, 2), "movie_id": 10**9}, "headers": good},
        ),
        "a type the hall lacks, best available": (
            "POST",
            "/api/v1/reservations",
            {"json": best_body(show, 1, type="Wheelchair"), "headers": good},
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
        "extend an unknown hold": (
            "POST",
            "/api/v1/reservations/00000000-0000-0000-0000-000000000000/extend",
            {"json": {"session_id": "alice"}, "headers": good},
        ),
        "extend without session": (
            "POST",
            "/api/v1/reservations/00000000-0000-0000-0000-000000000000/extend",
            {"json": {}, "headers": good},
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


# The quota counts a key's calls in fixed one-minute windows: calls that must share one are made with the clock held
# inside a window, never where it might turn.
IN_ONE_QUOTA_WINDOW = "2026-11-24 12:00:15+00:00"


def test_a_key_over_its_quota_is_refused_429_with_retry_after_on_the_front(show):
    key = make_api_key(rate_per_minute=2)
    seats = seats_of(show)
    with time_machine.travel(IN_ONE_QUOTA_WINDOW, tick=False):
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


def test_calls_of_one_key_arriving_together_are_each_counted_so_exactly_its_quota_gets_through(show):
    """The quota's counts asked in one turn of the event loop go to Redis in one round trip (ticketing.lean
    Batched): 12 calls at once against a quota of 5 are 5 answers and 7 refusals, whatever the batching."""
    key = make_api_key(rate_per_minute=5)
    redis_calls = []

    async def send_all_at_once():
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 4000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                pipeline_class = type(redis_client().pipeline())
                execute = pipeline_class.execute

                async def counted_execute(pipeline, *args, **kwargs):
                    redis_calls.append(len(pipeline.command_stack))
                    return await execute(pipeline, *args, **kwargs)

                pipeline_class.execute = counted_execute
                try:
                    return await asyncio.gather(
                        *[client.get(f"/api/v1/shows/{show.pk}/seats", headers={"X-API-Key": key}) for _ in range(12)]
                    )
                finally:
                    pipeline_class.execute = execute
        finally:
            await close_connections()

    with time_machine.travel(IN_ONE_QUOTA_WINDOW, tick=False):
        answers = asyncio.run(send_all_at_once())

    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [429] * 7
    assert sum(redis_calls) == 12 and len(redis_calls) < 12


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


# --- Best available on the front: the same looks as through Django, on the event loop ---------------------

WAYS_IN = {"front": application, "django": django_asgi_app}


def held_seats(answer):
    return [seat["id"] for seat in answer.json()["seats"]]


def as_seen(answer):
    """What a buyer reads in a hold's answer, whichever show it is of: its status, its seats by place, the sum."""
    body = answer.json()
    seats = [(seat["row"], seat["number"], seat["type"], seat["price"]) for seat in body["seats"]]
    return answer.status_code, sorted(body), body["status"], seats, body["amount"], body["currency"]


def test_a_best_available_hold_on_the_front_is_the_best_block_and_answered_as_through_django(key):
    headers = {"X-API-Key": key}
    answers = {}
    for way_in, app in WAYS_IN.items():
        show = make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR"] * 3)))
        on_the_front(
            (
                "POST",
                "/api/v1/reservations",
                {"json": hold_body(show, labelled(show, "B5", "B6"), "bob"), "headers": headers},
            )
        )
        with DjangoRequests() as django:
            (answers[way_in],) = on_the_front(
                ("POST", "/api/v1/reservations", {"json": best_body(show, 2), "headers": headers}), app=app
            )
        taken = set(labelled(show, "B5", "B6"))
        best = pick_best_seats(seats=seat_spots(show), taken=taken, count=2)
        # A row back costs less than two seats aside: the centre's own row is taken in the middle.
        assert held_seats(answers[way_in]) == list(best.seat_ids) == labelled(show, "C5", "C6"), way_in
        assert django.count == (0 if way_in == "front" else 1)

    assert answers["front"].status_code == 201 and answers["front"].json()["status"] == "Reservation Successful"
    assert as_seen(answers["front"]) == as_seen(answers["django"])


def taken_meanwhile(monkeypatch, seats):
    """Another buyer holds `seats` right after the first read of the taken seats, whichever way the hold came
    in: a pick made from that read loses them. Returns what each read returned."""
    reads = []
    read, aread, quick = holds.taken_seats, holds.ataken_seats, Buyer(None, "quick")

    def read_then_taken(show_id, at):
        reads.append(read(show_id, at))
        if len(reads) == 1:
            hold_seats(buyer=quick, show_id=show_id, seat_ids=seats)
        return reads[-1]

    async def aread_then_taken(show_id, at):
        reads.append(await aread(show_id, at))
        if len(reads) == 1:
            await ahold_seats(buyer=quick, show_id=show_id, seat_ids=seats)
        return reads[-1]

    monkeypatch.setattr(holds, "taken_seats", read_then_taken)
    monkeypatch.setattr(holds, "ataken_seats", aread_then_taken)
    return reads


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_best_available_looks_again_when_its_pick_is_taken_meanwhile(show, key, monkeypatch, way_in):
    first_pick = labelled(show, "B5", "B6")  # the best two of the empty hall
    reads = taken_meanwhile(monkeypatch, first_pick)

    (held,) = on_the_front(
        ("POST", "/api/v1/reservations", {"json": best_body(show, 2), "headers": {"X-API-Key": key}}),
        app=WAYS_IN[way_in],
    )

    assert held.status_code == 201, held.json()
    assert reads == [set(), set(first_pick)]  # a second look, which saw the seats taken meanwhile
    assert held_seats(held) == labelled(show, "C5", "C6")
    assert set(live_claims(timezone.now()).filter(show=show).values_list("seat_id", flat=True)) == {
        *first_pick,
        *held_seats(held),
    }


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_with_a_single_look_the_same_race_is_lost(show, key, monkeypatch, way_in):
    """The negative control of the test above: what wins that race is the second look."""
    monkeypatch.setattr(holds, "PICK_ATTEMPTS", 1)
    reads = taken_meanwhile(monkeypatch, labelled(show, "B5", "B6"))

    (refused,) = on_the_front(
        ("POST", "/api/v1/reservations", {"json": best_body(show, 2), "headers": {"X-API-Key": key}}),
        app=WAYS_IN[way_in],
    )

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "seats_unavailable"
    assert reads == [set()]


def two_best_available_holds_picking_at_once(show, key, monkeypatch):
    """Two best-available holds on the front, each reading the taken seats before either claims; returns the
    two answers and every read of the taken seats."""
    reads, both_read = [], asyncio.Event()
    aread = holds.ataken_seats

    async def read_together(show_id, at):
        reads.append(await aread(show_id, at))
        if len(reads) >= 2:
            both_read.set()
        await both_read.wait()
        return reads[-1]

    async def send_both():
        both_read.clear()
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 4000))
        headers = {"X-API-Key": key}
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await asyncio.gather(
                    *(
                        client.post("/api/v1/reservations", json=best_body(show, 2, session), headers=headers)
                        for session in ("ann", "ben")
                    )
                )
        finally:
            await close_connections()

    monkeypatch.setattr(holds, "ataken_seats", read_together)
    return asyncio.run(send_both()), reads


def test_best_available_holds_a_process_answers_at_once_pick_past_each_others_seats(show, key, monkeypatch):
    answers, reads = two_best_available_holds_picking_at_once(show, key, monkeypatch)
    assert [answer.status_code for answer in answers] == [201, 201]
    assert len(reads) == 2  # one look each: neither lost its pick to the other
    assert not set(held_seats(answers[0])) & set(held_seats(answers[1]))
    assert holds.PICKS_IN_FLIGHT.by_show == {}  # nothing left behind once answered


def test_negative_control_picking_alone_both_pick_the_same_seats_and_one_looks_again(show, key, monkeypatch):
    monkeypatch.setattr(holds.PICKS_IN_FLIGHT, "of", lambda show_id: frozenset())
    answers, reads = two_best_available_holds_picking_at_once(show, key, monkeypatch)
    assert [answer.status_code for answer in answers] == [201, 201]
    assert len(reads) == 3


def test_a_best_available_hold_on_the_front_with_the_seats_copy_kept_takes_no_thread(show, key, monkeypatch):
    """Every hop to a thread goes through asgiref's SyncToAsync (ticketing.lean.on_a_thread): none once the
    process has the key and the show's seats."""
    hops = []
    call = SyncToAsync.__call__

    async def recorded(self, *args, **kwargs):
        hops.append(self.func)
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", recorded)
    headers = {"X-API-Key": key}
    (first,) = on_the_front(("POST", "/api/v1/reservations", {"json": best_body(show, 2), "headers": headers}))
    first_hops, hops[:] = [getattr(hop, "__name__", hop) for hop in hops], []
    with DjangoRequests() as django:
        (warm,) = on_the_front(
            ("POST", "/api/v1/reservations", {"json": best_body(show, 2, "bob"), "headers": headers})
        )

    assert first.status_code == warm.status_code == 201
    assert "cached" in first_hops  # the probe sees hops: the first hold built the copy on a thread
    assert hops == [] and django.count == 0
    assert held_seats(warm) != held_seats(first)


def test_a_best_available_hold_of_a_show_that_started_is_refused_alike_on_the_front_and_through_django(key):
    show = make_show(hall=make_hall(plan="RRRR"))
    Show.objects.filter(pk=show.pk).update(starts_at=timezone.now() - timedelta(minutes=1))
    catalog_changed()  # as staff's edits do
    request = ("POST", "/api/v1/reservations", {"json": best_body(show, 2), "headers": {"X-API-Key": key}})

    (front,) = on_the_front(request)
    (through_django,) = on_the_front(request, app=django_asgi_app)

    assert front.status_code == 400 and front.json()["error"]["code"] == "show_started"
    assert comparable(front) == comparable(through_django)


def test_the_seats_best_available_counts_as_taken_are_the_live_claims_both_ways(show):
    """Held and booked seats are taken; those of a hold past its time, of a cancelled one, those a hold gave up
    for others, and another show's are not."""
    seats, now = seats_of(show), timezone.now()
    hold_seats(buyer=Buyer(None, "held"), show=show, seat_ids=seats[0:2])
    booked = hold_seats(buyer=Buyer(None, "booked"), show=show, seat_ids=seats[2:4])
    Reservation.objects.filter(pk=booked.pk).update(status=Reservation.Status.BOOKED, booking_code="BOOKED1")
    lapsed = now - timedelta(hours=1)
    hold_seats(buyer=Buyer(None, "lapsed"), show=show, seat_ids=seats[4:6], at=lapsed)
    cancel_hold(
        buyer=Buyer(None, "cancelled"),
        reservation_id=hold_seats(buyer=Buyer(None, "cancelled"), show=show, seat_ids=seats[6:8]).pk,
    )
    changed = hold_seats(buyer=Buyer(None, "changed"), show=show, seat_ids=seats[10:12])
    change_seats(buyer=Buyer(None, "changed"), reservation_id=changed.pk, seat_ids=seats[12:13])  # 10, 11 freed
    other = make_show(hall=show.hall, starts_at=show.starts_at + timedelta(days=1))
    hold_seats(buyer=Buyer(None, "elsewhere"), show=other, seat_ids=seats[8:10])

    async def read_on_the_pool():
        try:
            return await ataken_seats(show.pk, now)
        finally:
            await close_connections()

    live = set(live_claims(now).filter(show=show).values_list("seat_id", flat=True))
    assert live == {*seats[0:4], seats[12]}
    assert taken_seats(show.pk, now) == live and asyncio.run(read_on_the_pool()) == live


def answer_of_a_fresh_serializer(data):
    serializer = ReserveSeatsInput(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else field_messages(serializer.errors)


def answer_of_validated(data):
    try:
        return dict(validated(ReserveSeatsInput, data))
    except LeanError as error:
        return error.answer.body["error"]["fields"]


@pytest.mark.parametrize(
    "calls",
    [
        [{"session_id": "alice", "seat_ids": [1, 2]}, {"session_id": "bob", "seat_ids": "x"}],
        [{"session_id": "bob", "seat_ids": "x"}, {"session_id": "carol", "seat_ids": [3], "surprise": 1}],
        [{"session_id": "carol", "seat_ids": [3], "surprise": 1}, {"session_id": "dan", "seat_ids": [4]}],
        [{"seat_ids": []}, {}, {"session_id": "erin", "seat_ids": [5]}],
    ],
)
def test_the_shared_serializer_of_the_lean_path_answers_each_call_as_a_fresh_one_would(calls):
    """validated() keeps one serializer per class and thread: nothing of one call (its data, its errors, an
    unknown field) reaches the next."""
    assert [answer_of_validated(data) for data in calls] == [answer_of_a_fresh_serializer(data) for data in calls]


def connections_kept_after_reads_on_pool_threads(rounds=3, reads=6):
    """How many of the Django pool's connections are out after `rounds` event loops (as a test's calls start
    and end them) each read the database on `reads` pool threads at once; channels' test communicators
    replace close_old_connections with a no-op, as here."""
    from django.db import connection

    def count_shows():
        return Show.objects.count()

    async def read_at_once():
        await asyncio.gather(*(on_a_thread(count_shows)() for _ in range(reads)))

    for _ in range(rounds):
        asyncio.run(read_at_once())
    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


@pytest.fixture
def close_old_connections_silenced(monkeypatch):
    monkeypatch.setattr("channels.db.close_old_connections", lambda **kwargs: None)


def test_a_read_on_a_pool_thread_gives_its_connection_back_even_where_tests_silence_close_old_connections(
    close_old_connections_silenced,
):
    assert connections_kept_after_reads_on_pool_threads() <= 1  # at most the test's own


def test_negative_control_through_channels_database_sync_to_async_the_connections_stay_out(
    close_old_connections_silenced, monkeypatch
):
    from django.db import connection

    kept = []

    def keeping(function):
        def run():
            try:
                return function()
            finally:
                kept.append(connection.connection)

        return database_sync_to_async(run, thread_sensitive=False)

    monkeypatch.setattr(lean, "on_a_pool_thread", keeping)
    try:
        assert connections_kept_after_reads_on_pool_threads(rounds=1) > 1
    finally:
        for kept_connection in kept:
            kept_connection.close()
        connection.close_pool()  # a new pool for the next test: this one lost track of what it lent

"""The waiting room's API (API.md's error body on every refusal, never a 500) and ReserveSeats on a show behind a
room: 425 sale_not_open before the sale opens, 409 admission_required after without a pass, both naming the
room; 201 with the pass the room gave the session; a pass of another session or on-sale, or expired, 409. Holds
go both ways in (the lean front and Django, as real ASGI requests); the box office passes without a pass."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import AT_THE_COUNTER, hold_seats
from cinemas.on_sales import admission_pass
from tests.bookings.test_hold_idempotency import WAYS_IN, hold_body, hold_call, seats_of
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import assert_api_error, on_the_front
from tests.waiting.rooms import on_sale_of
from ticketing.buyers import Buyer
from waiting.models import RoomVisitor
from waiting.rooms import admit_from_room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key():
    return make_api_key()


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="RRRRRRRRRR"), starts_at=timezone.now() + timedelta(days=2))


def room_url(on_sale):
    return f"/api/v1/on-sales/{on_sale.pk}/room"


def visitor_url(visitor_id, session="alice"):
    return f"/api/v1/room/{visitor_id}?session_id={session}"


def call(key, method, url, body=None):
    options = {"headers": {"X-API-Key": key}}
    if body is not None:
        options["json"] = body
    return (method, url, options)


def join(key, on_sale, session="alice", **body):
    return call(key, "POST", room_url(on_sale), {"session_id": session, **body})


# --- The room ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_joining_is_201_then_200_with_the_same_place_and_the_room_tells_its_times(way_in, show, key):
    on_sale = on_sale_of(show)

    first, again, room = on_the_front(
        join(key, on_sale), join(key, on_sale), call(key, "GET", room_url(on_sale)), app=WAYS_IN[way_in]
    )

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["visitor_id"] == first.json()["visitor_id"]
    assert first.json()["status"] == "Waiting" and first.json()["place"] is None  # drawn at the opening
    assert "admission_pass" not in first.json()
    assert room.status_code == 200 and room.json()["show_ids"] == [show.pk] and room.json()["draw_secret"] is None


def test_a_standing_is_its_own_sessions_alone_and_leaving_ends_it(show, key):
    on_sale = on_sale_of(show)
    (joined,) = on_the_front(join(key, on_sale))
    visitor_id = joined.json()["visitor_id"]

    own, other, other_key, left, left_again = on_the_front(
        call(key, "GET", visitor_url(visitor_id)),
        call(key, "GET", visitor_url(visitor_id, "bob")),
        call(make_api_key(), "GET", visitor_url(visitor_id)),
        call(key, "DELETE", visitor_url(visitor_id)),
        call(key, "DELETE", visitor_url(visitor_id)),
    )

    assert own.status_code == 200 and own.json()["visitor_id"] == visitor_id
    assert_api_error(other, 404, "not_found")  # never another's place, not even that it exists
    assert_api_error(other_key, 404, "not_found")
    assert left.status_code == left_again.status_code == 200 and left.json()["status"] == "Left"
    assert RoomVisitor.objects.get().status == "Left"


@pytest.mark.parametrize(
    ("method", "where", "body", "status", "code"),
    [
        ("POST", "room", {"session_id": ""}, 400, "invalid_request"),
        ("POST", "room", {"session_id": "x" * 500}, 400, "invalid_request"),
        ("POST", "room", {"session_id": "alice", "email": "not an email"}, 400, "invalid_request"),
        ("POST", "room", {"session_id": "alice", "surprise": 1}, 400, "invalid_request"),
        ("POST", "unknown room", {"session_id": "alice"}, 404, "not_found"),
        ("GET", "unknown room", None, 404, "not_found"),
        ("GET", "visitor without session", None, 400, "invalid_request"),
        ("GET", "unknown visitor", None, 404, "not_found"),
        ("DELETE", "unknown visitor", None, 404, "not_found"),
        ("GET", "not a visitor id", None, 404, "not_found"),
    ],
)
def test_bad_input_is_a_4xx_error_body_and_changes_nothing(method, where, body, status, code, show, key):
    on_sale = on_sale_of(show)
    url = {
        "room": room_url(on_sale),
        "unknown room": f"/api/v1/on-sales/{on_sale.pk + 1000}/room",
        "visitor without session": "/api/v1/room/00000000-0000-0000-0000-000000000001",
        "unknown visitor": visitor_url("00000000-0000-0000-0000-000000000001"),
        "not a visitor id": "/api/v1/room/not-a-uuid?session_id=alice",
    }[where]

    (answer,) = on_the_front(call(key, method, url, body))

    assert_api_error(answer, status, code)
    assert not RoomVisitor.objects.exists()


def test_joining_before_the_room_opens_is_425_room_not_open(show, key):
    later = on_sale_of(show, queue_opens_in=300, opens_in=600)
    (early,) = on_the_front(join(key, later))

    assert_api_error(early, 425, "room_not_open")
    assert not RoomVisitor.objects.exists()


# --- ReserveSeats on a show behind a room -----------------------------------------------------------------------


def assert_sent_to_the_room(answer, status, code, on_sale):
    body = assert_api_error(answer, status, code)
    assert body["room"]["on_sale_id"] == on_sale.pk
    assert body["room"]["url"] == room_url(on_sale)
    assert body["room"]["opens_at"].startswith(f"{on_sale.opens_at:%Y-%m-%dT%H:%M}")


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_before_the_sale_opens_a_hold_is_425_sale_not_open_naming_the_room(way_in, show, key):
    on_sale = on_sale_of(show, opens_in=600)

    (answer,) = on_the_front(hold_call(key, hold_body(show, best=1)), app=WAYS_IN[way_in])

    assert_sent_to_the_room(answer, 425, "sale_not_open", on_sale)
    assert "retry-after" in answer.headers
    assert not Reservation.objects.exists()


def opened(show, key, **fields):
    """A show whose sale opened a minute ago, and alice admitted from its room: (on_sale, alice's pass)."""
    on_sale = on_sale_of(show, queue_opens_in=-120, opens_in=-60, **fields)
    (joined,) = on_the_front(join(key, on_sale))
    assert joined.status_code == 201
    admit_from_room(on_sale_id=on_sale.pk)
    (standing,) = on_the_front(call(key, "GET", visitor_url(joined.json()["visitor_id"])))
    assert standing.json()["status"] == "Admitted", standing.json()
    return on_sale, standing.json()["admission_pass"]


def with_pass(key, body, token):
    method, url, options = hold_call(key, body)
    options["headers"]["Admission-Pass"] = token
    return (method, url, options)


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_after_the_opening_a_hold_needs_the_pass_the_room_gave_the_session(way_in, show, key):
    on_sale, token = opened(show, key)
    app = WAYS_IN[way_in]

    (without,) = on_the_front(hold_call(key, hold_body(show, best=1)), app=app)
    assert_sent_to_the_room(without, 409, "admission_required", on_sale)
    assert not Reservation.objects.exists()

    (held,) = on_the_front(with_pass(key, hold_body(show, best=2), token), app=app)
    assert held.status_code == 201, held.content
    assert Reservation.objects.get().session_id == "alice"


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_a_pass_of_another_session_or_on_sale_or_expired_is_409(way_in, show, key):
    on_sale, alices = opened(show, key)
    alice = Buyer(api_key_id=RoomVisitor.objects.get().api_key_id, session_id="alice")
    other_show = make_show(hall=make_hall(plan="RRRR"), starts_at=timezone.now() + timedelta(days=2))
    other_on_sale = on_sale_of(other_show, queue_opens_in=-120, opens_in=-60)
    now = timezone.now()
    passes = {
        "bob with alice's pass": (hold_body(show, best=1, session="bob"), alices),
        "another on-sale's pass": (
            hold_body(show, best=1),
            admission_pass(
                on_sale_id=other_on_sale.pk, visitor_id="v", buyer=alice, expires_at=now + timedelta(minutes=1)
            ),
        ),
        "expired": (
            hold_body(show, best=1),
            admission_pass(on_sale_id=on_sale.pk, visitor_id="v", buyer=alice, expires_at=now - timedelta(seconds=1)),
        ),
        "garbage": (hold_body(show, best=1), "not-a-pass"),
    }
    calls = [with_pass(key, body, token) for body, token in passes.values()]
    calls.append(with_pass(make_api_key(), hold_body(show, best=1), alices))  # another partner's "alice"

    answers = on_the_front(*calls, app=WAYS_IN[way_in])

    for answer in answers:
        assert_sent_to_the_room(answer, 409, "admission_required", on_sale)
    assert not Reservation.objects.exists()


def test_the_box_office_holds_a_show_behind_a_room_without_a_pass(show):
    on_sale_of(show, opens_in=600)  # not even open

    hold = hold_seats(
        buyer=Buyer(None, "counter-1"), show=show, seat_ids=seats_of(show)[:2], admission_pass=AT_THE_COUNTER
    )

    assert hold.status == Reservation.Status.RESERVED

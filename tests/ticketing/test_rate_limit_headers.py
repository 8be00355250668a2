"""Every /api/v1/ answer tells the caller its key's quota (API.md "Additions"): RateLimit-Limit, -Remaining and
-Reset (whole seconds left in the one-minute window), from one rule (ticketing.api_keys.rate_limit_headers),
whichever way the call comes in: a DRF view, a lean endpoint on the front (ticketing.lean.LeanFront), or the
same lean endpoint through Django (LeanApiView). Successes and refusals alike once the key is known; 429 says
Remaining 0 and a Reset equal to its Retry-After.

Each call is a real ASGI request to the application uvicorn serves (or to Django alone), counted in Redis.
"""

import uuid

import pytest
import time_machine

from bookings.services import hold_seats
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import on_the_front
from ticketing.api_keys import rate_limit_headers
from ticketing.asgi import django_asgi_app
from ticketing.buyers import Buyer
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)

AT_SECOND_15 = "2026-11-24 12:00:15+00:00"
AT_SECOND_59_6 = "2026-11-24 12:00:59.600+00:00"
NEXT_MINUTE = "2026-11-24 12:01:00+00:00"

WAYS_IN = {"front": None, "django": django_asgi_app}


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="RRRRRRRRRR"))


def seats_of(show):
    return list(show.hall.seats.order_by("x").values_list("id", flat=True))


def hold_call(show, seats, key, session="alice"):
    body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": seats}
    return ("POST", "/api/v1/reservations", {"json": body, "headers": {"X-API-Key": key}})


def get_call(url, key):
    return ("GET", url, {"headers": {"X-API-Key": key}})


def limits(answer):
    return tuple(int(answer.headers[name]) for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"))


def test_the_rule_counts_down_to_zero_and_resets_in_whole_seconds_never_zero():
    assert rate_limit_headers(10, 1, 44.2) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "9",
        "RateLimit-Reset": "45",
    }
    assert rate_limit_headers(10, 10, 3)["RateLimit-Remaining"] == "0"
    assert rate_limit_headers(10, 12, 0.01) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "1",
    }


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_a_catalog_read_a_drf_view_says_the_keys_limit_what_is_left_and_when_it_resets(way_in, show):
    key = make_api_key(rate_per_minute=5)
    with time_machine.travel(AT_SECOND_15, tick=False):
        first, second = on_the_front(
            get_call("/api/v1/cities", key), get_call("/api/v1/cities", key), app=WAYS_IN[way_in]
        )
    assert first.status_code == second.status_code == 200
    assert limits(first) == (5, 4, 45)
    assert limits(second) == (5, 3, 45)


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_holds_a_lean_endpoint_say_it_too_on_the_front_and_through_django(way_in, show):
    key = make_api_key(rate_per_minute=5)
    seats = seats_of(show)
    with time_machine.travel(AT_SECOND_15, tick=False):
        held, seat_map = on_the_front(
            hold_call(show, seats[:1], key), get_call(f"/api/v1/shows/{show.pk}/seats", key), app=WAYS_IN[way_in]
        )
    assert held.status_code == 201 and seat_map.status_code == 200
    assert limits(held) == (5, 4, 45)
    assert limits(seat_map) == (5, 3, 45)


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_a_poll_of_the_waiting_line_a_lean_endpoint_says_it_too(way_in):
    key = make_api_key(rate_per_minute=5)
    show = make_show(hall=make_hall(plan="R"))
    hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=seats_of(show))
    waiter, _ = join_waiting_line(buyer=Buyer(None, "ann"), show=show, seats_wanted=1)
    with time_machine.travel(AT_SECOND_15, tick=False):
        (polled,) = on_the_front(
            (
                "GET",
                f"/api/v1/waitlist/{waiter.pk}",
                {"params": {"session_id": "other"}, "headers": {"X-API-Key": key}},
            ),
            app=WAYS_IN[way_in],
        )
    assert polled.status_code == 404  # another API key's waiter: never revealed, still counted
    assert limits(polled) == (5, 4, 45)


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_refusals_after_the_key_is_known_carry_them_too(way_in, show):
    key = make_api_key(rate_per_minute=10)
    seats = seats_of(show)
    with time_machine.travel(AT_SECOND_15, tick=False):
        answers = on_the_front(
            hold_call(show, seats[:1], key),
            hold_call(show, seats[:1], key, session="bob"),  # 409: those seats are held
            ("POST", "/api/v1/reservations", {"json": {"session_id": "x"}, "headers": {"X-API-Key": key}}),  # 400
            get_call("/api/v1/shows/999999999", key),  # 404 from a DRF view
            (  # 404 from a lean endpoint
                "PUT",
                f"/api/v1/reservations/{uuid.uuid4()}",
                {"json": {"session_id": "alice", "seats_to_reserve": seats[1:2]}, "headers": {"X-API-Key": key}},
            ),
            app=WAYS_IN[way_in],
        )
    assert [answer.status_code for answer in answers] == [201, 409, 400, 404, 404]
    assert [limits(answer)[1] for answer in answers] == [9, 8, 7, 6, 5]


@pytest.mark.parametrize("way_in", WAYS_IN)
@pytest.mark.parametrize("url", ["/api/v1/cities", "seat_map", "hold"])
def test_past_the_quota_the_429_says_nothing_remains_and_resets_when_retry_after_says(way_in, url, show):
    key = make_api_key(rate_per_minute=2)
    seats = seats_of(show)
    calls = {
        "/api/v1/cities": [get_call("/api/v1/cities", key)] * 3,
        "seat_map": [get_call(f"/api/v1/shows/{show.pk}/seats", key)] * 3,
        "hold": [hold_call(show, [seat], key, session=f"s{seat}") for seat in seats[:3]],
    }[url]
    with time_machine.travel(AT_SECOND_59_6, tick=False):
        *allowed, refused = on_the_front(*calls, app=WAYS_IN[way_in])
    assert [answer.status_code for answer in allowed] == [200 if url != "hold" else 201] * 2
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert limits(refused) == (2, 0, 1)
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]

    with time_machine.travel(NEXT_MINUTE, tick=False):
        (again,) = on_the_front(calls[0], app=WAYS_IN[way_in])
    assert limits(again) == (2, 1, 60)


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_a_call_whose_key_is_missing_or_unknown_has_no_quota_to_tell(way_in, show):
    missing, unknown = on_the_front(
        ("GET", "/api/v1/cities", {}),
        hold_call(show, seats_of(show)[:1], "tk_nobody"),
        app=WAYS_IN[way_in],
    )
    assert missing.status_code == unknown.status_code == 401
    assert "ratelimit-limit" not in missing.headers and "ratelimit-limit" not in unknown.headers

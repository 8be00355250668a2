from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import make_hall, make_show
from tests.helpers import assert_api_error, get_ok

pytestmark = pytest.mark.django_db


def test_show_detail_has_movie_cinema_hall_prices_and_counts(api, scene):
    show = scene.shows[0]
    body = get_ok(api, f"/api/v1/shows/{show.pk}")
    assert body["show_id"] == show.pk and body["movie"]["title"] == "The Quiet Harbor"
    assert body["cinema"]["name"] == "Midtown" and body["hall"] == {"id": show.hall.pk, "name": "Hall 1"}
    assert {"type": "Premium", "price": "15.00"} in body["prices"]
    assert body["currency"] == "USD"
    assert body["counts"] == {"total": 13, "available": 13, "held": 0, "booked": 0}
    assert len(body["seats"]) == 4


def test_the_seat_map_lists_every_seat_of_the_hall_as_available(api, scene):
    show = scene.shows[0]
    body = get_ok(api, f"/api/v1/shows/{show.pk}/seats")
    assert body["show_id"] == show.pk and body["version"] == 0
    assert len(body["seats"]) == show.hall.seats.count() == 13
    first = body["seats"][0]
    assert first == {
        "id": first["id"],
        "row": "A",
        "number": 1,
        "type": "Premium",
        "price": "15.00",
        "status": "available",
        "x": 0,
        "y": 0,
        "version": 0,
    }
    assert {seat["status"] for seat in body["seats"]} == {"available"}
    assert body["counts"] == {"total": 13, "available": 13, "held": 0, "booked": 0}


def test_the_seat_map_of_a_big_hall_takes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    hall = make_hall(plan="\n".join(["RRRRRRRRRR.RRRRRRRRRRRRRRRRRRRR.RRRRRRRRRR"] * 50))
    show = make_show(hall=hall, starts_at=datetime.now(UTC) + timedelta(days=1))
    # API key, show with its catalog, live claims, seat versions, prices, seats: nothing per seat.
    with django_assert_max_num_queries(6):
        body = get_ok(api, f"/api/v1/shows/{show.pk}/seats")
    assert len(body["seats"]) == 2000


def test_an_unknown_show_is_404_with_the_error_body(api):
    assert_api_error(api.get("/api/v1/shows/999999"), 404, "not_found")
    assert_api_error(api.get("/api/v1/shows/999999/seats"), 404, "not_found")

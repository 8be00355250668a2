from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.cinemas.scene import NOW, build_scene
from tests.factories import make_hall, make_show

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(db):
    with time_machine.travel(NOW, tick=False):
        yield build_scene()


def get_ok(api, url, **parameters):
    response = api.get(url, parameters)
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


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
    assert_error(api.get("/api/v1/shows/999999"), 404, "not_found")
    assert_error(api.get("/api/v1/shows/999999/seats"), 404, "not_found")

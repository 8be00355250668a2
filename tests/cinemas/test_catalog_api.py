from datetime import UTC, datetime

import pytest
import time_machine

from cinemas.models import City
from tests.cinemas.scene import NOW
from tests.factories import make_show
from tests.helpers import assert_api_error, get_ok

pytestmark = pytest.mark.django_db


def test_cities_are_listed_by_name_with_their_cinema_counts(api, scene):
    body = get_ok(api, "/api/v1/cities")
    assert [(c["name"], c["cinema_count"]) for c in body["results"]] == [
        ("London", 1),
        ("Los Angeles", 1),
        ("New York", 2),
    ]
    assert body["results"][2] == {
        "id": scene.cities["New York"].pk,
        "name": "New York",
        "state": "NY",
        "country": "United States",
        "cinema_count": 2,
    }
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None


def test_cities_search_matches_part_of_the_name(api, scene):
    assert [c["name"] for c in get_ok(api, "/api/v1/cities", search="lo")["results"]] == ["London", "Los Angeles"]


def test_cities_come_fifty_to_a_page_with_links(api):
    City.objects.bulk_create(City(name=f"Town {n:03}", country="Testland") for n in range(120))
    first = get_ok(api, "/api/v1/cities")
    assert len(first["results"]) == 50 and first["count"] == 120 and first["previous"] is None
    assert first["next"].endswith("/api/v1/cities?page=2")
    third = api.get(first["next"].replace("page=2", "page=3")).json()
    assert [c["name"] for c in third["results"]][0] == "Town 100" and len(third["results"]) == 20
    assert third["next"] is None and "page=2" in third["previous"]
    assert_api_error(api.get("/api/v1/cities", {"page": "zero"}), 400, "invalid_request", "page")


def test_a_page_number_past_any_list_is_a_bad_parameter_not_a_server_error(api):
    # A page this far once made an OFFSET past PostgreSQL's bigint: a 500 (found by schemathesis).
    assert_api_error(api.get("/api/v1/cities", {"page": "184467440737095518"}), 400, "invalid_request", "page")


def test_a_citys_movies_are_those_with_an_upcoming_show_there(api, scene):
    london = get_ok(api, f"/api/v1/cities/{scene.cities['London'].pk}/movies")
    assert [movie["title"] for movie in london] == ["Cargo Nights", "Cars 2"]
    contract = {"id", "title", "description", "duration", "genre", "language", "release_date", "country"}
    catalog_content = {"poster", "posters", "cast", "trailer_url", "certificate", "certificates"}  # added, issue 18
    assert set(london[0]) == contract | catalog_content


def test_a_citys_movies_on_a_date_use_the_cinemas_local_day(api, scene):
    """A show at 03:30 UTC on the 26th is still the evening of the 25th in New York."""
    midtown_hall = scene.shows[0].hall
    late = make_show(hall=midtown_hall, starts_at=datetime(2026, 11, 26, 3, 30, tzinfo=UTC))
    with time_machine.travel(NOW, tick=False):
        url = f"/api/v1/cities/{scene.cities['New York'].pk}/movies"
        on_25th = [movie["title"] for movie in get_ok(api, url, date="2026-11-25")]
        on_26th = [movie["title"] for movie in get_ok(api, url, date="2026-11-26")]
    assert late.movie.title in on_25th and "Cargo Nights" in on_25th  # Brooklyn's 14:00 UTC show on the 25th
    assert on_26th == []


def test_a_citys_movies_refuse_a_bad_date_and_an_unknown_city(api, scene):
    assert_api_error(
        api.get(f"/api/v1/cities/{scene.cities['London'].pk}/movies", {"date": "25/11/2026"}),
        400,
        "invalid_request",
        "date",
    )
    assert_api_error(api.get("/api/v1/cities/999999/movies"), 404, "not_found")


def test_a_movies_shows_in_a_city_are_grouped_by_cinema(api, scene):
    cars = scene.movies["Cars 2"]
    with time_machine.travel(NOW, tick=False):
        body = get_ok(api, f"/api/v1/movies/{cars.pk}/shows", city=scene.cities["New York"].pk)
    assert [entry["cinema"]["name"] for entry in body] == ["Brooklyn Heights", "Midtown"]
    midtown = body[1]
    assert midtown["cinema"]["postal_code"] == "10001" and midtown["cinema"]["lat"] == 40.7506
    assert len(midtown["shows"]) == 1  # the one that already started is not listed
    show = midtown["shows"][0]
    contract = {"show_id", "hall", "start_time", "end_time", "seats"}
    assert set(show) == contract | {"format", "audio_language", "subtitles", "price_range"}  # added, issue 18
    assert show["hall"] == "Hall 1" and show["start_time"] == "2026-11-24T16:00:00Z"
    assert {"type": "Premium", "price": "15.00", "status": "Available"} in show["seats"]


def test_a_movies_shows_need_a_known_city_and_movie(api, scene):
    cars = scene.movies["Cars 2"]
    assert_api_error(api.get(f"/api/v1/movies/{cars.pk}/shows"), 400, "invalid_request", "city")
    assert_api_error(api.get(f"/api/v1/movies/{cars.pk}/shows", {"city": 999999}), 404, "not_found")
    assert_api_error(api.get("/api/v1/movies/999999/shows", {"city": scene.cities["London"].pk}), 404, "not_found")


def test_a_movies_shows_on_a_date(api, scene):
    cargo = scene.movies["Cargo Nights"]
    with time_machine.travel(NOW, tick=False):
        url = f"/api/v1/movies/{cargo.pk}/shows"
        today = get_ok(api, url, city=scene.cities["New York"].pk, date="2026-11-24")
        tomorrow = get_ok(api, url, city=scene.cities["New York"].pk, date="2026-11-25")
    assert [entry["cinema"]["name"] for entry in today] == ["Midtown"]
    assert [entry["cinema"]["name"] for entry in tomorrow] == ["Brooklyn Heights"]


def test_the_openapi_schema_and_its_docs_page_are_served(api, client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/cities",
        "/api/v1/cities/{city_id}/movies",
        "/api/v1/movies/search",
        "/api/v1/movies/{movie_id}/shows",
        "/api/v1/shows/{show_id}",
        "/api/v1/shows/{show_id}/seats",
    ]:
        assert path in paths
    search_parameters = {p["name"] for p in paths["/api/v1/movies/search"]["get"]["parameters"]}
    assert {
        "keyword",
        "city",
        "lat_long",
        "radius",
        "start_datetime",
        "end_datetime",
        "postal_code",
        "include_spellcheck",
        "results_per_page",
        "page",
        "sorting_order",
    } <= search_parameters
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()

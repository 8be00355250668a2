import math
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cinemas.search import KM_PER_DEGREE_OF_LATITUDE, status_for
from tests.cinemas.scene import NOW
from tests.factories import make_cinema, make_hall, make_show
from tests.helpers import assert_api_error

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/movies/search"
MIDTOWN = "40.7506,-73.9935"


def search(api, **parameters):
    response = api.get(SEARCH, parameters)
    assert response.status_code == 200, response.content
    return response.json()


def show_ids(body):
    return [result["show_id"] for result in body["results"]]


def assert_bad_parameter(api, field, **parameters):
    assert_api_error(api.get(SEARCH, parameters), 400, "invalid_request", field=field)


def test_without_parameters_it_lists_upcoming_shows_soonest_first(api, scene):
    body = search(api, results_per_page=30)
    upcoming = sorted(scene.shows, key=lambda show: show.starts_at)
    assert show_ids(body) == [show.pk for show in upcoming]
    assert scene.past_show.pk not in show_ids(body)
    assert body["total"] == 9 and body["page"] == 1 and body["results_per_page"] == 30
    assert "suggestions" not in body


def test_each_result_is_one_show_with_its_movie_cinema_and_seat_types(api, scene):
    show = scene.shows[0]
    result = search(api, keyword="Quiet Harbor")["results"][0]
    assert result["show_id"] == show.pk and result["movie_id"] == show.movie.pk
    assert result["title"] == "The Quiet Harbor"
    assert {"description", "duration", "genre", "language", "release_date", "country"} <= set(result)
    assert result["start_time"] == "2026-11-24T13:00:00Z"
    assert result["cinema"]["name"] == "Midtown" and result["cinema"]["postal_code"] == "10001"
    assert result["cinema"]["lat"] == 40.7506 and result["cinema"]["lng"] == -73.9935
    assert "distance_km" not in result
    assert result["seats"] == [
        {"type": "Companion", "price": "10.00", "status": "Available"},
        {"type": "Premium", "price": "15.00", "status": "Available"},
        {"type": "Regular", "price": "10.00", "status": "Available"},
        {"type": "Wheelchair", "price": "10.00", "status": "Available"},
    ]


def test_keyword_matches_part_of_the_title_in_any_case(api, scene):
    body = search(api, keyword="CAR", results_per_page=30)
    assert {result["title"] for result in body["results"]} == {"Cars 2", "Cargo Nights"}
    assert body["total"] == 7


def test_keyword_matches_a_genre(api, scene):
    assert {result["title"] for result in search(api, keyword="thriller")["results"]} == {"Cargo Nights"}


def test_city_is_taken_by_id_or_by_name(api, scene):
    by_id = search(api, city=scene.cities["London"].pk)
    by_name = search(api, city="london")
    assert show_ids(by_id) == show_ids(by_name) and len(show_ids(by_id)) == 2
    assert {result["cinema"]["name"] for result in by_id["results"]} == {"Leicester Square"}


def test_an_unknown_city_is_a_bad_parameter(api, scene):
    assert_bad_parameter(api, "city", city="Atlantis")
    assert_bad_parameter(api, "city", city="999999")
    assert_bad_parameter(api, "city", city="²")  # a Unicode digit int() refuses: was a 500 (schemathesis)


def test_lat_long_with_radius_keeps_cinemas_within_that_many_km_and_gives_distances(api, scene):
    body = search(api, lat_long=MIDTOWN, radius=10, results_per_page=30)
    assert {result["cinema"]["name"] for result in body["results"]} == {"Midtown", "Brooklyn Heights"}
    distances = {result["cinema"]["name"]: result["distance_km"] for result in body["results"]}
    assert distances["Midtown"] == 0
    assert 6.0 < distances["Brooklyn Heights"] < 6.6  # 40.7506,-73.9935 to 40.6943,-73.9903


def test_the_radius_is_a_great_circle_distance(api, scene):
    # New York to Los Angeles is about 3,940 km and to London about 5,570 km.
    within_4000 = search(api, lat_long=MIDTOWN, radius=4000, results_per_page=30)
    within_5000 = search(api, lat_long=MIDTOWN, radius=5000, results_per_page=30)
    names = {result["cinema"]["name"] for result in within_4000["results"]}
    assert names == {"Midtown", "Brooklyn Heights", "Hollywood Boulevard"}
    assert within_5000["total"] == within_4000["total"]
    la = next(result for result in within_4000["results"] if result["cinema"]["name"] == "Hollywood Boulevard")
    assert 3900 < la["distance_km"] < 3980


def test_a_cinema_in_the_corner_of_the_latitude_longitude_box_but_outside_the_radius_is_left_out(api, scene):
    # The search narrows by a latitude/longitude box around the circle, then measures: a cinema near the box's
    # corner is inside the box but about 13 km away, out of a 10 km circle.
    lat, lng = (float(part) for part in MIDTOWN.split(","))
    lat_span = 10 / KM_PER_DEGREE_OF_LATITUDE
    lng_span = lat_span / math.cos(math.radians(lat))
    corner = make_cinema(
        city=scene.cities["New York"], name="Corner", latitude=lat + 0.95 * lat_span, longitude=lng + 0.95 * lng_span
    )
    corner_show = make_show(hall=make_hall(cinema=corner))
    everywhere = search(api, lat_long=MIDTOWN, results_per_page=30)
    distance = next(r["distance_km"] for r in everywhere["results"] if r["show_id"] == corner_show.pk)
    assert 12 < distance < 14
    within_10 = search(api, lat_long=MIDTOWN, radius=10, results_per_page=30)
    assert {result["cinema"]["name"] for result in within_10["results"]} == {"Midtown", "Brooklyn Heights"}
    assert corner_show.pk in show_ids(search(api, lat_long=MIDTOWN, radius=14, results_per_page=30))


def test_lat_long_alone_gives_distances_without_filtering(api, scene):
    body = search(api, lat_long=MIDTOWN, results_per_page=30)
    assert body["total"] == 9
    assert all("distance_km" in result for result in body["results"])


def test_a_radius_needs_a_lat_long(api, scene):
    assert_bad_parameter(api, "radius", radius=10)


@pytest.mark.parametrize("lat_long", ["40.7", "north,south", "91,0", "0,181", "40.7;-73.9"])
def test_a_bad_lat_long_is_a_bad_parameter(api, scene, lat_long):
    assert_bad_parameter(api, "lat_long", lat_long=lat_long)


@pytest.mark.parametrize("radius", ["0", "-5", "far", "20001"])
def test_a_bad_radius_is_a_bad_parameter(api, scene, radius):
    assert_bad_parameter(api, "radius", lat_long=MIDTOWN, radius=radius)


def test_start_and_end_datetime_bound_the_showtimes(api, scene):
    start, end = NOW + timedelta(hours=2), NOW + timedelta(hours=5)
    body = search(api, start_datetime=start.isoformat(), end_datetime=end.isoformat(), results_per_page=30)
    expected = [
        show.pk for show in sorted(scene.shows, key=lambda show: show.starts_at) if start <= show.starts_at <= end
    ]
    assert show_ids(body) == expected and len(expected) == 4


def test_a_datetime_with_an_offset_is_that_instant_and_one_without_is_utc(api, scene):
    # 09:00 in New York (UTC-5) is 14:00 UTC: the shows at 13:00 UTC and earlier are out.
    with_offset = search(api, start_datetime="2026-11-24T09:00:00-05:00", results_per_page=30)
    naive = search(api, start_datetime="2026-11-24T14:00:00", results_per_page=30)
    assert show_ids(with_offset) == show_ids(naive)
    assert with_offset["total"] == 8


def test_end_before_start_and_unreadable_datetimes_are_bad_parameters(api, scene):
    assert_bad_parameter(
        api, "end_datetime", start_datetime="2026-11-25T00:00:00Z", end_datetime="2026-11-24T00:00:00Z"
    )
    assert_bad_parameter(api, "start_datetime", start_datetime="tomorrow")
    assert_bad_parameter(api, "end_datetime", end_datetime="2026-13-01T00:00:00Z")


def test_postal_code_matches_the_cinema_in_any_case(api, scene):
    assert {r["cinema"]["name"] for r in search(api, postal_code="10001")["results"]} == {"Midtown"}
    assert {r["cinema"]["name"] for r in search(api, postal_code="wc2h 7na")["results"]} == {"Leicester Square"}
    assert search(api, postal_code="99999")["total"] == 0


def test_spellcheck_suggests_titles_from_the_catalog(api, scene):
    body = search(api, keyword="Crs 2", include_spellcheck="yes")
    assert body["total"] == 0
    assert body["suggestions"][0] == "Cars 2"


def test_spellcheck_finds_a_word_of_a_longer_title(api, scene):
    assert "The Quiet Harbor" in search(api, keyword="Harbour", include_spellcheck="yes")["suggestions"]


def test_spellcheck_no_leaves_out_suggestions_and_other_values_are_refused(api, scene):
    assert "suggestions" not in search(api, keyword="Crs 2", include_spellcheck="no")
    assert search(api, include_spellcheck="yes")["suggestions"] == []
    assert_bad_parameter(api, "include_spellcheck", keyword="Crs 2", include_spellcheck="maybe")


def test_results_per_page_goes_up_to_30(api, scene):
    assert len(search(api, results_per_page=30)["results"]) == 9
    assert len(search(api, results_per_page=1)["results"]) == 1
    for too_many_or_few in ["31", "0", "-1", "ten"]:
        assert_bad_parameter(api, "results_per_page", results_per_page=too_many_or_few)


def test_pages_follow_on_without_gaps_or_repeats(api, scene):
    pages = [search(api, results_per_page=4, page=page) for page in (1, 2, 3, 4)]
    ids = [show_id for body in pages for show_id in show_ids(body)]
    assert [len(show_ids(body)) for body in pages] == [4, 4, 1, 0]
    assert ids == show_ids(search(api, results_per_page=30))
    assert all(body["total"] == 9 for body in pages)
    assert_bad_parameter(api, "page", page="0")
    assert_bad_parameter(api, "page", page="first")


def test_a_search_that_matches_nothing_reads_no_page_of_shows(api, scene):
    with CaptureQueriesContext(connection) as captured:
        body = search(api, keyword="Zzyzx", include_spellcheck="no")
    assert (body["total"], body["results"]) == (0, [])
    show_queries = [query["sql"] for query in captured.captured_queries if 'FROM "cinemas_show"' in query["sql"]]
    assert len(show_queries) == 1 and "COUNT(" in show_queries[0]  # the count, and no page query after it


def expected_order(shows, sorting_order, distance=None):
    title = lambda show: show.movie.title  # noqa: E731
    start = lambda show: show.starts_at.timestamp()  # noqa: E731
    keys = {
        "name,asc": lambda show: (title(show), start(show), show.pk),
        "date,asc": lambda show: (start(show), show.pk),
        "distance,asc": lambda show: (distance(show), start(show), show.pk),
        "name,date,asc": lambda show: (title(show), start(show), show.pk),
        "date,name,asc": lambda show: (start(show), title(show), show.pk),
    }
    if sorting_order == "name,desc":  # name descending, then soonest first
        by_start = sorted(shows, key=lambda show: (start(show), show.pk))
        return [show.pk for show in sorted(by_start, key=title, reverse=True)]
    if sorting_order.endswith(",desc"):
        ascending = sorting_order.replace(",desc", ",asc")
        return [show.pk for show in sorted(shows, key=keys[ascending], reverse=True)]
    return [show.pk for show in sorted(shows, key=keys[sorting_order])]


@pytest.mark.parametrize(
    "sorting_order",
    [
        "name,asc",
        "name,desc",
        "date,asc",
        "date,desc",
        "distance,asc",
        "name,date,asc",
        "name,date,desc",
        "date,name,asc",
        "date,name,desc",
    ],
)
def test_every_sorting_order_sorts_as_it_says(api, scene, sorting_order):
    body = search(api, sorting_order=sorting_order, lat_long=MIDTOWN, results_per_page=30)
    distance_of = {result["show_id"]: result["distance_km"] for result in body["results"]}
    expected = expected_order(scene.shows, sorting_order, distance=lambda show: distance_of[show.pk])
    assert show_ids(body) == expected


def test_name_and_date_orders_really_differ_in_this_catalog(api, scene):
    by_name = show_ids(search(api, sorting_order="name,asc", results_per_page=30))
    by_date = show_ids(search(api, sorting_order="date,asc", results_per_page=30))
    by_distance = show_ids(search(api, sorting_order="distance,asc", lat_long=MIDTOWN, results_per_page=30))
    assert len({tuple(by_name), tuple(by_date), tuple(by_distance)}) == 3


def test_distance_order_needs_a_lat_long_and_unknown_orders_are_refused(api, scene):
    assert_bad_parameter(api, "sorting_order", sorting_order="distance,asc")
    assert_bad_parameter(api, "sorting_order", sorting_order="price,asc")


def test_an_unknown_parameter_is_refused_rather_than_ignored(api, scene):
    assert_bad_parameter(api, "sort_order", sort_order="name,asc")


def test_filters_combine(api, scene):
    body = search(api, keyword="cars", city="New York", lat_long=MIDTOWN, radius=3, sorting_order="distance,asc")
    assert [(r["title"], r["cinema"]["name"]) for r in body["results"]] == [("Cars 2", "Midtown")]


@pytest.mark.parametrize(
    ("available", "capacity", "status"),
    [
        (0, 100, "Full"),
        (1, 100, "Almost Full"),
        (20, 100, "Almost Full"),
        (21, 100, "Available"),
        (1, 5, "Almost Full"),
        (2, 5, "Available"),
        (0, 0, "Full"),
    ],
)
def test_seat_type_status_thresholds(available, capacity, status):
    assert status_for(available=available, capacity=capacity) == status

"""Catalog answers (listings, SearchMovies, the catalog pages) are built once and served from the cache for a few
seconds, and every change staff make to cities, cinemas, halls, movies, shows or prices drops them at once.

These tests commit (transaction=True): the cache is used only outside transactions, and staff changes drop
it after they commit. Real PostgreSQL and Redis.
"""

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cinemas.services import CATALOG_GENERATION, plan_from_seats, schedule_show
from tests.cinemas.test_admin import hall_form
from tests.factories import make_cinema, make_city, make_hall, make_movie, make_show, prices_for
from tests.helpers import get_ok
from ticketing.cached_reads import CACHE, mark_changed, recent_change_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listed(db):
    """One upcoming show of "Cars 2" at the Midtown cinema of New York, starting tomorrow at 18:00 there."""
    cinema = make_cinema(name="Midtown", city=make_city(name="New York"))
    starts_at = (timezone.now() + timedelta(days=1)).astimezone(cinema.zone).replace(hour=18, minute=0, second=0)
    return make_show(
        movie=make_movie(title="Cars 2"), hall=make_hall(cinema=cinema, name="Hall 1"), starts_at=starts_at
    )


def admin_url(model, view, *args):
    return reverse(f"admin:cinemas_{model}_{view}", args=args)


def admin_form(row, **changes):
    """The row's admin form as a browser posts it, with `changes`."""
    fields = {name: "" if value is None else value for name, value in model_to_dict(row).items()}
    return {**fields, **changes}


def show_form(show, *, starts_at=None, **prices):
    local = (starts_at or show.starts_at).astimezone(show.hall.cinema.zone)
    current = {f"price_{price.seat_type.lower()}": price.price for price in show.prices.all()}
    return {
        "movie": show.movie_id,
        "hall": show.hall_id,
        "starts_at_0": f"{local:%Y-%m-%d}",
        "starts_at_1": f"{local:%H:%M}",
        "ends_at_0": "",
        "ends_at_1": "",
        "format": show.format,
        "audio_language": show.audio_language,
        "subtitles": show.subtitles,
        **current,
        **prices,
        "prices-TOTAL_FORMS": "0",
        "prices-INITIAL_FORMS": "0",
    }


def posted(response):
    assert response.status_code == 302, response.content.decode()[:2000]


def search(api, **parameters):
    return get_ok(api, "/api/v1/movies/search", **parameters)


# Each staff change, through the admin, and an answer it changes: (what the answer says before, after).
def rename_city(admin, show):
    city = show.hall.cinema.city
    posted(admin.post(admin_url("city", "change", city.pk), admin_form(city, name="Gotham")))


def rename_cinema(admin, show):
    cinema = show.hall.cinema
    posted(admin.post(admin_url("cinema", "change", cinema.pk), admin_form(cinema, name="Uptown")))


def retitle_movie(admin, show):
    # The certificates inline posts its management form.
    certificates = {"certificates-TOTAL_FORMS": "0", "certificates-INITIAL_FORMS": "0"}
    form = admin_form(show.movie, title="Cars 3", **certificates)
    posted(admin.post(admin_url("movie", "change", show.movie_id), form))


def rename_hall(admin, show):
    hall = show.hall
    form = hall_form(hall.cinema, "Screen 9", plan_from_seats(hall.seats.all()))
    posted(admin.post(admin_url("hall", "change", hall.pk), form))


def move_show(admin, show):
    later = show.starts_at + timedelta(hours=2)
    posted(admin.post(admin_url("show", "change", show.pk), show_form(show, starts_at=later)))


def reprice_show(admin, show):
    posted(admin.post(admin_url("show", "change", show.pk), show_form(show, price_regular="13.50")))


def delete_show(admin, show):
    form = {"action": "delete_selected", "_selected_action": [show.pk], "post": "yes"}
    posted(admin.post(admin_url("show", "changelist"), form))


def city_names(api, show):
    return [city["name"] for city in get_ok(api, "/api/v1/cities")["results"]]


def home_page(api, show):
    return "Gotham" in Client().get("/").content.decode()


def cinema_names(api, show):
    listing = get_ok(api, f"/api/v1/movies/{show.movie_id}/shows", city=show.hall.cinema.city_id)
    return [entry["cinema"]["name"] for entry in listing]


def titles_found(api, show):
    return [result["title"] for result in search(api, city=show.hall.cinema.city_id)["results"]]


def search_page(api, show):
    return "Cars 3" in Client().get("/search/", {"q": "Cars", "city": show.hall.cinema.city_id}).content.decode()


def hall_name(api, show):
    return get_ok(api, f"/api/v1/shows/{show.pk}")["hall"]["name"]


def start_times(api, show):
    return [result["start_time"] for result in search(api, keyword="Cars")["results"]]


def showtimes_page(api, show):
    local = show.starts_at.astimezone(show.hall.cinema.zone)
    page = Client().get(f"/cities/{show.hall.cinema.city_id}/movies/{show.movie_id}/", {"date": f"{local:%Y-%m-%d}"})
    return f"{local + timedelta(hours=2):%H:%M}" in page.content.decode()


def regular_prices(api, show):
    found = search(api, keyword="Cars")["results"]
    return [seat["price"] for result in found for seat in result["seats"] if seat["type"] == "Regular"]


def seat_map_prices(api, show):
    seats = get_ok(api, f"/api/v1/shows/{show.pk}/seats")["seats"]
    return sorted({seat["price"] for seat in seats if seat["type"] == "Regular"})


def total_found(api, show):
    return search(api, keyword="Cars")["total"]


STAFF_CHANGES = [
    (rename_city, city_names, ["New York"], ["Gotham"]),
    (rename_city, home_page, False, True),
    (rename_cinema, cinema_names, ["Midtown"], ["Uptown"]),
    (retitle_movie, titles_found, ["Cars 2"], ["Cars 3"]),
    (retitle_movie, search_page, False, True),
    (rename_hall, hall_name, "Hall 1", "Screen 9"),
    (move_show, start_times, None, None),  # any other start time
    (move_show, showtimes_page, False, True),
    (reprice_show, regular_prices, ["10.00"], ["13.50"]),
    (reprice_show, seat_map_prices, ["10.00"], ["13.50"]),
    (delete_show, total_found, 1, 0),
]


@pytest.mark.parametrize(
    ("change", "answer", "before", "after"),
    STAFF_CHANGES,
    ids=[f"{change.__name__}-{answer.__name__}" for change, answer, _, _ in STAFF_CHANGES],
)
def test_a_staff_change_in_the_admin_is_in_the_cached_answer_at_once(
    api, admin_client, listed, change, answer, before, after
):
    first = answer(api, listed)
    assert answer(api, listed) == first  # read twice: the second one from the cache
    change(admin_client, listed)
    changed = answer(api, listed)
    if before is None:
        assert changed != first
    else:
        assert (first, changed) == (before, after)


def test_a_show_scheduled_through_the_service_is_listed_at_once(api, listed):
    assert total_found(api, listed) == 1
    later = listed.starts_at + timedelta(hours=4)
    schedule_show(movie=listed.movie, hall=listed.hall, starts_at=later, prices=prices_for(listed.hall))
    assert total_found(api, listed) == 2


def test_a_search_and_the_home_page_are_answered_from_the_cache_the_second_time(api, listed, django_assert_num_queries):
    first = search(api, keyword="Cars", include_spellcheck="yes")
    with django_assert_num_queries(0):
        assert search(api, keyword="Cars", include_spellcheck="yes") == first
    home = Client().get("/").content
    with django_assert_num_queries(0):  # a first visit: no session to read either
        assert Client().get("/").content == home


def test_no_time_zone_leaks_from_one_cached_answer_into_another(api, listed):
    in_utc = search(api, keyword="Cars")["results"][0]["start_time"]
    with timezone.override("America/New_York"):
        in_new_york = search(api, keyword="Cars")["results"][0]["start_time"]
    assert in_utc.endswith("Z") and in_new_york.endswith(("-05:00", "-04:00"))
    assert search(api, keyword="Cars")["results"][0]["start_time"] == in_utc


def test_without_the_invalidation_a_staff_change_would_stay_unseen(api, admin_client, listed, monkeypatch):
    """Negative control: with catalog_changed's effect taken out, the cached answer from before the change is
    served, so the tests above read the cache and would catch a missing invalidation."""
    monkeypatch.setattr("ticketing.cached_reads.mark_changed", lambda *names: None)
    assert titles_found(api, listed) == ["Cars 2"]
    retitle_movie(admin_client, listed)
    assert titles_found(api, listed) == ["Cars 2"]


@pytest.mark.django_db
def test_without_a_replica_a_catalog_change_leaves_no_mark_for_one():
    """The mark that keeps cache fills on the primary after a change (ticketing.cached_reads) is a replica's."""
    caches[CACHE].delete(recent_change_key(CATALOG_GENERATION))  # another module's, with a replica, may be there
    mark_changed(CATALOG_GENERATION)
    assert caches[CACHE].get(recent_change_key(CATALOG_GENERATION)) is None

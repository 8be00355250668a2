"""The moviegoer's catalog pages: city, the movies showing there, a movie's showtimes by day, search."""

import pytest

from bookings.services import Buyer, hold_seats
from tests.bookings.helpers import seat_ids

pytestmark = pytest.mark.django_db


def test_the_home_page_lists_the_cities_with_cinemas(client, scene):
    page = client.get("/")
    assert page.status_code == 200
    assert b"New York" in page.content and b"London" in page.content


def test_the_city_a_moviegoer_picked_is_offered_first_next_time(client, scene):
    london = scene.cities["London"]
    client.get(f"/cities/{london.pk}/")
    page = client.get("/").content.decode()
    assert f'href="/cities/{london.pk}/"' in page and "See what's on in London" in page


def test_a_city_page_lists_the_movies_showing_there(client, scene):
    page = client.get(f"/cities/{scene.cities['Los Angeles'].pk}/").content.decode()
    assert "Cars 2" in page and "The Quiet Harbor" in page
    assert "Cargo Nights" not in page  # shown in New York and London only


def test_a_movie_page_lists_its_cinemas_and_showtimes_in_local_time_for_the_chosen_day(client, scene):
    new_york, movie = scene.cities["New York"], scene.movies["Cargo Nights"]
    today = client.get(f"/cities/{new_york.pk}/movies/{movie.pk}/").content.decode()
    # Midtown's show starts at 19:00 UTC, 14:00 in New York; Brooklyn Heights' is tomorrow.
    assert "Midtown" in today and "14:00" in today
    assert "Brooklyn Heights" not in today
    tomorrow = client.get(f"/cities/{new_york.pk}/movies/{movie.pk}/", {"date": "2026-11-25"}).content.decode()
    assert "Brooklyn Heights" in tomorrow and "Midtown" not in tomorrow
    assert 'aria-current="date"' in tomorrow


def test_a_day_outside_the_week_or_garbled_falls_back_to_today(client, scene):
    new_york, movie = scene.cities["New York"], scene.movies["Cargo Nights"]
    for day in ("2030-01-01", "not-a-date"):
        page = client.get(f"/cities/{new_york.pk}/movies/{movie.pk}/", {"date": day})
        assert page.status_code == 200 and "Midtown" in page.content.decode()


def test_each_showtime_says_available_almost_full_or_full_and_a_full_one_is_not_a_link(client, scene):
    new_york, movie = scene.cities["New York"], scene.movies["The Quiet Harbor"]
    show = next(show for show in scene.shows if show.movie == movie and show.hall.cinema.city == new_york)
    page = client.get(f"/cities/{new_york.pk}/movies/{movie.pk}/").content.decode()
    assert "Available" in page and f'href="/shows/{show.pk}/"' in page

    hold_seats(buyer=Buyer(None, "everything"), show=show, seat_ids=seat_ids(show)[:10])
    hold_seats(buyer=Buyer(None, "the rest"), show=show, seat_ids=seat_ids(show)[10:])
    page = client.get(f"/cities/{new_york.pk}/movies/{movie.pk}/").content.decode()
    assert "availability--full" in page and f'href="/shows/{show.pk}/"' not in page


def test_an_unknown_city_or_movie_is_a_404(client, scene):
    assert client.get("/cities/999999/").status_code == 404
    assert client.get(f"/cities/{scene.cities['London'].pk}/movies/999999/").status_code == 404


def test_search_finds_movies_with_their_next_showtimes_in_the_city(client, scene):
    page = client.get("/search/", {"q": "car", "city": scene.cities["New York"].pk}).content.decode()
    assert "Cars 2" in page and "Cargo Nights" in page and "The Quiet Harbor" not in page


def test_a_misspelt_search_offers_did_you_mean(client, scene):
    page = client.get("/search/", {"q": "Quiet Harbour"}).content.decode()
    assert "Did you mean" in page and "The Quiet Harbor" in page


def test_an_empty_search_shows_the_form_only(client, scene):
    page = client.get("/search/", {"q": ""})
    assert page.status_code == 200 and b"Search movies" in page.content

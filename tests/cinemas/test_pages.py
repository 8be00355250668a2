"""The moviegoer's catalog pages: city, the movies showing there, a movie's showtimes by day, search."""

import re
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from cinemas.models import OPEN_SEAT_TYPES, MovieCertificate, Show
from cinemas.posters import poster_urls
from cinemas.services import upload_poster
from tests.bookings.helpers import seat_ids, taken_by_others
from tests.cinemas.test_posters import image_file

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


def the_harbor_in_new_york(scene):
    new_york, movie = scene.cities["New York"], scene.movies["The Quiet Harbor"]
    show = next(show for show in scene.shows if show.movie == movie and show.hall.cinema.city == new_york)
    return show, f"/cities/{new_york.pk}/movies/{movie.pk}/"


def showtime(page, show):
    """The showtime's chip on a movie page: its <li>, found by its start time."""
    return re.search(
        rf'<li>\s*(?:(?!</li>).)*datetime="{re.escape(show.starts_at.isoformat())}".*?</li>', page, re.S
    ).group(0)


def open_seats(show):
    return list(show.hall.seats.filter(seat_type__in=OPEN_SEAT_TYPES).values_list("id", flat=True))


def test_each_showtime_says_how_full_it_is_and_links_to_its_seats(client, scene):
    show, url = the_harbor_in_new_york(scene)
    chip = showtime(client.get(url).content.decode(), show)
    assert "Available" in chip and f'href="/shows/{show.pk}/"' in chip


def test_a_show_whose_every_regular_and_premium_seat_is_held_is_full_and_offers_the_line(client, scene, api):
    show, url = the_harbor_in_new_york(scene)
    taken_by_others(show, open_seats(show))  # the wheelchair space and its companion seat stay free
    chip = showtime(client.get(url).content.decode(), show)
    assert '<span class="availability">Full</span>' in chip and "Available" not in chip
    assert f'href="/shows/{show.pk}/"' in chip  # the seat map offers the line, and the wheelchair space
    assert "wait in line" in chip and "wheelchair spaces free" in chip
    # The API's words per seat type are what they were: the open types are Full, the wheelchair space is not.
    seats = {entry["type"]: entry for entry in api.get(f"/api/v1/shows/{show.pk}").json()["seats"]}
    assert {kind: entry["status"] for kind, entry in seats.items()} == {
        "Companion": "Available",
        "Premium": "Full",
        "Regular": "Full",
        "Wheelchair": "Available",
    }
    assert {key for entry in seats.values() for key in entry} == {"type", "price", "status"}


def test_a_show_with_only_wheelchair_spaces_left_is_full_and_links_to_them(client, scene):
    show, url = the_harbor_in_new_york(scene)
    taken_by_others(show, open_seats(show), pay=True)
    chip = showtime(client.get(url).content.decode(), show)
    assert '<span class="availability">Full</span>' in chip and f'href="/shows/{show.pk}/"' in chip
    assert "wheelchair spaces free" in chip and "wait in line" not in chip


def test_a_sold_out_show_is_full_and_not_a_link(client, scene):
    show, url = the_harbor_in_new_york(scene)
    taken_by_others(show, seat_ids(show), pay=True)
    chip = showtime(client.get(url).content.decode(), show)
    assert "availability--full" in chip and "href=" not in chip and "wait in line" not in chip


def test_an_unknown_city_or_movie_is_a_404(client, scene):
    assert client.get("/cities/999999/").status_code == 404
    assert client.get(f"/cities/{scene.cities['London'].pk}/movies/999999/").status_code == 404


def test_search_finds_movies_with_their_next_showtimes_in_the_city(client, scene):
    page = client.get("/search/", {"q": "car", "city": scene.cities["New York"].pk}).content.decode()
    assert "Cars 2" in page and "Cargo Nights" in page and "The Quiet Harbor" not in page


def test_a_search_without_a_city_groups_each_movie_s_showtimes_by_city_in_each_cinema_s_local_time(client, scene):
    page = client.get("/search/", {"q": "Cars 2"}).content.decode()
    card = re.search(r'<li class="movie-card">.*?</li>\s*</ul>\s*</li>', page, re.S)[0]
    groups = re.findall(r'<h3 class="search-city"><a href="/cities/(\d+)/movies/(\d+)/">([^<]+)</a></h3>', card)
    cars = scene.movies["Cars 2"].pk
    # In order of each city's first show: New York (in 2 h), Los Angeles (3 h), London (50 h).
    assert [(int(city), int(movie), name) for city, movie, name in groups] == [
        (scene.cities[name].pk, cars, name) for name in ("New York", "Los Angeles", "London")
    ]
    london = card[card.index(">London<") :]
    shown = [show for show in scene.shows if show.movie_id == cars and show.hall.cinema.name == "Leicester Square"]
    local = timezone.localtime(shown[0].starts_at, ZoneInfo("Europe/London"))
    assert local.strftime("%H:%M") in london and "Leicester Square" in london


def test_a_misspelt_search_offers_did_you_mean(client, scene):
    page = client.get("/search/", {"q": "Quiet Harbour"}).content.decode()
    assert "Did you mean" in page and "The Quiet Harbor" in page


def test_an_empty_search_shows_the_form_only(client, scene):
    page = client.get("/search/", {"q": ""})
    assert page.status_code == 200 and b"Search movies" in page.content


def give_content(movie):
    """Cars 2's certificates in two countries, its cast and its trailer."""
    MovieCertificate.objects.create(movie=movie, country="United States", rating="G")
    MovieCertificate.objects.create(movie=movie, country="United Kingdom", rating="U")
    movie.cast = "Owen Wilson, Michael Caine"
    movie.trailer_url = "https://trailers.example.com/cars-2"
    movie.save()


def movie_card(page, title):
    """The movie's card on a city or search page."""
    cards = page.split('<li class="movie-card">')[1:]
    return next(card for card in cards if f">{title}</a></h2>" in card)


def test_a_city_page_shows_each_movie_with_its_card_poster_and_its_certificate_in_the_city_country(client, scene):
    cars = scene.movies["Cars 2"]
    give_content(cars)
    los_angeles, london = scene.cities["Los Angeles"], scene.cities["London"]
    card = movie_card(client.get(f"/cities/{los_angeles.pk}/").content.decode(), "Cars 2")
    assert f'src="{poster_urls(cars)["card"]}" width="240" height="360" alt="Cars 2" loading="lazy"' in card
    assert re.search(r'class="certificate">.*?</span>\s*G</span>', card, re.S)
    card = movie_card(client.get(f"/cities/{london.pk}/").content.decode(), "Cars 2")
    assert (
        re.search(r'class="certificate">.*?</span>\s*U</span>', card, re.S) and "Certificate in United Kingdom" in card
    )


def test_a_movie_without_a_certificate_in_the_country_shows_none(client, scene):
    page = client.get(f"/cities/{scene.cities['Los Angeles'].pk}/").content.decode()
    assert 'class="certificate"' not in page


def test_search_results_show_the_card_poster_and_the_certificate_where_the_cinema_is(client, scene):
    cars = scene.movies["Cars 2"]
    give_content(cars)
    page = client.get("/search/", {"q": "Cars", "city": scene.cities["London"].pk}).content.decode()
    assert f'src="{poster_urls(cars)["card"]}" width="240" height="360" alt="Cars 2" loading="lazy"' in page
    assert re.search(r'class="certificate">.*?</span>\s*U</span>', page, re.S)


def test_the_movie_page_shows_the_large_poster_the_certificate_the_cast_and_a_trailer_link(client, scene):
    cars = scene.movies["Cars 2"]
    give_content(cars)
    page = client.get(f"/cities/{scene.cities['New York'].pk}/movies/{cars.pk}/").content.decode()
    img = re.search(r'<img class="poster poster--detail"[^>]*>', page)[0]
    assert f'src="{poster_urls(cars)["detail"]}" width="480" height="720" alt="Cars 2"' in img
    assert "loading=" not in img  # the page's main picture is fetched at once
    assert re.search(r'class="certificate">.*?</span>\s*G</span>', page, re.S)
    assert "Starring Owen Wilson, Michael Caine" in page
    link = re.search(r'<a class="trailer"[^>]*>', page)[0]
    assert 'href="https://trailers.example.com/cars-2"' in link and 'rel="noopener"' in link


def test_an_uploaded_poster_is_the_one_shown(client, scene):
    cars = scene.movies["Cars 2"]
    upload_poster(movie=cars, image=image_file())
    cars.refresh_from_db()
    page = client.get(f"/cities/{scene.cities['Los Angeles'].pk}/").content.decode()
    assert f'src="{cars.poster_card.url}" width="240"' in page and "placeholder" not in movie_card(page, "Cars 2")


def test_a_movie_without_cast_or_trailer_says_nothing_of_them(client, scene):
    page = client.get(f"/cities/{scene.cities['New York'].pk}/movies/{scene.movies['Cars 2'].pk}/").content.decode()
    assert "Starring" not in page and 'class="trailer"' not in page


def test_each_showtime_shows_its_format_and_its_price_range_in_the_sites_currency(client, scene):
    show, url = the_harbor_in_new_york(scene)  # Regular 10.00, Premium 15.00 (tests.factories.prices_for)
    Show.objects.filter(pk=show.pk).update(format="IMAX")
    chip = showtime(client.get(url).content.decode(), show)
    assert '<span class="showtime__format" data-format="IMAX">IMAX</span>' in chip
    assert "$10.00 to $15.00" in chip
    assert "showtime__language" not in chip and "showtime__subtitles" not in chip  # the movie's own, no subtitles


def test_a_showtime_in_another_language_says_so_and_names_its_subtitles(client, scene):
    show, url = the_harbor_in_new_york(scene)
    Show.objects.filter(pk=show.pk).update(audio_language="Spanish", subtitles="English")
    chip = showtime(client.get(url).content.decode(), show)
    assert "in Spanish" in chip and "English subtitles" in chip


def test_a_showtime_played_in_the_movies_own_language_does_not_repeat_it(client, scene):
    show, url = the_harbor_in_new_york(scene)
    Show.objects.filter(pk=show.pk).update(audio_language="English")  # the movie's language, written out
    assert "showtime__language" not in showtime(client.get(url).content.decode(), show)


def test_a_sold_out_showtime_still_shows_its_format_and_prices(client, scene):
    show, url = the_harbor_in_new_york(scene)
    taken_by_others(show, seat_ids(show), pay=True)
    chip = showtime(client.get(url).content.decode(), show)
    assert "href=" not in chip and 'data-format="2D"' in chip and "$10.00 to $15.00" in chip


def test_the_price_range_is_written_the_spanish_way_on_a_spanish_page(client, scene):
    show, url = the_harbor_in_new_york(scene)
    chip = showtime(client.get(url, headers={"accept-language": "es"}).content.decode(), show)
    assert "10,00\xa0US$ a 15,00\xa0US$" in chip

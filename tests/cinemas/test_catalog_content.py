"""Catalog content: certificates per country and a show's format, guarded by the database; and the fields the API
adds for them (movies: poster, certificate(s), cast, trailer; showtimes: format, languages, price range)."""

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.urls import reverse

from cinemas.models import MovieCertificate, Show
from cinemas.services import schedule_show
from tests.cinemas.scene import NOW
from tests.factories import make_hall, make_movie, prices_for
from tests.helpers import get_ok

pytestmark = pytest.mark.django_db


# --- What the database guarantees --------------------------------------------------------------------------------


def test_a_movie_has_one_certificate_per_country_and_the_database_refuses_a_second():
    movie = make_movie()
    MovieCertificate.objects.create(movie=movie, country="India", rating="UA 13+")
    MovieCertificate.objects.create(movie=movie, country="United Kingdom", rating="12A")
    with pytest.raises(IntegrityError, match="cinemas_moviecertificate_one_per_country"), transaction.atomic():
        MovieCertificate.objects.create(movie=movie, country="India", rating="A")
    assert MovieCertificate.objects.get(movie=movie, country="India").rating == "UA 13+"


def test_a_rating_from_another_countrys_table_is_refused_by_the_database():
    movie = make_movie()
    with pytest.raises(IntegrityError, match="cinemas_moviecertificate_rating_of_country"), transaction.atomic():
        MovieCertificate.objects.create(movie=movie, country="India", rating="PG-13")
    MovieCertificate.objects.create(movie=movie, country="United States", rating="PG-13")  # where it belongs


def test_a_shows_format_outside_the_choices_is_refused_by_the_database(show):
    with pytest.raises(IntegrityError, match="cinemas_show_format_known"), transaction.atomic():
        Show.objects.filter(pk=show.pk).update(format="8K")
    Show.objects.filter(pk=show.pk).update(format="IMAX 3D")
    assert Show.objects.get(pk=show.pk).format == "IMAX 3D"


def test_a_second_certificate_for_a_country_is_refused_on_the_movie_form(admin_client):
    movie = make_movie(title="Monsoon Express", language="Hindi")
    form = {
        "title": movie.title,
        "description": "",
        "duration": movie.duration,
        "genre": movie.genre,
        "language": movie.language,
        "release_date": "2026-10-30",
        "country": "India",
        "cast": "",
        "trailer_url": "not a link",
        "certificates-TOTAL_FORMS": "3",
        "certificates-INITIAL_FORMS": "0",
        "certificates-0-country": "India",
        "certificates-0-rating": "UA 16+",
        "certificates-1-country": "India",
        "certificates-1-rating": "A",
        "certificates-2-country": "United States",
        "certificates-2-rating": "UA 16+",
    }
    response = admin_client.post(reverse("admin:cinemas_movie_change", args=[movie.pk]), form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Please correct the duplicate data for country." in page
    assert "This rating is not one of that country&#x27;s certificates." in page
    assert "Enter a valid URL." in page
    assert not MovieCertificate.objects.filter(movie=movie).exists()


# --- The API's added fields ------------------------------------------------------------------------------------


@pytest.fixture
def rated(scene):
    """The scene, with Cars 2 rated in the US and the UK, a cast and a trailer, and an IMAX show in London."""
    cars = scene.movies["Cars 2"]
    cars.cast, cars.trailer_url = "Owen Wilson, Michael Caine", "https://trailers.example.com/cars-2"
    cars.save()
    MovieCertificate.objects.create(movie=cars, country="United States", rating="G")
    MovieCertificate.objects.create(movie=cars, country="United Kingdom", rating="U")
    london_hall = scene.shows[-1].hall
    with time_machine.travel(NOW, tick=False):
        scene.imax = schedule_show(
            movie=cars,
            hall=london_hall,
            starts_at=NOW + timedelta(hours=60),
            prices=prices_for(london_hall, base="11.00"),
            format="IMAX",
            audio_language="Hindi",
            subtitles="English",
        )
    return scene


def test_a_citys_movies_carry_the_certificate_of_the_citys_country_and_every_country_s(api, rated):
    with time_machine.travel(NOW, tick=False):
        london = get_ok(api, f"/api/v1/cities/{rated.cities['London'].pk}/movies")
        new_york = get_ok(api, f"/api/v1/cities/{rated.cities['New York'].pk}/movies")
    cars_in_london = next(movie for movie in london if movie["title"] == "Cars 2")
    cars_in_new_york = next(movie for movie in new_york if movie["title"] == "Cars 2")
    assert (cars_in_london["certificate"], cars_in_new_york["certificate"]) == ("U", "G")
    assert cars_in_london["certificates"] == [
        {"country": "United Kingdom", "rating": "U"},
        {"country": "United States", "rating": "G"},
    ]
    assert cars_in_london["cast"] == "Owen Wilson, Michael Caine"
    assert cars_in_london["trailer_url"] == "https://trailers.example.com/cars-2"
    cargo = next(movie for movie in london if movie["title"] == "Cargo Nights")
    assert (cargo["certificate"], cargo["certificates"], cargo["cast"], cargo["trailer_url"]) == (None, [], "", None)


def test_a_movies_poster_is_an_absolute_address_that_serves_the_image(api, client, rated):
    with time_machine.travel(NOW, tick=False):
        movie = get_ok(api, f"/api/v1/cities/{rated.cities['London'].pk}/movies")[0]
    assert movie["poster"] == movie["posters"]["detail"]
    for size in ("card", "detail"):
        url = movie["posters"][size]
        assert url.startswith("http://127.0.0.1:8000/media/posters/")  # TICKETING_SITE_URL's address
        response = client.get(url.removeprefix("http://127.0.0.1:8000"))
        assert response.status_code == 200 and response["Content-Type"] == "image/webp", size


def test_showtimes_carry_their_format_languages_and_price_range(api, rated):
    cars, london = rated.movies["Cars 2"], rated.cities["London"]
    with time_machine.travel(NOW, tick=False):
        body = get_ok(api, f"/api/v1/movies/{cars.pk}/shows", city=london.pk)
    plain, imax = body[0]["shows"]
    assert (plain["format"], plain["audio_language"], plain["subtitles"]) == ("2D", "English", None)
    assert (imax["format"], imax["audio_language"], imax["subtitles"]) == ("IMAX", "Hindi", "English")
    assert plain["price_range"] == {"min": "10.00", "max": "15.00", "currency": "USD"}
    assert imax["price_range"] == {"min": "11.00", "max": "16.00", "currency": "USD"}
    assert {"type": "Premium", "price": "16.00", "status": "Available"} in imax["seats"]  # the old fields stay


def test_a_search_result_carries_the_certificate_of_its_cinemas_country_and_its_shows_format(api, rated):
    with time_machine.travel(NOW, tick=False):
        body = get_ok(api, "/api/v1/movies/search", keyword="Cars 2", results_per_page=30)
    by_cinema = {(result["cinema"]["name"], result["format"]): result for result in body["results"]}
    assert by_cinema[("Leicester Square", "IMAX")]["certificate"] == "U"
    assert by_cinema[("Midtown", "2D")]["certificate"] == "G"
    imax = by_cinema[("Leicester Square", "IMAX")]
    assert (imax["audio_language"], imax["subtitles"], imax["cast"]) == (
        "Hindi",
        "English",
        "Owen Wilson, Michael Caine",
    )
    assert imax["price_range"] == {"min": "11.00", "max": "16.00", "currency": "USD"}
    assert imax["title"] == "Cars 2" and imax["language"] == "English"  # the contract's fields, unchanged


def test_a_shows_details_carry_its_format_languages_price_range_and_the_certificate_where_it_plays(api, rated):
    with time_machine.travel(NOW, tick=False):
        body = get_ok(api, f"/api/v1/shows/{rated.imax.pk}")
    assert (body["format"], body["audio_language"], body["subtitles"]) == ("IMAX", "Hindi", "English")
    assert body["price_range"] == {"min": "11.00", "max": "16.00", "currency": "USD"}
    assert body["movie"]["certificate"] == "U" and body["movie"]["title"] == "Cars 2"
    assert {"show_id", "start_time", "end_time", "movie", "cinema", "hall", "prices", "currency", "counts"} <= set(body)


def test_the_schema_documents_the_added_fields(api):
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]
    assert {"poster", "posters", "cast", "trailer_url", "certificate", "certificates"} <= set(
        schema["Movie"]["properties"]
    )
    assert {"format", "audio_language", "subtitles", "price_range"} <= set(schema["Showtime"]["properties"])
    assert {"format", "audio_language", "subtitles", "price_range"} <= set(schema["ShowDetail"]["properties"])


def test_a_hall_scheduled_without_format_or_languages_plays_2d_in_the_movies_language():
    hall = make_hall()
    movie = make_movie(language="Kannada")
    show = schedule_show(movie=movie, hall=hall, starts_at=NOW, prices=prices_for(hall))
    assert (show.format, show.spoken_language, show.subtitles) == ("2D", "Kannada", "")

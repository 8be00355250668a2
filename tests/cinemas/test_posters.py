"""Posters: staff upload one in the admin, it is checked and resized with Pillow, stored under its content's hash and
served with a year's cache; a bad file is refused on the form and changes nothing; a movie without one gets a
placeholder drawn from its title."""

from io import BytesIO

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from cinemas import posters
from cinemas.models import Movie
from cinemas.posters import poster_urls
from cinemas.services import upload_poster
from tests.factories import make_movie

pytestmark = pytest.mark.django_db

YEAR_IMMUTABLE = "public, max-age=31536000, immutable"


def image_file(width=600, height=900, *, image_format="PNG", colour=(200, 40, 40), mode="RGB", name="poster.png"):
    buffer = BytesIO()
    Image.new(mode, (width, height), colour).save(buffer, format=image_format)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{image_format.lower()}")


def movie_form(movie, **changes):
    """The movie's admin form as a browser posts it (no certificates), with `changes`."""
    fields = {
        "title": movie.title,
        "description": movie.description,
        "duration": movie.duration,
        "genre": movie.genre,
        "language": movie.language,
        "release_date": f"{movie.release_date:%Y-%m-%d}",
        "country": movie.country,
        "cast": movie.cast,
        "trailer_url": movie.trailer_url,
        "certificates-TOTAL_FORMS": "0",
        "certificates-INITIAL_FORMS": "0",
    }
    return {**fields, **changes}


def change_url(movie):
    return reverse("admin:cinemas_movie_change", args=[movie.pk])


def fetched(client, url):
    """GET a poster's URL; return the response and the decoded image."""
    response = client.get(url)
    assert response.status_code == 200, url
    return response, Image.open(BytesIO(b"".join(response.streaming_content)))


def form_errors(response):
    return {
        field: [str(message) for message in messages]
        for field, messages in response.context["adminform"].form.errors.items()
    }


def test_an_uploaded_poster_is_resized_to_the_pages_widths_and_served_with_a_years_cache(admin_client, client):
    movie = make_movie(title="Orbital Drift")
    response = admin_client.post(change_url(movie), movie_form(movie, poster_upload=image_file(1200, 1600)))
    assert response.status_code == 302, form_errors(response)

    movie.refresh_from_db()
    urls = poster_urls(movie)
    for size, width in [("card", 240), ("detail", 480)]:
        assert urls[size].startswith("/media/posters/") and urls[size].endswith(".webp")
        served, image = fetched(client, urls[size])
        assert served["Content-Type"] == "image/webp" and served["Cache-Control"] == YEAR_IMMUTABLE
        assert (image.format, image.size) == ("WEBP", (width, width * 3 // 2))  # cropped to 2:3, then resized


def test_a_posters_file_is_named_by_its_content_so_the_same_image_gets_the_same_name():
    first, second, other = make_movie(), make_movie(), make_movie()
    upload_poster(movie=first, image=image_file(colour=(10, 120, 200)))
    upload_poster(movie=second, image=image_file(colour=(10, 120, 200)))
    upload_poster(movie=other, image=image_file(colour=(250, 200, 0)))
    names = [Movie.objects.get(pk=movie.pk).poster.name for movie in (first, second, other)]
    assert names[0] == names[1] != names[2]


def test_a_file_that_is_not_an_image_gets_a_form_error_and_changes_nothing(admin_client):
    movie = make_movie(title="Hollow Creek")
    not_an_image = SimpleUploadedFile("poster.png", b"%PDF-1.7 this is not a picture", content_type="image/png")
    response = admin_client.post(change_url(movie), movie_form(movie, title="Renamed", poster_upload=not_an_image))
    assert response.status_code == 200
    assert form_errors(response) == {
        "poster_upload": ["This file is not an image Pillow can read: upload a JPEG, PNG or WebP."]
    }
    movie.refresh_from_db()
    assert (movie.title, movie.poster.name) == ("Hollow Creek", "")  # the other fields' changes were rolled back too


@pytest.mark.parametrize(
    ("upload", "error"),
    [
        pytest.param(
            lambda: image_file(8000, 6000, mode="1", colour=1),  # a small file that decodes to 48 million pixels
            "The image is 8000 × 6000 pixels; a poster may have at most 40 million.",
            id="too-many-pixels",
        ),
        pytest.param(
            lambda: image_file(200, 300),
            "The image is 200 × 300 pixels; a poster needs at least 240 × 360.",
            id="small",
        ),
        pytest.param(
            lambda: image_file(image_format="GIF", name="poster.gif"),
            "This is a GIF image; upload a JPEG, PNG or WebP.",
            id="gif",
        ),
        pytest.param(
            lambda: SimpleUploadedFile("cut.jpg", image_file(image_format="JPEG").read()[:2000]),
            "The image is damaged or cut short: upload the whole file again.",
            id="truncated",
        ),
    ],
)
def test_an_unsuitable_image_gets_a_clear_form_error_and_changes_nothing(admin_client, upload, error):
    movie = make_movie()
    response = admin_client.post(change_url(movie), movie_form(movie, poster_upload=upload()))
    assert response.status_code == 200 and form_errors(response) == {"poster_upload": [error]}
    assert Movie.objects.get(pk=movie.pk).poster.name == ""


def test_a_file_over_the_byte_limit_is_refused_before_pillow_reads_it(admin_client, monkeypatch):
    monkeypatch.setattr(posters, "MAX_UPLOAD_BYTES", 1024 * 1024)
    movie = make_movie()
    big = SimpleUploadedFile("big.png", b"\0" * (3 * 1024 * 1024 // 2), content_type="image/png")
    response = admin_client.post(change_url(movie), movie_form(movie, poster_upload=big))
    assert form_errors(response) == {"poster_upload": ["The file is 1.5 MB; a poster may be at most 1 MB."]}
    assert Movie.objects.get(pk=movie.pk).poster.name == ""


def test_the_movie_form_shows_the_poster_as_a_preview(admin_client):
    movie = make_movie(title="Little Comet")
    upload_poster(movie=movie, image=image_file())
    page = admin_client.get(change_url(movie)).content.decode()
    assert f'<img src="{poster_urls(Movie.objects.get(pk=movie.pk))["card"]}"' in page


def test_replacing_or_removing_a_poster_deletes_the_files_no_movie_uses_any_more(
    admin_client, django_capture_on_commit_callbacks
):
    movie, sharing = make_movie(), make_movie()
    with django_capture_on_commit_callbacks(execute=True):
        upload_poster(movie=movie, image=image_file(colour=(1, 2, 3)))
        upload_poster(movie=sharing, image=image_file(colour=(1, 2, 3)))
    first = Movie.objects.get(pk=movie.pk)
    old_names = [first.poster.name, first.poster_card.name]

    with django_capture_on_commit_callbacks(execute=True):
        upload_poster(movie=movie, image=image_file(colour=(9, 9, 9)))
    assert all(default_storage.exists(name) for name in old_names)  # the other movie still shows them

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(change_url(sharing), movie_form(sharing, remove_poster="on"))
    assert response.status_code == 302
    assert not any(default_storage.exists(name) for name in old_names)
    assert Movie.objects.get(pk=sharing.pk).poster.name == ""


def test_a_movie_without_a_poster_gets_a_placeholder_drawn_from_its_title(client):
    movie = make_movie(title="Kaveri Nights")
    urls = poster_urls(movie)
    for size, width in [("card", 240), ("detail", 480)]:
        assert "/placeholder/" in urls[size]
        served, image = fetched(client, urls[size])
        assert served["Cache-Control"] == YEAR_IMMUTABLE and image.size == (width, width * 3 // 2)
    # The placeholder follows the title: a new title is a new address, and the old one is gone.
    Movie.objects.filter(pk=movie.pk).update(title="Kaveri Nights: Encore")
    assert poster_urls(Movie.objects.get(pk=movie.pk))["card"] != urls["card"]
    default_storage.delete(urls["card"].removeprefix("/media/"))
    assert client.get(urls["card"]).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/media/posters/../../ticketing/settings.py",
        "/media/posters/480-0123456789abcdef0123.webp",  # the right shape, but no such file
        "/media/posters/placeholder/999999/0123456789ab-240.webp",
        "/media/other.txt",
    ],
)
def test_nothing_but_posters_is_served_from_media(client, path):
    assert client.get(path).status_code == 404


def test_a_placeholder_is_drawn_only_at_the_sizes_the_pages_use(client):
    movie = make_movie()
    card = poster_urls(movie)["card"]
    assert client.get(card.replace("-240.webp", "-4000.webp")).status_code == 404

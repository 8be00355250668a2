"""The filters of a movie's showtimes page: language, format, time of day (in the cinema's zone) and price."""

from datetime import timedelta

import pytest

from cinemas.models import Show
from tests.cinemas.scene import NOW
from tests.cinemas.test_pages import showtime
from tests.factories import make_hall, make_show

pytestmark = pytest.mark.django_db


@pytest.fixture
def day(scene):
    """Four shows of Cars 2 at Midtown (New York, UTC-5) on 25 November, the scene's second day, in local time:
    07:00 IMAX in Spanish with English subtitles from $20, 13:00 2D from $10, 18:00 3D from $8, 22:30 2D from $10
    (03:30 on the 26th in UTC). Returns the shows, the page and its query for that day."""
    cars, new_york = scene.movies["Cars 2"], scene.cities["New York"]
    midtown = scene.cinemas["Midtown"]
    on = NOW.replace(hour=0) + timedelta(days=1)  # 2026-11-25 00:00 UTC, 19:00 on the 24th in New York

    def at(hour, minute=0, **fields):
        # hours in New York time on the 25th (UTC-5)
        prices = fields.pop("prices", None)
        hall = make_hall(cinema=midtown)
        starts = on + timedelta(hours=hour + 5, minutes=minute)
        show = make_show(movie=cars, hall=hall, starts_at=starts, prices=prices)
        Show.objects.filter(pk=show.pk).update(**fields)
        return show

    base = {"Regular": 10, "Premium": 15, "Wheelchair": 10, "Companion": 10}
    shows = {
        "imax morning": at(
            7,
            format="IMAX",
            audio_language="Spanish",
            subtitles="English",
            prices={kind: price + 10 for kind, price in base.items()},
        ),
        "2d afternoon": at(13),
        "3d evening": at(18, format="3D", prices={kind: price - 2 for kind, price in base.items()}),
        "2d night": at(22, 30),
    }
    url = f"/cities/{new_york.pk}/movies/{cars.pk}/"
    return shows, url, {"date": "2026-11-25"}


def chips(client, url, query):
    page = client.get(url, query)
    assert page.status_code == 200
    return page.content.decode()


def shown(page, shows):
    return {name for name, show in shows.items() if f'datetime="{show.starts_at.isoformat()}"' in page}


def test_without_filters_the_day_shows_every_showtime(client, day):
    shows, url, query = day
    assert shown(chips(client, url, query), shows) == set(shows)


def test_the_language_filter_keeps_the_shows_played_in_it(client, day):
    shows, url, query = day
    assert shown(chips(client, url, {**query, "language": "Spanish"}), shows) == {"imax morning"}
    assert shown(chips(client, url, {**query, "language": "english"}), shows) == set(shows) - {"imax morning"}


def test_the_format_filter_keeps_the_shows_of_that_format(client, day):
    shows, url, query = day
    assert shown(chips(client, url, {**query, "format": "IMAX"}), shows) == {"imax morning"}
    assert shown(chips(client, url, {**query, "format": "2D"}), shows) == {"2d afternoon", "2d night"}


@pytest.mark.parametrize(
    ("time", "kept"),
    [
        ("morning", {"imax morning"}),
        ("afternoon", {"2d afternoon"}),
        ("evening", {"3d evening"}),
        ("night", {"2d night"}),
    ],
)
def test_the_time_of_day_is_counted_in_the_cinemas_own_zone(client, day, time, kept):
    shows, url, query = day
    assert shown(chips(client, url, {**query, "time": time}), shows) == kept


def test_the_price_filter_keeps_the_shows_with_seats_at_that_price_or_less(client, day):
    shows, url, query = day
    assert shown(chips(client, url, {**query, "price": "9"}), shows) == {"3d evening"}
    assert shown(chips(client, url, {**query, "price": "10.00"}), shows) == {"3d evening", "2d afternoon", "2d night"}
    assert shown(chips(client, url, {**query, "price": "25,5"}), shows) == set(shows)  # a decimal comma too


def test_filters_combine_and_the_form_keeps_them_and_the_day(client, day):
    shows, url, query = day
    page = chips(client, url, {**query, "format": "2D", "time": "night", "price": "12"})
    assert shown(page, shows) == {"2d night"}
    assert '<input type="hidden" name="date" value="2026-11-25">' in page
    assert "<option selected>2D</option>" in page and '<option value="night" selected>' in page
    assert 'name="price" type="number" min="0" step="0.01" inputmode="decimal" value="12.00"' in page
    # The day links keep the filters, and the filters can be cleared.
    assert 'href="?date=2026-11-26&amp;format=2D&amp;time=night&amp;price=12.00"' in page
    assert '<a href="?date=2026-11-25">Clear the filters</a>' in page


def test_the_language_list_offers_the_days_languages(client, day):
    shows, url, query = day
    page = chips(client, url, query)
    assert "<option>English</option>" in page and "<option>Spanish</option>" in page
    assert '<option value="es"' in page  # the header's language switcher is still the site's languages


def test_filters_that_match_nothing_say_so(client, day):
    shows, url, query = day
    page = chips(client, url, {**query, "format": "4DX"})
    assert shown(page, shows) == set() and "No showtimes match these filters" in page


@pytest.mark.parametrize(
    "bad",
    [
        {"format": "8K"},
        {"time": "teatime"},
        {"price": "cheap"},
        {"price": "-1"},
        {"price": "NaN"},
        {"price": "1e309"},
        {"price": "9" * 5000},
        {"language": "x" * 51},
        {"language": "Eng\u202elish"},
    ],
)
def test_a_filter_that_cannot_be_read_is_left_out_and_the_page_says_so(client, day, bad):
    shows, url, query = day
    page = chips(client, url, {**query, **bad})
    assert shown(page, shows) == set(shows)
    assert "These filters could not be read and are left out" in page


def test_the_cached_listing_is_not_narrowed_for_the_next_visitor(client, day):
    shows, url, query = day
    assert shown(chips(client, url, {**query, "format": "IMAX"}), shows) == {"imax morning"}
    assert shown(chips(client, url, query), shows) == set(shows)  # the same cached day, unfiltered


def test_the_filters_read_in_spanish(client, day):
    shows, url, query = day
    page = client.get(url, {**query, "time": "morning"}, headers={"accept-language": "es"}).content.decode()
    assert "Hora del día" in page and "Mañana (5:00–12:00)" in page and "Ver estos horarios" in page
    assert showtime(page, shows["imax morning"])

import math
import re
import zoneinfo
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from PIL import Image
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from cinemas import demo
from cinemas.models import (
    Cinema,
    CinemaStaff,
    City,
    Hall,
    MenuItem,
    Movie,
    MovieCertificate,
    OnSale,
    Seat,
    SeatType,
    Show,
    ShowPrice,
    StaffRole,
)
from cinemas.services import parse_seat_plan
from tests.factories import make_show
from ticketing.api_keys import ApiKeyAuthentication
from ticketing.models import ApiKey, hash_api_key

# The US moves its clocks on 8 March 2026, inside the demo's week: showtimes must stay on local wall-clock time.
SEEDED_AT = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)

POSTAL_CODES = {
    "United States": r"\d{5}",
    "Canada": r"[A-Z]\d[A-Z] \d[A-Z]\d",
    "United Kingdom": r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}",
    "India": r"\d{6}",
    "Australia": r"\d{4}",
    "France": r"\d{5}",
}


def seed(at=SEEDED_AT, **options):
    out = StringIO()
    with time_machine.travel(at, tick=False):
        call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def catalog_counts():
    models = [City, Cinema, Hall, Seat, Movie, MovieCertificate, Show, ShowPrice, ApiKey, get_user_model()]
    return {model.__name__: model.objects.count() for model in models}


def distance_km(first, second):
    lat1, lng1, lat2, lng2 = map(math.radians, (first.latitude, first.longitude, second.latitude, second.longitude))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 6371 * 2 * math.asin(math.sqrt(a))


@pytest.fixture(scope="class")
def seeded_demo(django_db_setup, django_db_blocker):
    """One seeding for a whole class, rolled back after it: each makes ~1,200 shows through the services."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield seed()
        transaction.set_rollback(True)


@pytest.mark.usefixtures("seeded_demo", "db")
class TestTheDemoCatalog:
    def test_it_has_several_cities_in_several_countries(self):
        assert City.objects.count() >= 6
        assert len(set(City.objects.values_list("country", flat=True))) >= 4
        assert all(city.cinemas.count() in {1, 2, 3} for city in City.objects.all())

    def test_each_cinema_is_valid_with_a_postal_code_of_its_country(self):
        for cinema in Cinema.objects.select_related("city"):
            cinema.full_clean()  # coordinates in range and an IANA zone
            assert re.fullmatch(POSTAL_CODES[cinema.city.country], cinema.postal_code), cinema

    def test_each_cinema_charges_in_its_countrys_currency_with_its_tax_and_fee(self):
        money = {
            cinema.name: (
                cinema.currency,
                cinema.tax_name,
                cinema.tax_rate,
                cinema.tax_included,
                cinema.convenience_fee,
            )
            for cinema in Cinema.objects.all()
        }
        assert money["Colaba Picture Palace"] == ("INR", "GST", Decimal("18"), True, Decimal("30.00"))
        assert money["Southbank Screens"] == ("GBP", "VAT", Decimal("20"), True, Decimal("0.95"))
        assert money["Times Square Cinemas"] == ("USD", "Sales tax", Decimal("8.875"), False, Decimal("1.50"))
        assert money["Cinéma des Grands Boulevards"][:3] == ("EUR", "TVA", Decimal("5.5"))
        assert {currency for currency, *_ in money.values()} == {"USD", "CAD", "GBP", "EUR", "INR", "AUD"}

    def test_each_show_is_priced_in_its_cinemas_currency(self):
        mumbai = ShowPrice.objects.filter(show__hall__cinema__name="Colaba Picture Palace", seat_type="Regular")
        assert set(mumbai.values_list("price", flat=True)) == {Decimal("250.00")}
        london = ShowPrice.objects.filter(show__hall__cinema__name="Southbank Screens", seat_type="Premium")
        assert set(london.values_list("price", flat=True)) == {Decimal("17.50")}

    def test_each_cinema_has_a_menu_in_its_currency_with_stock(self):
        for cinema in Cinema.objects.all():
            menu = {item.name: item for item in MenuItem.objects.filter(cinema=cinema)}
            assert len(menu) == 4 and all(item.stock > 0 and item.on_sale for item in menu.values()), cinema
        colaba = MenuItem.objects.get(cinema__name="Colaba Picture Palace", name="Popcorn (large)")
        assert colaba.price == Decimal("320.00")

    def test_each_cinema_is_in_its_citys_time_zone_and_near_the_other_cinemas_there(self):
        assert Cinema.objects.get(name="Times Square Cinemas").time_zone == "America/New_York"
        assert Cinema.objects.get(name="Colaba Picture Palace").time_zone == "Asia/Kolkata"
        assert Cinema.objects.get(name="Southbank Screens").time_zone == "Europe/London"
        for city in City.objects.all():
            cinemas = list(city.cinemas.all())
            assert len({cinema.time_zone for cinema in cinemas}) == 1
            assert all(distance_km(cinemas[0], other) < 40 for other in cinemas[1:])
        assert distance_km(
            Cinema.objects.get(name="Times Square Cinemas"), Cinema.objects.get(name="Leicester Square Picturehouse")
        ) == pytest.approx(5570, abs=30)

    def test_halls_run_from_sixty_to_two_thousand_seats(self):
        sizes = [hall.seat_count for hall in Hall.objects.all()]
        assert min(sizes) == 60
        assert max(sizes) == 2000

    def test_each_halls_capacity_matches_its_seats_of_every_type(self):
        seats = Counter(Seat.objects.values_list("hall_id", "seat_type"))
        for hall in Hall.objects.all():
            assert hall.capacity == {seat_type: seats[hall.pk, seat_type] for seat_type in hall.capacity}
            assert set(hall.capacity) == set(SeatType.values)
            assert hall.capacity["Premium"] > 0
            assert hall.capacity["Wheelchair"] == hall.capacity["Companion"]

    def test_it_has_about_ten_movies_with_every_field_filled_including_cars_2(self):
        movies = list(Movie.objects.all())
        assert 8 <= len(movies) <= 12
        assert "Cars 2" in {movie.title for movie in movies}
        for movie in movies:
            assert movie.description and movie.genre and movie.language and movie.country
            assert 80 <= movie.duration <= 180

    def test_every_movie_has_a_drawn_poster_certificates_where_it_plays_a_cast_and_a_trailer_link(self):
        demo_countries = set(City.objects.values_list("country", flat=True))
        for movie in Movie.objects.prefetch_related("certificates"):
            assert movie.poster.name.startswith("posters/480-") and movie.poster_card.name.startswith("posters/240-")
            with default_storage.open(movie.poster.name) as poster, Image.open(poster) as image:
                assert image.size == (480, 720)
            certificates = {certificate.country for certificate in movie.certificates.all()}
            assert len(certificates) >= 4 and certificates <= demo_countries, movie
            assert movie.cast.count(",") >= 2 and movie.trailer_url.startswith("https://trailers.example.com/")
        assert len({movie.poster.name for movie in Movie.objects.all()}) == Movie.objects.count()  # each its own

    def test_shows_come_in_several_formats_and_films_in_another_language_get_subtitles(self):
        assert set(Show.objects.values_list("format", flat=True)) >= {"2D", "3D", "IMAX", "4DX", "Dolby Cinema"}
        in_india = Show.objects.filter(hall__cinema__city__country="India").select_related("movie")
        assert {(show.movie.language, show.spoken_language, show.subtitles) for show in in_india} >= {
            ("Hindi", "Hindi", ""),
            ("English", "Hindi", ""),  # dubbed
            ("English", "English", "Hindi"),
            ("Kannada", "Kannada", "Hindi"),
        }
        abroad = Show.objects.filter(hall__cinema__city__country="United Kingdom", movie__language="French")
        assert set(abroad.values_list("subtitles", flat=True)) == {"English"}

    def test_every_hall_has_showtimes_on_each_local_day_of_the_next_week(self):
        local_days = defaultdict(set)
        for show in Show.objects.select_related("hall__cinema"):
            local = show.local_starts_at
            today = SEEDED_AT.astimezone(show.hall.cinema.zone).date()
            assert show.starts_at > SEEDED_AT
            assert local.time() in demo.DEMO_SHOWTIMES, show
            assert today <= local.date() < today + timedelta(days=7)
            local_days[show.hall_id].add(local.date())
        assert set(local_days) == set(Hall.objects.values_list("pk", flat=True))
        assert all(len(days) == 7 for days in local_days.values())

    def test_showtimes_keep_local_time_when_the_clocks_change(self):
        hall = Hall.objects.get(cinema__name="Times Square Cinemas", name="Grand Hall")
        offsets = {show.local_starts_at.utcoffset() for show in hall.shows.all()}
        assert offsets == {timedelta(hours=-5), timedelta(hours=-4)}

    def test_each_show_has_a_price_for_every_seat_type_of_its_hall_premium_above_regular(self):
        prices = defaultdict(dict)
        for show_id, seat_type, price in ShowPrice.objects.values_list("show_id", "seat_type", "price"):
            prices[show_id][seat_type] = price
        for show in Show.objects.select_related("hall"):
            assert set(prices[show.pk]) == set(show.hall.capacity)
            assert prices[show.pk]["Premium"] > prices[show.pk]["Regular"] > 0

    def test_the_demo_api_key_authenticates(self):
        api_key = ApiKey.objects.get(name="demo")
        assert api_key.key_hash == hash_api_key(demo.DEMO_API_KEY)
        assert api_key.rate_per_minute == 600
        request = Request(APIRequestFactory().get("/api/v1/movies", HTTP_X_API_KEY=demo.DEMO_API_KEY))
        assert ApiKeyAuthentication().authenticate(request) == (None, api_key)

    def test_the_admin_is_a_staff_superuser_with_the_demo_password(self):
        admin = get_user_model().objects.get(username="admin")
        assert admin.is_staff and admin.is_superuser
        assert admin.check_password("admin")

    def test_a_manager_and_a_box_office_clerk_work_at_one_cinema_with_their_names_as_passwords(self):
        roles = {
            member.user.username: (member.cinema.name, member.role, member.user.check_password(member.user.username))
            for member in CinemaStaff.objects.select_related("user", "cinema")
        }
        assert roles == {
            "manager": (demo.DEMO_STAFF_CINEMA, StaffRole.MANAGER, True),
            "boxoffice": (demo.DEMO_STAFF_CINEMA, StaffRole.STAFF, True),
        }

    def test_every_hall_has_template_prices_for_its_seat_types(self):
        for hall in Hall.objects.all():
            assert set(hall.price_template.values_list("seat_type", flat=True)) == set(hall.capacity)

    def test_the_output_warns_and_ends_with_the_demo_key_and_the_logins(self, seeded_demo):
        lines = seeded_demo.strip().splitlines()
        assert "local demos only" in lines[-4]
        assert lines[-3] == f"Demo API key: {demo.DEMO_API_KEY}"
        assert lines[-2].startswith("Admin login: admin / admin")
        assert (
            lines[-1]
            == f"Staff at {demo.DEMO_STAFF_CINEMA}: manager / manager, boxoffice / boxoffice at /staff/box-office/"
        )

    def test_seeding_again_changes_no_counts(self):
        before = catalog_counts()
        posters = dict(Movie.objects.values_list("pk", "poster"))
        output = seed()
        assert catalog_counts() == before
        assert dict(Movie.objects.values_list("pk", "poster")) == posters
        assert "0 shows added" in output

    def test_seeding_a_day_later_adds_only_the_new_days_shows(self):
        before = set(Show.objects.values_list("pk", flat=True))
        seed(at=SEEDED_AT + timedelta(days=1))
        added = Show.objects.exclude(pk__in=before).select_related("hall__cinema")
        assert added.count() == Hall.objects.count() * len(demo.DEMO_SHOWTIMES)
        for show in added:
            assert show.local_starts_at.date() == SEEDED_AT.astimezone(show.hall.cinema.zone).date() + timedelta(days=7)

    def test_seeding_leaves_alone_a_show_staff_put_in_a_demo_slot(self):
        hall = Hall.objects.get(cinema__name="Brooklyn Heights Cinema")
        day = SEEDED_AT.astimezone(hall.cinema.zone).date() + timedelta(days=7)
        eleven = demo.local_start(day, demo.DEMO_SHOWTIMES[0], hall.cinema.zone)
        staff_show = make_show(hall=hall, starts_at=eleven + timedelta(minutes=30), ends_at=eleven + timedelta(hours=3))
        output = seed(at=SEEDED_AT + timedelta(days=1))
        in_the_way = hall.shows.filter(starts_at__gte=eleven, starts_at__lt=eleven + timedelta(hours=3))
        assert list(in_the_way) == [staff_show]
        assert "skipped because another show is in the way: 1" in output


@pytest.mark.django_db
class TestTheStudyCatalog:
    def test_it_makes_exactly_the_requested_numbers(self):
        output = seed(scale="study", cities=3, cinemas_per_city=2, seats_per_hall=100, days=2)
        assert "6 halls, 600 seats" in output
        assert City.objects.count() == 3
        assert Cinema.objects.count() == 6
        assert Hall.objects.count() == 6
        assert Seat.objects.count() == 600
        assert Movie.objects.count() == 30
        assert Show.objects.count() == 6 * 2 * 2
        assert ShowPrice.objects.count() == Show.objects.count() * 4

    def test_each_hall_capacity_matches_its_seats(self):
        seed(scale="study", cities=3, cinemas_per_city=2, seats_per_hall=100, days=2)
        seats = Counter(Seat.objects.values_list("hall_id", "seat_type"))
        for hall in Hall.objects.all():
            assert hall.seat_count == 100
            assert hall.capacity == {seat_type: seats[hall.pk, seat_type] for seat_type in hall.capacity}
            assert set(hall.capacity) == set(SeatType.values)

    def test_cinemas_are_valid_and_shows_run_twice_a_day_from_local_tomorrow(self):
        seed(scale="study", cities=3, cinemas_per_city=2, seats_per_hall=100, days=2)
        for cinema in Cinema.objects.all():
            cinema.full_clean()
            assert re.fullmatch(r"\d{5}", cinema.postal_code)
            assert cinema.time_zone.startswith("America/")
            assert 24 < cinema.latitude < 50 and -125 < cinema.longitude < -66
        for show in Show.objects.select_related("hall__cinema"):
            tomorrow = SEEDED_AT.astimezone(show.hall.cinema.zone).date() + timedelta(days=1)
            assert show.local_starts_at.date() in {tomorrow, tomorrow + timedelta(days=1)}
            assert show.local_starts_at.time() in demo.STUDY_SHOWTIMES
            assert set(show.prices.values_list("seat_type", flat=True)) == set(show.hall.capacity)

    def test_it_does_nothing_when_the_study_catalog_is_already_there(self):
        seed(scale="study", cities=3, cinemas_per_city=2, seats_per_hall=100, days=2)
        before = catalog_counts()
        output = seed(scale="study", cities=3, cinemas_per_city=2, seats_per_hall=100, days=2)
        assert catalog_counts() == before
        assert "already loaded" in output


@pytest.mark.parametrize("seats", [60, 61, 97, 250, 1100, 2000])
def test_a_hall_plan_has_exactly_the_seats_asked_for(seats):
    assert len(parse_seat_plan(demo.hall_plan(seats))) == seats


def test_every_zone_the_study_uses_exists():
    assert {zone for _, zone in demo.STUDY_ZONES} <= zoneinfo.available_timezones()


@pytest.mark.django_db
def test_the_demo_puts_one_show_behind_a_waiting_room_that_opens_now_and_sells_in_ten_minutes():
    output = seed()
    on_sale = OnSale.objects.get()
    assert on_sale.queue_opens_at == SEEDED_AT
    assert on_sale.opens_at == SEEDED_AT + timedelta(minutes=demo.DEMO_ON_SALE_OPENS_IN_MINUTES)
    assert on_sale.show.hall.cinema.name == demo.DEMO_STAFF_CINEMA
    assert list(on_sale.shows.values_list("show_id", flat=True)) == [on_sale.show_id]
    assert f"/on-sale/{on_sale.pk}/" in output
    seed(at=SEEDED_AT + timedelta(minutes=1))  # seeding again keeps the one to come
    assert OnSale.objects.count() == 1

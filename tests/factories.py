"""Small factories for catalog rows; each takes overrides as keyword arguments."""

import itertools
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from cinemas.models import Cinema, CinemaStaff, City, Hall, Movie
from cinemas.services import build_seat_layout, schedule_show
from ticketing.services import create_api_key

_serial = itertools.count(1)

SMALL_PLAN = "PPPP\nRRRR\nR..R\nWC.R"  # 4 premium, 7 regular, 1 wheelchair, 1 companion


def make_city(**fields):
    fields.setdefault("name", f"City {next(_serial)}")
    fields.setdefault("state", "")
    fields.setdefault("country", "United States")
    return City.objects.create(**fields)


def make_cinema(**fields):
    fields.setdefault("city", make_city() if "city" not in fields else fields["city"])
    fields.setdefault("name", f"Cinema {next(_serial)}")
    fields.setdefault("address", "1 Main Street")
    fields.setdefault("postal_code", "10001")
    fields.setdefault("latitude", 40.7506)
    fields.setdefault("longitude", -73.9935)
    fields.setdefault("time_zone", "America/New_York")
    return Cinema.objects.create(**fields)


def make_hall(*, plan=SMALL_PLAN, **fields):
    if "cinema" not in fields:
        fields["cinema"] = make_cinema()
    fields.setdefault("name", f"Hall {next(_serial)}")
    hall = Hall.objects.create(**fields)
    return build_seat_layout(hall=hall, plan=plan)


def make_movie(**fields):
    fields.setdefault("title", f"Movie {next(_serial)}")
    fields.setdefault("description", "A film.")
    fields.setdefault("duration", 100)
    fields.setdefault("genre", "Drama")
    fields.setdefault("language", "English")
    fields.setdefault("release_date", date(2026, 1, 1))
    fields.setdefault("country", "United States")
    return Movie.objects.create(**fields)


def prices_for(hall, base="10.00"):
    step = {"Regular": 0, "Premium": 5, "Wheelchair": 0, "Companion": 0}
    return {seat_type: Decimal(base) + step[seat_type] for seat_type in hall.capacity}


def make_show(*, movie=None, hall=None, starts_at=None, ends_at=None, prices=None):
    movie = movie or make_movie()
    hall = hall or make_hall()
    starts_at = starts_at or timezone.now() + timedelta(days=1)
    return schedule_show(
        movie=movie, hall=hall, starts_at=starts_at, ends_at=ends_at, prices=prices or prices_for(hall)
    )


def make_api_key(name=None, rate_per_minute=1000, held_seats_per_show=None):
    """Returns the raw key: what a partner sends."""
    _, raw_key = create_api_key(
        name=name or f"partner-{next(_serial)}",
        rate_per_minute=rate_per_minute,
        held_seats_per_show=held_seats_per_show,
    )
    return raw_key


# A cinema's money as New York's: sales tax added on top, a fee per ticket (cinemas.Cinema's money fields).
NY_SALES_TAX = {
    "currency": "USD",
    "tax_name": "Sales tax",
    "tax_rate": Decimal("8.875"),
    "tax_included": False,
    "convenience_fee": Decimal("1.50"),
}


def make_priced_show(money, regular, premium):
    """A show at a new cinema with these money fields (`money`), its Premium seats at `premium`, the others at
    `regular`."""
    hall = make_hall(cinema=make_cinema(**money))
    prices = {seat_type: Decimal(premium if seat_type == "Premium" else regular) for seat_type in hall.capacity}
    return make_show(hall=hall, prices=prices)


STAFF_PASSWORD = "a staff password"


def make_staff_member(*, roles=(), chain_admin=False, username=None):
    """A user who can log in to the staff pages (password STAFF_PASSWORD): a chain admin (superuser), or a member
    of the staff with `roles`, pairs of (cinema, "staff" or "manager")."""
    user = get_user_model().objects.create_user(
        username or f"staff{next(_serial)}", password=STAFF_PASSWORD, is_staff=True, is_superuser=chain_admin
    )
    for cinema, role in roles:
        CinemaStaff.objects.create(user=user, cinema=cinema, role=role)
    return user

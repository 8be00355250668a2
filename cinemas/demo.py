"""The demo catalog and the design study's catalog, loaded by `manage.py seed_demo`.

`load_demo` builds a small, realistic catalog through the same services staff use. `load_study` builds the
design study's full size (500 cities x 10 cinemas x 2,000 seats x 2 shows a day) for the benchmark, writing
rows in bulk. Both are idempotent.
"""

import itertools
import math
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from cinemas.models import (
    Cinema,
    CinemaStaff,
    City,
    Country,
    Hall,
    HallPrice,
    MenuItem,
    Movie,
    MovieCertificate,
    OnSale,
    SeatType,
    Show,
    ShowFormat,
    ShowPrice,
    StaffRole,
)
from cinemas.on_sales import mark_on_sale
from cinemas.posters import POSTER_SIZES, draw_poster
from cinemas.services import (
    build_seat_layout,
    catalog_changed,
    default_show_end,
    parse_seat_plan,
    schedule_show,
    upload_poster,
)
from ticketing.models import ApiKey
from ticketing.services import create_api_key

# Published in the README so anyone can try the API against a local demo; it must never reach a real site.
DEMO_API_KEY = "tk_demo_public_key_for_local_use_only"
DEMO_API_KEY_NAME = "demo"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"
# The demo's cinema staff, at one cinema: a manager (prices and schedules too) and a box office clerk. Each one's
# password is their name.
DEMO_STAFF_CINEMA = "Union Square Picture House"
DEMO_STAFF = {"manager": StaffRole.MANAGER, "boxoffice": StaffRole.STAFF}

DEMO_DAYS = 7
DEMO_SHOWTIMES = (time(11, 0), time(14, 15), time(17, 30), time(20, 45))

# Regular and Premium prices in each currency of the demo; wheelchair spaces and companion seats cost the same as
# Regular ones.
TICKET_PRICES = {
    "USD": ("15.00", "22.00"),
    "CAD": ("16.00", "23.00"),
    "GBP": ("12.50", "17.50"),
    "EUR": ("12.00", "17.00"),
    "AUD": ("22.00", "30.00"),
    "INR": ("250.00", "450.00"),
}

# What each demo country's cinemas charge on top of a ticket, as their receipts show it: VAT and GST are included in
# the prices; US sales tax is added at checkout (its rate set per city below); a convenience fee per ticket.
COUNTRY_MONEY = {
    Country.UNITED_STATES: {"currency": "USD", "tax_name": "Sales tax", "tax_included": False, "fee": "1.50"},
    Country.CANADA: {"currency": "CAD", "tax_name": "HST", "tax_rate": "13", "fee": "1.50"},
    Country.UNITED_KINGDOM: {"currency": "GBP", "tax_name": "VAT", "tax_rate": "20", "fee": "0.95"},
    Country.FRANCE: {"currency": "EUR", "tax_name": "TVA", "tax_rate": "5.5", "fee": "0.00"},
    Country.INDIA: {"currency": "INR", "tax_name": "GST", "tax_rate": "18", "fee": "30.00"},
    Country.AUSTRALIA: {"currency": "AUD", "tax_name": "GST", "tax_rate": "10", "fee": "1.95"},
}

# Each cinema's counter: (name, description, price in each currency). Stock: DEMO_MENU_STOCK of each.
DEMO_MENU = (
    (
        "Popcorn (large)",
        "Salted or sweet",
        {"USD": "8.50", "CAD": "9.00", "GBP": "6.50", "EUR": "6.00", "AUD": "9.50", "INR": "320.00"},
    ),
    (
        "Nachos",
        "With cheese and salsa",
        {"USD": "7.00", "CAD": "7.50", "GBP": "5.50", "EUR": "5.50", "AUD": "8.50", "INR": "260.00"},
    ),
    (
        "Soft drink",
        "50 cl",
        {"USD": "5.00", "CAD": "5.50", "GBP": "4.00", "EUR": "4.00", "AUD": "6.00", "INR": "180.00"},
    ),
    (
        "Combo for two",
        "Large popcorn and two soft drinks",
        {"USD": "16.00", "CAD": "17.00", "GBP": "12.50", "EUR": "12.00", "AUD": "18.50", "INR": "600.00"},
    ),
)
DEMO_MENU_STOCK = 200

# Every running time here plus turnaround fits the 3 h 15 min between DEMO_SHOWTIMES.
MOVIES = [
    {
        "title": "Cars 2",
        "description": (
            "Lightning McQueen and his best friend Mater head overseas for the first World Grand Prix, "
            "where Mater is mistaken for an American spy."
        ),
        "duration": 106,
        "genre": "Animation",
        "language": "English",
        "release_date": date(2011, 6, 24),
        "country": "United States",
    },
    {
        "title": "The Lighthouse at Skerry Point",
        "description": (
            "A widowed keeper on a Hebridean island takes in a shipwrecked stranger the winter before the light "
            "is automated."
        ),
        "duration": 118,
        "genre": "Drama",
        "language": "English",
        "release_date": date(2026, 10, 9),
        "country": "United Kingdom",
    },
    {
        "title": "Orbital Drift",
        "description": (
            "When a debris strike cripples their station, three engineers have ninety minutes to steer it clear "
            "of a falling satellite."
        ),
        "duration": 142,
        "genre": "Science Fiction",
        "language": "English",
        "release_date": date(2026, 11, 13),
        "country": "United States",
    },
    {
        "title": "Monsoon Express",
        "description": (
            "A railway guard and a pickpocket must stop a hijacked overnight train between Mumbai and Goa "
            "during the year's worst storm."
        ),
        "duration": 158,
        "genre": "Action",
        "language": "Hindi",
        "release_date": date(2026, 10, 30),
        "country": "India",
    },
    {
        "title": "Kaveri Nights",
        "description": (
            "Two musicians from rival families fall for each other over one festival season on the banks of the Kaveri."
        ),
        "duration": 146,
        "genre": "Romance",
        "language": "Kannada",
        "release_date": date(2026, 11, 6),
        "country": "India",
    },
    {
        "title": "The Paper Detective",
        "description": (
            "A retired crossword setter finds clues to an unsolved 1987 disappearance hidden in her old puzzles."
        ),
        "duration": 112,
        "genre": "Mystery",
        "language": "English",
        "release_date": date(2026, 9, 25),
        "country": "Canada",
    },
    {
        "title": "Saltwater Kings",
        "description": (
            "A washed-up surf champion coaches a team of teenagers from a small coastal town to the national titles."
        ),
        "duration": 127,
        "genre": "Adventure",
        "language": "English",
        "release_date": date(2026, 11, 20),
        "country": "Australia",
    },
    {
        "title": "Chai and Checkmate",
        "description": (
            "A tea-stall owner in Pune enters a chess tournament to win back the shop his brother lost in a bet."
        ),
        "duration": 124,
        "genre": "Comedy",
        "language": "Hindi",
        "release_date": date(2026, 11, 20),
        "country": "India",
    },
    {
        "title": "Hollow Creek",
        "description": "A family's new farmhouse comes with a well that answers when you call into it.",
        "duration": 98,
        "genre": "Horror",
        "language": "English",
        "release_date": date(2026, 10, 23),
        "country": "United States",
    },
    {
        "title": "Little Comet",
        "description": "A small comet that keeps missing its turn around the sun sets out to find its own orbit.",
        "duration": 94,
        "genre": "Animation",
        "language": "English",
        "release_date": date(2026, 11, 20),
        "country": "United States",
    },
    {
        "title": "Parallel Lines",
        "description": (
            "A Paris metro driver notices the same passenger boarding at every stop of the line, each time a "
            "few years older."
        ),
        "duration": 131,
        "genre": "Thriller",
        "language": "French",
        "release_date": date(2026, 10, 16),
        "country": "France",
    },
]

# Each demo movie's cast (made up), trailer link (a placeholder address: nothing is fetched) and certificates in the
# demo's countries, by title. The ratings follow each country's table (cinemas.models.CERTIFICATES).
US, UK, IN, CA, AU = (Country.UNITED_STATES, Country.UNITED_KINGDOM, Country.INDIA, Country.CANADA, Country.AUSTRALIA)
CATALOG_CONTENT = {
    "Cars 2": ("Owen Wilson, Larry the Cable Guy, Michael Caine", {US: "G", UK: "U", IN: "U", CA: "G", AU: "G"}),
    "The Lighthouse at Skerry Point": (
        "Morag Keir, Tomás Ferreira, Ailsa Grant",
        {US: "PG-13", UK: "12A", IN: "UA 13+", CA: "PG", AU: "M"},
    ),
    "Orbital Drift": ("Dana Whitfield, Kenji Arakawa, Lucía Ortega", {US: "PG-13", UK: "12A", IN: "UA 13+", CA: "PG"}),
    "Monsoon Express": ("Arjun Rathore, Meera Kulkarni, Farhan Sheikh", {IN: "UA 16+", UK: "15", US: "R", AU: "MA15+"}),
    "Kaveri Nights": ("Kiran Gowda, Ananya Rao, Prakash Hegde", {IN: "U", UK: "PG", US: "PG", CA: "PG"}),
    "The Paper Detective": ("Helen Mackay, Samuel Osei, Claire Dubois", {CA: "PG", US: "PG", UK: "12A", AU: "M"}),
    "Saltwater Kings": ("Jack Brennan, Tahlia Moore, Wiremu Ngata", {AU: "PG", US: "PG", UK: "PG", IN: "U"}),
    "Chai and Checkmate": ("Rahul Deshpande, Sana Mirza, Vikram Joshi", {IN: "U", UK: "PG", US: "PG", CA: "G"}),
    "Hollow Creek": ("Ella Harper, Marcus Reid, June Calloway", {US: "R", UK: "15", CA: "14A", AU: "MA15+", IN: "A"}),
    "Little Comet": ("Ava Lin, Rafael Mendes, Ruth Okafor", {US: "G", UK: "U", CA: "G", AU: "G", IN: "U"}),
    "Parallel Lines": ("Camille Laurent, Yanis Benali, Odile Marchand", {UK: "15", US: "R", CA: "14A", IN: "UA 16+"}),
}
TRAILER_ADDRESS = "https://trailers.example.com/"

# Each hall's format, by its place in the demo's list of halls: mostly 2D, with the premium formats spread around.
DEMO_FORMATS = (
    ShowFormat.IMAX,
    ShowFormat.TWO_D,
    ShowFormat.THREE_D,
    ShowFormat.TWO_D,
    ShowFormat.DOLBY_CINEMA,
    ShowFormat.TWO_D,
    ShowFormat.FOUR_DX,
    ShowFormat.TWO_D,
    ShowFormat.SCREENX,
    ShowFormat.IMAX_3D,
)
# What most moviegoers speak where the cinema is: films in another language get subtitles in it.
LOCAL_LANGUAGE = {"India": "Hindi", "France": "French"}
DEFAULT_LOCAL_LANGUAGE = "English"


def slug(title):
    return "-".join("".join(char for char in word if char.isalnum()) for word in title.lower().split())


# Real addresses, postal codes and coordinates; the cinemas' names are made up. Halls are (name, seats).
CITIES = [
    {
        "name": "New York",
        "state": "NY",
        "country": "United States",
        "time_zone": "America/New_York",
        "sales_tax": "8.875",
        "cinemas": [
            {
                "name": "Times Square Cinemas",
                "address": "234 West 42nd Street, New York, NY",
                "postal_code": "10036",
                "latitude": 40.7567,
                "longitude": -73.9886,
                "halls": [("Grand Hall", 2000), ("Screen 2", 240), ("Screen 3", 120)],
            },
            {
                "name": DEMO_STAFF_CINEMA,
                "address": "850 Broadway, New York, NY",
                "postal_code": "10003",
                "latitude": 40.7345,
                "longitude": -73.9908,
                "halls": [("Screen 1", 180), ("Screen 2", 90)],
            },
            {
                "name": "Brooklyn Heights Cinema",
                "address": "70 Henry Street, Brooklyn, NY",
                "postal_code": "11201",
                "latitude": 40.6992,
                "longitude": -73.9927,
                "halls": [("Screen 1", 60)],
            },
        ],
    },
    {
        "name": "Los Angeles",
        "state": "CA",
        "country": "United States",
        "time_zone": "America/Los_Angeles",
        "sales_tax": "9.5",
        "cinemas": [
            {
                "name": "Hollywood Boulevard Theatre",
                "address": "6801 Hollywood Boulevard, Los Angeles, CA",
                "postal_code": "90028",
                "latitude": 34.1022,
                "longitude": -118.3404,
                "halls": [("Screen 1", 400), ("Screen 2", 180), ("Screen 3", 120)],
            },
            {
                "name": "Westwood Village Cinema",
                "address": "961 Broxton Avenue, Los Angeles, CA",
                "postal_code": "90024",
                "latitude": 34.0631,
                "longitude": -118.4474,
                "halls": [("Screen 1", 300), ("Screen 2", 100)],
            },
        ],
    },
    {
        "name": "Chicago",
        "state": "IL",
        "country": "United States",
        "time_zone": "America/Chicago",
        "sales_tax": "10.25",
        "cinemas": [
            {
                "name": "River North Cinemas",
                "address": "600 North Michigan Avenue, Chicago, IL",
                "postal_code": "60611",
                "latitude": 41.8926,
                "longitude": -87.6242,
                "halls": [("Screen 1", 260), ("Screen 2", 150), ("Screen 3", 100)],
            },
            {
                "name": "Logan Square Picture House",
                "address": "2646 North Milwaukee Avenue, Chicago, IL",
                "postal_code": "60647",
                "latitude": 41.9299,
                "longitude": -87.7079,
                "halls": [("Screen 1", 220), ("Screen 2", 80)],
            },
        ],
    },
    {
        "name": "Toronto",
        "state": "Ontario",
        "country": "Canada",
        "time_zone": "America/Toronto",
        "cinemas": [
            {
                "name": "Yonge-Dundas Cinemas",
                "address": "10 Dundas Street East, Toronto, ON",
                "postal_code": "M5B 2G9",
                "latitude": 43.6563,
                "longitude": -79.3803,
                "halls": [("Screen 1", 500), ("Screen 2", 200), ("Screen 3", 110)],
            },
            {
                "name": "Bloor Street Picture House",
                "address": "506 Bloor Street West, Toronto, ON",
                "postal_code": "M5S 1Y3",
                "latitude": 43.6656,
                "longitude": -79.4108,
                "halls": [("Screen 1", 240)],
            },
        ],
    },
    {
        "name": "London",
        "state": "England",
        "country": "United Kingdom",
        "time_zone": "Europe/London",
        "cinemas": [
            {
                "name": "Leicester Square Picturehouse",
                "address": "26 Leicester Square, London",
                "postal_code": "WC2H 7LQ",
                "latitude": 51.5104,
                "longitude": -0.1302,
                "halls": [("Screen 1", 800), ("Screen 2", 200), ("Screen 3", 90)],
            },
            {
                "name": "Southbank Screens",
                "address": "Belvedere Road, London",
                "postal_code": "SE1 8XT",
                "latitude": 51.5067,
                "longitude": -0.1160,
                "halls": [("Screen 1", 450), ("Screen 2", 140)],
            },
            {
                "name": "Brixton Electric Cinema",
                "address": "Brixton Oval, Coldharbour Lane, London",
                "postal_code": "SW2 1JG",
                "latitude": 51.4614,
                "longitude": -0.1156,
                "halls": [("Screen 1", 180), ("Screen 2", 70)],
            },
        ],
    },
    {
        "name": "Mumbai",
        "state": "Maharashtra",
        "country": "India",
        "time_zone": "Asia/Kolkata",
        "cinemas": [
            {
                "name": "Lower Parel Cineplex",
                "address": "462 Senapati Bapat Marg, Lower Parel, Mumbai",
                "postal_code": "400013",
                "latitude": 18.9943,
                "longitude": 72.8245,
                "halls": [("Audi 1", 320), ("Audi 2", 200), ("Audi 3", 150)],
            },
            {
                "name": "Andheri West Talkies",
                "address": "New Link Road, Andheri West, Mumbai",
                "postal_code": "400053",
                "latitude": 19.1410,
                "longitude": 72.8318,
                "halls": [("Audi 1", 250), ("Audi 2", 120)],
            },
            {
                "name": "Colaba Picture Palace",
                "address": "Shahid Bhagat Singh Road, Colaba, Mumbai",
                "postal_code": "400001",
                "latitude": 18.9236,
                "longitude": 72.8322,
                "halls": [("Main Hall", 1100)],
            },
        ],
    },
    {
        "name": "Bengaluru",
        "state": "Karnataka",
        "country": "India",
        "time_zone": "Asia/Kolkata",
        "cinemas": [
            {
                "name": "Koramangala Cinemas",
                "address": "21 Hosur Road, Koramangala, Bengaluru",
                "postal_code": "560029",
                "latitude": 12.9346,
                "longitude": 77.6113,
                "halls": [("Audi 1", 280), ("Audi 2", 160), ("Audi 3", 100)],
            },
            {
                "name": "MG Road Picture House",
                "address": "Mahatma Gandhi Road, Bengaluru",
                "postal_code": "560001",
                "latitude": 12.9757,
                "longitude": 77.6055,
                "halls": [("Audi 1", 350), ("Audi 2", 120)],
            },
            {
                "name": "Whitefield Screens",
                "address": "Whitefield Main Road, Mahadevapura, Bengaluru",
                "postal_code": "560048",
                "latitude": 12.9975,
                "longitude": 77.6966,
                "halls": [("Audi 1", 240), ("Audi 2", 130)],
            },
        ],
    },
    {
        "name": "Sydney",
        "state": "New South Wales",
        "country": "Australia",
        "time_zone": "Australia/Sydney",
        "cinemas": [
            {
                "name": "George Street Cinemas",
                "address": "505 George Street, Sydney NSW",
                "postal_code": "2000",
                "latitude": -33.8747,
                "longitude": 151.2066,
                "halls": [("Screen 1", 450), ("Screen 2", 180), ("Screen 3", 90)],
            },
            {
                "name": "Bondi Beach Picture House",
                "address": "180 Campbell Parade, Bondi Beach NSW",
                "postal_code": "2026",
                "latitude": -33.8908,
                "longitude": 151.2743,
                "halls": [("Screen 1", 160)],
            },
        ],
    },
    {
        "name": "Paris",
        "state": "",
        "country": "France",
        "time_zone": "Europe/Paris",
        "cinemas": [
            {
                "name": "Cinéma des Grands Boulevards",
                "address": "2 Boulevard Poissonnière, 75009 Paris",
                "postal_code": "75009",
                "latitude": 48.8712,
                "longitude": 2.3475,
                "halls": [("Salle 1", 300), ("Salle 2", 120)],
            },
        ],
    },
]

# Halls this big put their premium band in the middle, where the view is best, rather than at the back.
PREMIUM_IN_MIDDLE_FROM = 1000


def hall_plan(seats):
    """A compact seat plan (see cinemas.services.parse_seat_plan) with exactly `seats` seats.

    Rows are split into blocks by aisles, with a cross-aisle every few rows. The row behind each cross-aisle has
    a wheelchair space and companion seat at each end (so a wheelchair comes in along the cross-aisle). About a
    fifth of the rows are Premium: the back rows, or a band in the middle for big halls. A 60-seat hall:

        RRRRR.RRRRR
        RRRRR.RRRRR
        RRRRR.RRRRR
        ...........
        WCRRR.RRRCW
        RRRRR.RRRRR
        PPPPP.PPPPP
    """
    per_row = _row_width(seats)
    widths = [per_row] * (seats // per_row) + ([seats % per_row] if seats % per_row else [])
    rows = len(widths)
    premium_rows = max(1, rows // 5)
    first_premium = rows * 3 // 5 - premium_rows // 2 if seats >= PREMIUM_IN_MIDDLE_FROM else rows - premium_rows
    aisle_every = 10 if rows > 12 else max(2, rows // 2)
    lines = []
    for index, width in enumerate(widths):
        behind_cross_aisle = index > 0 and index % aisle_every == 0
        if behind_cross_aisle:
            lines.append(".")
        seat = "P" if first_premium <= index < first_premium + premium_rows else "R"
        chars = [seat] * width
        if behind_cross_aisle and width >= 6:
            chars[:2] = ["W", "C"]
            chars[-2:] = ["C", "W"]
        lines.append(_with_aisles(chars))
    return "\n".join(lines)


def _row_width(seats):
    """Seats per row: roughly 3:2 wide, preferring a width that divides the hall into full rows."""
    target = min(60, max(6, round(math.sqrt(seats * 1.5))))
    candidates = [w for w in range(max(1, target * 3 // 4), min(60, target * 5 // 4) + 1) if seats % w == 0]
    if not candidates:
        return min(target, seats)
    return min(candidates, key=lambda w: (abs(w - target), -w))


def _with_aisles(chars):
    width = len(chars)
    if width >= 12:
        side = width // 4
        blocks = [chars[:side], chars[side : width - side], chars[width - side :]]
    elif width >= 4:
        blocks = [chars[: width // 2], chars[width // 2 :]]
    else:
        blocks = [chars]
    return ".".join("".join(block) for block in blocks)


def ticket_prices(seat_types, currency):
    """A price for each of these seat types, Premium above the rest, in `currency` (the demo's, or else USD's
    figures)."""
    regular, premium = (Decimal(price) for price in TICKET_PRICES.get(currency, TICKET_PRICES["USD"]))
    return {seat_type: premium if seat_type == SeatType.PREMIUM else regular for seat_type in seat_types}


def cinema_money(city_data):
    """A new demo cinema's currency, tax and fee: its country's, with the city's own sales tax rate."""
    money = COUNTRY_MONEY[city_data["country"]]
    return {
        "currency": money["currency"],
        "tax_name": money["tax_name"],
        "tax_rate": Decimal(city_data.get("sales_tax", money.get("tax_rate", "0"))),
        "tax_included": money.get("tax_included", True),
        "convenience_fee": Decimal(money["fee"]),
    }


def load_menu(cinema):
    """The demo's counter menu in the cinema's currency, for items it lacks (staff's changes are left alone)."""
    for name, description, prices in DEMO_MENU:
        MenuItem.objects.get_or_create(
            cinema=cinema,
            name=name,
            defaults={
                "description": description,
                "price": Decimal(prices.get(cinema.currency, prices["USD"])),
                "stock": DEMO_MENU_STOCK,
            },
        )


def local_start(day, showtime, zone):
    # A showtime is wall-clock time where the cinema is, so its UTC instant moves with daylight saving.
    return datetime.combine(day, showtime, tzinfo=zone)


def ensure_admin_user():
    """The demo's superuser; an existing `admin` is left as it is, password included."""
    user_model = get_user_model()
    if not user_model.objects.filter(username=ADMIN_USERNAME).exists():
        user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)


def ensure_demo_staff():
    """The demo's cinema staff (DEMO_STAFF) at DEMO_STAFF_CINEMA; existing users are left as they are."""
    cinema = Cinema.objects.filter(name=DEMO_STAFF_CINEMA).first()
    if cinema is None:  # the study's catalog has no such cinema
        return
    user_model = get_user_model()
    for username, role in DEMO_STAFF.items():
        user, made = user_model.objects.get_or_create(username=username, defaults={"is_staff": True})
        if made:
            user.set_password(username)
            user.save(update_fields=["password"])
        CinemaStaff.objects.get_or_create(user=user, cinema=cinema, defaults={"role": role})


def ensure_demo_api_key():
    if not ApiKey.objects.filter(name=DEMO_API_KEY_NAME).exists():
        create_api_key(name=DEMO_API_KEY_NAME, rate_per_minute=600, raw_key=DEMO_API_KEY)


def load_movies(movies):
    # Titles are the natural key: staff may have edited a demo movie's other fields, which are left alone.
    return [Movie.objects.get_or_create(title=movie["title"], defaults=movie)[0] for movie in movies]


def load_catalog_content(movies):
    """Give each demo movie what it lacks of its cast, trailer link, certificates and poster (drawn with Pillow
    and stored through upload_poster, as a staff upload would be). What staff set is left alone."""
    for movie in movies:
        cast, certificates = CATALOG_CONTENT.get(movie.title, ("", {}))
        missing = {"cast": cast, "trailer_url": f"{TRAILER_ADDRESS}{slug(movie.title)}"}
        changed = [field for field, value in missing.items() if value and not getattr(movie, field)]
        for field in changed:
            setattr(movie, field, missing[field])
        if changed:
            movie.save(update_fields=changed)
        for country, rating in certificates.items():
            MovieCertificate.objects.get_or_create(movie=movie, country=country, defaults={"rating": rating})
        if not movie.poster:
            upload_poster(movie=movie, image=demo_poster(movie))


def demo_poster(movie):
    """A poster for the demo drawn with Pillow (title and genre), as a PNG file, the size of the largest one."""
    buffer = BytesIO()
    draw_poster(movie.title, width=POSTER_SIZES["detail"], subtitle=movie.genre).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue(), name=f"{slug(movie.title)}.png")


def show_languages(movie, country, slot):
    """`(audio_language, subtitles)` of a demo show in `country`: the film's own language (blank), subtitled in the
    local one when they differ; in India an English film's afternoon show is dubbed in Hindi instead."""
    local = LOCAL_LANGUAGE.get(country, DEFAULT_LOCAL_LANGUAGE)
    if movie.language == local:
        return "", ""
    if country == Country.INDIA and movie.language == "English" and slot == 1:
        return local, ""
    return "", local


@transaction.atomic
def load_demo(*, at=None):
    """Create what is missing of the demo catalog and its shows for the next DEMO_DAYS days.

    Rows are matched by natural key, a hall that has seats keeps them, and a slot that already has a show (or
    clashes with one staff scheduled) is skipped, so running it again, even days later, only fills gaps.
    Returns counts for the report.
    """
    at = at or timezone.now()
    catalog_changed()  # on commit: cities and movies are written here around the services
    movies = load_movies(MOVIES)
    load_catalog_content(movies)
    cinemas, halls = [], []
    for city_data in CITIES:
        city, _ = City.objects.get_or_create(
            name=city_data["name"], state=city_data["state"], country=city_data["country"]
        )
        for cinema_data in city_data["cinemas"]:
            name, hall_sizes = cinema_data["name"], cinema_data["halls"]
            details = {key: value for key, value in cinema_data.items() if key not in {"name", "halls"}}
            cinema, _ = Cinema.objects.get_or_create(
                city=city,
                name=name,
                defaults={**details, "time_zone": city_data["time_zone"], **cinema_money(city_data)},
            )
            load_menu(cinema)
            cinemas.append(cinema)
            for hall_name, seats in hall_sizes:
                hall, _ = Hall.objects.get_or_create(cinema=cinema, name=hall_name)
                if not hall.seats.exists():
                    hall = build_seat_layout(hall=hall, plan=hall_plan(seats))
                for seat_type, price in ticket_prices(hall.capacity, cinema.currency).items():
                    HallPrice.objects.get_or_create(hall=hall, seat_type=seat_type, defaults={"price": price})
                halls.append((cinema, hall))

    added = skipped = 0
    for hall_index, (cinema, hall) in enumerate(halls):
        today = at.astimezone(cinema.zone).date()
        taken = set(Show.objects.filter(hall=hall, starts_at__gt=at).values_list("starts_at", flat=True))
        prices = ticket_prices(hall.capacity, cinema.currency)
        for day in (today + timedelta(days=offset) for offset in range(DEMO_DAYS)):
            for slot, showtime in enumerate(DEMO_SHOWTIMES):
                starts_at = local_start(day, showtime, cinema.zone)
                if starts_at <= at or starts_at in taken:
                    continue
                # Keyed on the date, so a later run puts the same movie in the same slot.
                movie = movies[(day.toordinal() + hall_index + slot) % len(movies)]
                audio_language, subtitles = show_languages(movie, cinema.city.country, slot)
                try:
                    schedule_show(
                        movie=movie,
                        hall=hall,
                        starts_at=starts_at,
                        prices=prices,
                        format=DEMO_FORMATS[hall_index % len(DEMO_FORMATS)],
                        audio_language=audio_language,
                        subtitles=subtitles,
                    )
                except ValidationError:
                    skipped += 1  # staff put another show there: theirs stays
                else:
                    added += 1

    seat_counts = [hall.seat_count for _, hall in halls]
    return {
        "cities": len(CITIES),
        "cinemas": len(cinemas),
        "halls": len(halls),
        "smallest_hall": min(seat_counts),
        "largest_hall": max(seat_counts),
        "movies": len(movies),
        "shows_added": added,
        "shows_skipped": skipped,
        "shows_upcoming": Show.objects.filter(hall__in=[hall for _, hall in halls], starts_at__gt=at).count(),
    }


# The demo's on-sale: the last demo day's latest show at the staff's cinema, behind a waiting room that opens when the
# demo is seeded, its sale this many minutes later (so the room, its draw and admissions can be watched locally).
DEMO_ON_SALE_OPENS_IN_MINUTES = 10


def ensure_demo_on_sale(*, at=None):
    """Put one demo show behind a waiting room unless an on-sale is already to come; returns the OnSale or None."""
    at = at or timezone.now()
    upcoming = OnSale.objects.filter(closes_at__gt=at).order_by("opens_at").first()
    if upcoming is not None:
        return upcoming
    show = (
        Show.objects.filter(hall__cinema__name=DEMO_STAFF_CINEMA, starts_at__gt=at + timedelta(days=DEMO_DAYS - 2))
        .order_by("-starts_at")
        .first()
    )
    if show is None:
        return None
    opens_at = at + timedelta(minutes=DEMO_ON_SALE_OPENS_IN_MINUTES)
    return mark_on_sale(OnSale(show=show, movie=show.movie, queue_opens_at=at, opens_at=opens_at))


# --- The design study's scale, for the benchmark --------------------------------------------------------

STUDY_CITY_PREFIX = "Study City "
# The study's cities are American.
STUDY_CURRENCY = "USD"
# 4 h 30 min apart: longer than any study movie plus turnaround, so a hall's two shows never overlap.
STUDY_SHOWTIMES = (time(15, 0), time(19, 30))
# A grid of generated cities over the continental United States (south-west to north-east corner).
STUDY_AREA = ((25.5, -123.5), (48.5, -68.5))
# Rough longitude bands of the US time zones, west to east: (westernmost longitude of the next zone, zone).
STUDY_ZONES = ((-114.5, "America/Los_Angeles"), (-102.0, "America/Denver"), (-87.5, "America/Chicago"))
STUDY_TITLE_WORDS = (
    ("Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Distant", "Wild", "Electric", "Frozen"),
    ("Harbor", "Orbit", "Kingdom", "Signal", "Frontier", "Summer", "Witness", "Horizon", "Circus", "River"),
)
STUDY_GENRES = ("Drama", "Action", "Comedy", "Thriller", "Science Fiction", "Romance", "Animation", "Horror")
SEAT_COLUMNS = ("hall_id", "row_label", "number", "seat_type", "x", "y")


def load_study(*, cities=500, cinemas_per_city=10, seats_per_hall=2000, days=7, movies=30, at=None):
    """Load the design study's catalog in one transaction, or do nothing if it is already there.

    Every cinema gets one hall of `seats_per_hall` seats and two shows a day for `days` days from its local
    tomorrow, so all of them are still on sale when the benchmark runs. The movies are the demo's plus generated
    ones, `movies` in all. PostgreSQL only (seats go in through COPY). Returns counts, or None when skipped.

    Cities, cinemas, halls, shows and prices are bulk-inserted and seats are copied in, bypassing
    build_seat_layout and schedule_show: their per-row checks and savepoints would take hours at this size,
    and the rows made here can't clash (one fixed plan per hall, showtimes far enough apart).
    """
    if City.objects.filter(name__startswith=STUDY_CITY_PREFIX).exists():
        return None
    at = at or timezone.now()
    planned = parse_seat_plan(hall_plan(seats_per_hall))
    capacity = dict(Counter(str(seat.seat_type) for seat in planned))
    with transaction.atomic():
        catalog_changed()  # on commit: every row is written here around the services
        movie_rows = _study_movies(movies)
        city_rows = City.objects.bulk_create(
            City(name=f"{STUDY_CITY_PREFIX}{number:03d}", state="", country="United States")
            for number in range(1, cities + 1)
        )
        cinema_rows = Cinema.objects.bulk_create(
            (
                _study_cinema(city, city_index, cinema_index, latitude, longitude)
                for city_index, (city, (latitude, longitude)) in enumerate(zip(city_rows, _grid(cities), strict=True))
                for cinema_index in range(cinemas_per_city)
            ),
            batch_size=2000,
        )
        hall_rows = Hall.objects.bulk_create(
            (Hall(cinema=cinema, name="Hall 1", capacity=capacity) for cinema in cinema_rows), batch_size=2000
        )
        _copy_seats(hall_rows, planned)
        prices_per_type = ticket_prices(capacity, STUDY_CURRENCY)
        shows = prices = 0
        for batch in itertools.batched(_study_shows(hall_rows, movie_rows, days, at), 5000):
            show_rows = Show.objects.bulk_create(batch)
            price_rows = ShowPrice.objects.bulk_create(
                ShowPrice(show=show, seat_type=seat_type, price=price)
                for show in show_rows
                for seat_type, price in prices_per_type.items()
            )
            shows += len(show_rows)
            prices += len(price_rows)
    with connection.cursor() as cursor:
        # Fresh tables have no statistics; without them the benchmark's first queries get poor plans.
        cursor.execute("ANALYZE")
    return {
        "cities": len(city_rows),
        "cinemas": len(cinema_rows),
        "halls": len(hall_rows),
        "seats": len(hall_rows) * len(planned),
        "movies": len(movie_rows),
        "shows": shows,
        "prices": prices,
    }


def _study_movies(count):
    firsts, seconds = STUDY_TITLE_WORDS
    generated = []
    for index in range(max(0, count - len(MOVIES))):
        # Walks the word grid diagonally, so neighbouring titles share no word.
        first, second = firsts[index % len(firsts)], seconds[(index + index // len(firsts)) % len(seconds)]
        generated.append(
            {
                "title": f"The {first} {second}",
                "description": f"A generated film for the design study: the {first.lower()} {second.lower()}.",
                "duration": 90 + (index * 7) % 80,
                "genre": STUDY_GENRES[index % len(STUDY_GENRES)],
                "language": "English",
                "release_date": date(2026, 1 + index % 11, 1 + index % 28),
                "country": "United States",
            }
        )
    return load_movies((MOVIES + generated)[:count])


def _grid(count):
    """`count` (latitude, longitude) points spread evenly over STUDY_AREA."""
    (south, west), (north, east) = STUDY_AREA
    columns = math.ceil(math.sqrt(count * (east - west) / (north - south)))
    rows = math.ceil(count / columns)
    for index in range(count):
        row, column = divmod(index, columns)
        yield (
            round(south + (row + 0.5) * (north - south) / rows, 4),
            round(west + (column + 0.5) * (east - west) / columns, 4),
        )


def _study_cinema(city, city_index, cinema_index, latitude, longitude):
    time_zone = next((zone for edge, zone in STUDY_ZONES if longitude < edge), "America/New_York")
    # ZIP codes run from 0 in the north-east to 9 in the west; the first digit follows that so codes look real.
    (_, west), (_, east) = STUDY_AREA
    first_digit = min(9, int((east - longitude) / (east - west) * 10))
    return Cinema(
        city=city,
        name=f"Study Cinema {cinema_index + 1:02d}",
        address=f"{100 + 20 * cinema_index} Main Street",
        postal_code=f"{first_digit}{city_index % 100:02d}{cinema_index % 100:02d}",
        # Within a few kilometres of the city's centre, two rows of five.
        latitude=round(latitude + (cinema_index % 5 - 2) * 0.02, 4),
        longitude=round(longitude + (cinema_index // 5 % 2 - 0.5) * 0.03, 4),
        time_zone=time_zone,
        currency=STUDY_CURRENCY,
    )


def _copy_seats(halls, planned):
    # Every hall has the same plan, so each hall's rows are one text block that differs only in hall_id: one
    # write per hall keeps Python out of the way of COPY.
    tail = [f"{seat.row_label}\t{seat.number}\t{seat.seat_type}\t{seat.x}\t{seat.y}\n" for seat in planned]
    statement = f"COPY cinemas_seat ({', '.join(SEAT_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for hall in halls:
            prefix = f"{hall.pk}\t"
            copy.write(prefix + prefix.join(tail))


def _study_shows(halls, movies, days, at):
    for hall_index, hall in enumerate(halls):
        zone = hall.cinema.zone
        tomorrow = at.astimezone(zone).date() + timedelta(days=1)
        for offset in range(days):
            for slot, showtime in enumerate(STUDY_SHOWTIMES):
                movie = movies[(hall_index + offset * len(STUDY_SHOWTIMES) + slot) % len(movies)]
                starts_at = local_start(tomorrow + timedelta(days=offset), showtime, zone)
                yield Show(
                    movie=movie,
                    hall=hall,
                    starts_at=starts_at,
                    ends_at=default_show_end(movie=movie, starts_at=starts_at),
                )

"""Catalog reads: SearchMovies, spelling suggestions and the seat-type status of shows.

Only reads live here; every write to the catalog is in services.py.
"""

import difflib
import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F, FloatField, Q, Value
from django.db.models.functions import ASin, Cos, Power, Radians, Sin, Sqrt

from cinemas.models import OPEN_SEAT_TYPES, Cinema, Movie, SeatType, Show, ShowPrice
from cinemas.services import CATALOG_GENERATION
from ticketing.cached_reads import Built, cached

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_OF_LATITUDE = 111.045

# A seat type is "Full" when none of its seats can be had, "Almost Full" when at most this share of them
# can (so 20 of 100, or 1 of 5), and "Available" otherwise. Documented in docs/decisions.md.
ALMOST_FULL_SHARE = 0.2

# How long a catalog answer (a listing, a SearchMovies page) is served from the shared cache. Staff edits drop
# it at once (cinemas.services.catalog_changed); the seat-type words and counts in it may be this many seconds
# behind the holds (docs/decisions.md).
CATALOG_SECONDS = 5

SUGGESTION_MIN_SIMILARITY = 0.25
SUGGESTION_LIMIT = 5

SORTING_ORDERS = {
    "name,asc": ["movie__title", "starts_at", "id"],
    "name,desc": ["-movie__title", "starts_at", "id"],
    "date,asc": ["starts_at", "id"],
    "date,desc": ["-starts_at", "-id"],
    "distance,asc": ["distance_km", "starts_at", "id"],
    "name,date,asc": ["movie__title", "starts_at", "id"],
    "name,date,desc": ["-movie__title", "-starts_at", "-id"],
    "date,name,asc": ["starts_at", "movie__title", "id"],
    "date,name,desc": ["-starts_at", "-movie__title", "-id"],
}
DEFAULT_SORTING_ORDER = "date,asc"


@dataclass(frozen=True)
class ShowSearch:
    """SearchMovies' parameters, already checked (see serializers.SearchMoviesParameters)."""

    keyword: str = ""
    city_ids: tuple = ()
    lat_long: tuple | None = None
    radius_km: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    postal_code: str = ""
    sorting_order: str = DEFAULT_SORTING_ORDER
    page: int = 1
    results_per_page: int = 10


def distance_km_from(lat, lng):
    """The great-circle (haversine) distance in km from (lat, lng) to a show's cinema, as an expression."""
    lat_rad, lng_rad = math.radians(lat), math.radians(lng)
    cinema_lat = Radians(F("hall__cinema__latitude"))
    cinema_lng = Radians(F("hall__cinema__longitude"))
    half_chord = Power(Sin((cinema_lat - Value(lat_rad)) / 2), 2) + Value(math.cos(lat_rad)) * Cos(cinema_lat) * Power(
        Sin((cinema_lng - Value(lng_rad)) / 2), 2
    )
    return Value(2 * EARTH_RADIUS_KM) * ASin(Sqrt(half_chord), output_field=FloatField())


def _bounding_box(lat, lng, radius_km):
    """A latitude/longitude box around the circle, so the cinema index narrows the rows to measure."""
    lat_span = radius_km / KM_PER_DEGREE_OF_LATITUDE
    box = Q(hall__cinema__latitude__range=(lat - lat_span, lat + lat_span))
    cos_lat = math.cos(math.radians(lat))
    if cos_lat > 0.01:
        lng_span = radius_km / (KM_PER_DEGREE_OF_LATITUDE * cos_lat)
        if lng - lng_span >= -180 and lng + lng_span <= 180:  # near the antimeridian the box would wrap
            box &= Q(hall__cinema__longitude__range=(lng - lng_span, lng + lng_span))
    return box


def catalog_read(kind, parts, build, *, also=()):
    """`build()`'s answer of `kind` for `parts`, built once per catalog generation (and the generations named in
    `also`) and served from the shared cache for CATALOG_SECONDS (ticketing.cached_reads)."""
    return cached(kind, (CATALOG_GENERATION, *also), parts, lambda: Built(build()), seconds=CATALOG_SECONDS)


def search_shows(search, *, at):
    """One page of upcoming shows matching `search`, and how many match in all.

    Returns `(shows, total)`; each show has its movie, hall and cinema loaded and, when a location was
    given, a `distance_km`.
    """
    shows = Show.objects.upcoming(at).select_related("movie", "hall__cinema__city")
    if search.keyword:
        shows = shows.filter(Q(movie__title__icontains=search.keyword) | Q(movie__genre__iexact=search.keyword))
    if search.city_ids:
        shows = shows.filter(hall__cinema__city_id__in=search.city_ids)
    if search.postal_code:
        shows = shows.filter(hall__cinema__postal_code__iexact=search.postal_code)
    if search.start:
        shows = shows.filter(starts_at__gte=search.start)
    if search.end:
        shows = shows.filter(starts_at__lte=search.end)
    if search.lat_long:
        lat, lng = search.lat_long
        shows = shows.annotate(distance_km=distance_km_from(lat, lng))
        if search.radius_km is not None:
            shows = shows.filter(_bounding_box(lat, lng, search.radius_km), distance_km__lte=search.radius_km)
    total = shows.count()
    offset = (search.page - 1) * search.results_per_page
    if offset >= total:
        # Nothing on this page: a misspelt keyword matches no show, and the page query would then walk the
        # whole starts_at index looking for rows that aren't there (~25 ms at the study's scale).
        return [], total
    page = shows.order_by(*SORTING_ORDERS[search.sorting_order])[offset : offset + search.results_per_page]
    return list(page.prefetch_related("movie__certificates")), total


def spelling_suggestions(keyword):
    """Movie titles that look like `keyword` (e.g. 'Crs 2' -> 'Cars 2'), most alike first.

    PostgreSQL ranks by trigram similarity; the single-process SQLite demo falls back to difflib.
    """
    if settings.DATABASE_IS_POSTGRES:
        from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity

        alike = (
            Movie.objects.annotate(
                similarity=TrigramSimilarity("title", keyword),
                word_similarity=TrigramWordSimilarity(keyword, "title"),
            )
            .filter(Q(similarity__gte=SUGGESTION_MIN_SIMILARITY) | Q(word_similarity__gte=0.5))
            .order_by("-similarity", "-word_similarity", "title")
            .values_list("title", flat=True)
        )
        titles = list(dict.fromkeys(alike[: SUGGESTION_LIMIT * 2]))
    else:
        all_titles = list(Movie.objects.values_list("title", flat=True).distinct())
        titles = difflib.get_close_matches(keyword, all_titles, n=SUGGESTION_LIMIT, cutoff=0.5)
    return titles[:SUGGESTION_LIMIT]


def status_for(*, available, capacity):
    if available <= 0:
        return "Full"
    if available <= capacity * ALMOST_FULL_SHARE:
        return "Almost Full"
    return "Available"


# How many seats of each type are taken per show comes from the bookings app, which owns holds and
# bookings; it registers its counter when it loads (bookings.apps), so the catalog never imports it and
# the apps depend one way (cinemas <- bookings <- waiting). Until one is registered, nothing is taken.
_taken_seats_counter = None


def register_taken_seats_counter(counter):
    """`counter(show_ids, at) -> {show_id: {seat_type: (taken, booked)}}`; called once by bookings at start.

    Taken seats are held or booked; booked ones are the part that will never come free.
    """
    global _taken_seats_counter
    _taken_seats_counter = counter


def seat_type_statuses(shows, at):
    """`{show_id: [{"type", "price", "status", "held"}, ...]}` for these shows, in two queries for all of them.

    `status` is the API's SeatTypeStatus word for the seats that can be had now (held seats can't); `held`
    counts the seats of the type held by buyers paying now, which may come free (the waiting line).
    """
    prices = ShowPrice.objects.filter(show__in=[show.pk for show in shows]).values_list("show_id", "seat_type", "price")
    taken = _taken_seats_counter([show.pk for show in shows], at) if _taken_seats_counter and shows else {}
    by_show = {show.pk: [] for show in shows}
    capacity_of = {show.pk: show.hall.capacity for show in shows}
    for show_id, seat_type, price in sorted(prices):
        capacity = capacity_of[show_id].get(seat_type, 0)
        taken_now, booked = taken.get(show_id, {}).get(seat_type, (0, 0))
        by_show[show_id].append(
            {
                "type": seat_type,
                "price": price,
                "status": status_for(available=capacity - taken_now, capacity=capacity),
                "held": taken_now - booked,
            }
        )
    return by_show


def local_day_bounds(day, zone):
    """The UTC instants at which `day` starts and ends in `zone` (23 or 25 hours long on DST days)."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def shows_on_local_day(shows, *, day, time_zones):
    """Restrict `shows` to those starting on `day` in their own cinema's time zone."""
    on_day = Q(pk__in=[])
    for zone_name in time_zones:
        start, end = local_day_bounds(day, ZoneInfo(zone_name))
        on_day |= Q(hall__cinema__time_zone=zone_name, starts_at__gte=start, starts_at__lt=end)
    return shows.filter(on_day)


def overall_status(seat_statuses):
    """One word for a whole show, for what anyone can get now: from the words of its open seat types (those
    best available and the waiting line give), Full when every one is, Available when any is.

    Wheelchair spaces and companion seats don't count (see showtime_notes): a show whose every Regular and
    Premium seat is taken is Full to a moviegoer, whatever wheelchair spaces are free.
    """
    words = {entry["status"] for entry in seat_statuses if entry["type"] in OPEN_SEAT_TYPES}
    if not words or words == {"Full"}:
        return "Full"
    return "Available" if "Available" in words else "Almost Full"


def showtime_notes(seat_statuses):
    """What a Full show may still give: `{"wheelchair_spaces": free wheelchair spaces?, "seats_held": open seats
    held by people paying, which may come free to whoever waits in line?}`."""
    return {
        "wheelchair_spaces": any(
            entry["type"] == SeatType.WHEELCHAIR and entry["status"] != "Full" for entry in seat_statuses
        ),
        "seats_held": any(entry["type"] in OPEN_SEAT_TYPES and entry["held"] for entry in seat_statuses),
    }


def _on_day_in_city(shows, city, day):
    if day is None:
        return shows
    zones = Cinema.objects.filter(city=city).values_list("time_zone", flat=True).distinct()
    return shows_on_local_day(shows, day=day, time_zones=zones)


def movies_showing(city, *, day=None, at):
    """Movies with at least one upcoming show in the city (on `day`, in each cinema's local time)."""
    shows = _on_day_in_city(Show.objects.upcoming(at).filter(hall__cinema__city=city), city, day)
    movies = Movie.objects.filter(pk__in=shows.values("movie_id")).order_by("title", "id")
    return movies.prefetch_related("certificates")


def movie_showtimes(movie, city, *, day=None, at):
    """`[{"cinema", "shows"}]`: the movie's upcoming shows in the city by cinema, each show with `seats` (its
    seat types' price and status), `availability` (one word for the show), `notes` (showtime_notes) and
    `lowest_price` / `highest_price` (None for a show without prices)."""
    shows = (
        Show.objects.upcoming(at)
        .filter(movie=movie, hall__cinema__city=city)
        .select_related("movie", "hall__cinema")
        .order_by("hall__cinema__name", "hall__cinema_id", "starts_at", "id")
    )
    shows = list(_on_day_in_city(shows, city, day))
    statuses = seat_type_statuses(shows, at)
    by_cinema = {}
    for show in shows:
        show.seats = statuses[show.pk]
        show.availability = overall_status(show.seats)
        show.notes = showtime_notes(show.seats)
        prices = [entry["price"] for entry in show.seats]
        show.lowest_price, show.highest_price = (min(prices), max(prices)) if prices else (None, None)
        by_cinema.setdefault(show.hall.cinema, []).append(show)
    return [{"cinema": cinema, "shows": cinema_shows} for cinema, cinema_shows in by_cinema.items()]

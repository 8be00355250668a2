"""Shapes of the catalog API: query parameters in (checked for shape only) and JSON out (API.md)."""

import re
from datetime import date

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cinemas.models import City
from cinemas.posters import POSTER_SIZES, poster_urls
from cinemas.search import DEFAULT_SORTING_ORDER, SORTING_ORDERS
from ticketing.numbers import whole_number
from ticketing.parameters import StrictParameters

MAX_RESULTS_PER_PAGE = 30


class CityListParameters(StrictParameters):
    search = serializers.CharField(required=False, allow_blank=True, max_length=100)
    # Bounded like SearchMovies' page: a page past PostgreSQL's bigint OFFSET was a 500 (schemathesis).
    page = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1)


# The days a listing may ask for. The calendar's own ends overflowed: 9999-12-31 has no next day, and the start of
# 0001-01-01 east of Greenwich is before the first UTC instant.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)


class LocalDateParameters(StrictParameters):
    date = serializers.DateField(
        required=False, help_text=f"A day in each cinema's own time zone (YYYY-MM-DD), {EARLIEST_DAY} to {LATEST_DAY}."
    )

    def validate_date(self, value):
        if not EARLIEST_DAY <= value <= LATEST_DAY:
            raise serializers.ValidationError(f"Give a day from {EARLIEST_DAY} to {LATEST_DAY}.")
        return value


class MovieShowsParameters(LocalDateParameters):
    city = serializers.IntegerField(min_value=1, help_text="The city's id.")


def parse_lat_long(value):
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*", value)
    if not match:
        raise serializers.ValidationError('Give "latitude,longitude" in degrees, e.g. "40.7506,-73.9935".')
    lat, lng = float(match[1]), float(match[2])
    if not -90 <= lat <= 90:
        raise serializers.ValidationError("Latitude must be between -90 and 90.")
    if not -180 <= lng <= 180:
        raise serializers.ValidationError("Longitude must be between -180 and 180.")
    return lat, lng


class SearchMoviesParameters(StrictParameters):
    keyword = serializers.CharField(required=False, allow_blank=True, max_length=100, trim_whitespace=True)
    city = serializers.CharField(required=False, max_length=100, help_text="A city's id or its name.")
    lat_long = serializers.CharField(required=False, help_text='"latitude,longitude" in degrees.')
    radius = serializers.FloatField(
        required=False, min_value=0.1, max_value=20000, help_text="Kilometres around lat_long (needs lat_long)."
    )
    start_datetime = serializers.DateTimeField(required=False, help_text="ISO 8601; without an offset it is UTC.")
    end_datetime = serializers.DateTimeField(required=False, help_text="ISO 8601; without an offset it is UTC.")
    postal_code = serializers.CharField(required=False, max_length=20)
    include_spellcheck = serializers.ChoiceField(choices=["yes", "no"], required=False, default="no")
    results_per_page = serializers.IntegerField(required=False, min_value=1, max_value=MAX_RESULTS_PER_PAGE, default=10)
    page = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1)
    sorting_order = serializers.ChoiceField(choices=list(SORTING_ORDERS), required=False, default=DEFAULT_SORTING_ORDER)

    def validate_lat_long(self, value):
        return parse_lat_long(value)

    def validate_city(self, value):
        value = value.strip()
        city_id = whole_number(value)
        cities = City.objects.filter(pk=city_id) if city_id is not None else City.objects.filter(name__iexact=value)
        city_ids = tuple(cities.values_list("pk", flat=True))
        if not city_ids:
            raise serializers.ValidationError("No city has this id or name.")
        return city_ids

    def validate(self, attrs):
        attrs = super().validate(attrs)
        errors = {}
        if "radius" in attrs and "lat_long" not in attrs:
            errors["radius"] = ["radius needs lat_long."]
        if attrs["sorting_order"] == "distance,asc" and "lat_long" not in attrs:
            errors["sorting_order"] = ["distance,asc needs lat_long."]
        start, end = attrs.get("start_datetime"), attrs.get("end_datetime")
        if start and end and end < start:
            errors["end_datetime"] = ["end_datetime is before start_datetime."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- Output ------------------------------------------------------------------------------------------


class CitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    country = serializers.CharField()
    cinema_count = serializers.IntegerField()


class CityPageSerializer(serializers.Serializer):
    results = CitySerializer(many=True)
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


def absolute_url(path):
    """A site-relative URL made absolute with the site's public address (TICKETING_SITE_URL), as partners' apps
    need; not the request's host, since catalog answers are cached and shared between callers."""
    return f"{settings.TICKETING_SITE_URL}{path}"


class PostersSerializer(serializers.Serializer):
    card = serializers.URLField(help_text=f"{POSTER_SIZES['card']} px wide (2:3), WebP.")
    detail = serializers.URLField(help_text=f"{POSTER_SIZES['detail']} px wide (2:3), WebP.")


class CertificateSerializer(serializers.Serializer):
    country = serializers.CharField()
    rating = serializers.CharField(help_text="As the country's board writes it: U, UA 13+, A; G, PG-13, R; 12A; ...")


class CatalogContentFields(serializers.Serializer):
    """A movie's poster, certificates, cast and trailer: the fields the catalog content adds to a movie's.

    `certificate` is the movie's rating in the country of the place the answer is about (country_of), null where
    it has none there or no place is known; `certificates` lists every country's. Subclasses say where their
    source's movie (movie_of) and place are. The movie's certificates should be prefetched.
    """

    poster = serializers.SerializerMethodField(
        help_text=f"The poster's URL ({POSTER_SIZES['detail']} px wide); a placeholder drawn from the title if none."
    )
    posters = serializers.SerializerMethodField()
    cast = serializers.SerializerMethodField(help_text="The leading actors; empty if not given.")
    trailer_url = serializers.SerializerMethodField(help_text="A link to the trailer, or null.")
    certificate = serializers.SerializerMethodField(help_text="The rating where the cinema is, or null.")
    certificates = serializers.SerializerMethodField()

    def movie_of(self, source):
        return source

    def country_of(self, source):
        return self.context.get("country")

    def get_poster(self, source) -> str:
        return absolute_url(poster_urls(self.movie_of(source))["detail"])

    @extend_schema_field(PostersSerializer)
    def get_posters(self, source):
        return {size: absolute_url(url) for size, url in poster_urls(self.movie_of(source)).items()}

    def get_cast(self, source) -> str:
        return self.movie_of(source).cast

    def get_trailer_url(self, source) -> str | None:
        return self.movie_of(source).trailer_url or None

    def get_certificate(self, source) -> str | None:
        country = self.country_of(source)
        certificates = self.movie_of(source).certificates.all()
        return next((certificate.rating for certificate in certificates if certificate.country == country), None)

    @extend_schema_field(CertificateSerializer(many=True))
    def get_certificates(self, source):
        return [{"country": c.country, "rating": c.rating} for c in self.movie_of(source).certificates.all()]


class MovieSerializer(CatalogContentFields):
    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    duration = serializers.IntegerField(help_text="Minutes.")
    genre = serializers.CharField()
    language = serializers.CharField()
    release_date = serializers.DateField()
    country = serializers.CharField()


class CinemaSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    address = serializers.CharField()
    postal_code = serializers.CharField()
    lat = serializers.FloatField(source="latitude")
    lng = serializers.FloatField(source="longitude")
    city_id = serializers.IntegerField()
    time_zone = serializers.CharField()


class SeatTypeStatusSerializer(serializers.Serializer):
    type = serializers.CharField()
    price = serializers.DecimalField(max_digits=8, decimal_places=2)
    status = serializers.ChoiceField(choices=["Available", "Almost Full", "Full"])


class PriceRangeSerializer(serializers.Serializer):
    min = serializers.DecimalField(max_digits=8, decimal_places=2)
    max = serializers.DecimalField(max_digits=8, decimal_places=2)
    currency = serializers.CharField(help_text="ISO 4217.")


def price_range(seat_statuses, currency):
    """`{"min", "max", "currency"}` (decimal strings) over a show's seat types' prices (seat_type_statuses), in
    `currency` (its cinema's), or None if it has none."""
    prices = [entry["price"] for entry in seat_statuses]
    if not prices:
        return None
    return PriceRangeSerializer({"min": min(prices), "max": max(prices), "currency": currency}).data


class ShowContentFields(serializers.Serializer):
    """A showtime's format, languages and price range: the fields the catalog content adds to a show's. The show
    needs its movie loaded (for the audio language) and its `seats` (seat_type_statuses)."""

    format = serializers.CharField(help_text="2D, 3D, IMAX, IMAX 3D, 4DX, ScreenX or Dolby Cinema.")
    audio_language = serializers.CharField(source="spoken_language", help_text="The show's, else the movie's.")
    subtitles = serializers.SerializerMethodField(help_text="The subtitles' language, or null for none.")
    price_range = serializers.SerializerMethodField()

    def get_subtitles(self, show) -> str | None:
        return show.subtitles or None

    @extend_schema_field(PriceRangeSerializer(allow_null=True))
    def get_price_range(self, show):
        return price_range(show.seats, show.hall.cinema.currency)


class ShowtimeSerializer(ShowContentFields):
    show_id = serializers.IntegerField(source="id")
    hall = serializers.CharField(source="hall.name")
    start_time = serializers.DateTimeField(source="starts_at")
    end_time = serializers.DateTimeField(source="ends_at")
    seats = SeatTypeStatusSerializer(many=True)


class CinemaShowtimesSerializer(serializers.Serializer):
    cinema = CinemaSerializer()
    shows = ShowtimeSerializer(many=True)


class SearchResultSerializer(ShowContentFields, CatalogContentFields):
    movie_id = serializers.IntegerField(source="movie.id")
    show_id = serializers.IntegerField(source="id")
    title = serializers.CharField(source="movie.title")
    description = serializers.CharField(source="movie.description")
    duration = serializers.IntegerField(source="movie.duration")
    genre = serializers.CharField(source="movie.genre")
    language = serializers.CharField(source="movie.language")
    release_date = serializers.DateField(source="movie.release_date")
    country = serializers.CharField(source="movie.country")
    start_time = serializers.DateTimeField(source="starts_at")
    end_time = serializers.DateTimeField(source="ends_at")
    cinema = CinemaSerializer(source="hall.cinema")
    distance_km = serializers.SerializerMethodField()
    seats = SeatTypeStatusSerializer(many=True)

    def movie_of(self, show):
        return show.movie

    def country_of(self, show):
        return show.hall.cinema.city.country

    def get_distance_km(self, show) -> float | None:
        distance = getattr(show, "distance_km", None)
        return None if distance is None else round(distance, 2)

    def to_representation(self, show):
        data = super().to_representation(show)
        if data["distance_km"] is None:
            del data["distance_km"]  # API.md: present only when lat_long is given
        return data


class SearchPageSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)
    page = serializers.IntegerField()
    results_per_page = serializers.IntegerField()
    total = serializers.IntegerField()
    suggestions = serializers.ListField(child=serializers.CharField(), required=False)

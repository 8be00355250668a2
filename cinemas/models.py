import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import dateformat
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from ticketing.db import PostgresExclusionConstraint, TsTzRange


def validate_time_zone(name):
    if name not in zoneinfo.available_timezones():
        raise ValidationError(
            gettext("%(name)s is not an IANA time zone such as Europe/London.") % {"name": repr(name)}
        )


class City(models.Model):
    name = models.CharField(verbose_name=_("name"), max_length=100)
    state = models.CharField(verbose_name=_("state"), max_length=100, blank=True)
    country = models.CharField(verbose_name=_("country"), max_length=100)

    class Meta:
        verbose_name = _("city")
        verbose_name_plural = _("cities")
        ordering = ["name", "state"]
        constraints = [
            models.UniqueConstraint(fields=["name", "state", "country"], name="cinemas_city_unique_name"),
        ]

    def __str__(self):
        return f"{self.name}, {self.state}" if self.state else self.name


class RefundPolicy(models.TextChoices):
    FULL = "full", _("Full refund")
    PARTIAL = "partial", _("Partial refund (a percentage of the tickets)")
    FEE_KEPT = "fee_kept", _("Full refund but the convenience fee")
    NONE = "none", _("No cancellation")


class Cinema(models.Model):
    city = models.ForeignKey(City, verbose_name=_("city"), on_delete=models.PROTECT, related_name="cinemas")
    name = models.CharField(verbose_name=_("name"), max_length=200)
    address = models.CharField(verbose_name=_("address"), max_length=300)
    postal_code = models.CharField(verbose_name=_("postal code"), max_length=20, db_index=True)
    latitude = models.FloatField(verbose_name=_("latitude"), validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(
        verbose_name=_("longitude"), validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )
    time_zone = models.CharField(
        verbose_name=_("time zone"),
        max_length=64,
        validators=[validate_time_zone],
        help_text=_("IANA name, e.g. America/New_York: showtimes and 'today' are in this zone."),
    )
    # Money: the prices of its shows are in its currency; bookings' price breakdown adds the fee per ticket and
    # the tax (included in the prices, as VAT and GST usually are, or added on top, as US sales tax is).
    currency = models.CharField(
        verbose_name=_("currency"),
        max_length=3,
        default="USD",
        help_text=_("ISO 4217 code of its prices, e.g. USD, INR, GBP, EUR."),
    )
    tax_name = models.CharField(
        verbose_name=_("tax name"),
        max_length=40,
        blank=True,
        help_text=_("As receipts name it, e.g. GST, VAT, Sales tax."),
    )
    tax_rate = models.DecimalField(
        verbose_name=_("tax rate"),
        max_digits=6,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text=_("Percent, e.g. 18 for GST 18 %; 0: no tax line."),
    )
    tax_included = models.BooleanField(
        verbose_name=_("tax included"),
        default=True,
        help_text=_("Prices and fees include the tax (VAT, GST); unticked: it is added on top."),
    )
    convenience_fee = models.DecimalField(
        verbose_name=_("convenience fee"),
        max_digits=8,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Charged per ticket, in its currency."),
    )
    # After the sale: until when, and how much of the money, a buyer gets back by cancelling their own booking.
    cancellation_cutoff_minutes = models.PositiveIntegerField(
        verbose_name=_("cancellation cutoff minutes"),
        default=120,
        help_text=_("Buyers may cancel their booking until this many minutes before the show."),
    )
    refund_policy = models.CharField(
        verbose_name=_("refund policy"),
        max_length=16,
        choices=RefundPolicy.choices,
        default=RefundPolicy.FEE_KEPT,
        help_text=_("What a buyer who cancels gets back."),
    )
    refund_percent = models.PositiveSmallIntegerField(
        verbose_name=_("refund percent"),
        default=100,
        validators=[MaxValueValidator(100)],
        help_text=_("With a partial refund: the percentage of the tickets' price given back."),
    )
    # Accessibility: companion seats go only with a wheelchair space until this long before the show.
    companion_release_minutes = models.PositiveIntegerField(
        verbose_name=_("companion release minutes"),
        default=60,
        help_text=_("Companion seats still free this many minutes before the show are open to everyone."),
    )

    class Meta:
        verbose_name = _("cinema")
        verbose_name_plural = _("cinemas")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["city", "name"], name="cinemas_cinema_unique_name_in_city"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="cinemas_cinema_currency_iso"),
            models.CheckConstraint(
                condition=Q(tax_rate__gte=0, tax_rate__lte=100), name="cinemas_cinema_tax_rate_percent"
            ),
            models.CheckConstraint(condition=Q(convenience_fee__gte=0), name="cinemas_cinema_fee_not_negative"),
            models.CheckConstraint(condition=Q(refund_percent__lte=100), name="cinemas_cinema_refund_percent"),
        ]
        indexes = [
            # SearchMovies' lat_long + radius: a bounding box on both coordinates narrows the cinemas
            # before the exact great-circle distance is computed.
            models.Index(fields=["latitude", "longitude"], name="cinemas_cinema_lat_lng"),
        ]

    def __str__(self):
        return self.name

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.time_zone)

    def clock_label(self, instant):
        """`instant` as this cinema's clocks show it, with the zone: "Mon 7 Dec 2026, 17:30 (America/New_York)"."""
        return clock_label(instant, self.zone)


def clock_label(instant, zone):
    """`instant` as the zone's clocks show it, with the zone (Cinema.clock_label); "–" for none."""
    if instant is None:
        return "–"
    # Translators: a date and time as Django's date format characters, e.g. "Mon 7 Dec 2026, 17:30".
    return f"{dateformat.format(instant.astimezone(zone), gettext('D j M Y, H:i'))} ({zone.key})"


class StaffRole(models.TextChoices):
    """What a member of a cinema's staff may do there (cinemas.roles says what each role allows)."""

    STAFF = "staff", _("Staff")
    MANAGER = "manager", _("Manager")


class CinemaStaff(models.Model):
    """A person's role at one cinema. The chain's admins (superusers) need none: they run every cinema."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="cinema_roles"
    )
    cinema = models.ForeignKey(Cinema, verbose_name=_("cinema"), on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(verbose_name=_("role"), max_length=8, choices=StaffRole.choices)

    class Meta:
        verbose_name = _("cinema staff member")
        verbose_name_plural = _("cinema staff")
        ordering = ["cinema", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "cinema"], name="cinemas_cinemastaff_one_role_per_cinema"),
        ]

    def __str__(self):
        return f"{self.user} – {self.cinema} ({self.get_role_display()})"


class Hall(models.Model):
    cinema = models.ForeignKey(Cinema, verbose_name=_("cinema"), on_delete=models.PROTECT, related_name="halls")
    name = models.CharField(verbose_name=_("name"), max_length=100)
    # Seats per seat type, e.g. {"Regular": 180, "Premium": 40}: written only by build_seat_layout (the one
    # way seats are made), so listings can show availability per type without counting thousands of rows.
    capacity = models.JSONField(verbose_name=_("capacity"), default=dict, editable=False)

    class Meta:
        verbose_name = _("hall")
        verbose_name_plural = _("halls")
        ordering = ["cinema", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cinema", "name"], name="cinemas_hall_unique_name_in_cinema"),
        ]

    def __str__(self):
        return f"{self.cinema} – {self.name}"

    @property
    def seat_count(self):
        return sum(self.capacity.values())


class SeatType(models.TextChoices):
    # The labels are the site's names of the seat types (ticketing.templatetags.site_format), in the reader's language.
    REGULAR = "Regular", pgettext_lazy("seat type", "Regular")
    PREMIUM = "Premium", pgettext_lazy("seat type", "Premium")
    WHEELCHAIR = "Wheelchair", pgettext_lazy("seat type", "Wheelchair")
    COMPANION = "Companion", pgettext_lazy("seat type", "Companion")


# The seat types anyone may be given: best available (without a type), the waiting line and a showtime's one
# word deal in these. Wheelchair spaces and their companion seats go only to those who choose them on the map
# or ask for their type. Premium first: best available tries the cheapest first, Premium first on equal prices.
OPEN_SEAT_TYPES = (SeatType.PREMIUM, SeatType.REGULAR)


class Seat(models.Model):
    hall = models.ForeignKey(Hall, verbose_name=_("hall"), on_delete=models.CASCADE, related_name="seats")
    row_label = models.CharField(verbose_name=_("row label"), max_length=4)
    number = models.PositiveSmallIntegerField(verbose_name=_("number"))
    seat_type = models.CharField(
        verbose_name=_("seat type"), max_length=16, choices=SeatType.choices, default=SeatType.REGULAR
    )
    # Grid position for drawing: x counts columns from the left (aisles included), y rows from the screen.
    x = models.PositiveSmallIntegerField(verbose_name=_("x"))
    y = models.PositiveSmallIntegerField(verbose_name=_("y"))

    class Meta:
        # By id, not "hall": ordering by a relation would join and sort by the hall's own ordering.
        verbose_name = _("seat")
        verbose_name_plural = _("seats")
        ordering = ["hall_id", "y", "x"]
        constraints = [
            models.UniqueConstraint(fields=["hall", "row_label", "number"], name="cinemas_seat_unique_in_hall"),
            models.UniqueConstraint(fields=["hall", "y", "x"], name="cinemas_seat_unique_position_in_hall"),
        ]

    def __str__(self):
        return f"{self.row_label}{self.number}"


class Movie(models.Model):
    title = models.CharField(verbose_name=_("title"), max_length=200)
    description = models.TextField(verbose_name=_("description"), blank=True)
    duration = models.PositiveSmallIntegerField(verbose_name=_("duration"), help_text=_("Running time in minutes."))
    genre = models.CharField(verbose_name=_("genre"), max_length=50)
    language = models.CharField(verbose_name=_("language"), max_length=50)
    release_date = models.DateField(verbose_name=_("release date"))
    country = models.CharField(verbose_name=_("country"), max_length=100)
    # The poster at the sizes the pages use (cinemas.posters.POSTER_SIZES), written only by upload_poster: files
    # under MEDIA_ROOT named by their content's hash, so they are served with a year's cache and never change.
    # Blank: the pages show a placeholder drawn from the title.
    poster = models.ImageField(
        verbose_name=_("poster"), upload_to="posters/", blank=True, editable=False, help_text=_("480 px wide.")
    )
    poster_card = models.ImageField(
        verbose_name=_("poster card"), upload_to="posters/", blank=True, editable=False, help_text=_("240 px wide.")
    )
    cast = models.CharField(
        verbose_name=_("cast"),
        max_length=300,
        blank=True,
        help_text=_("The leading actors, e.g. 'Ana Diaz, Raj Mehta'."),
    )
    trailer_url = models.URLField(
        verbose_name=_("trailer URL"), blank=True, max_length=500, help_text=_("A link to the trailer (https://...).")
    )

    class Meta:
        verbose_name = _("movie")
        verbose_name_plural = _("movies")
        ordering = ["title"]
        # Migration 0002 adds a trigram GIN index on title for SearchMovies' keyword filter and spelling
        # suggestions, on PostgreSQL only (the single-process SQLite demo has no trigrams).

    def __str__(self):
        return self.title


class Country(models.TextChoices):
    """The countries whose film certificates the catalog knows; a city's `country` names one of them."""

    AUSTRALIA = "Australia", _("Australia")
    CANADA = "Canada", _("Canada")
    FRANCE = "France", _("France")
    GERMANY = "Germany", _("Germany")
    INDIA = "India", _("India")
    UNITED_KINGDOM = "United Kingdom", _("United Kingdom")
    UNITED_STATES = "United States", _("United States")


# Each country's certificates, from open to all to adults only, as its board writes them: India's CBFC (UA with
# the age bands of the 2024 rules; S for specialised audiences), the US's MPA, the UK's BBFC, Canada's provincial
# boards' shared set, Australia's Classification Board, France's CNC (TP: tous publics) and Germany's FSK.
CERTIFICATES = {
    Country.INDIA: ("U", "UA", "UA 7+", "UA 13+", "UA 16+", "A", "S"),
    Country.UNITED_STATES: ("G", "PG", "PG-13", "R", "NC-17"),
    Country.UNITED_KINGDOM: ("U", "PG", "12A", "15", "18"),
    Country.CANADA: ("G", "PG", "14A", "18A", "R"),
    Country.AUSTRALIA: ("G", "PG", "M", "MA15+", "R18+"),
    Country.FRANCE: ("TP", "-12", "-16", "-18"),
    Country.GERMANY: ("FSK 0", "FSK 6", "FSK 12", "FSK 16", "FSK 18"),
}
RATING_CHOICES = sorted({rating for ratings in CERTIFICATES.values() for rating in ratings})


def rating_belongs_to_country():
    """The database's own check that a rating is one of its country's certificates (so no 'PG-13' in India)."""
    allowed = Q()
    for country, ratings in CERTIFICATES.items():
        allowed |= Q(country=country, rating__in=ratings)
    return allowed


class MovieCertificate(models.Model):
    """A movie's certificate in one country; a page shows the one of its cinema's country."""

    movie = models.ForeignKey(Movie, verbose_name=_("movie"), on_delete=models.CASCADE, related_name="certificates")
    country = models.CharField(verbose_name=_("country"), max_length=100, choices=Country.choices)
    rating = models.CharField(
        verbose_name=_("rating"), max_length=8, choices=[(rating, rating) for rating in RATING_CHOICES]
    )

    class Meta:
        verbose_name = _("movie certificate")
        verbose_name_plural = _("movie certificates")
        ordering = ["movie_id", "country"]
        constraints = [
            models.UniqueConstraint(fields=["movie", "country"], name="cinemas_moviecertificate_one_per_country"),
            models.CheckConstraint(
                condition=rating_belongs_to_country(),
                name="cinemas_moviecertificate_rating_of_country",
                violation_error_message=_("This rating is not one of that country's certificates."),
            ),
        ]

    def __str__(self):
        return f"{self.rating} ({self.country})"


class SeatTypePrice(models.Model):
    """A price for one seat type: a show's (ShowPrice), or the one its hall's shows scheduled in bulk start with
    (HallPrice)."""

    seat_type = models.CharField(verbose_name=_("seat type"), max_length=16, choices=SeatType.choices)
    price = models.DecimalField(
        verbose_name=_("price"), max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.seat_type}: {self.price}"


class HallPrice(SeatTypePrice):
    """A hall's template price for one of its seat types: shows scheduled in bulk there start with these."""

    hall = models.ForeignKey(Hall, verbose_name=_("hall"), on_delete=models.CASCADE, related_name="price_template")

    class Meta:
        verbose_name = _("template price")
        verbose_name_plural = _("template prices (shows scheduled in bulk start with these)")
        ordering = ["hall_id", "seat_type"]
        constraints = [
            models.UniqueConstraint(fields=["hall", "seat_type"], name="cinemas_hallprice_unique_type"),
            models.CheckConstraint(condition=Q(price__gte=0), name="cinemas_hallprice_not_negative"),
        ]


# The overlap rule of shows in one hall, as the exclusion constraint on Show applies it: half-open ranges
# [starts_at, ends_at), so back-to-back shows are fine. The turnaround (trailers, cleaning) is inside a show's
# ends_at (cinemas.services.default_show_end), so no gap is added here. times_overlap is the rule in Python (for
# shows not yet saved); ShowQuerySet.overlapping is the same rule as a query.
def times_overlap(starts_at, ends_at, other_starts_at, other_ends_at):
    return starts_at < other_ends_at and other_starts_at < ends_at


class ShowQuerySet(models.QuerySet):
    def upcoming(self, at):
        """Shows that have not started at `at`: the ones a moviegoer can still buy."""
        return self.filter(starts_at__gt=at)

    def overlapping(self, *, hall, starts_at, ends_at):
        """The hall's shows whose time overlaps [starts_at, ends_at) (times_overlap, as a query)."""
        return self.filter(hall=hall, starts_at__lt=ends_at, ends_at__gt=starts_at)


# The exclusion constraint that keeps a hall's shows apart (the services name it when they lose a race to it).
SHOW_OVERLAP_CONSTRAINT = "cinemas_show_no_overlap_in_hall"


class ShowFormat(models.TextChoices):
    TWO_D = "2D", "2D"
    THREE_D = "3D", "3D"
    IMAX = "IMAX", "IMAX"
    IMAX_3D = "IMAX 3D", "IMAX 3D"
    FOUR_DX = "4DX", "4DX"
    SCREENX = "ScreenX", "ScreenX"
    DOLBY_CINEMA = "Dolby Cinema", "Dolby Cinema"


class Show(models.Model):
    movie = models.ForeignKey(Movie, verbose_name=_("movie"), on_delete=models.PROTECT, related_name="shows")
    hall = models.ForeignKey(Hall, verbose_name=_("hall"), on_delete=models.PROTECT, related_name="shows")
    starts_at = models.DateTimeField(verbose_name=_("starts at"))
    ends_at = models.DateTimeField(verbose_name=_("ends at"))
    format = models.CharField(
        verbose_name=_("format"), max_length=16, choices=ShowFormat.choices, default=ShowFormat.TWO_D
    )
    audio_language = models.CharField(
        verbose_name=_("audio language"),
        max_length=50,
        blank=True,
        help_text=_("The language it is played in; blank: the movie's own language."),
    )
    subtitles = models.CharField(
        verbose_name=_("subtitles"), max_length=50, blank=True, help_text=_("The subtitles' language; blank: none.")
    )

    objects = ShowQuerySet.as_manager()

    class Meta:
        verbose_name = _("show")
        verbose_name_plural = _("shows")
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="cinemas_show_ends_after_start"),
            models.CheckConstraint(condition=Q(format__in=ShowFormat.values), name="cinemas_show_format_known"),
            # Two shows can't overlap in one hall; back-to-back shows ([) ranges) are fine.
            PostgresExclusionConstraint(
                name=SHOW_OVERLAP_CONSTRAINT,
                expressions=[
                    (F("hall"), RangeOperators.EQUAL),
                    (TsTzRange(F("starts_at"), F("ends_at")), RangeOperators.OVERLAPS),
                ],
                violation_error_message=_("This hall already has a show at that time."),
            ),
        ]
        indexes = [
            # SearchMovies and the showtime listings: upcoming shows in time order.
            models.Index(fields=["starts_at"], name="cinemas_show_starts_at"),
            # A movie's showtimes.
            models.Index(fields=["movie", "starts_at"], name="cinemas_show_movie_starts_at"),
            # Showtimes in a city's or a cinema's halls (SearchMovies by city, postal code or distance).
            models.Index(fields=["hall", "starts_at"], name="cinemas_show_hall_starts_at"),
        ]

    def __str__(self):
        # The cinema's own clock and zone: staff read this in the admin's messages and history.
        local, zone = self.local_starts_at, self.hall.cinema.time_zone
        # Translators: a show as staff read it in the admin, e.g. "Dune on Mon 8 Dec 2025 19:00 (Europe/Madrid) in
        # Cinema – Hall 1".
        text = gettext("%(movie)s on %(when)s (%(zone)s) in %(hall)s")
        return text % {
            "movie": self.movie,
            "when": dateformat.format(local, "D j M Y H:i"),
            "zone": zone,
            "hall": self.hall,
        }

    @property
    def local_starts_at(self):
        return self.starts_at.astimezone(self.hall.cinema.zone)

    @property
    def spoken_language(self):
        """The language the show is played in: its own, or else the movie's."""
        return self.audio_language or self.movie.language


class ShowPrice(SeatTypePrice):
    show = models.ForeignKey(Show, verbose_name=_("show"), on_delete=models.CASCADE, related_name="prices")

    class Meta:
        verbose_name = _("show price")
        verbose_name_plural = _("show prices")
        ordering = ["show_id", "seat_type"]
        constraints = [
            models.UniqueConstraint(fields=["show", "seat_type"], name="cinemas_showprice_unique_type"),
            models.CheckConstraint(condition=Q(price__gte=0), name="cinemas_showprice_not_negative"),
        ]


# The constraint that refuses to sell more than a menu item's stock (cinemas.services.add_to_stock).
STOCK_CHECK = "cinemas_menuitem_stock_not_negative"


class MenuItem(models.Model):
    """Food or drink a cinema sells with its tickets, added at checkout and picked up at its counter.

    `stock` is how many are left to sell: a buyer's add-ons take from it while their hold lives and keep it once
    paid; a hold that lapses or a booking cancelled gives it back (bookings' add-ons). The CHECK below is what
    makes stock exact under concurrency: a take that would leave less than none fails, whoever raced it.
    """

    cinema = models.ForeignKey(Cinema, verbose_name=_("cinema"), on_delete=models.PROTECT, related_name="menu")
    name = models.CharField(verbose_name=_("name"), max_length=100)
    description = models.CharField(verbose_name=_("description"), max_length=200, blank=True)
    price = models.DecimalField(
        verbose_name=_("price"),
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("In its cinema's currency."),
    )
    stock = models.IntegerField(
        verbose_name=_("stock"), validators=[MinValueValidator(0)], help_text=_("How many are left to sell.")
    )
    on_sale = models.BooleanField(
        verbose_name=_("on sale"), default=True, help_text=_("Unticked: no longer offered (its past orders stay).")
    )

    class Meta:
        verbose_name = _("menu item")
        verbose_name_plural = _("menu items")
        ordering = ["cinema_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cinema", "name"], name="cinemas_menuitem_unique_name_in_cinema"),
            models.CheckConstraint(condition=Q(stock__gte=0), name=STOCK_CHECK),
            models.CheckConstraint(condition=Q(price__gte=0), name="cinemas_menuitem_price_not_negative"),
        ]

    def __str__(self):
        return f"{self.name} ({self.cinema})"


def default_admissions_per_minute():
    return settings.TICKETING_ROOM_ADMISSIONS_PER_MINUTE


class OnSale(models.Model):
    """A hot sale's opening, with a waiting room in front of it (waiting.rooms): one show, or every show of a
    movie in a city (the shows scheduled when it is marked; cinemas.on_sales.mark_on_sale lists them in
    OnSaleShow).

    From the moment it is marked until `closes_at`, its shows are held only with an admission pass from its room:
    visitors who arrive from `queue_opens_at` until `opens_at` get a random place at the opening, later ones go
    to the back in arrival order, and the room admits `admissions_per_minute` of them, each with a pass that
    lasts `pass_seconds`.
    """

    movie = models.ForeignKey(Movie, verbose_name=_("movie"), on_delete=models.PROTECT, related_name="+")
    city = models.ForeignKey(
        City,
        verbose_name=_("city"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Every show of the movie in this city; or leave blank and choose one show."),
    )
    show = models.ForeignKey(
        Show,
        verbose_name=_("show"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("One show; or leave blank and choose a city."),
    )
    queue_opens_at = models.DateTimeField(
        verbose_name=_("waiting room opens at"),
        help_text=_("Everyone who arrives from now until the sale opens gets a random place at the opening."),
    )
    opens_at = models.DateTimeField(verbose_name=_("sale opens at"))
    closes_at = models.DateTimeField(
        verbose_name=_("waiting room closes at"),
        help_text=_("From then on, its shows are sold without the waiting room."),
    )
    admissions_per_minute = models.PositiveIntegerField(
        verbose_name=_("admissions per minute"),
        default=default_admissions_per_minute,
        validators=[MinValueValidator(1)],
        help_text=_("How many people the waiting room lets through each minute."),
    )
    pass_seconds = models.PositiveIntegerField(
        verbose_name=_("pass lasts (seconds)"),
        default=180,
        validators=[MinValueValidator(30), MaxValueValidator(3600)],
        help_text=_("How long an admitted visitor has to hold seats before the pass expires."),
    )
    joins_per_address = models.PositiveIntegerField(
        verbose_name=_("joins per network address"),
        default=20,
        validators=[MinValueValidator(1)],
        help_text=_("How many places one network address may take (people share addresses behind carriers' NAT)."),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("on-sale")
        verbose_name_plural = _("on-sales")
        ordering = ["-opens_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(queue_opens_at__lte=F("opens_at")) & Q(opens_at__lt=F("closes_at")),
                name="cinemas_onsale_times_in_order",
            ),
            models.CheckConstraint(
                condition=Q(show__isnull=True, city__isnull=False) | Q(show__isnull=False, city__isnull=True),
                name="cinemas_onsale_one_show_or_a_city",
            ),
            models.CheckConstraint(condition=Q(admissions_per_minute__gte=1), name="cinemas_onsale_admits_someone"),
            models.CheckConstraint(
                condition=Q(pass_seconds__gte=30, pass_seconds__lte=3600), name="cinemas_onsale_pass_seconds_range"
            ),
            models.CheckConstraint(condition=Q(joins_per_address__gte=1), name="cinemas_onsale_joins_per_address"),
        ]

    def __str__(self):
        where = self.show if self.show_id else self.city
        return gettext("%(movie)s on sale at %(when)s (%(where)s)") % {
            "movie": self.movie,
            "when": self.clock_label(self.opens_at),
            "where": where,
        }

    @property
    def zone(self):
        """The clocks its times are read on: its show's cinema's; a city's on-sale, the city's cinemas' (UTC
        while the city has none)."""
        if self.show_id is not None:
            return self.show.hall.cinema.zone
        cinema = Cinema.objects.filter(city_id=self.city_id).order_by("pk").first()
        return cinema.zone if cinema else zoneinfo.ZoneInfo("UTC")

    def clock_label(self, instant):
        """`instant` on its clocks (zone), with the zone; "–" for none."""
        return clock_label(instant, self.zone)


# The exclusion constraint that keeps a show in one waiting room at a time.
ON_SALE_OVERLAP_CONSTRAINT = "cinemas_onsaleshow_one_room_at_a_time"


class OnSaleShow(models.Model):
    """A show an on-sale's waiting room stands in front of, for the on-sale's time (copied here, so that the
    database keeps a show in one room at a time)."""

    on_sale = models.ForeignKey(OnSale, verbose_name=_("on-sale"), on_delete=models.CASCADE, related_name="shows")
    show = models.ForeignKey(Show, verbose_name=_("show"), on_delete=models.CASCADE, related_name="+")
    queue_opens_at = models.DateTimeField(verbose_name=_("waiting room opens at"))
    closes_at = models.DateTimeField(verbose_name=_("waiting room closes at"))

    class Meta:
        verbose_name = _("show on sale")
        verbose_name_plural = _("shows on sale")
        constraints = [
            PostgresExclusionConstraint(
                name=ON_SALE_OVERLAP_CONSTRAINT,
                expressions=[
                    (F("show"), RangeOperators.EQUAL),
                    (TsTzRange(F("queue_opens_at"), F("closes_at")), RangeOperators.OVERLAPS),
                ],
                violation_error_message=_("This show is already in another on-sale's waiting room at that time."),
            ),
        ]
        indexes = [models.Index(fields=["closes_at"], name="cinemas_onsaleshow_closes_at")]

    def __str__(self):
        return f"{self.show_id} in {self.on_sale_id}"

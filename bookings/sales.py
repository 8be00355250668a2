"""The staff's sales report (the sales dashboard, bookings.staff_views.sales): reads only, changes nothing.

What a show sold, by the day of the show in its cinema's own time zone, and summed by day, cinema, movie and show,
always apart per currency (a chain's cinemas may charge in rupees and in dollars: never one sum of both).

- Seats sold: the seats of the bookings that stand (Booked), by channel: the website, partners (online through an
  API key) and the box office. Seats held now: live unpaid holds. House seats (held for press and guests, unpaid)
  are counted on their own, never as sold and never as money.
- Occupancy: seats sold over the capacity of the shows in the range, those without a sale too.
- Money comes from what was charged, the stored price breakdown (bookings migrations 0016/0021: `total`, `fees`,
  `taxes`, `discounts`), of every sale made (booked, also those cancelled since), and refunds from the refunds
  that succeeded; net is gross less refunds. Gross is what buyers paid: tickets less discounts, plus fees, food
  and drink and taxes added on top; fees and taxes are what of it they were.

These definitions are one SQL function, bookings_sales_of (bookings migration 0032), whose figures triggers add up
per show as sales happen (ShowSales): the report reads a few rows a show, not every booking's breakdown. Only the
live holds are read from the reservations, at `at`. All the summing is one SQL statement with GROUPING SETS;
Python only names the rows (a few more queries).
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from cinemas.models import Cinema, Movie, Show
from ticketing import shards
from ticketing.shards import connection

# The longest range one report covers: a quarter. Longer ones would scan a chain's whole history.
MAX_DAYS = 92
# The days a report may cover at all (far enough from date.min and date.max for the UTC bounds below).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
# The figures of a row, in the order of the table's columns and of the CSV's.
COUNTS = ("sold", "website", "partners", "box_office", "held", "house", "capacity")
AMOUNTS = ("gross", "gross_online", "gross_box_office", "fees", "taxes", "discounts", "refunds", "net")

# The shows in the range, each with its cinema's currency, its local day and its hall's capacity. The bounds on
# starts_at are the days' in UTC widened by a day each way (time zones run from UTC-12 to UTC+14), so the index on
# starts_at (or on hall, starts_at for one cinema) finds them; the local day then picks them exactly.
_PICKED = """
    SELECT show.id AS show_id, show.movie_id, hall.cinema_id, cinema.currency,
           (show.starts_at AT TIME ZONE cinema.time_zone)::date AS day,
           (SELECT coalesce(sum(seats::int), 0) FROM jsonb_each_text(hall.capacity) AS kinds (kind, seats))
               AS capacity
      FROM cinemas_show show
      JOIN cinemas_hall hall ON hall.id = show.hall_id
      JOIN cinemas_cinema cinema ON cinema.id = hall.cinema_id
     WHERE show.starts_at >= %(after)s AND show.starts_at < %(before)s
       AND (show.starts_at AT TIME ZONE cinema.time_zone)::date BETWEEN %(first)s AND %(last)s
       {filters}
"""

_SQL = (
    "WITH picked AS NOT MATERIALIZED (\n"
    + _PICKED
    + """),
-- Each show's tally: the sum of its sessions' rows (bookings_showsales, kept by bookings 0032's triggers).
tallied AS (
    SELECT tally.show_id, sum(tally.website) AS website, sum(tally.partners) AS partners,
           sum(tally.box_office) AS box_office, sum(tally.house) AS house,
           sum(tally.gross_online) AS gross_online, sum(tally.gross_box_office) AS gross_box_office,
           sum(tally.fees) AS fees, sum(tally.taxes) AS taxes, sum(tally.discounts) AS discounts,
           sum(tally.refunds) AS refunds
      FROM picked
      JOIN bookings_showsales tally ON tally.show_id = picked.show_id
     GROUP BY tally.show_id
),
-- The live holds, read now: few, found by the index of a show's holds by when they lapse.
holding AS (
    SELECT hold.show_id,
           sum(bookings_reservation_seats(hold.id, hold.price_breakdown)) FILTER (WHERE hold.channel <> 'house')
               AS held,
           sum(bookings_reservation_seats(hold.id, hold.price_breakdown)) FILTER (WHERE hold.channel = 'house')
               AS house
      FROM picked
      JOIN bookings_reservation hold ON hold.show_id = picked.show_id
     WHERE hold.status = 'Reserved' AND hold.held_until > %(at)s
     GROUP BY hold.show_id
),
shows AS (
    SELECT picked.*, coalesce(tallied.website + tallied.partners + tallied.box_office, 0) AS sold,
           coalesce(tallied.website, 0) AS website, coalesce(tallied.partners, 0) AS partners,
           coalesce(tallied.box_office, 0) AS box_office, coalesce(holding.held, 0) AS held,
           coalesce(tallied.house, 0) + coalesce(holding.house, 0) AS house,
           coalesce(tallied.gross_online + tallied.gross_box_office, 0) AS gross,
           coalesce(tallied.gross_online, 0) AS gross_online,
           coalesce(tallied.gross_box_office, 0) AS gross_box_office, coalesce(tallied.fees, 0) AS fees,
           coalesce(tallied.taxes, 0) AS taxes, coalesce(tallied.discounts, 0) AS discounts,
           coalesce(tallied.refunds, 0) AS refunds
      FROM picked
      LEFT JOIN tallied ON tallied.show_id = picked.show_id
      LEFT JOIN holding ON holding.show_id = picked.show_id
)
SELECT currency, day, cinema_id, movie_id, {show_column},
       sum(sold), sum(website), sum(partners), sum(box_office), sum(held), sum(house), sum(capacity),
       sum(gross), sum(gross_online), sum(gross_box_office), sum(fees), sum(taxes), sum(discounts), sum(refunds),
       sum(gross) - sum(refunds)
  FROM shows
 GROUP BY GROUPING SETS ((currency), (currency, day), (currency, cinema_id), (currency, movie_id){show_set})
"""
)


@dataclass
class SalesRow:
    """One row of a table: its label's parts (day, cinema, movie, show: those of its table) and its figures."""

    currency: str
    day: date | None = None
    cinema: Cinema | None = None
    movie: Movie | None = None
    show: Show | None = None
    sold: int = 0
    website: int = 0
    partners: int = 0
    box_office: int = 0
    held: int = 0
    house: int = 0
    capacity: int = 0
    gross: Decimal = Decimal(0)
    gross_online: Decimal = Decimal(0)
    gross_box_office: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    taxes: Decimal = Decimal(0)
    discounts: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    net: Decimal = Decimal(0)

    @property
    def occupancy(self):
        """Seats sold over capacity, a fraction (None without shows)."""
        return self.sold / self.capacity if self.capacity else None

    @property
    def occupancy_percent(self):
        return None if self.occupancy is None else 100 * self.occupancy

    @property
    def online(self):
        return self.website + self.partners


@dataclass
class CurrencySales:
    """A currency's part of a report: its total and its tables."""

    currency: str
    total: SalesRow
    days: list = field(default_factory=list)
    cinemas: list = field(default_factory=list)
    movies: list = field(default_factory=list)
    shows: list = field(default_factory=list)


@dataclass
class SalesFilter:
    """What a report covers: the shows of `first`..`last` (their local days) at `cinema_ids` (None: every
    cinema), of one movie or one show if given. `shows` asks for the table by show too."""

    first: date
    last: date
    cinema_ids: frozenset | None = None
    movie_id: int | None = None
    show_id: int | None = None
    shows: bool = False


def default_range(zone, *, at=None, days=14):
    """The last `days` days up to today in `zone`: (first, last)."""
    today = timezone.localtime(at or timezone.now(), zone).date()
    return today - timedelta(days=days - 1), today


def sales_report(report, *, at=None):
    """The sales of the shows `report` (a SalesFilter) covers, as a list of CurrencySales, one per currency that
    the cinemas charge in, in currency order; empty when no show is in the range. `at` (now) decides which unpaid
    holds are live."""
    at = at or timezone.now()
    filters, parameters = (
        [],
        {
            "after": datetime.combine(report.first - timedelta(days=1), time(), tzinfo=UTC),
            "before": datetime.combine(report.last + timedelta(days=2), time(), tzinfo=UTC),
            "first": report.first,
            "last": report.last,
            "at": at,
        },
    )
    if report.cinema_ids is not None:
        filters.append("AND hall.cinema_id = ANY(%(cinemas)s)")
        parameters["cinemas"] = sorted(report.cinema_ids)
    if report.movie_id is not None:
        filters.append("AND show.movie_id = %(movie)s")
        parameters["movie"] = report.movie_id
    if report.show_id is not None:
        filters.append("AND show.id = %(show)s")
        parameters["show"] = report.show_id
    if not shards.sharded():
        return _named(_grouped(report, filters, parameters))
    # Split by show id: each shard sums the shows it sells (their ids picked at home, where the catalog is),
    # and the shards' rows of each group add up (every figure is a sum; a show is summed on one shard only).
    filters.append("AND show.id = ANY(%(owned)s)")
    owned = shards.by_shard(_picked_show_ids(filters[:-1], parameters))
    summed = {}
    for alias, show_ids in owned.items():
        with shards.in_database(alias):
            for key, *figures in _grouped(report, filters, {**parameters, "owned": show_ids}, keyed=True):
                summed[key] = [a + b for a, b in zip(summed[key], figures, strict=True)] if key in summed else figures
    return _named([(*key, *figures) for key, figures in summed.items()])


def _grouped(report, filters, parameters, keyed=False):
    """The report's statement's rows on this scope's database (with `keyed`, each row's five labels as one
    tuple first)."""
    sql = _SQL.format(
        filters="\n       ".join(filters),
        show_set=", (currency, show_id)" if report.shows else "",
        show_column="show_id" if report.shows else "NULL::bigint",
    )
    with shards.atomic(), connection.cursor() as cursor:
        # JIT compiling the statement costs seconds, more than it saves: the sums are few and simple.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, parameters)
        grouped = cursor.fetchall()
    return [(tuple(row[:5]), *row[5:]) for row in grouped] if keyed else grouped


def _picked_show_ids(filters, parameters):
    """The ids of the shows a report covers, read at home (the catalog's database)."""
    sql = "SELECT show_id FROM (" + _PICKED.format(filters="\n       ".join(filters)) + ") picked"
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, parameters)
        return [show_id for (show_id,) in cursor.fetchall()]


def _named(grouped):
    rows = []
    for currency, day, cinema_id, movie_id, show_id, *figures in grouped:
        row = SalesRow(currency=currency, day=day)
        for name, value in zip(COUNTS + AMOUNTS, figures, strict=True):
            setattr(row, name, int(value) if name in COUNTS else value)
        rows.append((row, cinema_id, movie_id, show_id))
    cinemas = Cinema.objects.select_related("city").in_bulk({cinema for _, cinema, _, _ in rows if cinema})
    movies = Movie.objects.in_bulk({movie for _, _, movie, _ in rows if movie})
    shows = Show.objects.select_related("movie", "hall__cinema").in_bulk({show for _, _, _, show in rows if show})
    report = {}
    for row, cinema_id, movie_id, show_id in rows:
        part = report.setdefault(row.currency, CurrencySales(currency=row.currency, total=None))
        if row.day is not None:
            part.days.append(row)
        elif cinema_id is not None:
            row.cinema = cinemas[cinema_id]
            part.cinemas.append(row)
        elif movie_id is not None:
            row.movie = movies[movie_id]
            part.movies.append(row)
        elif show_id is not None:
            row.show = shows[show_id]
            row.movie, row.cinema = row.show.movie, row.show.hall.cinema
            part.shows.append(row)
        else:
            part.total = row
    for part in report.values():
        part.days.sort(key=lambda row: row.day)
        part.cinemas.sort(key=lambda row: (row.cinema.city.name, row.cinema.name, row.cinema.pk))
        part.movies.sort(key=lambda row: (-row.gross, row.movie.title, row.movie.pk))
        part.shows.sort(key=lambda row: (row.show.starts_at, row.cinema.name, row.show.pk))
    return [report[currency] for currency in sorted(report)]

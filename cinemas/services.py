"""Every change to the catalog that has rules of its own: seat layouts, show scheduling and posters.

Plain records (cities, cinemas, movies) are edited through the Django admin's own forms; these services
own the writes that must keep several rows consistent. They raise django.core.exceptions.ValidationError,
which the admin shows next to the form and the API turns into a 400.

Every write to the catalog, here or in the admin, calls catalog_changed(): the cached catalog answers and seat
maps (ticketing.cached_reads) are built afresh once it commits.
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta

import psycopg
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import dateformat
from django.utils.translation import gettext

from cinemas.models import (
    SHOW_OVERLAP_CONSTRAINT,
    STOCK_CHECK,
    Hall,
    HallPrice,
    MenuItem,
    Movie,
    Seat,
    SeatType,
    Show,
    ShowFormat,
    ShowPrice,
    times_overlap,
)
from cinemas.posters import POSTER_SIZES, read_upload, render_poster, store_rendition
from ticketing.cached_reads import changed_after_commit
from ticketing.models import WebhookEvent
from ticketing.webhooks import record_webhook_event

PLAN_SEAT_TYPES = {
    "R": SeatType.REGULAR,
    "P": SeatType.PREMIUM,
    "W": SeatType.WHEELCHAIR,
    "C": SeatType.COMPANION,
}
PLAN_GAPS = {".", " ", "_"}
PLAN_MAX_ROWS = 26 * 27  # A..Z, then AA..ZZ
PLAN_MAX_COLUMNS = 300

# Trailers and cleaning after the film, when staff give no end time.
SHOW_TURNAROUND_MINUTES = 20

# The generation of everything staff edit (cities, cinemas, halls, movies, shows, prices) in the shared cache.
CATALOG_GENERATION = "catalog"


def catalog_changed():
    """Staff changed the catalog: once the transaction commits, every cached catalog answer and seat map is
    built afresh. Called by every writer of catalog rows (these services, the admin, the demo loaders)."""
    changed_after_commit(CATALOG_GENERATION)


def row_label(index):
    """0 -> A, 25 -> Z, 26 -> AA, 27 -> AB ... (spreadsheet-style)."""
    label = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        label = chr(ord("A") + remainder) + label
    return label


@dataclass(frozen=True)
class PlannedSeat:
    row_label: str
    number: int
    seat_type: str
    x: int
    y: int


def parse_seat_plan(plan):
    """Read a compact plan into seats, or raise ValidationError naming the line and column.

    One line per row, the first line nearest the screen. One character per seat or gap: R regular,
    P premium, W wheelchair, C companion; '.', '_' or a space is an aisle or an empty place. A line of only
    gaps is a cross-aisle: it takes vertical space but no row letter. Rows are lettered A, B, ... and seats
    numbered from 1 on the left, skipping gaps.
    """
    lines = plan.replace("\r\n", "\n").rstrip().split("\n")
    while lines and not lines[0].strip(" ._"):
        lines.pop(0)  # leading blank lines would only push every row away from the screen
    if not lines:
        raise ValidationError(gettext("The plan is empty: write one line per row, e.g. 'RRRR..RRRR'."))
    errors = []
    seats = []
    rows = 0
    for y, line in enumerate(lines):
        if len(line) > PLAN_MAX_COLUMNS:
            errors.append(
                gettext("Line %(line)s is %(width)s characters wide; the most is %(most)s.")
                % {"line": y + 1, "width": len(line), "most": PLAN_MAX_COLUMNS}
            )
            continue
        if not line.strip(" ._"):
            continue
        label = row_label(rows)
        rows += 1
        number = 0
        for x, char in enumerate(line):
            if char in PLAN_GAPS:
                continue
            seat_type = PLAN_SEAT_TYPES.get(char.upper())
            if seat_type is None:
                errors.append(
                    gettext(
                        # Translators: R, P, W, C and '.' are the letters staff type in a seat plan: keep them.
                        "Line %(line)s, column %(column)s: %(char)s is not a seat or gap "
                        "(use R, P, W, C for seats and '.' for gaps)."
                    )
                    % {"line": y + 1, "column": x + 1, "char": repr(char)}
                )
                continue
            number += 1
            seats.append(PlannedSeat(label, number, seat_type, x, y))
    if rows > PLAN_MAX_ROWS:
        errors.append(
            gettext("The plan has %(rows)s rows; the most is %(most)s.") % {"rows": rows, "most": PLAN_MAX_ROWS}
        )
    if errors:
        raise ValidationError(errors[:20])
    return seats


def plan_from_seats(seats):
    """The compact plan that would rebuild these seats: the inverse of parse_seat_plan."""
    by_position = {(seat.y, seat.x): seat.seat_type for seat in seats}
    if not by_position:
        return ""
    letters = {seat_type: char for char, seat_type in PLAN_SEAT_TYPES.items()}
    width = max(x for _, x in by_position) + 1
    height = max(y for y, _ in by_position) + 1
    lines = []
    for y in range(height):
        line = "".join(letters[by_position[(y, x)]] if (y, x) in by_position else "." for x in range(width))
        lines.append(line.rstrip("."))
    return "\n".join(lines)


@transaction.atomic
def build_seat_layout(*, hall, plan):
    """Replace a hall's seats with the ones the plan describes, in one transaction.

    Locks the hall row, so two staff saving layouts at once can't interleave. Raises ValidationError for a
    bad plan, or when the hall already has shows (their seat maps and tickets name these seats). On success
    the hall's `capacity` per seat type matches the new seats; on commit, the cached catalog is dropped.
    """
    planned = parse_seat_plan(plan)
    hall = Hall.objects.select_for_update().get(pk=hall.pk)
    if hall.shows.exists():
        raise ValidationError(
            gettext("This hall already has shows scheduled; its seats can't be redrawn. Add a new hall instead.")
        )
    Seat.objects.filter(hall=hall).delete()
    Seat.objects.bulk_create(
        [
            Seat(hall=hall, row_label=seat.row_label, number=seat.number, seat_type=seat.seat_type, x=seat.x, y=seat.y)
            for seat in planned
        ],
        batch_size=1000,
    )
    hall.capacity = dict(Counter(seat.seat_type for seat in planned))
    hall.save(update_fields=["capacity"])
    catalog_changed()
    return hall


def default_show_end(*, movie, starts_at):
    """The film's running time plus turnaround, rounded up to the next five minutes."""
    minutes = movie.duration + SHOW_TURNAROUND_MINUTES
    return starts_at + timedelta(minutes=5 * math.ceil(minutes / 5))


def _check_prices(*, hall, prices):
    missing = sorted(set(hall.capacity) - set(prices))
    if missing:
        # Translators: %(types)s lists seat types, e.g. "Premium, Regular".
        message = gettext("This hall has %(types)s seats: give a price for each.")
        raise ValidationError({"prices": message % {"types": ", ".join(missing)}})


def on_cinema_clock(wall_time, zone):
    """The instant the zone's clocks show `wall_time` (naive); in the hour the clocks repeat, its first pass.

    Raises ValidationError for a time the clocks skip when they go forward."""
    instant = wall_time.replace(tzinfo=zone)
    if instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall_time:
        raise ValidationError(
            # Translators: a local time skipped when the clocks go forward, e.g. "02:30 doesn't happen on
            # 09 Mar 2025 in America/New_York".
            gettext("%(time)s doesn't happen on %(day)s in %(zone)s: the clocks go forward past it.")
            % {"time": f"{wall_time:%H:%M}", "day": dateformat.format(wall_time, "d M Y"), "zone": zone.key}
        )
    return instant


def _check_show(*, show, prices):
    if show.starts_at.tzinfo is None:
        raise ValidationError({"starts_at": gettext("Give a time with its time zone.")})
    if show.ends_at <= show.starts_at:
        raise ValidationError({"ends_at": gettext("A show must end after it starts.")})
    _check_prices(hall=show.hall, prices=prices)
    clash = (
        Show.objects.overlapping(hall=show.hall, starts_at=show.starts_at, ends_at=show.ends_at)
        .exclude(pk=show.pk)
        .select_related("movie")
        .first()
    )
    if clash:
        local = clash.starts_at.astimezone(show.hall.cinema.zone)
        raise ValidationError(
            # Translators: e.g. "Downtown – Hall 1 already has Dune at Mon 08 Dec 19:00–21:45; ...".
            gettext("%(hall)s already has %(movie)s at %(starts)s–%(ends)s; shows in one hall can't overlap.")
            % {
                "hall": show.hall,
                "movie": clash.movie,
                "starts": dateformat.format(local, "D d M H:i"),
                "ends": f"{clash.ends_at.astimezone(show.hall.cinema.zone):%H:%M}",
            }
        )


def _save_show(*, show, prices):
    try:
        # A savepoint, so that losing the race to the exclusion constraint leaves the caller's
        # transaction usable and the staff member sees the same message as for any other clash.
        with transaction.atomic():
            show.save()
    except IntegrityError as exc:
        if SHOW_OVERLAP_CONSTRAINT in str(exc):
            raise ValidationError(gettext("Another show was just scheduled in this hall at that time.")) from exc
        raise
    for seat_type, price in prices.items():
        ShowPrice.objects.update_or_create(show=show, seat_type=seat_type, defaults={"price": price})
    show.prices.exclude(seat_type__in=list(prices)).delete()
    catalog_changed()
    return show


@transaction.atomic
def schedule_show(
    *, movie, hall, starts_at, ends_at=None, prices, format=ShowFormat.TWO_D, audio_language="", subtitles=""
):
    """Put a movie on in a hall with a price for every seat type the hall has.

    `ends_at` defaults to the running time plus turnaround; `format` is one of ShowFormat (the database refuses
    any other), `audio_language` blank means the movie's own and `subtitles` blank means none. Raises
    ValidationError when the show would overlap another in the hall (checked first for a clear message; the
    database's exclusion constraint decides any race) or a seat type has no price. On commit, the cached catalog
    is dropped.
    """
    show = Show(
        movie=movie,
        hall=hall,
        starts_at=starts_at,
        ends_at=ends_at or default_show_end(movie=movie, starts_at=starts_at),
        format=format,
        audio_language=audio_language,
        subtitles=subtitles,
    )
    _check_show(show=show, prices=prices)
    return _save_show(show=show, prices=prices)


@transaction.atomic
def reschedule_show(
    *, show, movie, hall, starts_at, ends_at=None, prices, format=ShowFormat.TWO_D, audio_language="", subtitles=""
):
    """Change a show's movie, hall, times, prices, format or languages, with the same checks as schedule_show.

    Locks the show row. When its movie, hall, times or format change, every partner's endpoint that asked for
    show.changed is owed one, in this transaction (ticketing.webhooks). On commit, the cached catalog (and the
    show's seat map, which shows its prices) is dropped.
    """
    show = Show.objects.select_for_update().get(pk=show.pk)
    before = _partners_see(show)
    show.movie, show.hall, show.starts_at = movie, hall, starts_at
    show.format, show.audio_language, show.subtitles = format, audio_language, subtitles
    show.ends_at = ends_at or default_show_end(movie=movie, starts_at=starts_at)
    _check_show(show=show, prices=prices)
    _save_show(show=show, prices=prices)
    after = _partners_see(show)
    if after != before:
        record_webhook_event(api_key_id=None, event_type=WebhookEvent.SHOW_CHANGED, data=after)
    return show


def _partners_see(show):
    """What show.changed tells partners of a show (and what must change for them to hear of it)."""
    return {
        "show_id": show.pk,
        "movie_id": show.movie_id,
        "hall": show.hall.name,
        "hall_id": show.hall_id,
        "cinema_id": show.hall.cinema_id,
        "start_time": show.starts_at.isoformat().replace("+00:00", "Z"),
        "end_time": show.ends_at.isoformat().replace("+00:00", "Z"),
        "format": show.format,
    }


# --- Scheduling in bulk -------------------------------------------------------------------------------------

# One batch is at most a year of days and this many start times a day: a few thousand shows, checked and written
# in one transaction of a few seconds at most.
BULK_MAX_DAYS = 366
BULK_MAX_START_TIMES = 8


@dataclass
class PlannedShow:
    """A show a bulk schedule would create, and the shows (saved ones, or others of the batch) it would overlap."""

    starts_at: datetime  # in the cinema's zone
    ends_at: datetime
    clashes: list = field(default_factory=list)


@dataclass
class ShowPlan:
    hall: Hall
    shows: list  # of PlannedShow, in time order
    skipped_times: list  # messages: local times that don't happen (the clocks go forward past them)

    def problems(self):
        """Every reason the plan can't be scheduled, as messages: each time that doesn't happen, each clash."""
        zone = self.hall.cinema.zone
        problems = list(self.skipped_times)
        for planned in self.shows:
            for other in planned.clashes:
                if isinstance(other, PlannedShow) and other.starts_at > planned.starts_at:
                    continue  # a pair of the batch is told once, at the later of the two
                values = {
                    "when": dateformat.format(planned.starts_at, "D d M Y H:i"),
                    "zone": zone.key,
                    "starts": dateformat.format(other.starts_at.astimezone(zone), "D d M H:i"),
                    "ends": f"{other.ends_at.astimezone(zone):%H:%M}",
                }
                if isinstance(other, Show):
                    # Translators: e.g. "Mon 09 Mar 2026 19:00 (Europe/Madrid) clashes with Dune, Mon 09 Mar
                    # 18:30–20:50".
                    message = gettext("%(when)s (%(zone)s) clashes with %(movie)s, %(starts)s–%(ends)s.")
                    values["movie"] = other.movie
                else:
                    message = gettext(
                        "%(when)s (%(zone)s) clashes with another show of this batch, %(starts)s–%(ends)s."
                    )
                problems.append(message % values)
        return problems


def template_prices(hall):
    """The hall's template prices, {seat type: price}: what shows scheduled in bulk there cost unless told."""
    return dict(HallPrice.objects.filter(hall=hall).values_list("seat_type", "price"))


def bulk_prices(*, hall, prices=None):
    """The prices of shows scheduled in bulk in `hall`: its template's, with `prices` ({seat type: price}) taking
    over for the types it names. Raises ValidationError when a seat type the hall has is left without one."""
    prices = {**template_prices(hall), **(prices or {})}
    _check_prices(hall=hall, prices=prices)
    return prices


def plan_shows(*, movie, hall, first_day, last_day, weekdays=None, start_times):
    """The shows a bulk schedule would create, each with the shows it would overlap; writes nothing.

    Every day from `first_day` to `last_day` whose weekday (0 Monday .. 6 Sunday) is in `weekdays` (None: every
    day), at each of `start_times`: wall-clock times on the cinema's clocks, turned into instants day by day, so
    a show stays at 19:00 across a change of the clocks. A time the clocks skip that day is listed in
    `skipped_times`; in the hour they repeat, the first pass is taken. Each show lasts the running time plus
    turnaround (default_show_end). Raises ValidationError for a range or a number of times beyond the limits.
    """
    weekdays = set(range(7)) if weekdays is None else set(weekdays)
    start_times = sorted(set(start_times))
    days = (last_day - first_day).days + 1
    if days < 1:
        raise ValidationError({"last_day": gettext("The last day comes before the first.")})
    if days > BULK_MAX_DAYS:
        raise ValidationError(
            {
                "last_day": gettext("At most %(most)s days at a time; this range has %(days)s.")
                % {"most": BULK_MAX_DAYS, "days": days}
            }
        )
    # A local time on the calendar's first or last day may lie outside it in UTC.
    for name, day in (("first_day", first_day), ("last_day", last_day)):
        if not MINYEAR < day.year < MAXYEAR:
            raise ValidationError(
                {
                    name: gettext("Choose a day from the year %(first)s to %(last)s.")
                    % {"first": MINYEAR + 1, "last": MAXYEAR - 1}
                }
            )
    if not start_times:
        raise ValidationError({"start_times": gettext("Give at least one start time.")})
    if len(start_times) > BULK_MAX_START_TIMES:
        raise ValidationError(
            {"start_times": gettext("At most %(most)s start times a day.") % {"most": BULK_MAX_START_TIMES}}
        )
    zone = hall.cinema.zone
    planned, skipped = [], []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in weekdays:
            continue
        for start in start_times:
            try:
                starts_at = on_cinema_clock(datetime.combine(day, start), zone)
            except ValidationError as error:
                skipped.extend(error.messages)
                continue
            planned.append(PlannedShow(starts_at, default_show_end(movie=movie, starts_at=starts_at)))
    if not planned and not skipped:
        raise ValidationError({"weekdays": gettext("None of the days in this range is one of the chosen weekdays.")})
    if planned:
        _find_clashes(hall=hall, planned=planned)
    return ShowPlan(hall=hall, shows=planned, skipped_times=skipped)


def _find_clashes(*, hall, planned):
    """Note on each planned show the saved shows and the other planned ones it overlaps (times_overlap, the rule
    the exclusion constraint applies).

    One sweep in time order over both: `active` holds the shows still running when the next one starts, the only
    ones a later show can overlap (one that ends before a show starts ends before every later one starts)."""
    saved = Show.objects.overlapping(
        hall=hall, starts_at=planned[0].starts_at, ends_at=max(show.ends_at for show in planned)
    ).select_related("movie")
    everything = sorted([*saved, *planned], key=lambda show: show.starts_at)
    active = []
    for show in everything:
        active = [
            other for other in active if times_overlap(other.starts_at, other.ends_at, show.starts_at, show.ends_at)
        ]
        for other in active:
            if isinstance(show, PlannedShow):
                show.clashes.append(other)
            if isinstance(other, PlannedShow):
                other.clashes.append(show)
        active.append(show)
    for show in planned:
        show.clashes.sort(key=lambda other: other.starts_at)


@transaction.atomic
def schedule_shows(
    *,
    movie,
    hall,
    first_day,
    last_day,
    weekdays=None,
    start_times,
    prices=None,
    format=ShowFormat.TWO_D,
    audio_language="",
    subtitles="",
):
    """Put a movie on in a hall on every chosen day of a range at each of the start times, all or nothing.

    The days, times and limits are plan_shows', the prices bulk_prices' (the hall's template, with `prices` taking
    over for the seat types it names), format and languages as schedule_show's.

    Takes no lock: the shows are checked first against the hall's shows and each other, and on any problem it
    raises one ValidationError listing them all (every time that doesn't happen, every clash) and writes nothing.
    A bulk schedule racing another in the same hall is decided by the database's exclusion constraint: the
    loser's insert waits for the winner's commit, fails (or, when the two wait on each other, is the one
    PostgreSQL fails to break the deadlock), and is raised as a ValidationError, with nothing of it written.
    Returns the shows created. On commit, the cached catalog is dropped.
    """
    prices = bulk_prices(hall=hall, prices=prices)
    plan = plan_shows(
        movie=movie, hall=hall, first_day=first_day, last_day=last_day, weekdays=weekdays, start_times=start_times
    )
    problems = plan.problems()
    if problems:
        raise ValidationError(problems)
    shows = [
        Show(
            movie=movie,
            hall=hall,
            starts_at=planned.starts_at,
            ends_at=planned.ends_at,
            format=format,
            audio_language=audio_language,
            subtitles=subtitles,
        )
        for planned in plan.shows
    ]
    try:
        with transaction.atomic():
            Show.objects.bulk_create(shows, batch_size=1000)
    except (IntegrityError, OperationalError) as exc:
        # Lost to another schedule of the hall: its shows overlap these, or, when each waits on a clash with the
        # other's uncommitted shows, PostgreSQL broke the deadlock by failing this one. The same to the manager.
        lost = SHOW_OVERLAP_CONSTRAINT in str(exc) or isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)
        if not lost:
            raise
        raise ValidationError(
            gettext(
                "Another show was just scheduled in this hall at one of these times, so none was scheduled: "
                "look again and retry."
            )
        ) from exc
    ShowPrice.objects.bulk_create(
        [ShowPrice(show=show, seat_type=kind, price=price) for show in shows for kind, price in prices.items()],
        batch_size=1000,
    )
    catalog_changed()
    return shows


# --- Posters ----------------------------------------------------------------------------------------------------


@transaction.atomic
def upload_poster(*, movie, image):
    """Make `image` (an uploaded file) the movie's poster: checked and resized with Pillow (cinemas.posters) to
    every size the pages use, each stored under its content's hash.

    Raises ValidationError, before anything is written, for a file that is not a JPEG, PNG or WebP, too big in
    bytes or pixels, too small or damaged. The files are written before the row names them, so a committed row
    never names a missing file (a rollback leaves unnamed files, which are harmless). Locks the movie row, so two
    uploads at once end with one poster whole. On commit: the cached catalog is dropped and the previous
    poster's files are deleted unless another movie uses the same ones.
    """
    renditions = render_poster(read_upload(image))
    names = {size: store_rendition(data, width=POSTER_SIZES[size]) for size, data in renditions.items()}
    return _record_poster(movie=movie, detail=names["detail"], card=names["card"])


@transaction.atomic
def remove_poster(*, movie):
    """The movie goes back to the placeholder drawn from its title. On commit, as upload_poster."""
    return _record_poster(movie=movie, detail="", card="")


def _record_poster(*, movie, detail, card):
    movie = Movie.objects.select_for_update().get(pk=movie.pk)
    previous = {movie.poster.name, movie.poster_card.name} - {"", detail, card}
    movie.poster.name, movie.poster_card.name = detail, card
    movie.save(update_fields=["poster", "poster_card"])
    catalog_changed()
    if previous:
        transaction.on_commit(lambda: delete_unused_posters(previous))
    return movie


def delete_unused_posters(names):
    """Delete those of these poster files that no movie names any more (two movies may share one image)."""
    used = set(
        Movie.objects.filter(Q(poster__in=names) | Q(poster_card__in=names)).values_list("poster", "poster_card")
    )
    used_names = {name for pair in used for name in pair}
    for name in set(names) - used_names:
        default_storage.delete(name)


class OutOfStock(Exception):
    """A change of a menu item's stock would leave less than none; `left` is how many there are."""

    def __init__(self, item, left):
        self.item, self.left = item, left
        super().__init__(f"Only {left} of {item.name} left.")


def add_to_stock(*, item, count):
    """Add `count` to a menu item's stock; a negative count takes some (a sale, or staff writing some off).
    Returns the new stock.

    One UPDATE that adds to whatever the stock is when it runs, in a savepoint: takes at the same moment lose
    nothing, and the stock's CHECK decides every race. Locks the item's row until the caller's transaction ends.
    Raises OutOfStock, with how many are left, when it would leave less than none.
    """
    try:
        with transaction.atomic():
            MenuItem.objects.filter(pk=item.pk).update(stock=F("stock") + count)
    except IntegrityError as error:
        if STOCK_CHECK not in str(error):
            raise
        raise OutOfStock(item, MenuItem.objects.values_list("stock", flat=True).get(pk=item.pk)) from None
    return MenuItem.objects.values_list("stock", flat=True).get(pk=item.pk)

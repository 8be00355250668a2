"""A show's seat map as everyone reads it: the API's JSON and the website's grid, built once per version and
served from the shared cache (ticketing.cached_reads).

The version the cache goes by is the show's generation `seats:<show id>`, which the services increment after
every commit that claims, books or releases its seats (bookings.notices' after-commit push), before the
change is pushed to the live maps: a client told of a change and re-reading the map gets one that has it. The
catalog's generation is in the key too (the prices and the hall come from it). A hold that lapses frees its
seats with no write at all, so a map is kept only until the soonest `held_until` of the holds it shows as held
(bookings.availability.seat_map_states), and never longer than SEAT_MAP_SECONDS, which bounds what a lost
increment costs. DESIGN: the hold decides, the map is advisory; these bounds keep it honest.
"""

import contextlib
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext, pgettext
from rest_framework.renderers import JSONRenderer

from bookings.availability import seat_map_states
from bookings.seat_picking import SeatSpot
from cinemas.models import OPEN_SEAT_TYPES, Cinema, Seat, Show
from cinemas.services import CATALOG_GENERATION
from ticketing.cached_reads import Built, cached, etag_of, mark_changed
from ticketing.db_routers import catalog_reads, reading_the_primary
from ticketing.lean import cached_read
from ticketing.templatetags.site_format import money_text, seat_type_name

# The longest a cached map is served without being built again, whatever else says it is still true.
SEAT_MAP_SECONDS = 10


def seats_generation(show_id):
    return f"seats:{show_id}"


def seat_maps_changed(show_ids):
    """The seat maps of these shows are built afresh on their next read, from now.

    Called once the change has committed, before it is pushed (bookings.notices' after-commit push, on
    every path that claims, books or releases seats, the lean path's one-statement transactions included)."""
    mark_changed(*(seats_generation(show_id) for show_id in show_ids))


def show_with_catalog(show_id):
    return get_object_or_404(Show.objects.select_related("movie", "hall__cinema"), pk=show_id)


def _map_generations(show_id):
    return (seats_generation(show_id), CATALOG_GENERATION)


def _cached_map(kind, show_id, build):
    return cached(kind, _map_generations(show_id), (show_id,), build, seconds=SEAT_MAP_SECONDS, local=True)


def _hall_seats(show):
    """The hall's seats, front to back and left to right: `(id, row, number, type, x, y)`."""
    return list(
        Seat.objects.filter(hall_id=show.hall_id)
        .order_by("y", "x")
        .values_list("id", "row_label", "number", "seat_type", "x", "y")
    )


# The longest the picker's copy of a show's seats is kept (show_seat_spots): only staff change them.
SEAT_SPOTS_SECONDS = 300


@dataclass(frozen=True)
class ShowSeatSpots:
    """A show as best available picks from it: when it starts, and its seats (SeatSpot, with this show's price;
    seats of a type the show has no price for are left out). Only staff change either (the catalog).
    `companions_open_at`: from then on its companion seats go to anyone (the cinema's companion_release_minutes
    before the start, as the hold functions' bookings_refuse_reserved_seats decides): the map's script says so."""

    starts_at: datetime
    spots: list[SeatSpot]
    companions_open_at: datetime

    @cached_property
    def type_of(self):
        """Seat id -> its type, for the seats of this show."""
        return {spot.id: spot.seat_type for spot in self.spots}


def show_seat_spots(show_id, *, show=None):
    """The show's ShowSeatSpots, built once per catalog generation and process (from `show` when given), or None
    for no such show (never kept): building them from the database was most of a best-available hold's CPU in
    a sell-out (bench/sell_out.py under py-spy). On the lean path: show_seat_spots_on_the_loop."""
    with contextlib.suppress(Show.DoesNotExist):
        return cached(*_seat_spots_read(show_id, show), seconds=SEAT_SPOTS_SECONDS, local=True)
    return None


async def show_seat_spots_on_the_loop(show_id):
    """show_seat_spots on the event loop (ticketing.lean.cached_read): the process's copy with no thread and no
    database; built on a thread once per catalog generation."""
    with contextlib.suppress(Show.DoesNotExist):
        return await cached_read(*_seat_spots_read(show_id), seconds=SEAT_SPOTS_SECONDS)
    return None


def seat_spots(show):
    """The show's seats as best available picks from (show_seat_spots)."""
    return show_seat_spots(show.pk, show=show).spots


def _seat_spots_read(show_id, show=None):
    """What the two ways of reading a show's ShowSeatSpots share: the cache entry and its build."""

    def build():
        # On the primary always, even when a catalog read asks: best available picks the hold's seats from these.
        with reading_the_primary():
            of = show or Show.objects.only("starts_at", "hall_id").get(pk=show_id)
            prices = dict(of.prices.values_list("seat_type", "price"))
            spots = [
                SeatSpot(seat_id, row_label, number, seat_type, x, y, prices[seat_type])
                for seat_id, row_label, number, seat_type, x, y in _hall_seats(of)
                if seat_type in prices
            ]
            release = Cinema.objects.filter(halls=of.hall_id).values_list("companion_release_minutes", flat=True).get()
        return Built(ShowSeatSpots(of.starts_at, spots, of.starts_at - timedelta(minutes=release)))

    # Not "seat-spots" nor "show-seat-spots": those kinds' entries, of the code before, have other shapes.
    return "show-seat-spots-2", (CATALOG_GENERATION,), (show_id,), build


# --- The API's JSON ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatMapJson:
    content: bytes
    etag: str


async def seat_map_json_on_the_loop(show_id):
    """GET /api/v1/shows/{id}/seats's body (API.md) as bytes, with its ETag; Http404 for no such show. The
    process's copy of the current version, without a thread (ticketing.lean.cached_read); built on a thread once
    per version."""
    return await cached_read(
        "seat-map-json", _map_generations(show_id), (show_id,), lambda: _build_json(show_id), seconds=SEAT_MAP_SECONDS
    )


@catalog_reads  # the hall's seats and prices may come from a replica; who holds which seat never does
def _build_json(show_id):
    show = show_with_catalog(show_id)
    status_of, version_of, version, lapses_at = seat_map_states(show, timezone.now())
    price_of = {seat_type: str(price) for seat_type, price in show.prices.values_list("seat_type", "price")}
    listed = [
        {
            "id": seat_id,
            "row": row,
            "number": number,
            "type": seat_type,
            "price": price_of.get(seat_type),
            "status": status_of.get(seat_id, "available"),
            "x": x,
            "y": y,
            "version": version_of.get(seat_id, 0),
        }
        for seat_id, row, number, seat_type, x, y in _hall_seats(show)
    ]
    counts = {"total": len(listed), "available": 0, "held": 0, "booked": 0}
    for seat in listed:
        counts[seat["status"]] += 1
    content = JSONRenderer().render(
        {
            "show_id": show.pk,
            "version": version,
            "seats": listed,
            "counts": counts,
            "currency": show.hall.cinema.currency,
        }
    )
    return Built(SeatMapJson(content, etag_of(content)), valid_until=lapses_at)


# --- The website's grid -----------------------------------------------------------------------------------


class GridSeat(NamedTuple):
    id: int
    row: str
    number: int
    type: str
    price: Decimal | None
    status: str  # available | held | booked | yours
    version: int
    column: int
    line: int
    chosen: bool = False

    @property
    def type_class(self):
        return self.type.lower()

    @property
    def choosable(self):
        return self.status in ("available", "yours")


def seat_markup(seat, escaped=escape, currency=None):
    """One seat's label and checkbox on the seat map.

    Written in Python rather than the template: a 2,000-seat hall is 2,000 copies of this markup, which took
    the template engine about 230 ms a page and this a few. Row labels and seat types come from staff and are
    escaped; every other value is a number or one of the fixed status words. What a screen reader says
    ("Row C seat 7, Premium, $15.00, available") is in the active language (the cache keys carry it) and the
    price in `currency` (the show's cinema's), the words in data-* stay machine words.
    """
    price = seat.price or ""
    row = escaped(seat.row)
    spoken = _spoken_words(get_language())
    spoken_price = f", {_spoken_price(price, currency, spoken['language'])}" if price else ""
    spoken_type = escaped(seat_type_name(seat.type))
    spoken_seat = spoken["seat"] % {"row": row, "number": seat.number}
    return (
        f'<label class="seat seat--{escaped(seat.type_class)} seat--{seat.status}" '
        f'style="grid-column: {seat.column}; grid-row: {seat.line}" data-seat-id="{seat.id}" '
        f'data-status="{seat.status}" data-version="{seat.version}" data-label="{row}{seat.number}" '
        f'data-price="{price}"><input type="checkbox" name="seats" value="{seat.id}"'
        f"{' checked' if seat.chosen else ''}{'' if seat.choosable else ' disabled'}>"
        f'<span class="seat__number" aria-hidden="true">{seat.number}</span><span class="visually-hidden">'
        f"{spoken_seat}, {spoken_type}{spoken_price}, {spoken[seat.status]}"
        "</span></label>\n"
    )


@functools.cache
def _spoken_words(language):
    """The words of a seat's spoken label in `language` (the active one), read once per language."""
    return {
        "language": language,
        # Translators: a seat's name as a screen reader says it on the seat map; %(row)s is a row letter.
        "seat": gettext("Row %(row)s seat %(number)s"),
        "available": pgettext("seat status", "available"),
        "held": pgettext("seat status", "held"),
        "booked": pgettext("seat status", "booked"),
        "yours": pgettext("seat status", "held by you"),
    }


@functools.lru_cache(maxsize=256)
def _spoken_price(price, currency, language):
    return money_text(price, currency)


@dataclass
class SeatPicture:
    """The show's seats on a grid as everyone sees them (column 1 keeps the row letters): what is cached.

    `seats` are GridSeat's fields as plain tuples (a tenth of the namedtuples' cost to read back from the
    cache), and `markup` is each one's markup, in the same order; a buyer's own seats are drawn again on top.
    `html` is the whole grid (bookings/_seat_grid.html) as a buyer with no seats of their own sees it, the
    common case, with its ETag; `show` is the show with its movie, hall and cinema, for the page around it.
    """

    show: Show
    version: int
    seats: tuple
    markup: list
    row_labels: list  # (label, line)
    columns: int
    lines: int
    prices: dict  # seat type -> price, for the legend
    headings: list = field(default_factory=list)  # (line, [(seat type, price)]): a category's heading above its rows
    html: str = ""
    etag: str = ""


def seat_picture(show_id):
    """The show's cached SeatPicture (built if its version has none yet); Http404 for no such show."""
    # Not "seat-map-grid": that kind's entries, of the code before, have no headings.
    return _cached_map("seat-map-grid-2", show_id, lambda: _build_picture(show_id))


def _category_lines(seats, prices):
    """Where the grid's rows go once each category's heading has a line of its own: `({y: line}, headings)`.

    A row's category is the open seat types in it (Premium, Regular; wheelchair spaces and companion seats
    have their own marks); a heading, "Premium · $18.00", goes above the first row of each run of rows of
    one category, naming its types and prices. Rows with none of them (and empty rows) keep the one before."""
    types_of = {}
    for _, _, _, seat_type, _, y in seats:
        types_of.setdefault(y, set()).add(seat_type)
    front = min(types_of)
    line_of, headings, shown, added = {}, [], None, 0
    for y in range(front, max(types_of) + 1):
        category = tuple(kind for kind in OPEN_SEAT_TYPES if kind in types_of.get(y, ()))
        if category and category != shown:
            added += 1
            headings.append((y - front + added, [(kind, prices.get(kind)) for kind in category]))
            shown = category
        line_of[y] = y - front + 1 + added
    return line_of, headings


@catalog_reads  # the hall's seats and prices may come from a replica; who holds which seat never does
def _build_picture(show_id):
    show = show_with_catalog(show_id)
    status_of, version_of, version, lapses_at = seat_map_states(show, timezone.now())
    prices = dict(show.prices.values_list("seat_type", "price"))
    seats = _hall_seats(show)
    if not seats:
        return Built(_drawn(SeatPicture(show, version, (), [], [], 1, 1, prices)), valid_until=lapses_at)
    left = min(seat[4] for seat in seats)
    line_of, headings = _category_lines(seats, prices)
    grid, row_labels = [], {}
    for seat_id, row_label, number, seat_type, x, y in seats:
        line = line_of[y]
        row_labels.setdefault(row_label, line)
        grid.append(
            GridSeat(
                id=seat_id,
                row=row_label,
                number=number,
                type=seat_type,
                price=prices.get(seat_type),
                status=status_of.get(seat_id, "available"),
                version=version_of.get(seat_id, 0),
                column=x - left + 2,
                line=line,
            )
        )
    escaped = functools.cache(escape)
    picture = SeatPicture(
        show=show,
        version=version,
        seats=tuple(tuple(seat) for seat in grid),
        markup=[seat_markup(seat, escaped, show.hall.cinema.currency) for seat in grid],
        row_labels=sorted(row_labels.items(), key=lambda item: item[1]),
        columns=max(seat.column for seat in grid),
        lines=max(seat.line for seat in grid),
        prices=prices,
        headings=headings,
    )
    return Built(_drawn(picture), valid_until=lapses_at)


def _drawn(picture):
    picture.html = SeatGrid(picture).render()
    picture.etag = etag_of(picture.html.encode())
    return picture


class SeatGrid:
    """One buyer's seat map: the shared picture, with the seats of their hold ("yours") and the seats they
    had chosen (checked while still available) drawn on top."""

    def __init__(self, picture, *, yours=(), chosen=()):
        self.picture = picture
        self.yours, self.chosen = set(yours), set(chosen)
        self.version, self.row_labels, self.prices = picture.version, picture.row_labels, picture.prices
        self.headings = picture.headings
        self.columns, self.lines = picture.columns, picture.lines
        self.currency = picture.show.hall.cinema.currency  # of the prices: the show's cinema's

    def _own(self, fields):
        """The seat as this buyer sees it."""
        seat = GridSeat(*fields)
        if seat.id in self.yours:
            return seat._replace(status="yours", chosen=True)
        if seat.status == "available" and seat.id in self.chosen:
            return seat._replace(chosen=True)
        return seat

    @cached_property
    def seats(self):
        return [self._own(seat) for seat in self.picture.seats]

    def seats_html(self):
        """Every seat's markup: the picture's, except the few this buyer sees otherwise."""
        markup = self.picture.markup
        if self.yours or self.chosen:
            markup = list(markup)
            for index, seat in enumerate(self.picture.seats):
                if seat[0] in self.yours or seat[0] in self.chosen:
                    markup[index] = seat_markup(self._own(seat), currency=self.currency)
        return mark_safe("".join(markup))

    def render(self):
        return render_to_string("bookings/_seat_grid.html", {"grid": self})

    @cached_property
    def html(self):
        """The grid's markup for this buyer: the picture's own unless they have seats of their own on it."""
        if self.yours or self.chosen:
            return self.render()
        return mark_safe(self.picture.html)

    @cached_property
    def etag(self):
        return etag_of(self.html.encode()) if self.yours or self.chosen else self.picture.etag

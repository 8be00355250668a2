"""The "best available" seat picker: which free seats to offer a group, from a seat map, without the database.

The booking service loads the hall's seats and the show's claimed seat ids, calls `pick_best_seats`, then holds
the seats it returns (the hold itself decides any race). The rules:

1. `taken` holds the ids of seats that are held or booked; every other seat is free. The answer is None when
   fewer than `count` free seats of the allowed types exist.
2. Allowed types: `seat_type` when given. Otherwise Premium and Regular only: Wheelchair and Companion seats
   go only to those who ask for them. The allowed types are tried cheapest first (the lowest price; Premium
   before Regular on equal prices: the better seat for the same money); when a type has no block of `count`
   seats together, the next type is tried. A block never mixes types. So a buyer (or a waiter served from
   the line) who names no category gets the cheapest that fits, never a dearer one unasked.
3. Together means `count` free seats of one type in one row (same y) with consecutive x: an aisle (a missing
   x) breaks adjacency.
4. Among the blocks of a type, the one whose centre is nearest the centre of that type's area wins (the
   mean x and mean y of all seats of that type in the hall, taken or not). Distance is Euclidean with a row
   counting 1.5 seats: sqrt(dx² + (1.5·dy)²), so one row nearer the screen or further back costs as much
   as a seat and a half sideways. Ties go to the row further back, then to the leftmost block (lower x).
   Distances are compared exactly (integer arithmetic), so ties are real ties.
5. No single empty seat: a block should not strand exactly one free seat between itself and a taken seat
   or the end of the row's run of seats (an aisle or the wall), on either side. Within the chosen type,
   blocks that strand nobody come first; only when every block of that type strands a seat is the best
   of them taken, with `leaves_single_gap=True`. Stranding looks at the seats as they stand in the hall,
   whatever their type. `single_gaps_left` tells which seats a given choice would strand.
6. When no allowed type can seat the group together: the `count` free seats nearest the centre, with
   `together=False` (and `leaves_single_gap=False`: the single-gap rule applies to blocks only). They come
   from the cheapest type that alone has enough free seats, nearest its centre; when no type has
   enough alone, from all allowed types, nearest the centre of their combined area.

Seat ids in the answer are sorted by (y, x). The answer depends only on the seats and ids, never on the
order the seats come in. Work is a sort plus one pass over the seats per allowed type, for halls of
thousands of seats.
"""

import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby

from cinemas.models import OPEN_SEAT_TYPES

# Seats given to anyone who does not ask for a type (the catalog's open seat types); equal prices keep this order.
DEFAULT_SEAT_TYPES = tuple(str(seat_type) for seat_type in OPEN_SEAT_TYPES)


@dataclass(frozen=True)
class SeatSpot:
    id: int
    row_label: str
    number: int
    seat_type: str  # "Regular" | "Premium" | "Wheelchair" | "Companion"
    x: int
    y: int
    price: Decimal


@dataclass(frozen=True)
class SeatPick:
    seat_ids: tuple[int, ...]  # sorted by (y, x)
    together: bool  # all in one row, side by side
    leaves_single_gap: bool  # only when every block of the chosen type would strand a single seat


@dataclass(frozen=True)
class _Area:
    """The centre of a set of seats, kept as integer sums so that distances compare exactly."""

    size: int
    x_sum: int
    y_sum: int

    @classmethod
    def of(cls, seats):
        seats = list(seats)
        return cls(len(seats), sum(seat.x for seat in seats), sum(seat.y for seat in seats))

    def distance(self, first, last):
        """The squared distance of the span first..last (one row) from the centre, times a positive constant.

        Coordinates are doubled so a span's midpoint is an integer, then multiplied by `size` so the mean is:
        dx and dy below are 2·size times the true ones, and 4·dx² + 9·dy² is (4·size)² · (dx² + (1.5·dy)²).
        """
        dx = self.size * (first.x + last.x) - 2 * self.x_sum
        dy = self.size * 2 * first.y - 2 * self.y_sum
        return 4 * dx * dx + 9 * dy * dy


def pick_best_seats(
    *, seats: Iterable[SeatSpot], taken: Collection[int], count: int, seat_type: str | None = None
) -> SeatPick | None:
    """The best free seats for a group of `count`, by the rules in this module's docstring, or None."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}.")
    seats = sorted(seats, key=_position)
    taken = frozenset(taken)
    types = _allowed_types(seats, seat_type)
    free_by_type = {kind: [seat for seat in seats if seat.seat_type == kind and seat.id not in taken] for kind in types}
    if sum(len(free) for free in free_by_type.values()) < count:
        return None
    is_free = {(seat.x, seat.y): seat.id not in taken for seat in seats}
    for kind in types:
        area = _Area.of(seat for seat in seats if seat.seat_type == kind)
        pick = _best_block(free_by_type[kind], count=count, area=area, is_free=is_free)
        if pick:
            return pick
    return _nearest_scattered(seats, free_by_type, types=types, count=count)


def single_gaps_left(seats: Iterable[SeatSpot], taken: Collection[int], chosen_ids: Collection[int]) -> list[int]:
    """Ids of the free seats, sorted by (y, x), that `chosen_ids` would leave with no free seat beside them.

    Only seats next to a chosen one count: a seat that was alone already was not stranded by this choice.
    """
    chosen_ids = frozenset(chosen_ids)
    blocked = frozenset(taken) | chosen_ids
    by_position = {(seat.x, seat.y): seat for seat in seats}

    def is_free(x, y):
        seat = by_position.get((x, y))
        return seat is not None and seat.id not in blocked

    stranded = set()
    for seat in by_position.values():
        if seat.id not in chosen_ids:
            continue
        for x in (seat.x - 1, seat.x + 1):
            if is_free(x, seat.y) and not is_free(x - 1, seat.y) and not is_free(x + 1, seat.y):
                stranded.add(by_position[(x, seat.y)])
    return [seat.id for seat in sorted(stranded, key=_position)]


def _position(seat):
    return (seat.y, seat.x)


def _allowed_types(seats, seat_type):
    if seat_type is not None:
        return [seat_type]
    lowest_price = {}
    for seat in seats:
        if seat.seat_type in DEFAULT_SEAT_TYPES:
            lowest_price[seat.seat_type] = min(seat.price, lowest_price.get(seat.seat_type, seat.price))
    return sorted(lowest_price, key=lambda kind: (lowest_price[kind], DEFAULT_SEAT_TYPES.index(kind)))


def _runs(free_seats):
    """Maximal runs of side-by-side seats in one row, from free seats of one type sorted by (y, x)."""
    for _, row in groupby(free_seats, key=lambda seat: seat.y):
        run = []
        for seat in row:
            if run and seat.x != run[-1].x + 1:
                yield run
                run = []
            run.append(seat)
        yield run


def _best_block(free_seats, *, count, area, is_free):
    best_key, best_block = None, None
    for run in _runs(free_seats):
        for start in range(len(run) - count + 1):
            first, last = run[start], run[start + count - 1]
            key = (_strands_a_seat(first, last, is_free), area.distance(first, last), -first.y, first.x)
            if best_key is None or key < best_key:
                best_key, best_block = key, run[start : start + count]
    if best_block is None:
        return None
    return SeatPick(seat_ids=tuple(seat.id for seat in best_block), together=True, leaves_single_gap=best_key[0])


def _strands_a_seat(first, last, is_free):
    """Whether taking first..last leaves one free seat alone just beyond either end."""
    y = first.y
    # The seat beyond the end has the block on one side, so it is alone when the seat past it is taken or absent.
    return any(
        is_free.get((x, y), False) and not is_free.get((x + step, y), False)
        for x, step in ((first.x - 1, -1), (last.x + 1, 1))
    )


def _nearest_scattered(seats, free_by_type, *, types, count):
    kind = next((kind for kind in types if len(free_by_type[kind]) >= count), None)
    if kind is not None:
        pool = free_by_type[kind]
        area = _Area.of(seat for seat in seats if seat.seat_type == kind)
    else:
        pool = [seat for kind in types for seat in free_by_type[kind]]
        area = _Area.of(seat for seat in seats if seat.seat_type in types)
    nearest = heapq.nsmallest(count, pool, key=lambda seat: (area.distance(seat, seat), -seat.y, seat.x))
    return SeatPick(
        seat_ids=tuple(seat.id for seat in sorted(nearest, key=_position)), together=False, leaves_single_gap=False
    )

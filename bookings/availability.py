"""Who has which seat of a show right now: the reads behind the seat map, counts and seat-type status.

A seat is taken when it has a live claim: its reservation is booked, or a hold whose `held_until` has not
passed. A hold past its time frees its seats for every read at once, whether or not the sweep has run.
"""

from collections import defaultdict

from django.db.models import Count, Max, Q

from bookings.models import Reservation, SeatClaim
from ticketing import shards
from ticketing.lean import pooled_rows
from ticketing.shards import connection


def live_reservations(at, prefix=""):
    """The condition for a reservation (or, with prefix "reservation__", a claim's) that holds its seats at `at`."""
    return Q(**{f"{prefix}status": Reservation.Status.BOOKED}) | Q(
        **{f"{prefix}status": Reservation.Status.RESERVED, f"{prefix}held_until__gt": at}
    )


def live_claims(at):
    """Claims that take their seat at `at`."""
    return SeatClaim.objects.filter(live_reservations(at, "reservation__"), released_at__isnull=True)


# The show's seats taken at a moment: live_claims(at) of the show, as one SQL function (bookings migration 0013)
# that Django's cursor and the lean path's async pool both call (what best available picks around).
TAKEN_SEATS_FUNCTION = "bookings_taken_seats"


def taken_seats(show_id, at):
    """The ids of the show's seats taken at `at` (those of live_claims(at)), in one query on Django's
    connection. Locks nothing."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {TAKEN_SEATS_FUNCTION}(%s, %s)", [show_id, at])
        return {seat_id for (seat_id,) in cursor.fetchall()}


async def ataken_seats(show_id, at):
    """taken_seats on the lean path's async pool (ticketing.lean): the same function, one round trip."""
    return {seat_id for (seat_id,) in await pooled_rows(TAKEN_SEATS_FUNCTION, [show_id, at])}


def seat_states(show, at):
    """`({seat_id: "held" | "booked"}, {seat_id: version}, show_version)` for the show's seat map.

    Versions come from every claim ever made on the show, released ones included, so a client can tell
    whether a pushed change is newer than what it holds.
    """
    return seat_map_states(show, at)[:3]


def seat_map_states(show, at):
    """seat_states, and when that picture changes with no write at all: the soonest `held_until` of the holds
    it shows as held (a hold lapses at that moment, before any sweep), or None when it shows none.

    What caches the picture must drop it by then (bookings.seat_maps).
    """
    status_of, lapses_at = {}, None
    claims = live_claims(at).filter(show=show).values_list("seat_id", "reservation__status", "reservation__held_until")
    for seat_id, status, held_until in claims:
        if status == Reservation.Status.BOOKED:
            status_of[seat_id] = "booked"
        else:
            status_of[seat_id] = "held"
            lapses_at = held_until if lapses_at is None else min(lapses_at, held_until)
    version_of = dict(
        SeatClaim.objects.filter(show=show).values("seat_id").annotate(v=Max("version")).values_list("seat_id", "v")
    )
    return status_of, version_of, max(version_of.values(), default=0), lapses_at


def taken_by_type(show_ids, at):
    """`{show_id: {seat_type: (taken, booked)}}` for listings, in one grouped query (one a shard the shows are on)."""
    counts = defaultdict(dict)
    rows = [
        row
        for alias, ids in shards.by_shard(show_ids).items()
        for row in live_claims(at)
        .using(alias)
        .filter(show_id__in=ids)
        .values_list("show_id", "seat_type", "reservation__status")
        .annotate(number=Count("pk"))  # counted by the database: a full hall is a handful of rows, not 2,000
        .order_by()
    ]
    for show_id, seat_type, status, number in rows:
        taken, booked = counts[show_id].get(seat_type, (0, 0))
        booked += number if status == Reservation.Status.BOOKED else 0
        counts[show_id][seat_type] = (taken + number, booked)
    return counts


def seat_counts(show, at):
    """`{"total", "available", "held", "booked"}` for one show."""
    total = show.hall.seat_count
    held = booked = 0
    for taken, booked_of_type in taken_by_type([show.pk], at).get(show.pk, {}).values():
        booked += booked_of_type
        held += taken - booked_of_type
    return {"total": total, "available": total - held - booked, "held": held, "booked": booked}


def next_seat_version():
    """A number larger than every seat-map version handed out so far, for all the changes of one transaction.

    PostgreSQL: one sequence for all shows, so no change waits on a per-show counter. SQLite (the
    single-process demo) has one writer at a time, so the highest version plus one is safe there.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval('bookings_seat_version')")
        else:
            cursor.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM bookings_seatclaim")
        return cursor.fetchone()[0]

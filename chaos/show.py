"""The show a fault scenario sells: a fresh 2,000-seat show, holds that lapse while a fault happens and a waiting
line behind them, how much of that backlog the sweep has yet to clear, and the request that holds two seats.
"""

import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.show import prepare_show

HOLD_SECONDS = 300
GRACE_SECONDS = 5
SEATS_PER_HOLD = 2
WAITERS = 200
SETUP_SECONDS = 20
MOVIE_ID = 1  # bench.show.prepare_show's one movie, in the run's fresh database


def fresh_show(database_url, redis_url):
    """A new 2,000-seat show (bench.show.prepare_show deletes the earlier ones); returns (show_id, seat ids)."""
    from django.apps import apps

    if apps.ready:
        from django.db import close_old_connections

        from waiting.models import Waiter

        close_old_connections()  # this process's own connection may not have outlived a restart of PostgreSQL
        Waiter.objects.all().delete()  # they protect their holds, which prepare_show deletes with the old shows
    show_id, movie_id, plan = prepare_show(database_url, redis_url)
    return show_id, [seat for row in plan.rows for seat in row]


def hold_request(session, show_id, seats):
    """The body of POST /api/v1/reservations that holds `seats` of the show for `session`."""
    return {"session_id": session, "show_id": show_id, "seats_to_reserve": seats, "movie_id": MOVIE_ID}


def lapsing_holds(show_id, seat_ids, *, count, within):
    """`count` holds of two seats, made through the hold service with its clock moved back, that lapse (expiry
    plus grace) at moments spread over `within` seconds from SETUP_SECONDS on; then WAITERS waiters join the
    full show's line. Returns the monotonic time of the last lapse."""
    from bookings.services import hold_seats
    from cinemas.models import Show
    from ticketing.buyers import Buyer
    from waiting.services import join_waiting_line

    show = Show.objects.get(pk=show_id)
    # The first lapse comes after the setup (about 10 s here): waiters may only join a show held full.
    first_lapse = datetime.now(UTC) + timedelta(seconds=SETUP_SECONDS)
    for number in range(count):
        lapses_at = first_lapse + timedelta(seconds=within * number / count)
        at = lapses_at - timedelta(seconds=HOLD_SECONDS + GRACE_SECONDS)
        seats = seat_ids[SEATS_PER_HOLD * number : SEATS_PER_HOLD * (number + 1)]
        hold_seats(buyer=Buyer(None, f"holder-{number}"), show=show, seat_ids=seats, at=at, accessible_confirmed=True)
    for number in range(WAITERS):
        join_waiting_line(buyer=Buyer(None, f"waiter-{number:04d}"), show=show, seats_wanted=1)
    return time.monotonic() + (lapses_at - datetime.now(UTC)).total_seconds()


def swept_and_served(database_url, show_id):
    """(lapsed holds not yet released, waiters still waiting) of the show."""
    with psycopg.connect(database_url) as connection:
        lapsed = connection.execute(
            "SELECT count(*) FROM bookings_reservation WHERE show_id = %s AND status = 'Reserved' "
            "AND held_until <= now()",
            [show_id],
        ).fetchone()[0]
        waiting = connection.execute(
            "SELECT count(*) FROM waiting_waiter WHERE show_id = %s AND status = 'Waiting'", [show_id]
        ).fetchone()[0]
    return lapsed, waiting


def backlog_cleared(database_url, show_id, last_lapse):
    """Every hold has lapsed, the sweep released them all and the line is served."""
    return time.monotonic() >= last_lapse and swept_and_served(database_url, show_id) == (0, 0)


def wait_until(condition, *, seconds, step=0.25):
    """Seconds until condition() held, or None if it didn't within `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return round(time.monotonic() - started, 2)
        time.sleep(step)
    return None


def in_time(seconds, limit):
    """A wait (wait_until's seconds, or None if it never came) that came within `limit` seconds."""
    return seconds is not None and seconds <= limit

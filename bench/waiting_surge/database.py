"""The surge's database work: its show's holders, the holders' clocks run out, the line read back, and the web
process's database sessions (told apart by their application_name).
"""

import psycopg

from bench.show import BENCH_KEY_NAME

# Names the server's and the Celery processes' database sessions, so they can be counted in pg_stat_activity.
WEB_APPLICATION_NAME = "waiting-surge-web"
CELERY_APPLICATION_NAME = "waiting-surge-celery"
HOLDER_SEATS = 10  # per holder: TICKETING_MAX_SEATS, the most one session may hold of a show


def with_application_name(database_url, name):
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name={name}"


def forget_earlier_lines(database_url):
    """Delete earlier runs' waiters: prepare_show deletes earlier shows, which their waiters protect."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('waiting_waiter')").fetchone()[0] is not None:
            connection.execute("DELETE FROM waiting_waiter")


def hold_every_seat(show_id, seat_ids):
    """200 other buyers hold the hall's 2,000 seats, 10 each, through the hold service (in this process).

    On an hour's clock, whatever the servers' is: the joins must all happen while the seats are held. Their
    clocks are run out later (lapse_holders).
    """
    from django.test import override_settings

    from bookings.services import hold_seats
    from cinemas.models import Show
    from ticketing.buyers import Buyer
    from ticketing.models import ApiKey

    api_key_id = ApiKey.objects.get(name=BENCH_KEY_NAME).pk  # made by prepare_show
    show = Show.objects.get(pk=show_id)
    with override_settings(TICKETING_HOLD_SECONDS=3600):
        for start in range(0, len(seat_ids), HOLDER_SEATS):
            buyer = Buyer(api_key_id, f"holder-{start // HOLDER_SEATS}")
            hold_seats(
                buyer=buyer, show=show, seat_ids=seat_ids[start : start + HOLDER_SEATS], accessible_confirmed=True
            )


def lapse_holders(database_url, show_id, *, spread, grace):
    """Run the holders' clocks out: each hold expires at a moment spread over the next `spread` seconds."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(
            "UPDATE bookings_reservation r SET expires_at = t.lapses, held_until = t.lapses + %s * interval '1 s' "
            "FROM (SELECT id, now() + random() * %s * interval '1 s' AS lapses FROM bookings_reservation "
            "      WHERE show_id = %s AND status = 'Reserved' AND session_id LIKE 'holder-%%') t "
            "WHERE r.id = t.id",
            [grace, spread, show_id],
        ).rowcount


def line_state(database_url, show_id):
    """(waiters still waiting, holds still Reserved) of the show."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM waiting_waiter WHERE show_id = %(show)s AND status = 'Waiting'), "
            "       (SELECT count(*) FROM bookings_reservation WHERE show_id = %(show)s AND status = 'Reserved')",
            {"show": show_id},
        ).fetchone()


def server_sessions(database_url):
    """(open, busy) database sessions of the web process."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
            "WHERE application_name = %s",
            [WEB_APPLICATION_NAME],
        ).fetchone()


def read_line(database_url, show_id):
    """Every waiter of the show in joining order, with what left the line and how its hold turned out."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT w.id::text, w.place, w.status, w.seats_wanted, w.xmin::text::bigint, w.reservation_id::text, "
            "       extract(epoch FROM r.created_at), r.status, "
            "       (SELECT count(*) FROM bookings_seatclaim c WHERE c.reservation_id = w.reservation_id) "
            "FROM waiting_waiter w LEFT JOIN bookings_reservation r ON r.id = w.reservation_id "
            "WHERE w.show_id = %s ORDER BY w.place",
            [show_id],
        ).fetchall()
